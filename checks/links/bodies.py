"""How much of a response the link checker reads: as much body as a verdict needs, with a bound.

A 2xx HTML page is read up to ``MAX_BODY_BYTES`` when soft-404 titles or ``#fragment`` ids
are checked; the start of a 401/403/429/503/999 page (``WALL_BODY_BYTES``) for bot-wall
markers, unless its headers already name the wall; anything else is drained for connection
reuse only. The network layer (:mod:`clinicpress.network.fetch`) reads by this plan and
decompresses gzip/deflate with the same bound.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from clinicpress.checks.linkcheck_html import bot_wall_marker, is_html
from clinicpress.checks.links.classify import WALL_CODES
from clinicpress.network import Read
from clinicpress.settings.links import HostPolicy

__all__ = ["MAX_BODY_BYTES", "WALL_BODY_BYTES", "Plan", "plan", "wants_page"]

MAX_BODY_BYTES = 1024 * 1024  # read at most this much of any body
WALL_BODY_BYTES = 64 * 1024  # enough of an error page to find bot-wall markers

Plan = Callable[[int, httpx.Headers], Read | None]
_PAGE = Read(MAX_BODY_BYTES)
_WALL = Read(WALL_BODY_BYTES)
_DRAIN = Read(MAX_BODY_BYTES, keep=False)


def wants_page(method: str, code: int, headers: httpx.Headers, policy: HostPolicy, anchors: bool) -> bool:
    """A page whose title (soft-404) or ids (``#fragment``) the verdict reads."""
    return (
        method == "GET"
        and 200 <= code < 300
        and (policy.soft_404 or anchors)
        and is_html(headers.get("content-type"))
    )


def plan(method: str, policy: HostPolicy, anchors: bool) -> Plan:
    """The read plan of one request: a page, the start of a wall, or a drain (HEAD: nothing)."""

    def read(code: int, headers: httpx.Headers) -> Read | None:
        if method != "GET":
            return None
        if wants_page(method, code, headers, policy, anchors):
            return _PAGE
        if code in WALL_CODES:
            return None if bot_wall_marker(headers, None) else _WALL
        return _DRAIN

    return read
