"""How a send's records reach the disk (issue 28, part 5): SQLite's write-ahead log, every commit synced.

A send commits two or three times per recipient, and each commit must survive a killed process
and a power cut before the send goes on (the claim before any SMTP command, ``data_started``
before the first byte of data: tests/outputs/test_delivery.py's SIGKILL matrix). WAL mode makes
each commit one sync instead of several; ``synchronous=FULL`` keeps it a sync (``NORMAL`` would
be faster and lose the last commits on a power cut: a recipient sent twice).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from clinicpress.outputs.delivery.store import DeliveryStore
from clinicpress.outputs.registry import Registry

FULL = 2  # PRAGMA synchronous


def test_the_delivery_records_are_in_wal_mode_with_every_commit_synced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    with DeliveryStore(url) as store, store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == FULL
    # The mode stays with the file: the registry's own connections write through the log too.
    with Registry(url) as registry, registry.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
