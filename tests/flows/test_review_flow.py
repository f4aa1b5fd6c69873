"""The review flow (issue 15, part 3): pause for the clinician's form and resume it through a real
Prefect API (the session's test harness), as the UI's "Resume" button does.

The flow runs in a thread (its own flow run, with the harness's settings); the test finds the
paused run by its name and resumes it with ``resume_flow_run(flow_run_id, run_input=…)``.
No network: the articles cite no source.
"""

from __future__ import annotations

import contextvars
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_FRONT_MATTER, ROOT, TODAY, WriteArticle, site_text

from clinicpress import clock
from clinicpress.checks.signoff import Decision, ReviewRecord
from clinicpress.flows.review_report import (
    ReviewForm,
    Submitted,
    live_baseline,
    read_form,
    review_record,
)
from clinicpress.site import format_date, load_site
from clinicpress.sources.article import Reviewer
from clinicpress.sources.loader import load_article
from clinicpress.sources.versioning import content_hash, reviewed_text

SLUG = "test-article"  # from the title in MINIMAL_FRONT_MATTER
WAIT_SECONDS = 60.0  # for the run to pause or finish: far above what it takes (a few seconds)
# Each form's deadline in these tests: a failed test leaves no run paused for longer.
TIMEOUT_HOURS = 45 / 3600


def _site(tmp_path: Path, *, publish_on_approve: bool) -> Path:
    path = tmp_path / "site.toml"
    review = f"\n[review]\nrequired = true\npublish_on_approve = {str(publish_on_approve).lower()}\n"
    path.write_text(site_text() + review, encoding="utf-8")
    return path


def _article(write_article: WriteArticle, body: str) -> Path:
    return write_article(front_matter=MINIMAL_FRONT_MATTER, body=body)


@contextmanager
def _running(**parameters: Any) -> Iterator[tuple[str, Future[Any]]]:
    """The review flow in a thread, under a unique run name; yields (name, its future)."""
    from prefect.flow_runs import pause_flow_run  # noqa: F401  (import before the thread: Prefect's lazy imports)

    from clinicpress.flows.review import review_flow

    name = f"review-test-{uuid.uuid4().hex[:12]}"
    context = contextvars.copy_context()  # the harness's API settings live in context variables
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = review_flow.with_options(flow_run_name=name)
        future = pool.submit(context.run, run, timeout_hours=TIMEOUT_HOURS, **parameters)
        yield name, future


def _flow_run(name: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    return runs[0] if runs else None


def _paused(name: str, future: Future[Any] | None, pause_key: str, run_id: Any = None) -> Any:
    """The run once it is paused at ``pause_key`` (each form of the flow has its own key)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if future is not None and future.done():
            pytest.fail(f"the flow ended before pausing at {pause_key}: {future.exception()!r}")
        if run_id is not None:
            with get_client(sync_client=True) as client:
                run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                pytest.fail(f"the flow ended before pausing at {pause_key}: {run.state!r}")
        else:
            run = _flow_run(name)
        if run is not None and run.state.is_paused() and run.state.state_details.pause_key == pause_key:
            return run
        time.sleep(0.2)
    pytest.fail(f"no pause {pause_key} within {WAIT_SECONDS:.0f} s")


def _form_description(run: Any) -> str:
    from prefect.input.actions import read_flow_run_input

    keyset = run.state.state_details.run_input_keyset
    return str(read_flow_run_input(keyset["description"], flow_run_id=run.id))


def _artifact(run_id: Any, key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]), key=ArtifactFilterKey(any_=[key])
            )
        )
    assert found, f"no artifact {key} in run {run_id}"
    return str(found[-1].data)


def _records(site: Path, out: Path) -> list[ReviewRecord]:
    from clinicpress.outputs.reviews import load_reviews

    return load_reviews(load_site(site), out, [SLUG])


def _approve_and_publish(site: Path, out: Path, article: Path) -> None:
    """The live version: approved (as `clinicpress review --approve` records it) and published."""
    from clinicpress.flows.publish import publish_flow
    from clinicpress.outputs.reviews import record_review

    submitted = Submitted(Reviewer(name="Jane Doe", credentials="MD"), Decision.APPROVED, "")
    record_review(load_site(site), out, review_record(load_article(article), submitted, TODAY, clock.now()))
    first = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out))
    assert first.outcomes[0].published, first.outcomes[0].report


FORM = {"name": "Ann Lee", "credentials": "MD", "comment": "checked  the\nfigures"}


@pytest.mark.usefixtures("prefect_harness")
def test_approving_in_the_form_records_the_review_and_publishes_the_new_text(
    write_article: WriteArticle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flow_runs import resume_flow_run

    monkeypatch.setattr("clinicpress.flows.review.POLL_SECONDS", 1)
    site, out = _site(tmp_path, publish_on_approve=True), tmp_path / "out"
    article = _article(write_article, "Ketamine can help some people.\n")
    _approve_and_publish(site, out, article)
    article.write_text(article.read_text().replace("can help some people", "cures everyone"))
    edited = load_article(article)

    with _running(paths=[str(article)], site_path=str(site), out_dir=str(out)) as (name, future):
        run = _paused(name, future, f"{SLUG}-1")
        markdown = _artifact(run.id, f"review-{SLUG}")
        # The diff against what is live, and the three channels rendered outside the release.
        assert "-Ketamine can help some people." in markdown
        assert "+Ketamine cures everyone." in markdown
        folder = out / "reviews" / SLUG / content_hash(edited)[:16]
        for name_ in ("web.html", "handout.pdf", "email.html", "email.txt"):
            assert (folder / name_).is_file(), name_
            assert f"]({(folder / name_).as_uri()})" in markdown
        assert "cures everyone" in (folder / "web.html").read_text()
        assert "cures everyone" in (folder / "email.txt").read_text()
        assert (folder / "handout.pdf").read_bytes().startswith(b"%PDF")
        assert "not signed off" in markdown  # the check as `check` runs it: this review clears it
        assert "can help some people" in (out / "web" / SLUG / "index.html").read_text()  # not live yet
        assert f"text `{content_hash(edited)[:12]}`" in _form_description(run)

        resume_flow_run(run.id, run_input={**FORM, "decision": "approve"})
        result = future.result(timeout=WAIT_SECONDS)

    [latest, first] = _records(site, out)
    assert (latest.decision, latest.who(), latest.comment) == (
        Decision.APPROVED,
        "Ann Lee, MD",
        "checked the figures",
    )
    assert latest.content_hash == content_hash(edited)  # bound to the text shown, and its sources
    assert latest.text == reviewed_text(edited)
    assert latest.reviewed_on == TODAY
    assert first.who() == "Jane Doe, MD"
    assert result.published == [SLUG]
    assert result.reviews[0].review_id == latest.id
    page = (out / "web" / SLUG / "index.html").read_text()
    assert "cures everyone" in page
    # The review line from the new record, not from the front matter or the first approval.
    assert f'Reviewed by Ann Lee, MD on <time datetime="{TODAY}">{format_date(TODAY)}</time>' in page
    summary = _artifact(run.id, "review-result")
    assert f"Published {SLUG} in release {result.release_id}." in summary
    assert "review line from the sign-off record" in summary


@pytest.mark.usefixtures("prefect_harness")
def test_bad_forms_are_refused_and_request_changes_records_without_publishing(
    write_article: WriteArticle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flow_runs import resume_flow_run

    monkeypatch.setattr("clinicpress.flows.review.POLL_SECONDS", 1)
    site, out = _site(tmp_path, publish_on_approve=True), tmp_path / "out"
    article = _article(write_article, "Ketamine can help some people.\n")

    with _running(paths=[str(article)], site_path=str(site), out_dir=str(out)) as (name, future):
        run = _paused(name, future, f"{SLUG}-1")
        assert "first publication" in _artifact(run.id, f"review-{SLUG}")
        # The server checks the form against its schema: the run stays paused at the same form.
        for bad in (
            {**FORM, "name": ""},
            {**FORM, "decision": "maybe"},
            {**FORM, "decision": "approve", "x": 1},
        ):
            with pytest.raises(RuntimeError, match="Cannot resume this run"):
                resume_flow_run(run.id, run_input={"decision": "approve", **bad})
        assert _flow_run(name).state.state_details.pause_key == f"{SLUG}-1"
        # What the schema lets through but no record may hold: the flow says so and asks again.
        resume_flow_run(run.id, run_input={**FORM, "name": "   ", "decision": "approve"})
        again = _paused(name, future, f"{SLUG}-2")
        assert "**Not recorded:** name: is empty" in _form_description(again)
        assert _records(site, out) == []
        resume_flow_run(again.id, run_input={**FORM, "credentials": "MD\nPhD", "decision": "approve"})
        third = _paused(name, future, f"{SLUG}-3")
        assert "**Not recorded:** credentials:" in _form_description(third)
        assert _records(site, out) == []

        resume_flow_run(third.id, run_input={**FORM, "decision": "request changes"})
        result = future.result(timeout=WAIT_SECONDS)

    [record] = _records(site, out)
    assert record.decision is Decision.CHANGES_REQUESTED
    assert record.content_hash == content_hash(load_article(article))
    assert result.published == []
    assert result.release_id is None
    assert not (out / "current").exists()  # nothing went live
    assert "Nothing approved, nothing published." in _artifact(run.id, "review-result")


@pytest.mark.usefixtures("prefect_harness")
def test_without_publish_on_approve_the_approval_is_recorded_and_the_result_says_how_to_publish(
    write_article: WriteArticle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flow_runs import resume_flow_run

    monkeypatch.setattr("clinicpress.flows.review.POLL_SECONDS", 1)
    site, out = _site(tmp_path, publish_on_approve=False), tmp_path / "out"
    article = _article(write_article, "Ketamine can help some people.\n")

    with _running(paths=[str(article)], site_path=str(site), out_dir=str(out)) as (name, future):
        run = _paused(name, future, f"{SLUG}-1")
        resume_flow_run(run.id, run_input={**FORM, "decision": "approve"})
        result = future.result(timeout=WAIT_SECONDS)

    [record] = _records(site, out)
    assert record.decision is Decision.APPROVED
    assert result.published == []
    assert not (out / "current").exists()
    summary = _artifact(run.id, "review-result")
    assert f"run `clinicpress publish {article}` or the publish/publish deployment" in summary


@pytest.mark.usefixtures("prefect_harness")
def test_an_edit_while_the_form_waits_is_neither_signed_nor_published(
    write_article: WriteArticle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flow_runs import resume_flow_run

    monkeypatch.setattr("clinicpress.flows.review.POLL_SECONDS", 1)
    site, out = _site(tmp_path, publish_on_approve=True), tmp_path / "out"
    article = _article(write_article, "Ketamine can help some people.\n")
    shown = load_article(article)

    with _running(paths=[str(article)], site_path=str(site), out_dir=str(out)) as (name, future):
        run = _paused(name, future, f"{SLUG}-1")
        article.write_text(article.read_text().replace("can help some people", "cures everyone"))
        resume_flow_run(run.id, run_input={**FORM, "decision": "approve"})
        result = future.result(timeout=WAIT_SECONDS)

    [record] = _records(site, out)
    assert record.content_hash == content_hash(shown)  # the text the clinician was shown
    assert result.published == []
    assert result.reviews[0].note == "not published: the file changed after the review; review it again"
    assert not (out / "current").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_a_form_not_sent_in_time_records_nothing_and_fails_the_run(
    write_article: WriteArticle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.exceptions import FlowPauseTimeout

    from clinicpress.flows.review import review_flow

    monkeypatch.setattr("clinicpress.flows.review.POLL_SECONDS", 1)
    site, out = _site(tmp_path, publish_on_approve=True), tmp_path / "out"
    article = _article(write_article, "Ketamine can help some people.\n")
    name = f"review-test-{uuid.uuid4().hex[:12]}"
    with pytest.raises(FlowPauseTimeout, match=f"no review form for {SLUG} within .* nothing recorded"):
        review_flow.with_options(flow_run_name=name)(
            paths=[str(article)], site_path=str(site), out_dir=str(out), timeout_hours=2 / 3600
        )
    assert _records(site, out) == []
    assert not (out / "current").exists()
    run = _flow_run(name)
    assert run.state.is_failed()
    assert "nothing recorded" in _artifact(run.id, "review-result")


# -- served by `clinicpress serve`, as the UI runs it ----------------------------------------------

SERVE_STOP_SECONDS = 20.0


@pytest.mark.usefixtures("prefect_harness")
def test_clinicpress_serve_serves_review_review_and_its_form_publishes(
    write_article: WriteArticle, tmp_path: Path
) -> None:
    """`clinicpress serve` → run review/review with paths → the form → recorded and published."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL

    site, out = _site(tmp_path, publish_on_approve=True), tmp_path / "out"
    article = _article(write_article, "Ketamine can help some people.\n")
    # This process's environment (the product clock's shift too), on the harness's API.
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path / "home"),
    }
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "clinicpress", "serve", "--site", str(site), "--out", str(out)]
    with log.open("wb") as sink:
        serve = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        with get_client(sync_client=True) as client:
            while True:
                assert serve.poll() is None, log.read_text(errors="replace")[-3000:]
                try:
                    deployment = client.read_deployment_by_name("review/review")
                    break
                except ObjectNotFound:
                    assert time.monotonic() < deadline, (
                        "no review/review deployment: " + log.read_text()[-3000:]
                    )
                    time.sleep(0.5)
        assert deployment.parameters == {"site_path": str(site.resolve()), "out_dir": str(out.resolve())}
        started = run_deployment(
            "review/review", parameters={"paths": [str(article)], "timeout_hours": TIMEOUT_HOURS}, timeout=0
        )
        run = _paused("", None, f"{SLUG}-1", run_id=started.id)
        assert "first publication" in _artifact(run.id, f"review-{SLUG}")
        resume_flow_run(run.id, run_input={**FORM, "decision": "approve"})
        deadline = time.monotonic() + WAIT_SECONDS
        with get_client(sync_client=True) as client:
            while not (state := client.read_flow_run(run.id).state).is_final():
                assert time.monotonic() < deadline, f"still {state!r}: " + log.read_text()[-3000:]
                time.sleep(0.5)
        assert state.is_completed(), log.read_text(errors="replace")[-3000:]
    finally:
        os.killpg(serve.pid, signal.SIGTERM)  # serve and the flow-run processes it started (its session)
        try:
            serve.wait(SERVE_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(SERVE_STOP_SECONDS)
    [record] = _records(site, out)
    assert (record.decision, record.who()) == (Decision.APPROVED, "Ann Lee, MD")
    assert record.content_hash == content_hash(load_article(article))
    page = (out / "web" / SLUG / "index.html").read_text()
    assert f'Reviewed by Ann Lee, MD on <time datetime="{TODAY}">' in page
    assert f"Published {SLUG} in release" in _artifact(run.id, "review-result")


# -- no server needed ------------------------------------------------------------------------------


def test_the_decision_is_a_two_value_enum_in_the_forms_schema() -> None:
    """Prefect's form renders a one-value enum (``const``) as a raw JSON box: two values, a choice."""
    from prefect._internal.pydantic.v2_schema import create_v2_schema

    form = ReviewForm.with_initial_data(description="shown above the form")
    schema = create_v2_schema(form.__name__, model_base=form)  # what pause_flow_run saves for the UI
    decision = schema["properties"]["decision"]
    assert decision["enum"] == ["approve", "request changes"]
    assert decision["type"] == "string"
    assert "const" not in decision
    assert schema["properties"]["name"]["minLength"] == 1
    assert set(schema["required"]) == {"name", "credentials", "decision"}


def test_build_deployments_serves_review_with_a_paths_parameter(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from clinicpress.flows.deployments import build_deployments

    site = write_site()
    deployments = {d.name: d for d in build_deployments(site, tmp_path / "out")}
    review = deployments["review"]
    assert review.flow_name == "review"  # review/review
    assert review.parameters == {
        "site_path": str(site.resolve()),
        "out_dir": str((tmp_path / "out").resolve()),
    }
    assert not review.schedules
    schema = review._parameter_openapi_schema.model_dump()
    assert schema["required"] == ["paths"]
    assert schema["properties"]["paths"]["type"] == "array"
    assert schema["properties"]["paths"]["items"] == {"type": "string"}
    assert schema["properties"]["timeout_hours"]["default"] == 72.0


@pytest.mark.parametrize(
    ("name", "credentials", "problem"),
    [
        ("  ", "MD", "name: is empty"),
        ("Ann Lee", " ", "credentials: is empty"),
        ("Ann\nLee", "MD", "name: "),
        ("Ann Lee", "M" * 61, "credentials: "),
    ],
)
def test_read_form_refuses_what_no_record_may_hold(name: str, credentials: str, problem: str) -> None:
    form = ReviewForm.model_construct(name=name, credentials=credentials, decision="approve", comment="")
    refused = read_form(form)
    assert isinstance(refused, str)
    assert refused.startswith(problem), refused


def test_read_form_keeps_one_line_of_comment_and_maps_the_decision() -> None:
    form = ReviewForm(name=" Ann Lee ", credentials="MD", decision="request changes", comment=" a\n b ")
    assert read_form(form) == Submitted(
        Reviewer(name="Ann Lee", credentials="MD"), Decision.CHANGES_REQUESTED, "a b"
    )


def test_live_baseline_prefers_the_live_reports_text(write_article: WriteArticle) -> None:
    article = load_article(_article(write_article, "Old.\n"))
    old = review_record(
        article,
        Submitted(Reviewer(name="Jane Doe", credentials="MD"), Decision.APPROVED, ""),
        TODAY,
        clock.now(),
    )
    report = {"slug": SLUG, "version": "v" * 64, "published_at": "2026-01-02T03:04:05+00:00"}
    assert live_baseline(None, [old]).text is None  # nothing live: first publication
    assert not live_baseline(None, [old]).live
    assert live_baseline({**report, "text": "live text\n"}, [old]).text == "live text\n"
    by_hash = live_baseline({**report, "content_hash": old.content_hash}, [old])
    assert (by_hash.text, by_hash.label) == (
        old.text,
        "the live version (vvvvvvvvvvvv, published 2026-01-02)",
    )
    fallback = live_baseline(report, [old])  # a report written before it kept the text
    assert fallback.text == old.text
    assert fallback.label.startswith("the last approved text (Jane Doe, MD")
    assert live_baseline(report, []).text is None
