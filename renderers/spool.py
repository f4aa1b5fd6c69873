"""Where render workers leave a catalog's artifacts until the release takes them.

A folder ``<out>/.spool-<token>`` per publish run: workers write each
artifact there and send back only its path (``SpooledArtifact``); staging then
hard-links the files into the new release. The run holds an ``flock`` on
``<out>/.spool-<token>.lock`` while it lives, so the next run removes the
spool of a run that died (the kernel drops a dead process's locks), never a
live one's.

The folder and its lock are the tool's own (owner-only: unpublished renders wait there); the
files in it are made 0644, as they are once linked into the release (clinicpress/private.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import secrets
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import IO

from clinicpress.errors import PublishError
from clinicpress.private import private_dir, private_opener, public_dir, public_opener

from .base import Artifact, SpooledArtifact

SPOOL_PREFIX = ".spool-"
_LOCK_SUFFIX = ".lock"  # <out>/.spool-<token>.lock beside the folder <out>/.spool-<token>
_UNBORN = ".new"  # a lock file not yet renamed into place
_UNBORN_MAX_AGE = 60.0  # seconds: a lock file is renamed microseconds after it is made


def remove_dead_spools(out_dir: Path) -> None:
    """Remove the spools of runs that are gone (their lock is free)."""
    for lock_path in out_dir.glob(f"{SPOOL_PREFIX}*{_LOCK_SUFFIX}"):
        try:
            with lock_path.open("ab") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Under its lock: the folder first, so a lock file never outlives a folder it names.
                shutil.rmtree(out_dir / lock_path.name.removesuffix(_LOCK_SUFFIX), ignore_errors=True)
                lock_path.unlink(missing_ok=True)
        except BlockingIOError:
            continue  # a live run's
        except OSError:
            continue  # removed meanwhile by another run
    for unborn in out_dir.glob(f"{SPOOL_PREFIX}*{_LOCK_SUFFIX}{_UNBORN}"):
        with contextlib.suppress(OSError):
            if time.time() - unborn.stat().st_mtime > _UNBORN_MAX_AGE:
                unborn.unlink()


class Spool:
    """``with Spool(out) as spool: ...``: a fresh spool folder, removed on exit."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / f"{SPOOL_PREFIX}{secrets.token_hex(6)}"
        self._lock_path = self.path.with_name(self.path.name + _LOCK_SUFFIX)
        self._lock: IO[bytes] | None = None

    def __enter__(self) -> Spool:
        try:
            public_dir(self.out_dir)
            remove_dead_spools(self.out_dir)
            # The lock file is locked before it is visible under its name (an atomic rename),
            # and the folder is made after: another run never sees this spool unlocked.
            unborn = self._lock_path.with_name(self._lock_path.name + _UNBORN)
            self._lock = open(unborn, "wb", opener=private_opener)
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            unborn.rename(self._lock_path)
            private_dir(self.path, exist_ok=False)
        except OSError as exc:
            self.__exit__()
            reason = exc.strerror or exc
            raise PublishError(f"{self.path}: cannot create the render spool ({reason})") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            self._lock_path.unlink(missing_ok=True)
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
        with open(path, "wb", opener=public_opener) as handle:  # hard-linked into the release as it is
            handle.write(artifact.data)
        spooled.append(SpooledArtifact(artifact.channel, artifact.relpath, path, artifact.media_type))
    return spooled
