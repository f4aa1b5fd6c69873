"""Publishing is a swap: build a whole new release, then switch it live in one step.

Layout under ``--out`` (readers and web servers use the stable paths)::

    releases/<id>/{web,handouts,newsletter,reports}/…   one complete tree per publish
    current -> releases/<id>                            swapped atomically (rename of a symlink)
    web -> current/web, handouts -> current/handouts, … stable paths through ``current``

A new release starts as a hard-linked copy of the live one (cheap; articles
not published this time stay as they were), gets this run's files written
into it, and goes live by replacing the ``current`` symlink with
``os.replace``: a reader sees the old release or the new one, never a mix.
A run that dies leaves only a ``releases/.staging-*`` folder, removed by the
next run (safe to run twice). Old releases are kept for instant rollback.

A release is what readers get: its files are 0644 and the folders it makes 0755, whatever the
umask (a web server runs as another user). The lock file is the tool's own: owner-only
(clinicpress/private.py). ``web -> current/web`` is the web root; nothing else under ``--out`` is
ever served.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any, Self

from clinicpress import clock
from clinicpress.errors import PublishError
from clinicpress.faults import fault_point
from clinicpress.private import private_opener, public_dir, public_file, public_opener

CHANNEL_DIRS = ("web", "handouts", "newsletter", "reports")
RELEASES = "releases"
CURRENT = "current"
STAGING_PREFIX = ".staging-"
LOCK_FILE = ".lock"
KEEP_RELEASES = 5


def _new_release_id() -> str:
    return f"{clock.now():%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


class Release:
    """One publish into ``out_dir``: ``with Release(out) as r: r.write(...); r.commit()``.

    Leaving the block without ``commit()`` (an exception, a blocked run)
    removes the staging folder: nothing of it ever becomes visible.
    """

    def __init__(self, out_dir: Path | str, *, keep: int = KEEP_RELEASES, wait: float = 0.0) -> None:
        self.out_dir = Path(out_dir)
        self.keep = keep
        self.wait = wait
        self.release_id = _new_release_id()
        self._releases = self.out_dir / RELEASES
        self._staging = self._releases / f"{STAGING_PREFIX}{self.release_id}"
        self._lock: IO[bytes] | None = None
        self._committed: Path | None = None

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> Self:
        self._lock = _lock(self.out_dir, self.wait)
        # Whatever fails from here on, the lock goes with it: ``with`` calls no __exit__ for an
        # __enter__ that raised, and a served process would keep the lock until it ends.
        try:
            self._check_stable_paths()
            remove_stale_staging(self.out_dir)
            live = self.live_release()
            if live is not None:
                shutil.copytree(live, self._staging, copy_function=os.link, symlinks=True)
            public_dir(self._staging, exact=True)
            for name in CHANNEL_DIRS:
                public_dir(self._staging / name, exact=True)
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, OSError):
                raise PublishError(f"{self.out_dir}: cannot start a new release ({exc})") from exc
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._committed is None:
            shutil.rmtree(self._staging, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None

    # -- writing ---------------------------------------------------------
    def _fresh_target(self, relpath: str) -> Path:
        """Where ``relpath`` goes in staging, with any carried-over file there removed."""
        if self._committed is not None:
            raise PublishError("this release is already live; start a new one")
        target = self._staging / _safe_relpath(relpath)
        public_dir(target.parent)
        # The staging tree shares inodes with the live release (hard links):
        # replace the link, never write through it.
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        return target

    def write(self, relpath: str, data: bytes) -> Path:
        """Write one file of the new release; ``relpath`` is relative to ``--out``."""
        with open(self._fresh_target(relpath), "xb", opener=public_opener) as handle:
            handle.write(data)
        return self.out_dir / relpath

    def link(self, relpath: str, source: Path) -> Path:
        """Put the file ``source`` into the new release as ``relpath``: a hard link, no copy
        (a copy where the two are on different file systems)."""
        target = self._fresh_target(relpath)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        public_file(target)
        fault_point("stage.link")
        return self.out_dir / relpath

    def staged(self, relpath: str) -> Path:
        """Where ``relpath`` of the release being built is (to link a second name to it)."""
        return self._staging / _safe_relpath(relpath)

    def remove(self, relpath: str) -> None:
        """Drop a carried-over file from the new release (the live one keeps it)."""
        with contextlib.suppress(FileNotFoundError):
            (self._staging / _safe_relpath(relpath)).unlink()

    def read(self, relpath: str) -> bytes | None:
        """A file of the release being built (new or carried over), if present."""
        path = self._staging / _safe_relpath(relpath)
        return path.read_bytes() if path.is_file() else None

    def files(self, channel_dir: str, pattern: str) -> list[str]:
        """Relative paths of files in one channel folder of the release being built."""
        base = self._staging / channel_dir
        return sorted(f"{channel_dir}/{p.relative_to(base).as_posix()}" for p in base.glob(pattern))

    # -- going live ------------------------------------------------------
    def commit(self) -> Path:
        """Make the new release live in one atomic step; return its folder."""
        final = self._releases / self.release_id
        # Durable before it is visible: one sync for the whole release, not one fsync per file
        # (5,000 fsyncs cost ~7 s here; a power cut must not leave a live release of empty files).
        os.sync()
        try:
            self._staging.rename(final)
        except OSError as exc:
            raise PublishError(f"{self.out_dir}: could not finish the new release ({exc})") from exc
        fault_point("switch")
        switch_live(self.out_dir, self.release_id)
        fault_point("switched")
        self._committed = final
        for name in CHANNEL_DIRS:
            stable = self.out_dir / name
            if not stable.is_symlink():
                os.symlink(f"{CURRENT}/{name}", stable)
        prune_releases(self.out_dir, keep=self.keep)
        return final

    def live_release(self) -> Path | None:
        return live_release(self.out_dir)

    def _check_stable_paths(self) -> None:
        for name in (*CHANNEL_DIRS, CURRENT):
            path = self.out_dir / name
            if path.exists() and not path.is_symlink():
                raise PublishError(
                    f"{path} exists and is not a clinicpress link; move it away or choose another --out"
                )


def _lock(out_dir: Path, wait: float = 0.0) -> IO[bytes]:
    """The output folder's lock: one publish or rollback at a time (released on close).

    Waits up to ``wait`` seconds for another holder to finish (the kernel frees
    the lock of a killed process, so a dead run never blocks the next).
    """
    try:
        public_dir(out_dir / RELEASES)
        handle = open(out_dir / LOCK_FILE, "wb", opener=private_opener)  # noqa: SIM115 - returned
    except OSError as exc:
        raise PublishError(f"{out_dir}: cannot create the output folder ({exc.strerror})") from exc
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError as exc:
            if time.monotonic() >= deadline:
                handle.close()
                raise PublishError(
                    f"{out_dir}: another publish is running there; try again when it ends"
                ) from exc
            time.sleep(0.1)


def switch_live(out_dir: Path, release_id: str) -> None:
    """Point ``current`` at ``releases/<release_id>`` in one atomic rename."""
    link_tmp = out_dir / f".{CURRENT}.{release_id}"
    try:
        with contextlib.suppress(FileNotFoundError):
            link_tmp.unlink()
        os.symlink(f"{RELEASES}/{release_id}", link_tmp)
        os.replace(link_tmp, out_dir / CURRENT)
    except OSError as exc:
        raise PublishError(f"{out_dir}: could not switch release {release_id} live ({exc})") from exc


def release_ids(out_dir: Path) -> list[str]:
    """Every complete release, oldest first (ids sort by creation time)."""
    folder = out_dir / RELEASES
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def release_versions(out_dir: Path, release_id: str) -> dict[str, str]:
    """Slug → version of the articles in one release (from its reports)."""
    return _versions_in(out_dir / RELEASES / release_id)


def release_texts(out_dir: Path, release_id: str) -> dict[str, str]:
    """Slug → the content hash of each article's text in one release (from its reports): what a
    rollback holds besides the version (outputs/holds.py)."""
    return _report_field(out_dir / RELEASES / release_id, "content_hash")


def version_text(out_dir: Path, slug: str, version: str) -> str | None:
    """The content hash of ``slug``'s text in ``version``, from the newest kept release whose report
    lists that version (None: no kept release has it, or its report predates content hashes)."""
    for release_id in reversed(release_ids(out_dir)):
        report = _read_report(out_dir / RELEASES / release_id / "reports" / f"{slug}.json") or {}
        if report.get("version") == version:
            text = report.get("content_hash")
            return text if isinstance(text, str) else None
    return None


def rollback_site(out_dir: Path) -> tuple[str, str]:
    """Make the release before the live one live again; returns (from, to)."""
    lock = _lock(out_dir)
    try:
        live = live_release(out_dir)
        ids = release_ids(out_dir)
        if live is None or live.name not in ids:
            raise PublishError(f"{out_dir}: nothing is published there, so there is nothing to roll back")
        index = ids.index(live.name)
        if index == 0:
            raise PublishError(f"{out_dir}: {live.name} is the oldest release kept; there is none before it")
        switch_live(out_dir, ids[index - 1])
        return live.name, ids[index - 1]
    finally:
        lock.close()


def _safe_relpath(relpath: str) -> Path:
    """Refuse anything that could land outside the release (``..``, absolute, unknown folder)."""
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or pure.parts[0] not in CHANNEL_DIRS:
        raise PublishError(f"refusing to write {relpath!r}: outside the channel folders {CHANNEL_DIRS}")
    return Path(*pure.parts)


def live_release(out_dir: Path) -> Path | None:
    """The folder ``current`` points at, if anything was ever published."""
    current = out_dir / CURRENT
    return current.resolve() if current.is_symlink() and current.resolve().is_dir() else None


def live_versions(out_dir: Path) -> dict[str, str]:
    """Slug → version of every article live now (from its report in the live release)."""
    live = live_release(out_dir)
    return {} if live is None else _versions_in(live)


def live_report(out_dir: Path, slug: str) -> dict[str, Any] | None:
    """The report of ``slug`` in the live release (what went live, when, in which files)."""
    live = live_release(out_dir)
    return _read_report(live / "reports" / f"{slug}.json") if live is not None else None


def live_reports(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Slug → report of every article live now (an unreadable report is left out)."""
    live = live_release(out_dir)
    found: dict[str, dict[str, Any]] = {}
    for report in (live / "reports").glob("*.json") if live is not None else []:
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            found[report.stem] = data
    return found


def versions_in(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Slug → version, from reports as :func:`live_reports` reads them (one read for both)."""
    return {
        slug: version for slug, report in reports.items() if isinstance(version := report.get("version"), str)
    }


def _versions_in(release: Path) -> dict[str, str]:
    return _report_field(release, "version")


def _report_field(release: Path, field: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for report in (release / "reports").glob("*.json"):
        value = _report_field_of(report, field)
        if value is not None:
            found[report.stem] = value
    return found


def _report_field_of(report: Path, field: str) -> str | None:
    value = (_read_report(report) or {}).get(field)
    return value if isinstance(value, str) else None


def _read_report(report: Path) -> dict[str, Any] | None:
    """A published report as JSON; None when missing or unreadable (treated as not live, so its
    article is published again)."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_stale_staging(out_dir: Path) -> None:
    """Remove half-built releases left by a run that died (call with the lock held)."""
    for stale in (out_dir / RELEASES).glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale_link in out_dir.glob(f".{CURRENT}.*"):
        with contextlib.suppress(FileNotFoundError):
            stale_link.unlink()


def prune_releases(out_dir: Path, keep: int) -> None:
    """Keep the newest ``keep`` releases (and always the live one)."""
    live = live_release(out_dir)
    releases = sorted(
        (p for p in (out_dir / RELEASES).iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    for old in releases[:-keep] if keep else releases:
        if live is None or old.resolve() != live:
            shutil.rmtree(old, ignore_errors=True)
