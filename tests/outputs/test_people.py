"""One person is one person (issue 23, part 6): every ``--by`` and ``triggered_by`` names one person,
and the review deployment records each approved article's own reviewer as who published it.

"A, B" recorded as who published would let A approve the send of their own article ("A" is not
"A, B"). The names are what people typed: this keeps the two-person rule honest about names, it
does not prove who typed them.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_FRONT_MATTER, WriteArticle
from hypothesis import given
from hypothesis import strategies as st
from smtpserver import SMTPTestServer
from typer.testing import CliRunner

from clinicpress.cli import app
from clinicpress.errors import InputError
from clinicpress.outputs.delivery.people import (
    approver_problem,
    name_problem,
    same_person,
    trigger_name,
    trigger_problem,
)

runner = CliRunner()
TWO = ["Ann Lee, Bob Roe", "Ann Lee and Bob Roe", "Ann & Bob", "Ann; Bob", "Ann/Bob", "Ann\nBob", "Ann + Bob"]
TWO += ["Ann | Bob", "Ann AND Bob", "Ann，Bob", "Ann、Bob", "Ann\u2028Bob", "Jane Doe, MD"]
ONE = ["Ann Lee", "  Mary  Ann\n", "Dr. Jean-Luc O'Brien", "José Ortega y Gasset", "Andy Anderson", "李雷"]


# -- the rule, pure --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TWO)
def test_a_name_that_names_two_people_is_refused(name: str) -> None:
    problem = name_problem(name)
    assert problem is not None
    assert "more than one person" in problem
    assert approver_problem(name, "Carol") == problem  # an approval form or --by alike
    assert trigger_problem(name) == problem


@pytest.mark.parametrize("name", ONE)
def test_one_persons_name_is_accepted(name: str) -> None:
    assert name_problem(name) is None
    assert trigger_problem(name) is None


def test_blank_unknown_control_characters_and_length() -> None:
    for blank in ("", "   ", "unknown", " Unknown "):
        assert "is not a name" in (name_problem(blank) or "")
        assert trigger_problem(blank) is None  # who published is not known: recorded as unknown
    assert trigger_problem(None) is None
    assert trigger_name(None) == "unknown"
    assert "U+0009" in (name_problem("Ann\tBob") or "")  # two spreadsheet cells pasted
    assert "at most 200" in (name_problem("A" * 201) or "")


def test_the_same_person_typed_on_a_full_width_keyboard() -> None:
    assert same_person("Ａｌｉｃｅ", "alice")
    assert "second person" in (approver_problem("ＡＬＩＣＥ", "Alice") or "")


_word = st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=10).filter(
    lambda w: w.casefold() not in ("and", "unknown")
)
_name = st.lists(_word, min_size=1, max_size=4).map(" ".join)
_joiner = st.sampled_from(
    [",", ", ", " and ", " & ", ";", " / ", "+", "|", "\n", "\r\n", "\u2029", "，", "；"]
)


@given(_name)
def test_any_name_of_letters_and_spaces_is_one_person(name: str) -> None:
    assert name_problem(name) is None


@given(_name, _joiner, _name)
def test_any_two_names_joined_are_refused(first: str, joiner: str, second: str) -> None:
    assert "more than one person" in (name_problem(first + joiner + second) or "")


def test_the_review_form_takes_one_name() -> None:
    from clinicpress.flows.review_report import ReviewForm, read_form

    form = ReviewForm.model_construct(name="Ann Lee and Bob Roe", credentials="MD", decision="approve")
    refused = read_form(form)
    assert isinstance(refused, str)
    assert refused.startswith("name: 'Ann Lee and Bob Roe' names more than one person"), refused


def test_a_flow_parameter_naming_two_people_is_refused_before_anything_is_published(tmp_path: Path) -> None:
    from clinicpress.flows.publish import publish_flow

    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"triggered_by: 'Ann, Bob' names more than one person"):
        publish_flow.fn(paths=[], out_dir=str(out), triggered_by="Ann, Bob")
    assert not out.exists()


# -- the CLI: every --by ---------------------------------------------------------------------------


def _refused(args: list[str], says: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()  # one line, no traceback
    assert "--by" in line
    assert says in line, line


@pytest.mark.parametrize("name", ["Ann Lee, Bob Roe", "Ann and Bob", "Ann\nBob"])
def test_every_by_names_one_person(name: str, tmp_path: Path) -> None:
    where = ["--site", str(tmp_path / "site.toml"), "--out", str(tmp_path / "out")]  # never reached
    _refused(["publish", "--by", name, *where], "names more than one person")
    _refused(["approve-send", "some-slug", "--by", name, *where], "names more than one person")
    review = ["review", "some-slug", "--by", name, "--credentials", "MD", "--approve", *where]
    _refused(review, "names more than one person")


def test_review_by_with_credentials_says_where_they_go(tmp_path: Path) -> None:
    where = ["--site", str(tmp_path / "site.toml"), "--out", str(tmp_path / "out")]
    _refused(
        ["review", "s", "--by", "Jane Doe, MD", "--credentials", "MD", "--approve", *where], "--credentials"
    )


# -- the review deployment: each article published by its own reviewer -----------------------------

WAIT_SECONDS = 60.0
READERS = ["ann@example.org", "bob@example.org", "cy@example.org"]
FIRST, SECOND = "test-article", "second-article"


def _site(write_site: Callable[..., Path], tmp_path: Path, server: SMTPTestServer) -> Path:
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text("email\n" + "".join(f"{r}\n" for r in READERS))
    site = write_site(timeout="2.0", retries="0")
    text = site.read_text().replace(
        'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"',
        'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"\n'
        f'subscribers = "{subscribers}"\napproval_required = true\n\n'
        f'[newsletter.smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\ntimeout = 5',
    )
    site.write_text(text + "\n[review]\npublish_on_approve = true\n")
    return site


def _paused_at(run_id: Any, pause_key: str) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + WAIT_SECONDS
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(run_id).state
            assert state is not None
            assert not state.is_final(), f"the flow ended before pausing at {pause_key}: {state!r}"
            if state.is_paused() and state.state_details.pause_key == pause_key:
                return
            time.sleep(0.2)
    pytest.fail(f"no pause {pause_key} within {WAIT_SECONDS:.0f} s")


def _run_id(name: str, future: Future[Any]) -> Any:
    """The id of the flow run named ``name``, once the API has it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    only = FlowRunFilter(name=FlowRunFilterName(any_=[name]))
    deadline = time.monotonic() + WAIT_SECONDS
    with get_client(sync_client=True) as client:
        while not (runs := client.read_flow_runs(flow_run_filter=only)):
            assert not future.done(), future.exception()
            assert time.monotonic() < deadline, f"no flow run {name} within {WAIT_SECONDS:.0f} s"
            time.sleep(0.2)
    return runs[0].id


@pytest.fixture
def server() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as srv:
        yield srv


@pytest.mark.usefixtures("prefect_harness")
def test_a_review_run_with_two_reviewers_records_each_as_who_published_their_article(
    write_article: WriteArticle,
    write_site: Callable[..., Path],
    tmp_path: Path,
    server: SMTPTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.flow_runs import (
        pause_flow_run,  # noqa: F401  (before the thread: Prefect's lazy imports)
        resume_flow_run,
    )

    from clinicpress.flows.review import review_flow
    from clinicpress.outputs.delivery.approval import sends_of
    from clinicpress.outputs.delivery.store import DeliveryStore
    from clinicpress.outputs.registry import registry_url
    from clinicpress.site import load_site

    monkeypatch.setattr("clinicpress.flows.review.POLL_SECONDS", 1)
    site, out = _site(write_site, tmp_path, server), tmp_path / "out"
    first = write_article(body="No sources.\n", name="a.md")
    second = write_article(
        front_matter=MINIMAL_FRONT_MATTER.replace("Test Article", "Second Article"),
        body="None.\n",
        name="b.md",
    )
    form = {"credentials": "MD", "comment": "", "decision": "approve"}
    name = f"review-people-{uuid.uuid4().hex[:12]}"
    context = contextvars.copy_context()  # the harness's API settings live in context variables
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = review_flow.with_options(flow_run_name=name)
        future = pool.submit(
            context.run,
            run,
            paths=[str(first), str(second)],
            site_path=str(site),
            out_dir=str(out),
            timeout_hours=45 / 3600,
        )
        run_id = _run_id(name, future)
        _paused_at(run_id, f"{FIRST}-1")
        resume_flow_run(run_id, run_input={**form, "name": "Ann Lee"})
        _paused_at(run_id, f"{SECOND}-1")
        resume_flow_run(run_id, run_input={**form, "name": "Bob Roe"})
        result = future.result(timeout=WAIT_SECONDS)

    assert result.published == [FIRST, SECOND], [r.note for r in result.reviews]
    assert server.received == []  # both sends wait for a second person
    with DeliveryStore(registry_url(load_site(site), out)) as store:
        triggers = {slug: [s.triggered_by for s in sends_of(store, slug)] for slug in (FIRST, SECOND)}
    assert triggers == {FIRST: ["Ann Lee"], SECOND: ["Bob Roe"]}  # not "Ann Lee, Bob Roe"

    def approve(slug: str, by: str) -> Any:
        where = ["--site", str(site), "--out", str(out)]
        return runner.invoke(app, ["approve-send", slug, "--by", by, *where])

    refused = approve(FIRST, "ann lee")
    assert refused.exit_code == 2, refused.output
    assert "Ann Lee published this version: a second person must approve" in refused.stderr
    assert server.received == []
    approved = approve(FIRST, "Bob Roe")  # Bob did not publish Ann's article: he may approve it
    assert approved.exit_code == 0, approved.output
    assert [len(server.messages_to(r)) for r in READERS] == [1, 1, 1]
