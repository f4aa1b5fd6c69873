"""Translated editions (issue 26): is a translation current, stale (since when), or blocked?

A translation is its own article with ``translation_of: <original's slug>`` and ``translated_from:``
a prefix of the original's :func:`~clinicpress.sources.versioning.content_hash` when it was
translated. Every decision here is pure: the caller gives the articles, the texts the registry
keeps of each original (``PublishedText``, written at publish by outputs/edition_texts.py) and
the day.

    original's text hash starts with translated_from   → current
    it does not, its new text not published yet         → stale (warning; no grace started)
    published on D, today < D + stale_grace_days        → stale (warning; the page says so)
    today ≥ D + stale_grace_days                        → blocked (every channel)
    the sources differ (URL, DOI, PMID, order, count)    → blocked, whatever the text
    translation_of names no article, or a translation   → blocked

D is when the first text of the original after the one translated went live: a patient may hold
the translation since then, and a second change does not restart the count.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from clinicpress.checks.model import ArticleReport, Check, Problem, Severity
from clinicpress.checks.signoff import text_diff
from clinicpress.site import SiteConfig, format_date
from clinicpress.sources.article import Article, EditionNote, edition_language
from clinicpress.sources.versioning import content_hash, reviewed_text

CHECK = Check.EDITIONS


class EditionState(enum.StrEnum):
    CURRENT = "current"
    STALE = "stale"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class PublishedText:
    """One text of an article as it went live: the registry keeps each one once."""

    slug: str
    content_hash: str
    text: str  # sources/versioning.reviewed_text
    first_published_at: datetime


@dataclass(frozen=True)
class Editions:
    """What the edition rules need beyond the article: every article by slug, the published texts.

    ``articles``: the articles checked and, for a translation whose original was not among them, the
    others beside the site config. ``history``: slug → its texts as published (any order).
    """

    articles: Mapping[str, Article]
    history: Mapping[str, Sequence[PublishedText]] = field(default_factory=dict)


@dataclass(frozen=True)
class Standing:
    """Where one translation stands against its original on one day."""

    slug: str
    original: str
    language: str
    state: EditionState
    original_hash: str | None  # None: the original is unknown
    translated_from: str
    since: datetime | None = None  # stale: when the changed original first went live (None: not yet)
    blocked_on: date | None = None  # stale: the day it blocks (since + grace)
    reason: str = ""  # why it is blocked, when it is

    def line(self) -> str:
        """``current`` / ``stale since D (blocked on D')`` / ``blocked: …``, as translate-status prints it."""
        if self.state is EditionState.CURRENT:
            return "current"
        if self.state is EditionState.STALE:
            if self.since is None:
                return "stale (the original's new text is not published yet)"
            assert self.blocked_on is not None
            return f"stale since {self.since.date().isoformat()} (blocked on {self.blocked_on.isoformat()})"
        return f"blocked: {self.reason}"

    def as_json(self) -> dict[str, object]:
        return {
            "slug": self.slug,
            "translation_of": self.original,
            "language": self.language,
            "state": self.state.value,
            "original_hash": self.original_hash,
            "translated_from": self.translated_from,
            "stale_since": self.since.date().isoformat() if self.since else None,
            "blocked_on": self.blocked_on.isoformat() if self.blocked_on else None,
            "reason": self.reason or None,
        }


def source_difference(original: Article, translation: Article) -> str | None:
    """None when the translation cites the same works in the same order, else the first difference.

    Titles may be translated; the URL (a DOI or PMID is its URL) may not. DOIs are compared
    without case (doi.org treats them so). A quote is the source's own words, checked against the
    source: a translation's quote, when it has one, is the original's (so the same check holds it).
    """

    def key(url: str) -> str:
        return url.lower() if url.startswith("https://doi.org/") else url

    mine, theirs = translation.sources, original.sources
    for number, (a, b) in enumerate(zip(theirs, mine, strict=False), start=1):
        if key(a.url) != key(b.url):
            return f"source {number} is {b.url}; the original's source {number} is {a.url}"
        if b.quote is not None and b.quote != a.quote:
            return (
                f"source {number}'s quote is not the original's: a quote is the source's own words, "
                "so copy it from the original (untranslated) or leave it out"
            )
    if len(mine) != len(theirs):
        return f"it cites {len(mine)} source(s); the original cites {len(theirs)}"
    return None


def _published(history: Sequence[PublishedText], prefix: str) -> PublishedText | None:
    return next((t for t in history if t.content_hash.startswith(prefix)), None)


def stale_since(history: Sequence[PublishedText], translated_from: str, current: str) -> datetime | None:
    """When the original first went live with a text other than the one translated (None: not yet).

    Counted from the first text published after the translated one (a later change does not
    restart the grace period). When the translated text never went live (a draft was translated),
    from when the current text did.
    """
    base = _published(history, translated_from)
    if base is None:
        now_live = _published(history, current)
        return now_live.first_published_at if now_live else None
    later = [
        t.first_published_at
        for t in history
        if not t.content_hash.startswith(translated_from) and t.first_published_at > base.first_published_at
    ]
    return min(later, default=None)


def standing(translation: Article, editions: Editions, site: SiteConfig, on: date) -> Standing:
    """Current, stale or blocked (``translation`` has ``translation_of``)."""
    assert translation.translation_of is not None
    assert translation.translated_from is not None
    name, prefix = translation.translation_of, translation.translated_from
    language = edition_language(translation, site)
    original = editions.articles.get(name)

    def blocked(reason: str, original_hash: str | None = None) -> Standing:
        return Standing(
            translation.key, name, language, EditionState.BLOCKED, original_hash, prefix, reason=reason
        )

    if original is None:
        return blocked(f"translation_of: no article has the slug {name!r}; expected an original's slug")
    current = content_hash(original)
    if original.translation_of is not None:
        return blocked(
            f"translation_of: {name} is itself a translation (of {original.translation_of}); "
            "expected the original's slug",
            current,
        )
    if edition_language(original, site) == language:
        return blocked(f"language: {language}, the same as its original {name}; expected another", current)
    if (difference := source_difference(original, translation)) is not None:
        return blocked(
            f"sources differ from the original's ({difference}); expected the same works in the "
            "same order (titles may be translated)",
            current,
        )
    if current.startswith(prefix):
        return Standing(translation.key, name, language, EditionState.CURRENT, current, prefix)
    since = stale_since(editions.history.get(name, ()), prefix, current)
    if since is None:
        return Standing(translation.key, name, language, EditionState.STALE, current, prefix)
    blocked_on = (since + timedelta(days=site.editions.stale_grace_days)).date()
    state = EditionState.BLOCKED if on >= blocked_on else EditionState.STALE
    reason = (
        f"stale since {format_date(since.date())}, past the {site.editions.stale_grace_days}-day grace "
        "period ([editions] stale_grace_days)"
        if state is EditionState.BLOCKED
        else ""
    )
    return Standing(translation.key, name, language, state, current, prefix, since, blocked_on, reason)


def original_diff(translation: Article, editions: Editions) -> list[str] | None:
    """The original's text diff since ``translated_from`` (None: that text is not in the registry)."""
    assert translation.translation_of is not None
    assert translation.translated_from is not None
    original = editions.articles[translation.translation_of]
    before = _published(editions.history.get(original.key, ()), translation.translated_from)
    if before is None:
        return None
    return text_diff(before.text, reviewed_text(original))


def edition_problems(article: Article, editions: Editions, site: SiteConfig, on: date) -> list[Problem]:
    """The edition rules' problems of one article (none for an article that is no translation)."""
    if article.translation_of is None:
        return []
    found = standing(article, editions, site, on)
    if found.state is EditionState.CURRENT:
        return []
    if found.state is EditionState.BLOCKED and found.since is None:  # not a matter of time: a wrong edition
        return [Problem(check=CHECK, severity=Severity.BLOCKED, message=found.reason)]
    what = (
        f"translation of {found.original} is stale: the original's text is now {found.original_hash[:12]}"
        if found.original_hash
        else f"translation of {found.original} is stale"
    ) + f", translated_from is {found.translated_from[:12]}"
    if found.since is None:
        what += "; the new text is not published yet (the grace period starts when it is)"
    elif found.state is EditionState.BLOCKED:
        what += f"; {found.reason}: update the translation and its translated_from"
    else:
        assert found.blocked_on is not None
        what += (
            f"; the original changed on {format_date(found.since.date())}: it publishes with a note "
            f"until it blocks on {format_date(found.blocked_on)}"
        )
    diff = original_diff(article, editions)
    if diff is None:
        what += (
            f"\n    the original's text {found.translated_from[:12]} is not in the registry: no diff to show"
        )
    else:
        what += "\n    the original changed since:\n" + "\n".join(f"    {line}" for line in diff)
    severity = Severity.BLOCKED if found.state is EditionState.BLOCKED else Severity.WARNING
    return [Problem(check=CHECK, severity=severity, message=what)]


def taken_down(report: ArticleReport) -> bool:
    """Is this a translation the edition rules block (stale past its grace, other sources, no
    original)? Unlike any other block, which keeps the version already live, such a translation is
    taken down: a patient must not keep a handout whose advice its original has dropped."""
    return any(p.check == CHECK and p.severity is Severity.BLOCKED for p in report.problems)


def with_edition_note(article: Article, editions: Editions, site: SiteConfig, on: date) -> Article:
    """The article as the channels render it: a stale translation within its grace period carries
    the day its original changed (``edition_note``), which its page states. (Which editions its page
    links is sources/editions.py's.)"""
    if article.translation_of is None:
        return article
    original = editions.articles.get(article.translation_of)
    if original is None:
        return article
    language = edition_language(original, site)
    found = standing(article, editions, site, on)
    if found.state is not EditionState.STALE or found.since is None:
        return article
    note = EditionNote(original_language=language, updated_on=found.since.date())
    return article.model_copy(update={"edition_note": note})


def translations(articles: Sequence[Article]) -> list[Article]:
    return [a for a in articles if a.translation_of is not None]
