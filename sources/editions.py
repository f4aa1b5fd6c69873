"""Which editions of an article are live together, and what each page links (issue 26): pure.

An original and its translations are editions of one text; each edition's page links the others
that are live (``hreflang`` alternates, a language switch), so the set of live editions is one of
the inputs a page is rendered from (:attr:`Article.alternates`, part of its version). The publish
flow guesses the set before it renders (what is live now, with the articles of this run in place),
and corrects it once each article's fate is known (flows/editions.py): a page never links an
edition that did not go live.

The newsletter reads the same records to send each subscriber the edition in their language
(outputs/delivery/audience.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from clinicpress.site import SiteConfig
from clinicpress.sources.article import Alternate, Article, edition_language


@dataclass(frozen=True)
class LiveEdition:
    """An article as the live release lists it: its language and the original it translates."""

    slug: str
    language: str  # "" when its report predates editions
    original: str  # the original's slug; its own for an original


def edition_of(article: Article, site: SiteConfig) -> LiveEdition:
    """``article`` as the release will list it."""
    return LiveEdition(article.key, edition_language(article, site), article.translation_of or article.key)


def live_editions(reports: Mapping[str, Mapping[str, object]]) -> dict[str, LiveEdition]:
    """The live articles' editions from their reports (slug → report as published)."""
    found: dict[str, LiveEdition] = {}
    for slug, report in reports.items():
        language = report.get("language")
        original = report.get("translation_of")
        found[slug] = LiveEdition(
            slug=slug,
            language=language if isinstance(language, str) else "",
            original=original if isinstance(original, str) else slug,
        )
    return found


def has_editions(editions: Iterable[LiveEdition]) -> bool:
    """Is any of them a translation? (None is: no page links another, nothing to work out.)"""
    return any(e.original != e.slug for e in editions)


def expected_live(
    live: Mapping[str, LiveEdition], articles: Iterable[Article], site: SiteConfig, gone: Collection[str] = ()
) -> dict[str, LiveEdition]:
    """The editions live after a publish of ``articles`` if each of them goes live: those live now
    (less ``gone``: taken down or moved away), with each article in place of its live entry."""
    after = {slug: edition for slug, edition in live.items() if slug not in gone}
    for article in articles:
        after[article.key] = edition_of(article, site)
    return after


def _alternates(me: LiveEdition, group: Iterable[LiveEdition], site: SiteConfig) -> tuple[Alternate, ...]:
    fallback = site.organization.language  # a report from before editions: the site's language
    others = [e for e in group if e.slug != me.slug]
    return tuple(
        Alternate(slug=e.slug, language=e.language or fallback)
        for e in sorted(others, key=lambda e: (e.language or fallback, e.slug))
    )


def alternates(article: Article, live: Mapping[str, LiveEdition], site: SiteConfig) -> tuple[Alternate, ...]:
    """The other editions of ``article`` in ``live``, by language then slug (its own excluded)."""
    me = edition_of(article, site)
    return _alternates(me, (e for e in live.values() if e.original == me.original), site)


def with_alternates(article: Article, live: Mapping[str, LiveEdition], site: SiteConfig) -> Article:
    """``article`` linking its other editions in ``live`` (itself when that changes nothing)."""
    found = alternates(article, live, site)
    return article if found == article.alternates else article.model_copy(update={"alternates": found})


def link_all(articles: Sequence[Article], live: Mapping[str, LiveEdition], site: SiteConfig) -> list[Article]:
    """:func:`with_alternates` of each article, ``live`` grouped once (a catalog: not n × n)."""
    groups: dict[str, list[LiveEdition]] = {}
    for edition in live.values():
        groups.setdefault(edition.original, []).append(edition)
    linked = []
    for article in articles:
        me = edition_of(article, site)
        found = _alternates(me, groups.get(me.original, ()), site)
        linked.append(
            article if found == article.alternates else article.model_copy(update={"alternates": found})
        )
    return linked


__all__ = [
    "LiveEdition",
    "alternates",
    "edition_of",
    "expected_live",
    "has_editions",
    "link_all",
    "live_editions",
    "with_alternates",
]
