"""A publish's pages link exactly the editions that go live with them (issue 26).

Each edition's web page links the article's other live editions (sources/editions.py). The flow
renders before it knows which articles its checks will block, so it renders each page against a
guess: what is live now, with every article of the run live. Once each article is settled this
module works out what really goes live (:func:`live_after`) and renders again the few pages whose
guess was wrong (:func:`relink`): a translation blocked, held or taken down is not linked by its
original, and an original that never went live is not linked by its translations.

Pure but for the ``render`` it is given; tested without Prefect (tests/flows/test_relink.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

from clinicpress.checks.editions import taken_down
from clinicpress.errors import RenderError
from clinicpress.flows.settle import ArticleRun, Fate, RenderJob, Settled, settle
from clinicpress.renderers.pool import Checked
from clinicpress.site import SiteConfig
from clinicpress.sources.editions import LiveEdition, edition_of, link_all
from clinicpress.sources.versioning import article_version

Render = Callable[[Sequence[RenderJob]], Sequence[Checked | RenderError]]
RELINK_ROUNDS = 3  # a round after the first follows a page whose render failed: rare, and bounded


def withdrawn(settled: Sequence[Settled]) -> list[str]:
    """The translations the edition rules block: taken down in this release (checks/editions.py)."""
    return [s.report.slug for s in settled if s.fate is Fate.BLOCKED and taken_down(s.report)]


def live_after(
    live: Mapping[str, LiveEdition],
    settled: Sequence[Settled],
    site: SiteConfig,
    moved_away: Collection[str] = (),
) -> dict[str, LiveEdition]:
    """The editions live once this publish's release is written.

    Those live now stay (a blocked article keeps the version already live), less the translations
    taken down and the old addresses of moved articles; each article that goes live or stays live
    is there as this run has it.
    """
    gone = {*withdrawn(settled), *moved_away}
    after = {slug: edition for slug, edition in live.items() if slug not in gone}
    for item in settled:
        if item.fate is not Fate.BLOCKED:
            after[item.run.article.key] = edition_of(item.run.article, site)
    return after


def relink(
    settled: Sequence[Settled],
    live: Mapping[str, LiveEdition],
    site: SiteConfig,
    templates: str,
    published_at: datetime,
    render: Render,
    moved_away: Callable[[Sequence[Settled]], Collection[str]] = lambda _: (),
) -> list[Settled]:
    """``settled`` with every page that goes live linking the editions that really go live.

    An article whose links were guessed wrong gets its true ones, hence a new version: rendered
    again (``render``) and settled again, or unchanged when that version is the one live already.
    ``moved_away``: the old addresses that the articles going live leave.
    """
    current = list(settled)
    for _ in range(RELINK_ROUNDS):
        after = live_after(live, current, site, moved_away(current))
        wrong: list[tuple[int, ArticleRun]] = []
        # A blocked article is left as it is: nothing of it is written, the page live (if any) stays.
        going = [(index, item) for index, item in enumerate(current) if item.fate is not Fate.BLOCKED]
        for (index, item), article in zip(
            going, link_all([i.run.article for _, i in going], after, site), strict=True
        ):
            if article is not item.run.article:
                version = article_version(article, site, templates)
                wrong.append(
                    (index, ArticleRun(article, version, item.run.live_version, report=item.run.report))
                )
        if not wrong:
            return current
        to_render = [run for _, run in wrong if not run.is_live]
        for run, outcome in zip(
            to_render, render([run.render_job(site, published_at) for run in to_render]), strict=True
        ):
            run.rendered = outcome
        for index, run in wrong:
            current[index] = settle(run)
    return current
