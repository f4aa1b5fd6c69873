"""Publishing across machines: a Prefect process work pool, two workers, one flow run per batch.

Real parts on loopback only: a ``prefect server start`` on a free port with its
own PREFECT_HOME, ``clinicpress deploy`` (which creates the pool), two
``prefect worker start`` processes, the CLI as a user runs it, sources on
tests/httpfarm.py, and the registry on SQLite and, when
CLINICPRESS_TEST_POSTGRES_URL is set (.ci/run sets it with tools/ci-postgres.sh),
on PostgreSQL. Every wait is bounded; every process started here is stopped,
with whatever it started, also when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import MINIMAL_FRONT_MATTER, PUBLISHED, ROOT, WriteArticle, site_text
from httpfarm import HTTPFarm, Reply
from prefect_server import Server, clean_env, spawn, start_server, tail
from prefect_server import client as api_client
from requirements import need
from typer.testing import CliRunner

from clinicpress.checks.model import ArticleReport, Verdict
from clinicpress.cli import app

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

POOL = "clinicpress-test"
WORKERS = ("worker-1", "worker-2")
WORKERS_ONLINE_SECONDS = 120.0
COMMAND_SECONDS = 480.0  # one CLI run: three batches of two articles on two workers took ~60 s here
CHANNEL_FILES = (
    "web/{slug}/index.html",
    "handouts/{slug}.pdf",
    "newsletter/{slug}.eml",
    "reports/{slug}.json",
)


# -- processes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # With the team's auth string on, as the docs' team setup runs it (docs/operating/servers.md).
    with start_server(tmp_path_factory.mktemp("prefect"), auth=f"team:{secrets.token_urlsafe(24)}") as server:
        yield server


def _loopback_site(registry_url: str | None = None) -> str:
    # Sources on 127.0.0.1 allowed; no archive lookups (they would leave loopback).
    text = site_text(allow_private_hosts='["127.0.0.1"]', timeout="2.0", retries="0", enabled="false")
    return text.replace("[registry]\n", f'[registry]\nurl = "{registry_url}"\n') if registry_url else text


@dataclass(frozen=True)
class Pool:
    server: Server
    logs: dict[str, Path]  # worker name → its log


@pytest.fixture(scope="module")
def work_pool(prefect_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """``clinicpress deploy`` (creating the process pool), then two workers, both seen online."""
    base = tmp_path_factory.mktemp("pool")
    site = base / "site.toml"
    site.write_text(_loopback_site(), encoding="utf-8")
    deploy = _run(prefect_server, "deploy", "--work-pool", POOL, "--site", site, "--out", base / "out")
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert f"work pool '{POOL}' (created, process): deployment publish/{POOL}" in deploy.stdout
    with api_client(prefect_server) as client:
        assert client.read_work_pool(POOL).type == "process"

    logs = {name: base / f"{name}.log" for name in WORKERS}
    with ExitStack() as running:
        processes: list[subprocess.Popen[bytes]] = []
        for name, path in logs.items():
            # --limit 1: a worker takes one batch at a time, so the batches spread over both.
            command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL]
            command += ["--name", name, "--limit", "1"]
            env = prefect_server.env(name, PREFECT_WORKER_QUERY_SECONDS="1")
            # Started outside the project: the deployment's pull step moves each run there.
            processes.append(running.enter_context(spawn(command, env, base, path)))
        deadline = time.monotonic() + WORKERS_ONLINE_SECONDS
        while True:
            from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus

            with api_client(prefect_server) as client:
                online = client.read_workers_for_work_pool(
                    POOL, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
                )
            if {w.name for w in online} >= set(WORKERS):
                break
            exited = [p.args for p in processes if p.poll() is not None]
            if exited or time.monotonic() > deadline:
                pytest.fail(f"workers not online (exited: {exited})\n" + "\n".join(map(tail, logs.values())))
            time.sleep(1.0)
        yield Pool(server=prefect_server, logs=logs)


# -- the catalog ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def farm() -> Iterator[HTTPFarm]:
    with HTTPFarm() as server:
        server.route("/ok", Reply(200, body=b"<html><title>A study</title></html>"))
        yield server


def _catalog(write_article: WriteArticle, farm: HTTPFarm, count: int) -> dict[str, Path]:
    """``count`` small articles citing a loopback source: slug → file."""
    articles = {}
    for number in range(1, count + 1):
        front = MINIMAL_FRONT_MATTER.replace("Test Article", f"Catalog Article {number}")
        front += f"sources:\n  - {{title: A study, url: '{farm.url('/ok')}'}}\n"
        path = write_article(front_matter=front, body="A claim.[^1]\n", name=f"catalog-{number}.md")
        articles[f"catalog-article-{number}"] = path
    return articles


def _registry_url(database: str, out: Path) -> str | None:
    """None: SQLite, the default under --out. PostgreSQL: emptied first; none: skip (fail under CI=true)."""
    if database == "sqlite":
        return None
    url = os.environ.get("CLINICPRESS_TEST_POSTGRES_URL", "")
    if not url:
        need("PostgreSQL", "set CLINICPRESS_TEST_POSTGRES_URL (e.g. $(tools/ci-postgres.sh)) to run")
    from clinicpress.outputs.registry import Registry, metadata

    with Registry(url) as registry:
        metadata.drop_all(registry.engine)
    return url


def _run(server: Server, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clinicpress", *map(str, args)],
        env=server.env("cli"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
    )


def _batch_runs(client: SyncPrefectClient, since: datetime) -> list[Any]:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )

    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[POOL])),
        flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
    )


# -- tests ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_publish_on_a_work_pool_runs_the_batches_on_both_workers(
    database: str, work_pool: Pool, farm: HTTPFarm, write_article: WriteArticle, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from clinicpress.outputs.registry import Registry, publishes, registry_url
    from clinicpress.site import load_site

    out = tmp_path / "out"
    site = tmp_path / "site.toml"
    site.write_text(_loopback_site(_registry_url(database, out)), encoding="utf-8")
    articles = _catalog(write_article, farm, 6)
    since = datetime.now(UTC)

    result = _run(
        work_pool.server,
        "publish",
        "--work-pool",
        POOL,
        "--batch-size",
        "2",
        "--site",
        site,
        "--out",
        out,
        *articles.values(),
    )
    assert result.returncode == 0, "\n".join(
        [result.stdout, result.stderr, *map(tail, work_pool.logs.values())]
    )
    assert f"3 batch(es) on publish/{POOL}: 6 published, 0 unchanged, 0 blocked" in result.stdout
    assert "Traceback" not in result.stderr

    # Every channel of every article is in the live release.
    for slug in articles:
        for pattern in CHANNEL_FILES:
            assert (out / pattern.format(slug=slug)).is_file(), pattern.format(slug=slug)
    assert not list((out / ".flow-results").glob("*"))  # each batch's result was read, then removed

    # Each batch was its own flow run, and both workers ran some.
    with api_client(work_pool.server) as client:
        runs = _batch_runs(client, since)
    assert sorted(run.name for run in runs) == ["batch-1-of-3", "batch-2-of-3", "batch-3-of-3"]
    assert all(run.state is not None and run.state.is_completed() for run in runs)
    ran_on = {run.id: str(run.labels["prefect.worker.name"]) for run in runs}
    assert set(ran_on.values()) == set(WORKERS), ran_on
    # The workers' own logs agree with the labels, and each run was a process of its own.
    for run_id, worker in ran_on.items():
        assert f"submitting flow run '{run_id}'" in work_pool.logs[worker].read_text(errors="replace")
    assert len({run.infrastructure_pid for run in runs}) == 3

    # One publish record per article, in the one registry every worker wrote to.
    url = registry_url(load_site(site), out)
    assert url.startswith("postgresql" if database == "postgresql" else "sqlite")
    with Registry(url) as registry, registry.engine.connect() as conn:
        recorded = sorted(conn.execute(select(publishes.c.slug)).scalars())
    assert recorded == sorted(articles)


_CALL_THE_FLOW = """
import json, sys
from clinicpress.flows.fanout import BatchesFailed, publish_catalog_flow
try:
    publish_catalog_flow(**json.loads(sys.argv[1]))
except BatchesFailed as exc:
    batches = [[b.number, b.state, b.worker is not None, list(b.counts())] for b in exc.result.batches]
    print(json.dumps({"message": str(exc), "batches": batches}))
    sys.exit(3)
"""


_CALL_AND_SHOW = """
import json, sys
from clinicpress.flows.fanout import publish_catalog_flow
result = publish_catalog_flow(**json.loads(sys.argv[1]))
print(json.dumps({"summary": result.summary(), "skipped": [str(s.path) for s in result.skipped]}))
"""


def _two_good_and_one_bad(
    script: str, work_pool: Pool, farm: HTTPFarm, write_article: WriteArticle, tmp_path: Path, **more: object
) -> tuple[subprocess.CompletedProcess[str], dict[str, Path], Path, Path]:
    """The catalog flow over two good articles and one that does not load, in batches of two."""
    good = _catalog(write_article, farm, 2)
    bad = write_article(front_matter=MINIMAL_FRONT_MATTER.replace(str(PUBLISHED), "soon"), name="bad.md")
    site = tmp_path / "site.toml"
    site.write_text(_loopback_site(), encoding="utf-8")
    out = tmp_path / "out"
    arguments = {
        "paths": [str(p) for p in [*good.values(), bad]],
        "site_path": str(site),
        "out_dir": str(out),
        "work_pool": POOL,
        "batch_size": 2,
        **more,
    }
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(arguments)],
        env=work_pool.server.env("flow", PREFECT_LOGGING_LEVEL="CRITICAL"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
    )
    return result, good, bad, out


@pytest.mark.slow
def test_a_failed_batch_fails_the_parent_run_and_names_the_batch(
    work_pool: Pool, farm: HTTPFarm, write_article: WriteArticle, tmp_path: Path
) -> None:
    # The flow itself only discovers files; with strict (all or nothing, issue 24) a file that does
    # not load fails the batch holding it on its worker, while the other batch publishes. (Without
    # strict the batch skips the file and publishes the rest.)
    result, good, bad, out = _two_good_and_one_bad(
        _CALL_THE_FLOW, work_pool, farm, write_article, tmp_path, strict=True
    )
    assert result.returncode == 3, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["message"].startswith(
        "1 of 2 batch(es) failed: batch 2/2 (bad.md): flow run batch-2-of-2 Failed"
    )
    assert f"{bad}: published: got 'soon'" in report["message"]
    assert report["batches"] == [[1, "Completed", True, [2, 0, 0]], [2, "Failed", True, [0, 0, 0]]]
    for slug in good:
        assert (out / f"web/{slug}/index.html").is_file()


@pytest.mark.slow
def test_a_file_a_batch_cannot_load_is_named_in_the_catalogs_result(
    work_pool: Pool, farm: HTTPFarm, write_article: WriteArticle, tmp_path: Path
) -> None:
    # Without strict the batch skips the file and publishes the rest; the parent run says so
    # (a deployment run has no CLI around it to name the file).
    result, good, bad, out = _two_good_and_one_bad(_CALL_AND_SHOW, work_pool, farm, write_article, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["skipped"] == [str(bad)]
    assert shown["summary"].endswith("; 1 file skipped (do not load: 1 published)")
    for slug in good:
        assert (out / f"web/{slug}/index.html").is_file()


@pytest.mark.slow
def test_publish_on_a_missing_pool_exits_2_with_one_line(
    prefect_server: Server, write_article: WriteArticle, tmp_path: Path
) -> None:
    article = write_article()
    result = _run(
        prefect_server, "publish", "--work-pool", "no-such-pool", "--out", tmp_path / "out", article
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --work-pool: no work pool 'no-such-pool' on the Prefect server at {prefect_server.url}; "
        f"expected `clinicpress deploy --work-pool no-such-pool --out {tmp_path / 'out'}` first"
    ]  # the hint carries the run's --out: as printed, it deploys where this publish writes
    assert not (tmp_path / "out").exists()


def test_work_pool_needs_a_prefect_server(write_article: WriteArticle, tmp_path: Path) -> None:
    article = write_article()
    env = clean_env(tmp_path / "prefect-home")  # no PREFECT_API_URL, and no profile that sets one
    for args in (
        ["publish", "--work-pool", POOL, "--out", str(tmp_path / "out"), str(article)],
        ["deploy", "--work-pool", POOL],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "clinicpress", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
        )
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(
            "error: PREFECT_API_URL: is not set; a work pool needs a running Prefect server"
        )
    assert not (tmp_path / "out").exists()


def test_batch_size_without_a_work_pool_is_a_usage_error(write_article: WriteArticle) -> None:
    result = CliRunner().invoke(app, ["publish", "--batch-size", "2", str(write_article())])
    assert result.exit_code == 2
    assert "--batch-size: only with --work-pool" in result.stderr


def test_the_cli_prints_the_completed_batches_then_names_the_failed_one(
    monkeypatch: pytest.MonkeyPatch, write_article: WriteArticle, tmp_path: Path
) -> None:
    """The CLI's side of a failed batch, without Prefect: what completed is reported, then exit 1."""
    from clinicpress.flows import fanout
    from clinicpress.flows.publish import ArticleOutcome, PublishResult

    paths = [
        write_article(
            front_matter=MINIMAL_FRONT_MATTER.replace("Test Article", name.upper()), name=f"{name}.md"
        )
        for name in ("a", "b", "c")
    ]
    out = tmp_path / "out"
    report = ArticleReport(path=str(paths[0]), slug="a", verdict=Verdict.OK)
    done = PublishResult(
        out_dir=str(out),
        release_id="r1",
        outcomes=[ArticleOutcome(report=report, published=True, files=["web/a/index.html"])],
    )
    batches = [
        fanout.BatchOutcome(
            number=1,
            paths=[str(paths[0])],
            flow_run_id="1",
            flow_run_name="batch-1-of-2",
            state="Completed",
            worker="worker-1",
            result=done,
        ),
        fanout.BatchOutcome(
            number=2,
            paths=[str(p) for p in paths[1:]],
            flow_run_id="2",
            flow_run_name="batch-2-of-2",
            state="Crashed",
            message="Flow run infrastructure exited with non-zero status code -9.",
            worker="worker-2",
        ),
    ]
    failed = fanout.BatchesFailed(
        fanout.CatalogResult(deployment=f"publish/{POOL}", out_dir=str(out), batches=batches)
    )
    calls: list[dict[str, Any]] = []

    def publish_catalog_flow(**kwargs: Any) -> None:
        calls.append(kwargs)
        raise failed

    monkeypatch.setattr("clinicpress.flows.deployments.preflight", lambda work_pool: None)
    monkeypatch.setattr(fanout, "publish_catalog_flow", publish_catalog_flow)
    # keep this env as it is
    monkeypatch.setattr("clinicpress.cli.publishing.configure_runtime", lambda verbose: None)
    result = CliRunner().invoke(
        app, ["publish", "--work-pool", POOL, "--batch-size", "1", "--out", str(out), *map(str, paths)]
    )

    assert result.exit_code == 1
    [call] = calls
    assert call["batch_size"] == 1
    assert all(Path(p).is_absolute() for p in [*call["paths"], call["site_path"], call["out_dir"]])
    assert result.stdout.splitlines()[:3] == [
        "batch 1/2 (1 article(s)): Completed on worker worker-1: 1 published, 0 unchanged, 0 blocked",
        "batch 2/2 (2 article(s)): Crashed on worker worker-2 (flow run batch-2-of-2): "
        "Flow run infrastructure exited with non-zero status code -9.",
        "a: ok — published",
    ]
    assert (
        f"2 batch(es) on publish/{POOL}: 1 published, 0 unchanged, 0 blocked, 1 batch(es) failed"
        in result.stdout
    )
    assert result.stderr.strip().splitlines() == [
        "error: 1 of 2 batch(es) failed: batch 2/2 (b.md, c.md): flow run batch-2-of-2 Crashed: "
        "Flow run infrastructure exited with non-zero status code -9."
    ]
