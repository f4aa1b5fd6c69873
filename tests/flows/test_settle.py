"""settle(): each article's fate in a publish, decided without Prefect, files or a network."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MINIMAL_FRONT_MATTER, WriteArticle

from clinicpress.checks.model import ArticleReport, Problem, Severity, Verdict
from clinicpress.errors import RenderError
from clinicpress.flows.settle import ArticleRun, Fate, after_release, plan, settle
from clinicpress.outputs.publish import PublishedRelease
from clinicpress.renderers.base import Artifact
from clinicpress.renderers.pool import Checked
from clinicpress.sources.article import Article, Channel
from clinicpress.sources.loader import load_article

WARNING = Problem(check="review", severity=Severity.WARNING, message="due soon")
BLOCKER = Problem(check="license", severity=Severity.BLOCKED, message="expired")
DIFFERS = Problem(check="consistency", severity=Severity.BLOCKED, message="handout: license line differs")


@pytest.fixture
def article(write_article: WriteArticle) -> Article:
    return load_article(write_article(front_matter=MINIMAL_FRONT_MATTER))


def _report(article: Article, *problems: Problem) -> ArticleReport:
    blocked = any(p.severity is Severity.BLOCKED for p in problems)
    verdict = Verdict.BLOCKED if blocked else Verdict.WARNING if problems else Verdict.OK
    return ArticleReport(path=str(article.path), slug=article.key, verdict=verdict, problems=list(problems))


def _checked(*problems: Problem) -> Checked:
    return Checked(
        artifacts=[Artifact(Channel.WEB, "web/a/index.html", b"<html>", "text/html")], problems=list(problems)
    )


def _run(article: Article, *, live: str | None = None, version: str = "v2") -> ArticleRun:
    [run] = plan([article], [version], {article.key: live} if live else {})
    return run


def test_a_verified_rendered_consistent_article_is_ready(article: Article) -> None:
    run = _run(article, live="v1")
    run.report, run.rendered = _report(article, WARNING), _checked()
    settled = settle(run)
    assert settled.fate is Fate.READY
    assert settled.report.verdict is Verdict.WARNING  # warnings publish
    assert settled.ready.version == "v2"
    assert [a.relpath for a in settled.ready.artifacts] == ["web/a/index.html"]


def test_a_blocking_check_wins_over_its_render(article: Article) -> None:
    run = _run(article)
    run.report, run.rendered = _report(article, BLOCKER), _checked()
    settled = settle(run)
    assert settled.fate is Fate.BLOCKED
    assert settled.report.problems == [BLOCKER]


def test_a_blocked_article_stays_blocked_even_if_its_version_is_live(article: Article) -> None:
    run = _run(article, live="v2")
    run.report = _report(article, BLOCKER)
    assert settle(run).fate is Fate.BLOCKED


def test_a_live_version_is_unchanged_and_needs_no_render(article: Article) -> None:
    run = _run(article, live="v2")
    run.report = _report(article)
    assert run.is_live
    assert settle(run).fate is Fate.UNCHANGED


@pytest.mark.parametrize(
    ("rendered", "problem"),
    [
        (RenderError("WeasyPrint: no fonts"), "WeasyPrint: no fonts"),
        (_checked(DIFFERS), "handout: license line differs"),
    ],
    ids=["render-error", "inconsistent-channels"],
)
def test_a_failed_render_or_an_inconsistent_channel_blocks(
    article: Article, rendered: Checked | RenderError, problem: str
) -> None:
    run = _run(article)
    run.report, run.rendered = _report(article, WARNING), rendered
    settled = settle(run)
    assert settled.fate is Fate.BLOCKED
    assert settled.report.verdict is Verdict.BLOCKED
    assert settled.report.problems[0] == WARNING  # what the checks found is kept
    assert problem in settled.report.problems[-1].message


def test_settling_before_verification_or_without_a_render_is_a_bug(article: Article) -> None:
    with pytest.raises(ValueError, match="before it was verified"):
        settle(_run(article))
    run = _run(article)
    run.report = _report(article)
    with pytest.raises(ValueError, match="was not rendered"):
        settle(run)


def test_after_release_splits_went_live_from_made_live_by_a_concurrent_run(
    write_article: WriteArticle, tmp_path: Path
) -> None:
    articles = [
        load_article(
            write_article(front_matter=MINIMAL_FRONT_MATTER.replace("Test Article", name), name=f"{n}.md")
        )
        for n, name in enumerate(["Alpha", "Beta", "Gamma"])
    ]
    runs = plan(articles, ["a2", "b2", "c1"], {"gamma": "c1"})
    for run in runs:
        run.report = _report(run.article)
        if not run.is_live:
            run.rendered = _checked()
    settled = [settle(run) for run in runs]
    release = PublishedRelease(
        release_id="r2",
        release_dir=tmp_path,
        files={"alpha": ["web/alpha/index.html"]},
        already_live=["beta"],
    )
    went_live, unchanged = after_release(settled, release)
    assert [s.run.article.key for s in went_live] == ["alpha"]
    assert sorted(s.run.article.key for s in unchanged) == ["beta", "gamma"]
    assert after_release(settled, None) == ([], [settled[2]])  # nothing written: only the live one stays
