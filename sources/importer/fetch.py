"""Reading the page: a local HTML file, or an http(s) URL fetched through the one fetch.

A URL is fetched by :func:`clinicpress.network.fetch` under the link checker's rules
(``[checks.links]``): http(s) only, every hop's host vetted (literal and resolved private,
loopback and link-local addresses refused unless allowed in ``allow_private_hosts`` /
``allow_private_networks``), the connection pinned to the vetted address (no second DNS
answer), timeouts, and a size cap on the page as sent and decompressed. What goes wrong is an
:class:`InputError` naming the URL (exit 2).
"""

from __future__ import annotations

import re
from pathlib import Path

from clinicpress.errors import InputError
from clinicpress.network import (
    FetchError,
    NotResolved,
    Policy,
    RedirectFailed,
    Refused,
    TooLarge,
    fetch,
)
from clinicpress.settings.links import LinkCheckSettings

MAX_PAGE_BYTES = 5 * 1024 * 1024  # a blog page is far smaller; anything bigger is not one
_HTML = ("text/html", "application/xhtml+xml")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(source: str) -> bool:
    """``source`` names a URL (any scheme: the fetch refuses what it may not fetch), not a file."""
    return _URL.match(source) is not None


def fetch_page(url: str, settings: LinkCheckSettings) -> tuple[bytes, str, str | None]:
    """GET ``url`` under the link checker's rules; returns (body, final URL, charset)."""
    try:
        got = fetch(url, policy=Policy.of(settings), accept=", ".join(_HTML), max_bytes=MAX_PAGE_BYTES)
    except TooLarge as exc:
        raise InputError(url, None, f"is larger than {MAX_PAGE_BYTES:,} bytes", "a blog page") from exc
    except Refused as exc:
        raise InputError(url, None, exc.reason, "a public http(s) address (or allow_private_hosts)") from exc
    except NotResolved as exc:
        raise InputError(url, None, f"cannot be resolved ({exc.reason})") from exc
    except RedirectFailed as exc:
        raise InputError(url, None, exc.reason, "a page that loads") from exc
    except FetchError as exc:
        raise InputError(url, None, f"could not be fetched ({exc.reason})") from exc
    if got.status != 200:
        raise InputError(url, None, f"the server answered HTTP {got.status}", "200")
    if got.content_type and got.content_type not in _HTML:
        raise InputError(url, None, f"is {got.content_type}", "an HTML page (text/html)")
    return got.body, got.url, got.charset


def read_file(path: Path) -> bytes:
    """A saved page's bytes, under the same size cap as a fetch."""
    try:
        size = path.stat().st_size
        if size > MAX_PAGE_BYTES:
            raise InputError(path, None, f"is {size:,} bytes", f"an HTML page of at most {MAX_PAGE_BYTES:,}")
        if path.is_dir():
            raise InputError(path, None, "is a folder", "an HTML file or an http(s) URL")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(path, None, "file not found", "an HTML file or an http(s) URL") from exc
    except OSError as exc:
        raise InputError(path, None, f"cannot read ({exc.strerror})") from exc
