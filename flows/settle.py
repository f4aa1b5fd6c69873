"""What becomes of each article in a publish: one record per article, and one pure decision.

The publish flow (``flows/publish.py``) carries an :class:`ArticleRun` per article through its
steps, as mkdocs carries a page through a build: the version and what is live when it is
planned, the check report after verification, the render (or the render's error) after the
renders. :func:`settle` then says what happens to the article: blocked (nothing of it is
written), unchanged (this version is live already) or ready (it goes into the new release).
It is pure, and tested without Prefect (``tests/flows/test_settle.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from clinicpress.checks.model import ArticleReport, Check, Problem, Severity, Verdict
from clinicpress.errors import RenderError
from clinicpress.outputs.publish import PublishedRelease, ReadyArticle
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.pool import Checked
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article

RenderJob = tuple[Article, SiteConfig, RenderContext]


class Fate(enum.StrEnum):
    BLOCKED = "blocked"  # a check, the render or the consistency read-back blocks it
    UNCHANGED = "unchanged"  # this version is live already: nothing rendered, nothing written
    READY = "ready"  # verified, rendered and consistent: it goes into the new release


@dataclass
class ArticleRun:
    """One article's state through one publish, filled in step by step."""

    article: Article
    version: str
    live_version: str | None  # the version live now (None: none, or --force)
    report: ArticleReport | None = None  # after verification
    rendered: Checked | RenderError | None = None  # after the renders (only if it needed one)

    @property
    def is_live(self) -> bool:
        return self.live_version == self.version

    def render_job(
        self, site: SiteConfig, published_at: datetime
    ) -> tuple[Article, SiteConfig, RenderContext]:
        return self.article, site, RenderContext(published_at=published_at, version=self.version)


@dataclass(frozen=True)
class Settled:
    run: ArticleRun
    fate: Fate
    report: ArticleReport  # the final report: render and consistency problems added

    @property
    def ready(self) -> ReadyArticle:
        """The article as the release takes it (only for ``Fate.READY``)."""
        assert self.fate is Fate.READY
        assert isinstance(self.run.rendered, Checked)
        return ReadyArticle(self.run.article, self.report, self.run.version, self.run.rendered.artifacts)


def plan(articles: Sequence[Article], versions: Sequence[str], live: dict[str, str]) -> list[ArticleRun]:
    """One run per article, knowing its version and what is live (``live``: slug → version)."""
    return [
        ArticleRun(article, version, live.get(article.key))
        for article, version in zip(articles, versions, strict=True)
    ]


def settle(run: ArticleRun) -> Settled:
    """Blocked, unchanged or ready: the article's fate once it is verified and (if needed) rendered."""
    if run.report is None:
        raise ValueError(f"{run.article.key}: settled before it was verified")
    report = run.report
    if report.verdict is Verdict.BLOCKED:
        return Settled(run, Fate.BLOCKED, report)  # its render, if any, is thrown away
    if run.is_live:
        return Settled(run, Fate.UNCHANGED, report)
    if run.rendered is None:
        raise ValueError(f"{run.article.key}: a version not live was not rendered")
    if isinstance(run.rendered, RenderError):
        problem = Problem(check=Check.RENDER, severity=Severity.BLOCKED, message=str(run.rendered))
        return Settled(run, Fate.BLOCKED, _blocked_by(report, [problem]))
    if run.rendered.problems:
        # The three channels must state the same facts; any difference blocks the article.
        return Settled(run, Fate.BLOCKED, _blocked_by(report, run.rendered.problems))
    return Settled(run, Fate.READY, report)


def after_release(
    settled: Sequence[Settled], release: PublishedRelease | None
) -> tuple[list[Settled], list[Settled]]:
    """(went live, live unchanged) once the release is written.

    A ready article that a concurrent run of the same trigger made live first is unchanged here.
    """
    went_live: list[Settled] = []
    unchanged = [s for s in settled if s.fate is Fate.UNCHANGED]
    for item in settled:
        if item.fate is not Fate.READY or release is None:
            continue
        key = item.run.article.key
        if key in release.files:
            went_live.append(item)
        elif key in release.already_live:
            unchanged.append(item)
    return went_live, unchanged


def _blocked_by(report: ArticleReport, problems: list[Problem]) -> ArticleReport:
    return report.model_copy(update={"verdict": Verdict.BLOCKED, "problems": [*report.problems, *problems]})
