"""Answers of Crossref and PubMed kept for ``cache_max_age_hours`` (SQLite, beside the link cache).

``<out>/.cache/integrity.sqlite``: a sibling of the link cache's ``links.sqlite`` (its own file,
so neither schema nor lock is shared). Only answers are kept: a record the registry gave,
retracted or clean. A failure (404, 5xx, network) is always asked again. Entries are per
identifier key and per API fingerprint: a record from a stand-in is never reused for the real
service. Every call opens its own short connection (threads, pickling); a cache that cannot be
read or written is ignored, never fatal.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError

from clinicpress.checks.integrity.record import Record
from clinicpress.checks.sqlite_cache import SqliteCache
from clinicpress.settings.integrity import IntegritySettings

__all__ = ["IntegrityCache", "open_integrity_cache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS integrity_records (
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    record TEXT NOT NULL,
    checked_at REAL NOT NULL,
    PRIMARY KEY (key, fingerprint)
)
"""
_FORMAT = "1"  # bump when Record changes shape: older rows are then not read


def fingerprint(settings: IntegritySettings) -> str:
    text = "\n".join([_FORMAT, settings.crossref_api, settings.pubmed_api])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class IntegrityCache(SqliteCache):
    """Records that were answered, kept for ``max_age_hours`` in the SQLite file ``path``."""

    def __init__(
        self, path: Path | str, *, max_age_hours: float = 24.0, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(
            path, schema=_SCHEMA, table="integrity_records", max_age_hours=max_age_hours, clock=clock
        )

    def get_many(self, keys: Sequence[str], settings: IntegritySettings) -> dict[str, Record]:
        if not keys or self.max_age <= 0:
            return {}
        found: dict[str, Record] = {}
        try:
            with self.connect() as conn:
                for key, text in self.fresh_rows(conn, "key, record", "key", keys, fingerprint(settings)):
                    with contextlib.suppress(ValidationError, ValueError):
                        record = Record.model_validate_json(text)
                        if record.answered:
                            found[key] = record
        except (sqlite3.Error, OSError):
            return {}
        return found

    def put_many(self, records: Iterable[Record], settings: IntegritySettings) -> int:
        mark = fingerprint(settings)
        now = self.clock()
        keep = [(r.key, mark, r.model_dump_json(), now) for r in records if r.answered]
        if not keep:
            return 0
        try:
            with self.connect() as conn:
                conn.executemany("INSERT OR REPLACE INTO integrity_records VALUES (?, ?, ?, ?)", keep)
                self.remove_expired(conn)  # never read again: every write clears them
        except (sqlite3.Error, OSError):
            return 0
        return len(keep)


def open_integrity_cache(
    out_dir: Path | str, settings: IntegritySettings, *, enabled: bool = True
) -> IntegrityCache | None:
    """The run's cache at ``<out>/.cache/integrity.sqlite``, or None for ``--no-cache``."""
    if not enabled:
        return None
    return IntegrityCache(
        Path(out_dir) / ".cache" / "integrity.sqlite", max_age_hours=settings.cache_max_age_hours
    )
