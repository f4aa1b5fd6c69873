"""One small SQLite file of results that expire: what the link cache and the integrity cache share.

Each row carries its key, the fingerprint of the settings that produced it and the time it was
checked. Rows are read only while fresh and for the same fingerprint, and every write removes
the expired ones, so the file stays the size of one max-age of checks. A cache is a speed-up,
never a source of truth: the callers turn a database error into "nothing cached".
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from clinicpress.private import private_dir, private_sqlite

CHUNK = 500  # keys per IN (...) query: SQLite's variable limit is 999 on old builds


class SqliteCache:
    """The file at ``path`` with one ``table`` (created by ``schema``), rows kept ``max_age_hours``."""

    def __init__(
        self,
        path: Path | str,
        *,
        schema: str,
        table: str,
        max_age_hours: float = 24.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_age = max_age_hours * 3600.0
        self.clock = clock
        self._schema = schema
        self._table = table
        self._ready = False

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """One transaction on the file (created with its table on first use)."""
        if not self._ready:
            # The tool's own state (``<out>/.cache/``): owner-only, and so are SQLite's -wal and
            # -shm files, which take the database file's mode.
            private_dir(self.path.parent)
            private_sqlite(self.path)
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            if not self._ready:
                conn.execute("PRAGMA journal_mode=WAL")  # readers do not wait for a writing batch
                conn.execute(self._schema)
                self._ready = True
            with conn:  # one transaction
                yield conn
        finally:
            conn.close()

    def fresh_rows(
        self, conn: sqlite3.Connection, columns: str, key_column: str, keys: Sequence[str], fingerprint: str
    ) -> Iterator[tuple[Any, ...]]:
        """``columns`` of the fresh rows for ``keys`` made with ``fingerprint``."""
        oldest = self.clock() - self.max_age
        for start in range(0, len(keys), CHUNK):
            chunk = list(keys[start : start + CHUNK])
            marks = ",".join("?" * len(chunk))
            yield from conn.execute(
                f"SELECT {columns} FROM {self._table} "  # noqa: S608 - our names and "?" marks only
                f"WHERE fingerprint = ? AND checked_at >= ? AND {key_column} IN ({marks})",
                [fingerprint, oldest, *chunk],
            )

    def remove_expired(self, conn: sqlite3.Connection) -> int:
        """Delete the rows past their max age (and those of settings no longer used); how many."""
        cur = conn.execute(
            f"DELETE FROM {self._table} WHERE checked_at < ?",  # noqa: S608 - our table name
            [self.clock() - self.max_age],
        )
        return cur.rowcount
