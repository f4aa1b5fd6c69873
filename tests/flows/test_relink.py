"""flows/editions.py: a publish's pages link exactly the editions that go live with them (issue 26).

Decided without Prefect, files beyond the fixture editions, or a network: each test settles the
fixture's English original and Spanish translation by hand and gives ``relink`` a render that
records what it is asked to render.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from editions import ORIGINAL, TRANSLATION, edition_folder, edition_site, load_slug

from clinicpress.checks.model import ArticleReport, Check, Problem, Severity, Verdict
from clinicpress.errors import RenderError
from clinicpress.flows.editions import live_after, relink
from clinicpress.flows.settle import ArticleRun, Fate, RenderJob, Settled, settle
from clinicpress.renderers.base import Artifact
from clinicpress.renderers.pool import Checked
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Alternate, Article, Channel
from clinicpress.sources.editions import LiveEdition, edition_of, expected_live, with_alternates
from clinicpress.sources.versioning import article_version

TEMPLATES = "templates"
AT = datetime(2026, 1, 1, 12, tzinfo=UTC)
STALE = Problem(check=Check.EDITIONS, severity=Severity.BLOCKED, message="stale past its grace period")
BROKEN = Problem(check=Check.LINKS, severity=Severity.BLOCKED, message="a source is broken")


class Renders:
    """A render that records the articles it was given and succeeds."""

    def __init__(self) -> None:
        self.asked: list[Article] = []

    def __call__(self, jobs: Sequence[RenderJob]) -> list[Checked | RenderError]:
        self.asked += [article for article, _, _ in jobs]
        return [
            Checked([Artifact(Channel.WEB, f"web/{a.key}/index.html", b"<html>", "text/html")], [])
            for a, _, _ in jobs
        ]


@pytest.fixture
def site(tmp_path: Path) -> SiteConfig:
    return edition_site(edition_folder(tmp_path))


@pytest.fixture
def pair(tmp_path: Path, site: SiteConfig) -> tuple[Article, Article]:
    folder = tmp_path / "content"
    return load_slug(folder, ORIGINAL), load_slug(folder, TRANSLATION)


def _guessed(articles: Sequence[Article], site: SiteConfig, live: dict[str, LiveEdition]) -> list[Article]:
    guess = expected_live(live, articles, site)
    return [with_alternates(a, guess, site) for a in articles]


def _settled(
    article: Article, site: SiteConfig, *problems: Problem, live_version: str | None = None
) -> Settled:
    version = article_version(article, site, TEMPLATES)
    run = ArticleRun(article, version, live_version)
    blocked = any(p.severity is Severity.BLOCKED for p in problems)
    run.report = ArticleReport(
        path=str(article.path),
        slug=article.key,
        verdict=Verdict.BLOCKED if blocked else Verdict.OK,
        problems=list(problems),
    )
    if not run.is_live:
        run.rendered = Renders()([run.render_job(site, AT)])[0]
    return settle(run)


def test_the_guess_links_each_edition_to_the_others_by_language(
    pair: tuple[Article, Article], site: SiteConfig
) -> None:
    original, translation = _guessed(pair, site, {})
    assert original.alternates == (Alternate(slug=TRANSLATION, language="es"),)
    assert translation.alternates == (Alternate(slug=ORIGINAL, language="en"),)
    # A version of its own: an original that gains a translation is published again.
    assert article_version(original, site, TEMPLATES) != article_version(pair[0], site, TEMPLATES)


def test_pages_whose_guess_holds_are_not_rendered_again(
    pair: tuple[Article, Article], site: SiteConfig
) -> None:
    settled = [_settled(a, site) for a in _guessed(pair, site, {})]
    renders = Renders()
    assert relink(settled, {}, site, TEMPLATES, AT, renders) == settled
    assert renders.asked == []


def test_an_original_stops_linking_a_translation_that_is_taken_down(
    pair: tuple[Article, Article], site: SiteConfig
) -> None:
    original, translation = _guessed(pair, site, {})
    live = {a.key: edition_of(a, site) for a in pair}  # both live before this run
    settled = [_settled(original, site), _settled(translation, site, STALE)]
    renders = Renders()
    after = relink(settled, live, site, TEMPLATES, AT, renders)
    assert [a.key for a in renders.asked] == [ORIGINAL]
    assert after[0].fate is Fate.READY
    assert after[0].run.article.alternates == ()
    assert after[0].ready.version == article_version(pair[0], site, TEMPLATES)
    assert after[1] is settled[1]  # the blocked translation: nothing of it is written


def test_a_relinked_page_whose_version_is_live_is_left_unchanged(
    pair: tuple[Article, Article], site: SiteConfig
) -> None:
    """The original is live without links; the new translation the guess linked is blocked."""
    plain = article_version(pair[0], site, TEMPLATES)
    live = {ORIGINAL: edition_of(pair[0], site)}
    original, translation = _guessed(pair, site, live)
    settled = [_settled(original, site, live_version=plain), _settled(translation, site, BROKEN)]
    assert settled[0].fate is Fate.READY  # rendered on the guess
    renders = Renders()
    after = relink(settled, live, site, TEMPLATES, AT, renders)
    assert renders.asked == []
    assert after[0].fate is Fate.UNCHANGED
    assert after[0].run.version == plain


def test_a_blocked_translation_still_live_stays_linked(
    pair: tuple[Article, Article], site: SiteConfig
) -> None:
    """Blocked by a broken source, not by the edition rules: its live version stays, so does the link."""
    original, translation = _guessed(pair, site, {})
    live = {a.key: edition_of(a, site) for a in pair}
    settled = [_settled(original, site), _settled(translation, site, BROKEN)]
    renders = Renders()
    assert relink(settled, live, site, TEMPLATES, AT, renders) == settled
    assert renders.asked == []
    assert TRANSLATION in live_after(live, settled, site)


def test_a_translation_does_not_link_an_original_that_never_went_live(
    pair: tuple[Article, Article], site: SiteConfig
) -> None:
    original, translation = _guessed(pair, site, {})
    settled = [_settled(original, site, BROKEN), _settled(translation, site)]
    renders = Renders()
    after = relink(settled, {}, site, TEMPLATES, AT, renders)
    assert [a.key for a in renders.asked] == [TRANSLATION]
    assert after[1].run.article.alternates == ()


def test_an_old_address_left_by_a_move_is_not_linked(pair: tuple[Article, Article], site: SiteConfig) -> None:
    original, translation = pair
    moved = LiveEdition(slug="ketamine-old-slug", language="es", original=ORIGINAL)
    live = {ORIGINAL: edition_of(original, site), moved.slug: moved}
    assert moved.slug not in live_after(live, [_settled(translation, site)], site, [moved.slug])
    assert moved.slug in live_after(live, [_settled(translation, site)], site)


def test_a_blocked_page_is_not_rendered_again(pair: tuple[Article, Article], site: SiteConfig) -> None:
    """Nothing of a blocked article is written, so its links are not worked out again."""
    original, translation = _guessed(pair, site, {})
    settled = [_settled(original, site, BROKEN), _settled(translation, site, STALE)]
    renders = Renders()
    assert relink(settled, {}, site, TEMPLATES, AT, renders) == settled
    assert renders.asked == []
