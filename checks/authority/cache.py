"""Answers of the state's license list and the NPI registry, kept for ``cache_max_age_hours``.

``<out>/.cache/authority.sqlite``: a sibling of the link cache's ``links.sqlite`` (its own file,
so neither schema nor lock is shared), one table per registry (each has its own max age, and a
write clears only its own table's expired rows). Only answers are kept (listed or not listed, found or
not found, deactivated): a lookup that got no answer is always asked again. Entries are per key
(``dhcs:<PROGRAM ID>``, ``npi:<NPI>``) and per fingerprint of the endpoint they came from, so an
answer from a stand-in is never reused for the real service. An answer keeps the time it was
read, so a cached verdict still says on which day the authority said it. ``monitor`` passes no
cache: it always reads the authority again. A cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from clinicpress.checks.sqlite_cache import SqliteCache

__all__ = ["AuthorityCache", "AuthorityName", "authority_cache_beside", "fingerprint"]

AuthorityName = Literal["dhcs", "npi"]
_TABLES: dict[str, str] = {"dhcs": "license_answers", "npi": "reviewer_answers"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    answer TEXT NOT NULL,
    checked_at REAL NOT NULL,
    PRIMARY KEY (key, fingerprint)
)
"""
_FORMAT = "1"  # bump when an answer model changes shape: older rows are then not read


def fingerprint(registry: AuthorityName, url: str) -> str:
    """Which endpoint (and answer format) a row came from."""
    return hashlib.sha256("\n".join([_FORMAT, registry, url]).encode()).hexdigest()[:16]


class AuthorityCache(SqliteCache):
    """One registry's answers (as JSON text) by key, kept ``max_age_hours`` in the SQLite file ``path``."""

    def __init__(
        self,
        path: Path | str,
        registry: AuthorityName,
        *,
        max_age_hours: float = 24.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        table = _TABLES[registry]
        super().__init__(
            path, schema=_SCHEMA.format(table=table), table=table, max_age_hours=max_age_hours, clock=clock
        )
        self.registry = registry
        self.table = table

    def get_many(self, keys: Sequence[str], mark: str) -> dict[str, str]:
        """The fresh answers for ``keys`` made at the endpoint ``mark`` (see :func:`fingerprint`)."""
        if not keys or self.max_age <= 0:
            return {}
        try:
            with self.connect() as conn:
                return dict(self.fresh_rows(conn, "key, answer", "key", keys, mark))
        except (sqlite3.Error, OSError):
            return {}

    def put_many(self, answers: Mapping[str, str], mark: str) -> int:
        """Keep ``answers`` (key → JSON text); the caller passes only real answers."""
        if not answers or self.max_age <= 0:
            return 0
        now = self.clock()
        rows = [(key, mark, text, now) for key, text in answers.items()]
        try:
            with self.connect() as conn:
                conn.executemany(
                    f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?, ?)",  # noqa: S608 - our table name
                    rows,
                )
                self.remove_expired(conn)
        except (sqlite3.Error, OSError):
            return 0
        return len(rows)


def authority_cache_beside(
    link_cache_path: Path | None, registry: AuthorityName, max_age_hours: float
) -> AuthorityCache | None:
    """``registry``'s cache next to the link cache's file; none when the link cache is off (--no-cache)."""
    if link_cache_path is None:
        return None
    return AuthorityCache(
        link_cache_path.with_name("authority.sqlite"), registry, max_age_hours=max_age_hours
    )
