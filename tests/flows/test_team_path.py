"""The content team's path, end to end: ``clinicpress serve`` on a real Prefect server, runs
triggered with ``prefect deployment run``, and the monitor's alerts, events and artifact.

The server asks for an auth string, as a team's server must (README, "Running for a team"):
every process of the team's path sends it, a request without it or with a wrong one is
refused (401), and the string is never printed or logged.

Real parts on loopback only: a ``prefect server start`` with its own PREFECT_HOME and an auth
string (tests/prefect_server.py), ``clinicpress serve`` as the team starts it against that server,
the real ``prefect`` CLI of the venv, a copy of the sample site (content/) in a temporary
folder, its DOI sources answered by tests/httpfarm.py (``doi_resolver``; the two non-DOI
sources are excluded: no test reaches the internet), and an HTTP receiver for apprise's
``json://`` alerts. Dates are relative to the product's clock: the monitor is asked about the
day after the article's review falls due (its ``today`` parameter), when the license is inside
its warning window too. Every wait is bounded; every process is stopped, also on failure.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import httpx
import pytest
from conftest import LICENSE_EXPIRES, MINIMAL_FRONT_MATTER, ROOT, reference_article_text, site_text
from httpfarm import HTTPFarm, Reply
from prefect_server import Server, client, spawn, start_server, tail
from webhook import Receiver

from clinicpress.checks.transitions import license_bucket
from clinicpress.site import load_site
from clinicpress.sources.loader import load_article

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

SLUG = "ketamine-therapy-substance-abuse"
SECOND = "test-article"  # a second article: what a refused run would have published
DOIS = ("10.3389/fpsyt.2018.00277", "10.1176/appi.ajp.2019.18101123", "10.1176/appi.ajp.2021.21030277")
SCHEDULE = "30 6 * * 1-5"  # not the sample's: a cron built into the code could not match it
PROGRAM_ID = "190655AP"
PREFECT = str(Path(sys.executable).parent / "prefect")  # the venv's own CLI, as the team runs it
DEPLOYMENTS_SECONDS = 120.0  # `clinicpress serve` imports the flows and registers both: ~15 s here
RUN_SECONDS = 240.0  # one served flow run, in a new process: ~10-20 s on a busy 2-core machine
EVENTS_SECONDS = 60.0  # the server stores events in batches, a few seconds after they are sent
CLI_SECONDS = 120.0
MONITOR = "monitor-sources-not-ok"  # the artifact key (flows/monitor.py)
AUTH = f"team:{secrets.token_urlsafe(24)}"  # the team server's auth string (a fresh one per run)


# -- the served site --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Team:
    server: Server
    site: Path
    article: Path  # the sample article, copied
    second: Path  # a second article, in the same content folder
    out: Path
    farm: HTTPFarm
    receiver: Receiver
    serve_log: Path


def _site(farm: HTTPFarm, receiver: Receiver) -> str:
    """The sample site.toml: DOIs checked at the farm, the rest excluded, alerts to the receiver."""
    text = site_text(
        allow_private_hosts='["127.0.0.1"]',
        timeout="2.0",
        retries="0",
        urls=json.dumps([receiver.url]),
        schedule=json.dumps(SCHEDULE),
        enabled="false",  # the first `enabled`: [archive] (the Wayback Machine is on the internet)
    )
    text, count = re.subn(r"(?m)^enabled = true", "enabled = false", text, count=1)  # [checks.integrity]
    assert count == 1
    links = f'[checks.links]\ndoi_resolver = "{farm.url("/doi/")}"\nexclude = ["^https://www\\\\.(cambridge|fda)"]\n'
    return text.replace("[checks.links]\n", links, 1)


def _stored(team: Team) -> str:
    return "\n".join([tail(team.serve_log, 80), tail(team.server.log, 20)])


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """One Prefect server and one ``clinicpress serve`` for the module, both deployments seen."""
    base = tmp_path_factory.mktemp("team")
    content = base / "content"
    content.mkdir()
    receiver = Receiver()
    try:
        with HTTPFarm() as farm, start_server(base, auth=AUTH) as server:
            for doi in DOIS:
                farm.route(f"/doi/{doi}", Reply(200, body=b"<html><title>A study</title></html>"))
            site = content / "site.toml"
            site.write_text(_site(farm, receiver), encoding="utf-8")
            article = content / f"{SLUG}.md"
            article.write_text(reference_article_text(), encoding="utf-8")
            second = content / "second.md"
            second.write_text(f"---\n{MINIMAL_FRONT_MATTER}---\nSome text.\n", encoding="utf-8")
            out = base / "out"
            log = base / "serve.log"
            command = [sys.executable, "-m", "clinicpress", "serve", "--site", str(site), "--out", str(out)]
            # Started outside the project, as a service would be: the deployments carry absolute paths.
            with spawn(command, server.env("serve"), base, log) as serving:
                team = Team(server, site, article, second, out, farm, receiver, log)
                _wait_for_deployments(team, serving)
                yield team
    finally:
        receiver.close()


def _wait_for_deployments(team: Team, serving: subprocess.Popen[bytes]) -> None:
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + DEPLOYMENTS_SECONDS
    while True:
        if serving.poll() is not None:
            pytest.fail(f"clinicpress serve exited with {serving.returncode}\n{_stored(team)}")
        try:
            with client(team.server) as api:
                for name in ("publish/publish", "monitor/monitor"):
                    api.read_deployment_by_name(name)
            return
        except ObjectNotFound:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no deployments after {DEPLOYMENTS_SECONDS:.0f} s\n{_stored(team)}")
        time.sleep(1.0)


# -- prefect deployment run -----------------------------------------------------------------------


def _deployment_run(
    team: Team, name: str, *params: str, login: bool = True
) -> subprocess.CompletedProcess[str]:
    """``prefect deployment run NAME --param k=v …``, the real CLI, as the team types it (with the
    server's auth string in its environment unless ``login`` is False)."""
    command = [PREFECT, "deployment", "run", name]
    for param in params:
        command += ["--param", param]
    return subprocess.run(
        command,
        env=team.server.env("cli", login=login),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_SECONDS,
    )


def _created_run(result: subprocess.CompletedProcess[str]) -> UUID:
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"UUID: ([0-9a-f-]{36})", result.stdout)
    assert found, result.stdout
    return UUID(found.group(1))


def _finished(team: Team, run_id: UUID) -> FlowRun:
    """The flow run once it reached a terminal state (the serve process runs it)."""
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        with client(team.server) as api:
            run = api.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            pytest.fail(
                f"flow run {run_id} still {run.state_name} after {RUN_SECONDS:.0f} s\n{_stored(team)}"
            )
        time.sleep(0.5)


def _run_to_the_end(team: Team, name: str, *params: str) -> FlowRun:
    return _finished(team, _created_run(_deployment_run(team, name, *params)))


def _runs_of(team: Team, deployment: str) -> list[FlowRun]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with client(team.server) as api:
        found = api.read_deployment_by_name(deployment)
        return api.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])))


@pytest.fixture(scope="module")
def published(team: Team) -> FlowRun:
    """The sample article published by ``prefect deployment run 'publish/publish'``."""
    return _run_to_the_end(team, "publish/publish", f"paths={json.dumps([str(team.article)])}")


# -- the deployments --------------------------------------------------------------------------------


def test_serve_registers_publish_by_hand_and_monitor_on_the_sites_schedule(team: Team) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    with client(team.server) as api:
        publish = api.read_deployment_by_name("publish/publish")
        monitor = api.read_deployment_by_name("monitor/monitor")
    assert publish.schedules == []  # triggered by hand only
    [schedule] = monitor.schedules
    assert schedule.active
    assert isinstance(schedule.schedule, CronSchedule)
    assert schedule.schedule.cron == load_site(team.site).monitor.schedule == SCHEDULE
    expected = {"site_path": str(team.site), "out_dir": str(team.out)}
    assert publish.parameters == monitor.parameters == expected
    assert publish.enforce_parameter_schema  # bad parameters are refused when the run is created
    assert monitor.enforce_parameter_schema


def test_publish_deployment_run_publishes_the_article(team: Team, published: FlowRun) -> None:
    assert published.state is not None
    assert published.state.is_completed(), f"{published.state}\n{_stored(team)}"
    assert published.parameters["paths"] == [str(team.article)]
    for path in (
        f"web/{SLUG}/index.html",
        f"handouts/{SLUG}.pdf",
        f"newsletter/{SLUG}.eml",
        f"reports/{SLUG}.json",
    ):
        assert (team.out / path).is_file(), path
    assert (
        "Ketamine Therapy Can Help with Substance Abuse" in (team.out / f"web/{SLUG}/index.html").read_text()
    )
    assert all(team.farm.hits(f"/doi/{doi}") >= 1 for doi in DOIS)  # its sources were checked, on loopback
    assert not (team.out / f"web/{SECOND}").exists()  # only what the run named


# -- the team's server lets in only the team ------------------------------------------------------


def _basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def test_the_team_server_refuses_every_request_without_its_auth_string(
    team: Team, published: FlowRun
) -> None:
    """Anyone who reaches the port, with no auth string or a wrong one: no publish, no answer to a
    sign-off form, not even a read (401); the team's own string is let in."""
    with client(team.server) as api:
        deployment = api.read_deployment_by_name("publish/publish")
    runs_before = {run.id for run in _runs_of(team, "publish/publish")}
    second = str(team.second)
    requests = [
        ("POST", f"/deployments/{deployment.id}/create_flow_run", {"parameters": {"paths": [second]}}),
        ("POST", f"/flow_runs/{uuid4()}/resume", {"run_input": {"name": "Mallory"}}),  # a sign-off form
        ("POST", "/flow_runs/filter", {}),
    ]
    strangers = [{}, _basic(f"team:{secrets.token_urlsafe(24)}"), {"Authorization": f"Bearer {AUTH}"}]
    with httpx.Client(base_url=team.server.url, timeout=30.0, trust_env=False) as http:
        for method, path, body in requests:
            for headers in strangers:
                response = http.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (method, path, list(headers), response.text)
        # The same read with the team's string is answered: the 401s were the login, not the request.
        assert http.post("/flow_runs/filter", json={}, headers=_basic(AUTH)).status_code == 200

    # The team's own CLI without the string: refused, and no run is created.
    result = _deployment_run(team, "publish/publish", f"paths={json.dumps([second])}", login=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "401" in output, output
    assert {run.id for run in _runs_of(team, "publish/publish")} == runs_before
    assert not (team.out / f"web/{SECOND}").exists()


def test_the_auth_string_is_never_printed_or_logged(team: Team, published: FlowRun) -> None:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with client(team.server) as api:
        logs = api.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[published.id])))
    assert logs, "the publish run logged to the server"
    assert all(AUTH not in log.message for log in logs)
    for path in (team.serve_log, team.server.log):
        assert AUTH not in path.read_text(errors="replace"), path
    assert not list(team.out.rglob("*auth*"))


def _clinicpress(team: Team, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "clinicpress", *args, "--site", str(team.site), "--out", str(team.out)]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=CLI_SECONDS)


@pytest.mark.slow
def test_serve_and_deploy_without_the_right_auth_string_stop_with_one_line(
    team: Team, tmp_path: Path
) -> None:
    wrong = f"team:{secrets.token_urlsafe(24)}"
    none = _clinicpress(team, tmp_path, team.server.env("lone", login=False), "serve")
    bad = _clinicpress(
        team, tmp_path, team.server.env("lone", PREFECT_API_AUTH_STRING=wrong), "deploy", "--work-pool", "x"
    )
    for result, given in ((none, "is not set"), (bad, "is wrong")):
        output = " ".join((result.stdout + result.stderr).split())  # the console wraps long lines
        assert result.returncode == 2, output
        assert (
            f"PREFECT_API_AUTH_STRING: {given}: the Prefect server at {team.server.url} answered 401"
            in output
        )
        assert "Traceback" not in output
        assert wrong not in output
        assert AUTH not in output


@pytest.mark.slow
def test_deploy_and_a_worker_with_the_auth_string_get_in(team: Team, tmp_path: Path) -> None:
    from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus

    deployed = _clinicpress(team, tmp_path, team.server.env("deploy"), "deploy", "--work-pool", "team-pool")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert AUTH not in deployed.stdout + deployed.stderr
    with client(team.server) as api:
        assert api.read_deployment_by_name("publish/team-pool").work_pool_name == "team-pool"
    command = [PREFECT, "worker", "start", "--pool", "team-pool", "--name", "team-1", "--limit", "1"]
    env = team.server.env("worker", PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_HEARTBEAT_SECONDS="1")
    log = tmp_path / "worker.log"
    with spawn(command, env, tmp_path, log) as worker:
        deadline = time.monotonic() + DEPLOYMENTS_SECONDS
        online = WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
        while True:
            with client(team.server) as api:
                if api.read_workers_for_work_pool("team-pool", worker_filter=online):
                    break
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker never came online (exit {worker.returncode})\n{tail(log)}")
            time.sleep(0.5)
    assert AUTH not in log.read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("params", "refusal"),
    [
        # Refused by the server: the deployment enforces its parameter schema.
        (["paths=5"], "Validation failed for field 'paths'. Failure reason: 5 is not valid"),
        # The team's likeliest slip: one path without the brackets of a list.
        (["paths=SECOND"], "Validation failed for field 'paths'. Failure reason: 'SECOND' is not valid"),
        # Refused by the prefect CLI, which knows the deployment's parameters.
        (
            ["paths=[SECOND]", "colour=red"],
            "The following parameters were specified but not found on the deployment: 'colour'",
        ),
    ],
    ids=["paths-a-number", "paths-a-string", "unknown-parameter"],
)
def test_bad_parameters_are_refused_at_creation_and_publish_nothing(
    team: Team, published: FlowRun, params: list[str], refusal: str
) -> None:
    second = str(team.second)
    params = [p.replace("[SECOND]", json.dumps([second])).replace("SECOND", second) for p in params]
    refusal = refusal.replace("SECOND", second)
    runs_before = {run.id for run in _runs_of(team, "publish/publish")}
    result = _deployment_run(team, "publish/publish", *params)
    output = " ".join((result.stdout + result.stderr).split())  # the CLI wraps long lines
    assert result.returncode == 1, output
    assert refusal in output
    assert "Created flow run" not in output
    assert {run.id for run in _runs_of(team, "publish/publish")} == runs_before  # no run was created
    assert not (team.out / f"web/{SECOND}").exists()


@pytest.mark.slow
def test_an_unknown_parameter_through_the_api_crashes_the_run_naming_it_and_publishes_nothing(
    team: Team, published: FlowRun
) -> None:
    """Not every trigger is the CLI: a script or an automation creates the run through the API.

    The server checks types against the schema but lets an unknown name through (Prefect's
    parameter schema cannot say ``additionalProperties: false``); the run's process then refuses
    the call before the flow starts, so nothing is published and the run's log names the parameter.
    """
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with client(team.server) as api:
        deployment = api.read_deployment_by_name("publish/publish")
        created = api.create_flow_run_from_deployment(
            deployment.id, parameters={"paths": [str(team.second)], "colour": "red"}
        )
    run = _finished(team, created.id)
    assert run.state_name == "Crashed", run.state
    with client(team.server) as api:
        logs = api.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    text = "\n".join(log.message for log in logs)
    assert "SignatureMismatchError: Function expects parameters ['paths'" in text, text
    assert "but was provided with parameters ['site_path', 'out_dir', 'paths', 'colour']" in text
    assert not (team.out / f"web/{SECOND}").exists()


# -- the monitor deployment: events, artifact, alerts -----------------------------------------------


@dataclass(frozen=True)
class Monitored:
    day: date  # the day the monitor was asked about
    first: FlowRun
    second: FlowRun
    posts_after_first: list[dict[str, Any]]
    posts_after_second: list[dict[str, Any]]


@pytest.fixture(scope="module")
def monitored(team: Team, published: FlowRun) -> Monitored:
    """``prefect deployment run 'monitor/monitor'`` twice, on the day after the review fell due.

    On that day the license is inside its warning window and the review is overdue; the first
    DOI answers 404 in the first run (one failed run: no alert yet, but a row in the artifact)
    and 200 again in the second, so the second run has nothing new to say.
    """
    assert published.state_name == "Completed", _stored(team)
    day = load_article(team.article).next_review + timedelta(days=1)
    assert license_bucket(LICENSE_EXPIRES, day, [150, 90, 30]) == "90"  # the premise: inside a window
    team.farm.route(f"/doi/{DOIS[0]}", Reply(404))
    first = _run_to_the_end(team, "monitor/monitor", f"today={day.isoformat()}")
    after_first = list(team.receiver.posts)
    team.farm.route(f"/doi/{DOIS[0]}", Reply(200, body=b"<html><title>A study</title></html>"))
    second = _run_to_the_end(team, "monitor/monitor", f"today={day.isoformat()}")
    return Monitored(day, first, second, after_first, list(team.receiver.posts))


def _events(team: Team, run: FlowRun, prefix: str, wanted: int) -> list[Any]:
    """The events named ``prefix…`` that Prefect relates to ``run``, once ``wanted`` are stored."""
    from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter

    query = EventFilter(
        event=EventNameFilter(prefix=[prefix]),
        any_resource=EventAnyResourceFilter(id=[f"prefect.flow-run.{run.id}"]),
    )
    deadline = time.monotonic() + EVENTS_SECONDS
    while True:
        with client(team.server) as api:
            events = list(api.read_events(filter=query, limit=50).events)
        if len(events) >= wanted or time.monotonic() > deadline:
            return sorted(events, key=lambda e: e.event)
        time.sleep(1.0)


@pytest.mark.slow
def test_monitor_run_emits_one_event_per_transition_and_the_sources_artifact(
    team: Team, monitored: Monitored
) -> None:
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    first = monitored.first
    assert first.state_name == "Completed", f"{first.state}\n{_stored(team)}"
    article = load_article(team.article)

    license_event, review_event = _events(team, first, "clinicpress.", 2)
    assert license_event.event == "clinicpress.license.expiring"
    assert license_event.resource.id == f"clinicpress.license:{PROGRAM_ID}"
    assert license_event.payload["program_id"] == PROGRAM_ID
    assert license_event.payload["within_days"] == "90"
    assert (
        license_event.payload["expires"]
        == f"{LICENSE_EXPIRES:%B} {LICENSE_EXPIRES.day}, {LICENSE_EXPIRES.year}"
    )
    assert review_event.event == "clinicpress.review.due"
    assert review_event.resource.id == f"clinicpress.review:{SLUG}"
    assert review_event.payload["slug"] == SLUG
    assert review_event.payload["next_review"] == article.next_review.isoformat()
    assert review_event.payload["reprint_needed"] is True  # the article has a handout

    with client(team.server) as api:
        artifacts = api.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[MONITOR]), flow_run_id=ArtifactFilterFlowRunId(any_=[first.id])
            )
        )
    [artifact] = artifacts
    assert artifact.type == "table"
    rows = {row["source"]: row for row in json.loads(str(artifact.data))}
    broken = rows[f"https://doi.org/{DOIS[0]}"]
    assert (broken["status"], broken["http_status"], broken["articles"]) == ("broken", 404, SLUG)
    for doi in DOIS[1:]:
        assert f"https://doi.org/{doi}" not in rows  # ok: not listed
    assert {row["status"] for source, row in rows.items() if source != broken["source"]} == {"skipped"}


@pytest.mark.slow
def test_license_and_review_alerts_reach_the_receiver_once(team: Team, monitored: Monitored) -> None:
    posts = monitored.posts_after_first
    kinds = sorted(re.findall(r"(?m)^Alert kind: (.+)$", "\n".join(p["message"] for p in posts)))
    assert kinds == ["license.expiring", "review.due"], posts
    by_kind = {re.findall(r"(?m)^Alert kind: (.+)$", p["message"])[0]: p for p in posts}
    license_post, review_post = by_kind["license.expiring"], by_kind["review.due"]
    assert license_post["title"] == f"[clinicpress] License {PROGRAM_ID} expires within 90 days"
    assert license_post["type"] == review_post["type"] == "warning"
    assert "Start the renewal" in license_post["message"]
    assert review_post["title"] == "[clinicpress] Review due: Ketamine Therapy Can Help with Substance Abuse"
    assert "Reprint needed" in review_post["message"]

    # Alert once: the second run, on the same day, sends nothing and emits no clinicpress event.
    second = monitored.second
    assert second.state_name == "Completed", f"{second.state}\n{_stored(team)}"
    assert monitored.posts_after_second == posts
    # Once Prefect has stored the run's end, the events it sent before it would be there too.
    assert _events(team, second, "prefect.flow-run.Completed", 1)
    assert _events(team, second, "clinicpress.", 0) == []
