"""A small SQLite cache of link results, shared across articles and runs.

Only successes are kept (``ok``, ``redirected``), each for ``max_age``: a failure is
always checked again, so a source that came back is seen at once and a source that
broke is seen within ``max_age``. Results are stored per input URL (the ``#fragment``
verdict is part of it) and per settings fingerprint: the same URL checked with fragments
off is not reused with fragments on.

Every call opens its own short connection, so one :class:`LinkCache` may be shared by
threads (Prefect task runners) and pickled (it holds only a path and numbers). A cache
that cannot be read or written is ignored, never fatal: checking is the fallback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from clinicpress.checks.model import LinkResult, LinkStatus
from clinicpress.checks.sqlite_cache import SqliteCache
from clinicpress.settings.links import LinkCheckSettings

__all__ = ["CACHEABLE", "LinkCache", "open_cache", "settings_fingerprint"]

CACHEABLE = frozenset({LinkStatus.OK, LinkStatus.REDIRECTED})
_SCHEMA = """
CREATE TABLE IF NOT EXISTS link_results (
    url TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    http_status INTEGER,
    final_url TEXT,
    checked_at REAL NOT NULL,
    PRIMARY KEY (url, fingerprint)
)
"""


def settings_fingerprint(settings: LinkCheckSettings) -> str:
    """What changes a verdict: a result checked under other rules is not reused."""
    relevant = settings.model_dump(
        include={
            "allow_private_hosts",
            "allow_private_networks",
            "check_fragments",
            "soft_404",
            "max_redirects",
            "hosts",
            "doi_resolver",
            "pubmed_resolver",
        },
        mode="json",
    )
    if not relevant.get("allow_private_networks"):  # unset: cache entries made before it stay valid
        relevant.pop("allow_private_networks", None)
    for host in relevant.get("hosts", {}).values():  # politeness does not change verdicts
        host.pop("per_host", None)
        host.pop("min_interval", None)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


class LinkCache(SqliteCache):
    """``ok``/``redirected`` results kept for ``max_age_hours`` in the SQLite file ``path``."""

    def __init__(
        self, path: Path | str, *, max_age_hours: float = 24.0, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(path, schema=_SCHEMA, table="link_results", max_age_hours=max_age_hours, clock=clock)

    @classmethod
    def for_settings(cls, path: Path | str, settings: LinkCheckSettings) -> LinkCache:
        return cls(path, max_age_hours=settings.cache_max_age_hours)

    def get_many(self, urls: Sequence[str], settings: LinkCheckSettings) -> dict[str, LinkResult]:
        """Fresh cached results for those ``urls`` that have one."""
        if not urls or self.max_age <= 0:
            return {}
        fingerprint = settings_fingerprint(settings)
        found: dict[str, LinkResult] = {}
        columns = "url, status, reason, http_status, final_url"
        try:
            with self.connect() as conn:
                for url, status, reason, http_status, final_url in self.fresh_rows(
                    conn, columns, "url", urls, fingerprint
                ):
                    if status in CACHEABLE:
                        found[url] = LinkResult(
                            url=url,
                            status=LinkStatus(status),
                            reason=reason,
                            http_status=http_status,
                            final_url=final_url,
                        )
        except (sqlite3.Error, OSError, ValueError):
            return {}
        return found

    def get(self, url: str, settings: LinkCheckSettings) -> LinkResult | None:
        return self.get_many([url], settings).get(url)

    def put_many(self, results: Iterable[LinkResult], settings: LinkCheckSettings) -> int:
        """Store the successes among ``results``; a failure removes any older success."""
        fingerprint = settings_fingerprint(settings)
        now = self.clock()
        keep: list[tuple[object, ...]] = []
        drop: list[tuple[str, str]] = []
        for r in results:
            if r.status in CACHEABLE:
                keep.append((r.url, fingerprint, r.status.value, r.reason, r.http_status, r.final_url, now))
            else:
                drop.append((r.url, fingerprint))
        if not keep and not drop:
            return 0
        try:
            with self.connect() as conn:
                conn.executemany("INSERT OR REPLACE INTO link_results VALUES (?, ?, ?, ?, ?, ?, ?)", keep)
                conn.executemany("DELETE FROM link_results WHERE url = ? AND fingerprint = ?", drop)
                # Expired rows (and rows of settings no longer used) are never read again: every
                # write clears them, so the file stays the size of one max-age of checks.
                self.remove_expired(conn)
        except (sqlite3.Error, OSError):
            return 0
        return len(keep)

    def purge(self) -> int:
        """Delete expired rows; returns how many."""
        try:
            with self.connect() as conn:
                return self._purge(conn)
        except (sqlite3.Error, OSError):
            return 0

    def _purge(self, conn: sqlite3.Connection) -> int:
        cur = conn.execute("DELETE FROM link_results WHERE checked_at < ?", [self.clock() - self.max_age])
        return cur.rowcount

    def clear(self) -> None:
        with contextlib.suppress(sqlite3.Error, OSError), self.connect() as conn:
            conn.execute("DELETE FROM link_results")


def open_cache(out_dir: Path | str, settings: LinkCheckSettings, *, enabled: bool = True) -> LinkCache | None:
    """The run's cache at ``<out>/.cache/links.sqlite``, or None for ``--no-cache``."""
    if not enabled:
        return None
    return LinkCache.for_settings(Path(out_dir) / ".cache" / "links.sqlite", settings)
