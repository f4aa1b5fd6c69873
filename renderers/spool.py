"""Where render workers leave a catalog's artifacts until the release takes them.

A folder ``<out>/.spool-<token>`` per publish run: workers write each
artifact there and send back only its path (``SpooledArtifact``); staging then
hard-links the files into the new release. The run holds an ``flock`` on the
folder's ``.lock`` while it lives, so the next run removes the spool of a run
that died (the kernel drops a dead process's locks), never a live one's.
"""

from __future__ import annotations

import contextlib
import fcntl
import secrets
import shutil
from pathlib import Path, PurePosixPath
from typing import IO

from clinicpress.errors import PublishError

from .base import Artifact, SpooledArtifact

SPOOL_PREFIX = ".spool-"
_LOCK = ".lock"


def remove_dead_spools(out_dir: Path) -> None:
    """Remove the spools of runs that are gone (their lock is free)."""
    for folder in out_dir.glob(f"{SPOOL_PREFIX}*"):
        try:
            with (folder / _LOCK).open("ab") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live run's
        except OSError:
            pass  # no lock file: a run killed while creating it
        shutil.rmtree(folder, ignore_errors=True)


class Spool:
    """``with Spool(out) as spool: ...``: a fresh spool folder, removed on exit."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / f"{SPOOL_PREFIX}{secrets.token_hex(6)}"
        self._lock: IO[bytes] | None = None

    def __enter__(self) -> Spool:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            remove_dead_spools(self.out_dir)
            self.path.mkdir()
            self._lock = (self.path / _LOCK).open("wb")
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            reason = exc.strerror or exc
            raise PublishError(f"{self.path}: cannot create the render spool ({reason})") from None
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def spool_artifacts(folder: Path, artifacts: list[Artifact]) -> list[SpooledArtifact]:
    """Write ``artifacts`` under ``folder`` (by their relpath) and return them as spooled."""
    spooled: list[SpooledArtifact] = []
    for artifact in artifacts:
        parts = PurePosixPath(artifact.relpath).parts
        if not parts or artifact.relpath.startswith("/") or ".." in parts:
            raise PublishError(f"refusing to spool {artifact.relpath!r}: not a relative path")
        path = folder.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a job sent again after its worker died
        path.write_bytes(artifact.data)
        spooled.append(SpooledArtifact(artifact.channel, artifact.relpath, path, artifact.media_type))
    return spooled
