"""Two people for a newsletter send (issue 15 part 4, ``[newsletter] approval_required``).

Real parts: the CLI as typed (``publish``, ``approve-send``) against a real Prefect API (the
session's harness), aiosmtpd on 127.0.0.1 (tests/smtpserver.py), the registry on SQLite and on
PostgreSQL (a schema of its own per test: other tests empty the shared database), and for the
Prefect UI's form a real deployment run that pauses and is resumed through the API with the
form's input, as the UI does.
"""

from __future__ import annotations

import contextvars
import getpass
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_FRONT_MATTER, WriteArticle
from requirements import need
from smtpserver import SMTPTestServer
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from clinicpress.cli import app
from clinicpress.errors import InputError
from clinicpress.outputs.delivery import Approval, DeliveryStore
from clinicpress.outputs.delivery.approval import SendRecord, approve_and_send, choose, sends_of
from clinicpress.outputs.delivery.people import approver_problem, trigger_name
from clinicpress.outputs.registry import registry_url
from clinicpress.site import load_site
from clinicpress.sources.loader import load_article

runner = CliRunner()
SLUG = "test-article"  # MINIMAL_FRONT_MATTER's title
READERS = ["ann@example.org", "bob@example.org", "cy@example.org"]


# -- the rule, pure --------------------------------------------------------------------------------


def test_the_approver_must_be_someone_else_named() -> None:
    assert approver_problem("Bob", "Alice") is None
    assert "second person" in (approver_problem("  alice ", "Alice") or "")  # trimmed, any case
    assert "second person" in (approver_problem("Mary  Ann\n", "mary ann") or "")
    # An unknown trigger (a deployment run without triggered_by): any named person may approve…
    assert trigger_name(None) == trigger_name("  ") == "unknown"
    assert approver_problem("Bob", trigger_name(None)) is None
    # …but a name is needed.
    assert "not a name" in (approver_problem("Unknown", "unknown") or "")
    assert "not a name" in (approver_problem("   ", "Alice") or "")


def _record(version: str, approval: Approval, approved_by: str | None = None) -> SendRecord:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 5, tzinfo=UTC)
    return SendRecord(1, "a", version, at, approval, "Alice", approved_by, at if approved_by else None)


def test_which_send_an_approval_means() -> None:
    v1, v2 = "1" * 64, "2" * 64
    waiting = _record(v2, Approval.AWAITING)
    assert choose([waiting, _record(v1, Approval.AWAITING)], slug="a", version="", live=v2) == waiting
    refusals = [
        ([], "", v2, "no newsletter of 'a' was enqueued"),
        ([waiting], "3", v2, "has a version starting '3'"),
        ([_record(v1, Approval.AWAITING)], "", v2, "is not live any more (live: 222222222222)"),
        ([waiting], "", None, "a is not live"),
        ([_record(v2, Approval.APPROVED, "Bob")], "", v2, "was approved by Bob at 2026-01-05 00:00 UTC"),
        ([_record(v2, Approval.NOT_REQUIRED)], "", v2, "needs no approval"),
    ]
    for found, version, live, says in refusals:
        with pytest.raises(InputError, match=says.replace("(", r"\(").replace(")", r"\)")):
            choose(found, slug="a", version=version, live=live)


# -- the CLI, end to end ----------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as srv:
        yield srv


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: SQLite under --out. PostgreSQL: a schema of this test's own, dropped after."""
    if request.param == "sqlite":
        yield None
        return
    url = os.environ.get("CLINICPRESS_TEST_POSTGRES_URL", "")
    if not url:
        need("PostgreSQL", "set CLINICPRESS_TEST_POSTGRES_URL (e.g. $(tools/ci-postgres.sh)) to run")
    schema = f"approval_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _site(
    write_site: Callable[..., Path],
    tmp_path: Path,
    server: SMTPTestServer,
    *,
    required: bool = True,
    database: str | None = None,
) -> Path:
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text("email\n" + "".join(f"{r}\n" for r in READERS))
    site = write_site(timeout="2.0", retries="0")
    text_ = site.read_text().replace(
        'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"',
        'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"\n'
        f'subscribers = "{subscribers}"\napproval_required = {str(required).lower()}\n\n'
        f'[newsletter.smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\ntimeout = 5',
    )
    if database is not None:
        text_ = text_.replace("[registry]\n", f'[registry]\nurl = "{database}"\n')
    site.write_text(text_)
    return site


def _publish(site: Path, out: Path, article: Path, *by: str) -> Any:
    result = runner.invoke(app, ["publish", "--site", str(site), "--out", str(out), *by, str(article)])
    assert result.exit_code == 0, result.output
    return result


def _approve(site: Path, out: Path, name: str, *extra: str) -> Any:
    return runner.invoke(
        app, ["approve-send", SLUG, "--by", name, "--site", str(site), "--out", str(out), *extra]
    )


def _refused(result: Any, says: str) -> None:
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()  # one line, no traceback
    assert says in line, line


def _sends(site: Path, out: Path) -> list[SendRecord]:
    with DeliveryStore(registry_url(load_site(site), out)) as store:
        return sends_of(store, SLUG)


def _per_reader(server: SMTPTestServer) -> list[int]:
    return [len(server.messages_to(r)) for r in READERS]


@pytest.mark.usefixtures("prefect_harness")
def test_a_send_waits_for_a_second_person_then_goes_out_once(
    write_article: WriteArticle,
    write_site: Callable[..., Path],
    tmp_path: Path,
    server: SMTPTestServer,
    database: str | None,
) -> None:
    site = _site(write_site, tmp_path, server, database=database)
    article = write_article(front_matter=MINIMAL_FRONT_MATTER, body="No sources.\n")
    out = tmp_path / "out"

    published = _publish(site, out, article, "--by", "Alice")
    assert (out / "web" / SLUG / "index.html").is_file()  # the release is live…
    assert server.received == []  # …and nobody was sent anything
    assert "waiting for approval; nothing sent" in published.stdout
    assert "published by Alice" in published.stdout
    assert (
        f"someone else approves it: clinicpress approve-send {SLUG} --by NAME --site {site} --out {out}"
        in (published.stdout)
    )
    assert "not every recipient was reached" not in published.stdout  # waiting is not a failure
    [send] = _sends(site, out)
    assert (send.triggered_by, send.approval, send.approved_by) == ("Alice", Approval.AWAITING, None)

    again = _publish(site, out, article, "--by", "Bob")  # a re-run resumes nothing: it still waits
    assert "waiting for approval" in again.stdout
    assert server.received == []
    [send] = _sends(site, out)
    assert send.triggered_by == "Alice"  # fixed by the first enqueue

    _refused(_approve(site, out, "  alice "), "Alice published this version: a second person must approve")
    _refused(_approve(site, out, "unknown"), "'unknown' is not a name")
    assert server.received == []
    assert _sends(site, out)[0].approval is Approval.AWAITING

    # Two people approve at the same moment: one approval is recorded, one message per reader.
    outcomes: list[object] = []
    start = threading.Barrier(2)

    def approve(name: str) -> None:
        start.wait(timeout=30)
        try:
            outcomes.append(
                approve_and_send(
                    load_site(site), out, SLUG, name, article=load_article(article), reconnect_delay=0.02
                )
            )
        except InputError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=approve, args=(name,)) for name in ("Bob", "Carol")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    refusals = [o for o in outcomes if isinstance(o, InputError)]
    assert len(outcomes) == 2
    assert len(refusals) == 1, outcomes
    assert "approved by" in str(refusals[0])
    assert _per_reader(server) == [1, 1, 1]
    [send] = _sends(site, out)
    assert send.approval is Approval.APPROVED
    assert send.approved_by in ("Bob", "Carol")
    assert send.approved_at is not None
    assert send.triggered_by == "Alice"

    # Approving again, by anyone, sends nothing more; nor does the next publish.
    _refused(_approve(site, out, "Dana"), f"was approved by {send.approved_by} at")
    assert _publish(site, out, article).stdout.count("0 sent by this run") == 1
    assert _per_reader(server) == [1, 1, 1]


@pytest.mark.usefixtures("prefect_harness")
def test_approve_send_from_the_command_line_prints_the_send_and_refuses_what_is_not_live(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path, server: SMTPTestServer
) -> None:
    site = _site(write_site, tmp_path, server)
    article = write_article(front_matter=MINIMAL_FRONT_MATTER, body="Version one.\n")
    out = tmp_path / "out"
    _refused(_approve(site, tmp_path / "typo", "Bob"), "no registry: nothing was published here")

    _publish(site, out, article)  # --by defaults to the login name
    [first] = _sends(site, out)
    assert first.triggered_by == getpass.getuser()
    _refused(_approve(site, out, getpass.getuser().upper()), "a second person must approve")

    # Edited but not published again: the live version's newsletter can no longer be rendered.
    article.write_text(article.read_text().replace("Version one.", "Version two."))
    _refused(_approve(site, out, "Bob"), "is not newsletter test-article (version")

    _publish(site, out, article, "--by", "Alice")  # version two is live; its send waits in turn
    assert server.received == []
    _refused(_approve(site, out, "Bob", "--version", first.version[:10]), "is not live any more")
    unknown = runner.invoke(
        app, ["approve-send", "no-such-slug", "--by", "Bob", "--site", str(site), "--out", str(out)]
    )
    _refused(unknown, "no newsletter of 'no-such-slug' was enqueued")

    approved = _approve(site, out, "Bob")
    assert approved.exit_code == 0, approved.output
    assert "3 accepted" in approved.stdout
    assert "approved by Bob at" in approved.stdout
    assert "published by Alice" in approved.stdout
    assert _per_reader(server) == [1, 1, 1]
    assert "Version two." in server.received[0].message().as_string()
    [second, old] = _sends(site, out)
    assert (second.approved_by, old.approval) == ("Bob", Approval.AWAITING)  # the old one never goes


@pytest.mark.usefixtures("prefect_harness")
def test_without_approval_required_nothing_waits(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path, server: SMTPTestServer
) -> None:
    site = _site(write_site, tmp_path, server, required=False)
    article = write_article(front_matter=MINIMAL_FRONT_MATTER, body="No sources.\n")
    out = tmp_path / "out"
    published = _publish(site, out, article, "--by", "Alice")
    assert "3 accepted" in published.stdout
    assert "waiting" not in published.stdout
    assert _per_reader(server) == [1, 1, 1]
    [send] = _sends(site, out)
    assert (send.triggered_by, send.approval) == ("Alice", Approval.NOT_REQUIRED)  # still recorded
    _refused(_approve(site, out, "Bob"), "needs no approval")
    assert _per_reader(server) == [1, 1, 1]


# -- the Prefect UI: a deployment's run pauses for the approval form ------------------------------


class Resumer(threading.Thread):
    """Answers a paused run's form through the API as the UI does, once per ``answers`` item.

    ``before`` runs before an answer (e.g. an approval from the CLI meanwhile). It keeps each
    form's description, and stops when the run ends.
    """

    def __init__(
        self, run_id: uuid.UUID, answers: list[dict[str, Any]], before: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(daemon=True)
        self.run_id, self.answers, self.before = run_id, answers, before
        self.forms: list[str] = []
        self.error: BaseException | None = None
        self.context = contextvars.copy_context()  # the harness's API settings live in context vars

    def run(self) -> None:
        try:
            self.context.run(self._answer_all)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _answer_all(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.flow_runs import resume_flow_run

        seen: set[uuid.UUID] = set()
        with get_client(sync_client=True) as client:
            for answer in self.answers:
                deadline = time.monotonic() + 120
                while True:
                    state = client.read_flow_run(self.run_id).state
                    assert state is not None
                    keys = state.state_details.run_input_keyset
                    if state.is_paused() and state.id not in seen and keys:
                        try:  # saved after the form's schema: the form is ready
                            self.forms.append(client.read_flow_run_input(self.run_id, keys["description"]))
                            break
                        except Exception:  # not written yet
                            pass
                    if state.is_final() or time.monotonic() > deadline:
                        return
                    time.sleep(0.3)
                seen.add(state.id)
                self.before()
                resume_flow_run(self.run_id, run_input=answer)


def _deployment_run(site: Path, out: Path, article: Path, wait: int) -> Any:
    from prefect.deployments import run_deployment

    from clinicpress.flows.publish import publish_flow

    publish_flow.to_deployment(name="approval-form").apply()
    parameters = {
        "paths": [str(article)],
        "site_path": str(site),
        "out_dir": str(out),
        "triggered_by": "Alice",
        "approval_wait_seconds": wait,
    }
    return run_deployment("publish/approval-form", parameters=parameters, timeout=0)


def _final_state(run_id: uuid.UUID) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    assert state is not None
    return state.type.value


@pytest.mark.usefixtures("prefect_harness")
def test_the_form_refuses_the_trigger_then_another_person_approves_and_it_sends_once(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path, server: SMTPTestServer
) -> None:
    from prefect.flow_engine import run_flow

    from clinicpress.flows.publish import publish_flow

    site = _site(write_site, tmp_path, server)
    article = write_article(front_matter=MINIMAL_FRONT_MATTER, body="No sources.\n")
    out = tmp_path / "out"
    run = _deployment_run(site, out, article, wait=300)
    resumer = Resumer(
        run.id, [{"approver": " ALICE", "approve": True}, {"approver": "Dana", "approve": True}]
    )
    resumer.start()
    result = run_flow(publish_flow, flow_run=run)
    resumer.join(timeout=60)
    assert resumer.error is None, resumer.error

    assert len(resumer.forms) == 2
    assert "published by **Alice**" in resumer.forms[0]
    assert "Not approved:" not in resumer.forms[0]
    assert "Alice published this version: a second person must approve" in resumer.forms[1]  # shown again
    assert _per_reader(server) == [1, 1, 1]
    assert "3 accepted" in result.newsletters[0]
    assert result.newsletters_waiting == []
    [send] = _sends(site, out)
    assert (send.triggered_by, send.approved_by) == ("Alice", "Dana")
    assert _final_state(run.id) == "COMPLETED"
    _refused(_approve(site, out, "Bob"), "was approved by Dana at")  # the CLI after the UI: nothing
    assert _per_reader(server) == [1, 1, 1]


@pytest.mark.usefixtures("prefect_harness")
def test_the_cli_approving_while_the_form_waits_sends_once(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path, server: SMTPTestServer
) -> None:
    from prefect.flow_engine import run_flow

    from clinicpress.flows.publish import publish_flow

    site = _site(write_site, tmp_path, server)
    article = write_article(front_matter=MINIMAL_FRONT_MATTER, body="No sources.\n")
    out = tmp_path / "out"
    cli: list[Any] = []
    run = _deployment_run(site, out, article, wait=300)
    resumer = Resumer(
        run.id, [{"approver": "Dana", "approve": True}], before=lambda: cli.append(_approve(site, out, "Bob"))
    )
    resumer.start()
    result = run_flow(publish_flow, flow_run=run)
    resumer.join(timeout=60)
    assert resumer.error is None, resumer.error

    [approved] = cli
    assert approved.exit_code == 0, approved.output
    assert _per_reader(server) == [1, 1, 1]  # the CLI sent; the form's approval sent nothing more
    assert "approved by Bob" in result.newsletters[0]
    assert "0 sent by this run" in result.newsletters[0]
    assert _sends(site, out)[0].approved_by == "Bob"
    assert _final_state(run.id) == "COMPLETED"


@pytest.mark.usefixtures("prefect_harness")
def test_an_unanswered_form_leaves_the_send_waiting_for_the_cli(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path, server: SMTPTestServer
) -> None:
    from prefect.flow_engine import run_flow

    from clinicpress.flows.publish import publish_flow

    site = _site(write_site, tmp_path, server)
    article = write_article(front_matter=MINIMAL_FRONT_MATTER, body="No sources.\n")
    out = tmp_path / "out"
    run = _deployment_run(site, out, article, wait=3)
    result = run_flow(publish_flow, flow_run=run)
    assert result.newsletters_waiting == [SLUG]
    assert server.received == []
    assert _final_state(run.id) == "COMPLETED"  # the release is live: not a failed run
    approved = _approve(site, out, "Bob")
    assert approved.exit_code == 0, approved.output
    assert _per_reader(server) == [1, 1, 1]


# -- the schema: 5 → 6 adds the columns to a database that has the sends table ---------------------


def test_a_version_5_database_gains_the_approval_columns(tmp_path: Path, database: str | None) -> None:
    from sqlalchemy import inspect

    from clinicpress.outputs.registry import SCHEMA_VERSION, Registry

    url = database or f"sqlite:///{tmp_path / 'registry.sqlite'}"
    Registry(url).close()  # today's schema, then taken back to what version 5 had
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO newsletter_sends (slug, version, title, published_at, created_at, candidates) "
                "VALUES ('a', 'v', 'A', '2026-01-05 09:30:00', '2026-01-05 09:30:00', 0)"
            )
        )
        for column in ("triggered_by", "approval", "approved_by", "approved_at"):
            conn.execute(text(f"ALTER TABLE newsletter_sends DROP COLUMN {column}"))
        conn.execute(text("UPDATE schema_info SET version = 5"))
    with DeliveryStore(url) as store:
        assert [s.approval for s in sends_of(store, "a")] == [Approval.NOT_REQUIRED]  # an old send
    columns = {c["name"] for c in inspect(engine).get_columns("newsletter_sends")}
    assert {"triggered_by", "approval", "approved_by", "approved_at"} <= columns
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_info")).scalar() == SCHEMA_VERSION >= 6
    engine.dispose()
