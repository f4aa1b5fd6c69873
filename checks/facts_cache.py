"""What a new process need not work out again: per-article facts on disk under --out, by content hash.

A publish of an unchanged catalog in a new process would otherwise load every file again (YAML and
the model, ~1.5 ms an article), parse every body for its links and grade its prose (~9 ms): ~10 s
of a 1,000-article no-op. ``<out>/.cache/facts.sqlite`` keeps three kinds of facts:

- ``article``: a file's loaded article (by the hash of its path and bytes), as JSON;
- ``links``: the links written in a body (by the hash of its source count and text);
- ``grade``: the body's readability result (the same key);
- ``language``: the stigma-free language check's findings (by the hash of what it reads: the
  words, the cited titles, the language, the site's exceptions and the term lists).

Each row also carries a fingerprint of the code and the libraries that compute these facts: a
changed body is a miss, and a changed rule (this code, the loader, the Markdown syntax, textstat,
any installed package) misses everything. A hit is what a miss computes (tests/checks/
test_facts_cache.py compares whole reports with the cache on and off). Like the link cache, it
is a speed-up, never a source of truth: a file that cannot be read is ignored, one that is not a
database is removed and made again. ``--no-cache`` (it sits beside the link cache) or
``CLINICPRESS_FACTS_CACHE=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from clinicpress.checks.body import body_facts, know_links
from clinicpress.checks.language import article_language_problems, know_language, language_key
from clinicpress.checks.model import Problem
from clinicpress.checks.readability import HardSentence, ReadabilityResult, grade_body, know_grade
from clinicpress.checks.sqlite_cache import SqliteCache
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, edition_language

__all__ = ["FactsCache", "PrimeStats", "body_key", "facts_beside", "open_facts", "prime_facts"]

ENV_SWITCH = "CLINICPRESS_FACTS_CACHE"  # "0": no facts cache (this process and its children)
FILE_NAME = "facts.sqlite"
MAX_AGE_HOURS = 30 * 24.0  # a row unused that long is made again once; it bounds the file's size
_SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    value TEXT NOT NULL,
    checked_at REAL NOT NULL,
    PRIMARY KEY (key, fingerprint)
)
"""
# The modules whose code decides a fact; any change to one of them is a new fingerprint.
_DECIDING_MODULES = (
    "clinicpress.checks.body",
    "clinicpress.checks.facts_cache",
    "clinicpress.checks.language",
    "clinicpress.checks.readability",
    "clinicpress.sources.article",
    "clinicpress.sources.loader",
    "clinicpress.sources.markdown",
    "clinicpress.validation",
)
# Their libraries (textstat, pyphen, markdown-it, PyYAML, pydantic): found by the folders they sit in.
_LIBRARIES = ("textstat", "pyphen", "markdown_it", "yaml", "pydantic", "pydantic_core")


@functools.cache
def code_fingerprint() -> str:
    """The code and the installed packages that compute the facts (without importing textstat)."""
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for name in _DECIDING_MODULES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        digest.update(name.encode() + b"\x00")
        if origin:
            with contextlib.suppress(OSError):
                digest.update(Path(origin).read_bytes())
    folders: set[Path] = set()
    for name in _LIBRARIES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            folders.add(Path(spec.origin).parent.parent)
    for folder in sorted(folders):
        # Every installed distribution's name and version (``textstat-0.7.13.dist-info``): one
        # listing instead of importlib.metadata's slow lookups; an upgrade of anything misses once.
        with contextlib.suppress(OSError):
            names = sorted(n for n in os.listdir(folder) if n.endswith(".dist-info"))
            digest.update("\n".join(names).encode())
    return digest.hexdigest()[:16]


def body_key(body: str, source_count: int) -> str:
    """The content hash a body's links and grade are kept under."""
    return hashlib.sha256(f"{source_count}\x00{body}".encode()).hexdigest()


class FactsCache(SqliteCache):
    """Facts by kind and content hash in the SQLite file ``path``; see the module's docstring."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_age_hours: float = MAX_AGE_HOURS,
        clock: Callable[[], float] = time.time,
        fingerprint: str | None = None,
    ) -> None:
        super().__init__(path, schema=_SCHEMA, table="facts", max_age_hours=max_age_hours, clock=clock)
        self.fingerprint = fingerprint or code_fingerprint()

    def get_many(self, kind: str, keys: Sequence[str]) -> dict[str, str]:
        """The values (JSON text) kept for those of ``keys`` that have one; ``{}`` if unreadable."""
        if not keys:
            return {}
        prefix = f"{kind}:"
        try:
            with self.connect() as conn:
                rows = self.fresh_rows(
                    conn, "key, value", "key", [prefix + k for k in keys], self.fingerprint
                )
                return {key.removeprefix(prefix): value for key, value in rows}
        except sqlite3.DatabaseError:
            self._discard()  # not a database (or a damaged one): made again by the next write
        except (sqlite3.Error, OSError, ValueError):
            pass
        return {}

    def put_many(self, kind: str, values: Mapping[str, str]) -> int:
        """Keep ``values`` (key → JSON text); how many were written (0 when the file cannot be)."""
        if not values:
            return 0
        now = self.clock()
        rows = [(f"{kind}:{key}", self.fingerprint, value, now) for key, value in values.items()]
        for attempt in range(2):
            try:
                with self.connect() as conn:
                    conn.executemany("INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?)", rows)
                    # Rows of other code are never read again: the file stays the size of one catalog.
                    conn.execute("DELETE FROM facts WHERE fingerprint != ?", [self.fingerprint])
                    self.remove_expired(conn)
                return len(rows)
            except sqlite3.DatabaseError:
                if attempt == 0:
                    self._discard()
            except (sqlite3.Error, OSError):
                return 0
        return 0

    def _discard(self) -> None:
        """Remove a file SQLite cannot read as a database (and its journal), so it is made again."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                Path(f"{self.path}{suffix}").unlink()
        self._ready = False

    # The loader's memo (sources/loader.py, ArticleMemo: its memo_key): loaded articles as JSON.
    def recall_articles(self, keys: Sequence[str]) -> dict[str, str]:
        return self.get_many("article", keys)

    def remember_articles(self, values: Mapping[str, str]) -> None:
        self.put_many("article", values)


def open_facts(out_dir: Path | str, *, enabled: bool = True) -> FactsCache | None:
    """The facts cache at ``<out>/.cache/facts.sqlite``; None when off (``--no-cache``, or the switch).

    Only in an ``--out`` that exists: a run that publishes nothing into a new folder (a blocked
    first publish) leaves no folder behind, and a first run has nothing to read anyway.
    """
    out = Path(out_dir)
    if not enabled or os.environ.get(ENV_SWITCH, "1").strip() == "0" or not out.is_dir():
        return None
    return FactsCache(out / ".cache" / FILE_NAME)


def facts_beside(link_cache_path: Path | None) -> FactsCache | None:
    """The facts cache next to the link cache's file (``<out>/.cache/``); none when that is off."""
    if link_cache_path is None:
        return None
    return open_facts(link_cache_path.parent.parent)


@dataclass(frozen=True)
class PrimeStats:
    bodies: int  # distinct (body, source count) pairs
    hits: int  # links and grade both read from the cache
    stored: int  # computed now and written


def _grade_json(result: ReadabilityResult) -> str:
    return json.dumps(result.as_json(), ensure_ascii=False)


def _grade_of(text: str) -> ReadabilityResult | None:
    try:
        data = json.loads(text)
        return ReadabilityResult(
            grade=float(data["grade"]),
            words=int(data["words"]),
            sentences=int(data["sentences"]),
            hardest=tuple(
                HardSentence(text=str(h["text"]), grade=float(h["grade"])) for h in data["hardest"]
            ),
        )
    except (ValueError, KeyError, TypeError):
        return None  # not what this code writes: a miss


def _links_of(text: str) -> tuple[str, ...] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list) or not all(isinstance(link, str) for link in data):
        return None
    return tuple(data)


def _language_json(problems: Sequence[Problem]) -> str:
    return json.dumps([p.as_json() for p in problems], ensure_ascii=False)


def _prime_language(articles: Sequence[Article], site: SiteConfig, cache: FactsCache) -> int:
    """The language check's findings of every article known (from disk, or worked out once); the
    number of rows written."""
    settings = site.checks.language
    if not settings.enabled:
        return 0
    # Each in its edition's language, as verify_article checks it (a Spanish edition's findings).
    keys = {language_key(a, settings, edition_language(a, site)): a for a in articles}
    kept = cache.get_many("language", list(keys))
    new: dict[str, str] = {}
    for key, article in keys.items():
        try:
            known = [Problem.model_validate(p) for p in json.loads(kept[key])] if key in kept else None
        except (ValueError, TypeError):
            known = None  # a row this code cannot read: worked out again
        if known is not None:
            know_language(key, known)
        else:
            found = article_language_problems(article, settings, edition_language(article, site))
            new[key] = _language_json(found)
    return cache.put_many("language", new)


def prime_facts(
    articles: Sequence[Article], cache: FactsCache | None, site: SiteConfig | None = None
) -> PrimeStats:
    """Make every article's links and grade (and, given the ``site``, its language findings) known
    before the checks ask for them.

    Read from ``cache`` in one query per kind; what it lacks is computed here (one parse and one
    grade per body, kept in this process's memory for the checks) and written in one transaction.
    Without a cache nothing happens: the checks compute on demand, as before.
    """
    bodies = list(dict.fromkeys((a.body, len(a.sources)) for a in articles))
    if cache is None or not bodies:
        return PrimeStats(len(bodies), 0, 0)
    language_stored = _prime_language(articles, site, cache) if site is not None else 0
    keys = {pair: body_key(*pair) for pair in bodies}
    links_kept = cache.get_many("links", list(keys.values()))
    grades_kept = cache.get_many("grade", list(keys.values())) if links_kept else {}
    new_links: dict[str, str] = {}
    new_grades: dict[str, str] = {}
    hits = 0
    for (body, count), key in keys.items():
        links = _links_of(links_kept[key]) if key in links_kept else None
        grade = _grade_of(grades_kept[key]) if key in grades_kept else None
        if links is not None:
            know_links(body, count, links)
        else:
            new_links[key] = json.dumps(list(body_facts(body, count).links), ensure_ascii=False)
        if grade is not None:
            know_grade(body, count, grade)
        else:
            new_grades[key] = _grade_json(grade_body(body, count))
        hits += links is not None and grade is not None
    stored = max(cache.put_many("links", new_links), cache.put_many("grade", new_grades), language_stored)
    return PrimeStats(len(bodies), hits, stored)
