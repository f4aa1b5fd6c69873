"""What the preview knows about each article: loaded, rendered, checked, and each part's version.

An :class:`Entry` is an immutable snapshot; the workers replace it, the HTTP handler reads it.
:class:`PreviewState` is the one mutable object: a lock around the entries and a counter whose
values version the parts of a page (an open page reloads only the parts whose version moved).
Everything else here is a pure function of entries.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinicpress.checks.model import ArticleReport, LinkResult, Problem, Severity, Verdict
from clinicpress.sources.article import Article, Channel

# The parts of /<slug>/ that refresh on their own; "page" means reload the whole page
# (the slug, the title or the article's channels changed).
PARTS = ("page", "report", "web", "email", "handout")
CHECKING = "checking…"


@dataclass(frozen=True)
class HandoutRender:
    """The handout's PDF and its pages as PNG images (for the side-by-side view)."""

    pdf: bytes
    pages: tuple[bytes, ...]


@dataclass(frozen=True)
class Entry:
    """One article file as the preview last saw it."""

    path: Path
    slug: str | None = None  # from the last good load: a file that breaks keeps its page
    article: Article | None = None  # the last good load
    error: str | None = None  # why the file does not load now (one line), else None
    generation: int = 0  # bumped by every load that changed the article or the site
    render_key: str = ""  # the article version that was rendered: same key, nothing to redo
    web: str | None = None
    email_html: str | None = None
    email_text: str | None = None
    channel_errors: Mapping[str, str] = field(default_factory=dict)  # channel → one-line error
    handout: HandoutRender | None = None
    handout_generation: int = -1  # the generation ``handout`` was made from
    quick: ArticleReport | None = None  # license, review, readability: no network
    full: ArticleReport | None = None  # with sources, from the background check
    links_generation: int = -1  # the generation ``full`` was checked for
    known_links: Mapping[str, LinkResult] = field(default_factory=dict)  # shown while re-checking
    parts: Mapping[str, int] = field(default_factory=dict)  # part → version
    wanted: bool = False  # someone opened it: its channels are rendered and kept current

    @property
    def channels(self) -> tuple[Channel, ...]:
        return tuple(self.article.channels) if self.article is not None else ()

    @property
    def handout_pending(self) -> bool:
        return self.wanted and Channel.HANDOUT in self.channels and self.handout_generation < self.generation

    @property
    def links_pending(self) -> bool:
        return self.article is not None and self.links_generation < self.generation

    def versions(self) -> dict[str, int]:
        return {part: self.parts.get(part, 0) for part in PARTS}


@dataclass(frozen=True)
class SourceRow:
    """One cited URL as the page lists it."""

    number: int | None  # its place in ``sources``; None for a link in the body
    title: str
    url: str
    status: str  # a link status, or CHECKING
    reason: str
    stale: bool  # the status is from an earlier check; a new one is running


def report_of(entry: Entry) -> ArticleReport | None:
    """The full report when the sources of this generation are checked, else the quick one."""
    if entry.full is not None and not entry.links_pending:
        return entry.full
    return entry.quick


def verdict_label(entry: Entry) -> str:
    """``ok``, ``warning``, ``blocked``, ``checking…`` (sources not yet known) or ``does not load``."""
    if entry.article is None or entry.error is not None:
        return "does not load"  # the last good version stays shown under the error, not its verdict
    report = report_of(entry)
    if report is None:
        return CHECKING
    if entry.links_pending and report.verdict is not Verdict.BLOCKED:
        return CHECKING  # a source could still block
    return report.verdict.value


def problems_of(entry: Entry) -> list[Problem]:
    report = report_of(entry)
    return list(report.problems) if report is not None else []


def source_rows(entry: Entry, urls: Iterable[str]) -> list[SourceRow]:
    """The article's cited URLs (``urls``, sources first) with their statuses or ``checking…``."""
    article = entry.article
    if article is None:
        return []
    titles: dict[str, tuple[int | None, str]] = {}
    for place, source in enumerate(article.sources, start=1):
        titles.setdefault(source.url, (place, source.title))
    checked: Mapping[str, LinkResult] = {}
    if entry.full is not None and not entry.links_pending:
        checked = {link.url: link for link in entry.full.links}
    rows = []
    for url in urls:
        number, title = titles.get(url, (None, "link in the body"))
        if (result := checked.get(url)) is not None:
            rows.append(SourceRow(number, title, url, result.status.value, _reason(result), stale=False))
        elif (earlier := entry.known_links.get(url)) is not None:
            rows.append(SourceRow(number, title, url, earlier.status.value, _reason(earlier), stale=True))
        else:
            rows.append(SourceRow(number, title, url, CHECKING, "", stale=False))
    return rows


def _reason(result: LinkResult) -> str:
    text = result.reason
    if result.final_url and result.final_url != result.url:
        text += f" → {result.final_url}"
    if result.integrity in ("retracted", "corrected", "concern"):
        text += f" (integrity: {result.integrity})"
    return text


def blocking(problems: Iterable[Problem]) -> int:
    return sum(1 for p in problems if p.severity is Severity.BLOCKED)


def slug_owner(entries: Iterable[Entry], slug: str, path: Path) -> Path | None:
    """Another file that already previews under ``slug`` (two articles with one slug is an error)."""
    for entry in entries:
        if entry.path != path and entry.slug == slug and entry.article is not None:
            return entry.path
    return None


def file_changes(
    before: Mapping[Path, object], after: Mapping[Path, object]
) -> tuple[list[Path], list[Path]]:
    """(new or changed, removed) paths between two ``path → stat signature`` maps."""
    changed = [path for path, sig in after.items() if before.get(path) != sig]
    removed = [path for path in before if path not in after]
    return changed, removed


class PreviewState:
    """The entries, guarded for the server's threads; every change bumps the versions it touches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Path, Entry] = {}
        self._counter = itertools.count(1)
        self._version = 0  # the whole preview's: the index page polls it
        self._site_error: str | None = None
        # An old slug → the file that previewed (or published) under it: the open page follows the
        # article to its new slug (issue 24), as the site's redirect page does.
        self._moved: dict[str, Path] = {}

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    @property
    def site_error(self) -> str | None:
        with self._lock:
            return self._site_error

    def set_site_error(self, message: str | None) -> None:
        with self._lock:
            if message == self._site_error:
                return
            self._site_error = message
            self._version = next(self._counter)
            for path, entry in self._entries.items():
                self._entries[path] = self._bumped(entry, ("report",))

    def entries(self) -> list[Entry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: str(e.path))

    def get(self, path: Path) -> Entry | None:
        with self._lock:
            return self._entries.get(path)

    def by_slug(self, slug: str) -> Entry | None:
        with self._lock:
            for entry in self._entries.values():
                if entry.slug == slug:
                    return entry
            return None

    def moved_to(self, slug: str) -> Entry | None:
        """The entry of the article that was at ``slug`` and has another slug now, if any."""
        with self._lock:
            path = self._moved.get(slug)
            entry = self._entries.get(path) if path is not None else None
            return entry if entry is not None and entry.slug not in (None, slug) else None

    def remember_moves(self, path: Path, old_slugs: Iterable[str]) -> None:
        """``path``'s article was published at ``old_slugs`` before (they redirect to it now)."""
        with self._lock:
            self._moved.update(dict.fromkeys(old_slugs, path))

    def update(
        self, path: Path, bump: Iterable[str], *, if_generation: int | None = None, **changes: Any
    ) -> Entry | None:
        """Apply ``changes`` to the entry of ``path`` (made if new) and bump the ``bump`` parts.

        With ``if_generation``, only if the entry is still at it: a background result for an older
        text is dropped. Returns the new entry, or None when dropped.
        """
        with self._lock:
            entry = self._entries.get(path) or Entry(path=path)
            if if_generation is not None and entry.generation != if_generation:
                return None
            if entry.slug is not None and changes.get("slug", entry.slug) != entry.slug:
                self._moved[entry.slug] = path
            entry = self._bumped(dataclasses.replace(entry, **changes), bump)
            self._entries[path] = entry
            return entry

    def remove(self, path: Path) -> None:
        with self._lock:
            if self._entries.pop(path, None) is not None:
                self._version = next(self._counter)

    def _bumped(self, entry: Entry, parts: Iterable[str]) -> Entry:
        value = next(self._counter)
        self._version = value
        return dataclasses.replace(entry, parts={**entry.parts, **dict.fromkeys(parts, value)})
