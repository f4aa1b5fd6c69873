"""Who may read what the tool writes: its own state owner-only, the web root readable by all.

The registry (subscriber addresses, reviewers' names and comments, send states), the caches,
the locks, the render spool and the review drafts are the tool's own: files 0600, folders 0700,
as ssh and git keep credentials. A team that shares the output folder marks it the usual way
for a shared group folder, with the setgid bit (``chgrp TEAM published && chmod g+s published``):
what the tool makes in a setgid folder is for the group instead (files 0660, folders 2770). No
setting: the folder says it.

What is published (the releases behind ``<out>/web``) is the opposite: files 0644, folders 0755
(2775 in a team folder, so a teammate's publish can add and prune releases), so a web server
running as another user can read it.

Modes are set exactly (``fchmod``/``chmod``), whatever the process umask; a file or folder that
already exists is brought to its mode too (a registry made by an older clinicpress, or under a
loose umask), unless another user owns it: that one is theirs to set.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
SHARED_FILE, SHARED_DIR = 0o660, 0o2770  # in a setgid (team) folder
PUBLIC_FILE, PUBLIC_DIR = 0o644, 0o755
SHARED_PUBLIC_DIR = 0o2775  # a published folder in a team folder

# What SQLite writes beside a database file (it gives them the database file's mode).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "PUBLIC_DIR",
    "PUBLIC_FILE",
    "SHARED_DIR",
    "SHARED_FILE",
    "SHARED_PUBLIC_DIR",
    "private_dir",
    "private_file",
    "private_opener",
    "private_sqlite",
    "private_tree",
    "public_dir",
    "public_file",
    "public_opener",
    "team_shared",
]


def team_shared(folder: Path | str) -> bool:
    """Whether ``folder`` is a team's shared folder (its setgid bit is set)."""
    try:
        return bool(os.stat(folder).st_mode & stat.S_ISGID)
    except OSError:
        return False


def _file_mode(path: Path | str) -> int:
    return SHARED_FILE if team_shared(os.path.dirname(os.path.abspath(path))) else PRIVATE_FILE


def _dir_mode(path: Path | str) -> int:
    return SHARED_DIR if team_shared(os.path.dirname(os.path.abspath(path))) else PRIVATE_DIR


def _public_dir_mode(path: Path | str) -> int:
    return SHARED_PUBLIC_DIR if team_shared(os.path.dirname(os.path.abspath(path))) else PUBLIC_DIR


def _set_mode(path: Path | str, mode: int) -> None:
    """``chmod`` unless another user owns it, or it is a symlink (chmod would change what it points
    at), or it is gone (nothing to protect)."""
    with contextlib.suppress(FileNotFoundError):
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
            return
        if stat.S_IMODE(info.st_mode) != mode:
            os.chmod(path, mode)


def public_dir(path: Path | str, *, exact: bool = False) -> Path:
    """``path`` and its missing parents, each folder made here 0755 (2775 in a team folder); one
    that exists is left as it is, unless ``exact`` (then ``path`` itself is set)."""
    folder = Path(path)
    if not exact and os.path.isdir(folder):
        return folder  # the common case, once per file a release writes: one stat
    missing: list[Path] = []
    for ancestor in (folder, *folder.parents):  # up to the first that exists
        if ancestor.exists():
            break
        missing.append(ancestor)
    for made in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another run
            made.mkdir()
            os.chmod(made, _public_dir_mode(made))
    if exact and folder not in missing:
        _set_mode(folder, _public_dir_mode(folder))
    return folder


def public_file(path: Path | str) -> None:
    """A published file readable by everyone (0644)."""
    _set_mode(path, PUBLIC_FILE)


def private_dir(path: Path | str, *, exist_ok: bool = True) -> Path:
    """The folder ``path``, owner-only (group-only in a team folder); missing parents are made 0755."""
    folder = Path(path)
    public_dir(folder.parent)
    try:
        # Created with no access for others from the first moment; chmod gives the exact mode.
        folder.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        if not exist_ok:
            raise
    _set_mode(folder, _dir_mode(folder))
    return folder


def private_file(path: Path | str) -> Path:
    """The file ``path``, made empty if missing, owner-only (group-only in a team folder)."""
    file = Path(path)
    public_dir(file.parent)
    os.close(private_opener(str(file), os.O_WRONLY | os.O_CREAT))
    return file


def private_sqlite(path: Path | str) -> Path:
    """A SQLite database file made (empty: SQLite takes it as a new database) owner-only before
    SQLite opens it: SQLite then creates its -wal, -shm and -journal files with the same mode.
    Side files left by an earlier run are brought to the mode too."""
    if str(path) in ("", ":memory:"):
        return Path(path)  # no file: nothing to protect
    database = private_file(path)
    mode = _file_mode(database)
    for suffix in SQLITE_SIDE_FILES:
        _set_mode(f"{database}{suffix}", mode)
    return database


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open`: a file only its owner (or the team) can read or write."""
    mode = _file_mode(path)
    fd = os.open(path, flags, mode)
    _fix_fd_mode(fd, mode)
    return fd


def public_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open`: a published file, 0644 whatever the umask."""
    fd = os.open(path, flags, PUBLIC_FILE)
    _fix_fd_mode(fd, PUBLIC_FILE)
    return fd


def _fix_fd_mode(fd: int, mode: int) -> None:
    info = os.fstat(fd)
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != mode:
        try:
            os.fchmod(fd, mode)
        except OSError:
            os.close(fd)
            raise


def private_tree(path: Path | str) -> None:
    """Every folder and file under ``path`` (itself included) owner-only (group-only in a team folder)."""
    root = Path(path)
    dirs: Iterable[Path] = [root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]
    for folder in dirs:
        _set_mode(folder, _dir_mode(folder))
        for child in folder.iterdir():
            if child.is_file() and not child.is_symlink():
                _set_mode(child, _file_mode(child))
