"""Secrets in the site config: where each may come from, and how a problem is told without it.

- The SMTP password comes from the environment (``CLINICPRESS_NEWSLETTER__SMTP__PASSWORD``) or from
  the file ``[newsletter.smtp] password_file`` names, which only its owner may read: libpq's rule for
  ``~/.pgpass`` and ssh's for a private key. Group-readable is refused too: a team shares the output
  folder, not the login of the clinic's mail account (each machine or service account keeps its own
  copy). Never a key in site.toml, which is copied, shared and committed with the content.
- Every ``[alerts] urls`` entry is a URL apprise can use, checked at load. An entry carries tokens:
  a problem names it by its index (``alerts.urls[2]``), never by its text.

Both are checked when site.toml is loaded (``clinicpress.site.load_site``): exit 2, one line.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from clinicpress.errors import SiteConfigError

__all__ = [
    "PASSWORD_ENV",
    "PASSWORD_KEY",
    "alert_url_problem",
    "has_password_key",
    "read_secret_file",
    "secret_error",
]

# Names of where a password goes, not passwords.
PASSWORD_ENV = "CLINICPRESS_NEWSLETTER__SMTP__PASSWORD"  # noqa: S105
PASSWORD_KEY = "newsletter.smtp.password"  # noqa: S105
MAX_SECRET_BYTES = 4096
ONE_LINE = "the secret alone, on one line (UTF-8 text)"
# Where a validation error's input is a secret: the message names the place, never the value.
_SECRET_LOCATIONS: tuple[tuple[str, ...], ...] = (
    ("alerts", "urls"),
    ("newsletter", "smtp", "password"),
    ("newsletter", "unsubscribe_secret"),
    ("newsletter", "dkim", "private_key"),
)


def has_password_key(data: Mapping[str, Any]) -> bool:
    """Does the TOML itself hold ``[newsletter.smtp] password``? (Asked before the environment merges in.)"""
    newsletter = data.get("newsletter")
    smtp = newsletter.get("smtp") if isinstance(newsletter, Mapping) else None
    return isinstance(smtp, Mapping) and "password" in smtp


def _who_else(mode: int) -> str:
    group, others = bool(mode & stat.S_IRWXG), bool(mode & stat.S_IRWXO)
    return "its group and everyone" if group and others else "its group" if group else "everyone"


def read_owner_only(path: Path, *, config: Path, field: str, what: str, limit: int) -> tuple[Path, bytes]:
    """The file at ``path`` (relative to the config's folder) and at most ``limit`` + 1 of its bytes,
    refused, naming the file and its mode, when anyone but its owner may read or write it.

    The mode is read from the file as opened (no gap between the check and the read); opened without
    blocking, so a FIFO in its place cannot hang the load. ``what`` says what the file should be.
    """
    where = path if path.is_absolute() else config.parent / path
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    expected = f"{what} only its owner can read (chmod 600 {where})"
    try:
        fd = os.open(where, flags)
    except FileNotFoundError as exc:
        raise SiteConfigError(config, field, f"{where}: no such file", expected) from exc
    except OSError as exc:
        raise SiteConfigError(config, field, f"cannot read {where} ({exc.strerror})", expected) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SiteConfigError(config, field, f"{where} is not a regular file", expected)
        mode = stat.S_IMODE(info.st_mode)
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SiteConfigError(
                config, field, f"{where} is open to {_who_else(mode)} (mode {mode:04o})", expected
            )
        return where, _read_at_most(fd, limit + 1)
    finally:
        os.close(fd)


def read_secret_file(path: Path, *, config: Path, field: str) -> str:
    """The secret in ``path`` (relative to the config's folder): one line, the line end dropped;
    owner-only (:func:`read_owner_only`). The secret never appears in a message."""
    where, raw = read_owner_only(path, config=config, field=field, what="a file", limit=MAX_SECRET_BYTES)
    if len(raw) > MAX_SECRET_BYTES:
        raise SiteConfigError(config, field, f"{where} is larger than {MAX_SECRET_BYTES} bytes", ONE_LINE)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SiteConfigError(config, field, f"{where} is not UTF-8 text", ONE_LINE) from exc
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise SiteConfigError(config, field, f"{where} is empty", ONE_LINE)
    if len(secret.splitlines()) > 1:
        raise SiteConfigError(config, field, f"{where} holds more than one line", ONE_LINE)
    return secret


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := os.read(fd, limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class _FromThisThread(logging.Filter):
    """Drops the records this thread logs (another thread's go through)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextmanager
def _apprise_quiet() -> Iterator[None]:
    # apprise logs a URL it cannot parse in clear ("Unparseable URL …"); with no handler configured
    # Python's last-resort handler prints that to stderr. The check says what is wrong instead.
    logger = logging.getLogger("apprise")
    hush = _FromThisThread()
    logger.addFilter(hush)
    try:
        yield
    finally:
        logger.removeFilter(hush)


def alert_url_problem(url: str) -> str | None:
    """Why apprise cannot use ``url`` (None when it can); the text never includes the URL."""
    import apprise  # ~0.1 s, and ~0.2 s for its plugins on the first URL: only when alerts are configured

    with _apprise_quiet():
        destination = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if destination is None:
        return "apprise cannot use this URL (an unknown service, or a part it needs is missing or malformed)"
    return None


def _field(loc: Sequence[int | str]) -> str:
    """``alerts.urls[2]``: list indexes in brackets, as a reader counts entries in the TOML."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def secret_error(exc: ValidationError, config: Path) -> SiteConfigError | None:
    """The error to show when the first problem is at a secret's place (None otherwise): the place and
    what was expected, never the value (``input_error_from`` would quote it)."""
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    if not any(loc[: len(place)] == place for place in _SECRET_LOCATIONS):
        return None
    if first["type"] == "value_error":
        problem = str(first["ctx"]["error"]) if "ctx" in first else "not usable"
    else:
        problem = first["msg"][:1].lower() + first["msg"][1:]  # pydantic's words never quote the input
    if len(errors) > 1:
        more = len(errors) - 1
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    expected = "a URL apprise can use, e.g. json://… or tgram://…" if loc[0] == "alerts" else None
    return SiteConfigError(config, _field(loc), problem, expected)
