"""The preview's link cache: reads ``<out>/.cache/links.sqlite`` and never writes under ``--out``.

``preview`` writes nothing to ``--out``. Fresh successes found there are reused; what the
preview checks itself goes to a cache of its own in a temporary folder (the integrity cache
sits beside it, see ``integrity_cache_beside``), removed when the preview stops.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from clinicpress.checks.cache import LinkCache
from clinicpress.checks.model import LinkResult
from clinicpress.settings.links import LinkCheckSettings


class _ReadOnlyLinkCache(LinkCache):
    """A link cache file read without writing a byte: no folder, no schema, no -wal/-shm files."""

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # immutable=1: even a read-only connection to a WAL database creates -wal and -shm files.
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            yield conn
        finally:
            conn.close()

    def get_many(self, urls: Sequence[str], settings: LinkCheckSettings) -> dict[str, LinkResult]:
        if not self.path.is_file():
            return {}
        return super().get_many(urls, settings)

    def put_many(self, results: Iterable[LinkResult], settings: LinkCheckSettings) -> int:
        return 0


class PreviewLinkCache(LinkCache):
    """The session's own cache (``folder``), falling back to ``--out``'s, read only."""

    def __init__(self, folder: Path, out_dir: Path, settings: LinkCheckSettings) -> None:
        super().__init__(folder / "links.sqlite", max_age_hours=settings.cache_max_age_hours)
        self._published = _ReadOnlyLinkCache(
            out_dir / ".cache" / "links.sqlite", max_age_hours=settings.cache_max_age_hours
        )

    def get_many(self, urls: Sequence[str], settings: LinkCheckSettings) -> dict[str, LinkResult]:
        found = super().get_many(urls, settings)
        rest = [url for url in urls if url not in found]
        return {**found, **self._published.get_many(rest, settings)} if rest else found
