"""Reading responses for the link checker: as much body as a verdict needs, with a bound.

A 2xx HTML page is read up to ``MAX_BODY_BYTES`` when soft-404 titles or ``#fragment`` ids
are checked; the start of a 401/403/429/503/999 page (``WALL_BODY_BYTES``) for bot-wall
markers; anything else is drained for connection reuse only. gzip/deflate are decompressed
by :func:`~clinicpress.checks.linkcheck_html.decode_content` with the same bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Literal

import httpx

from clinicpress.checks.linkcheck_html import bot_wall_marker, decode_content, is_html
from clinicpress.checks.links.classify import WALL_CODES
from clinicpress.settings.links import HostPolicy

__all__ = ["LOCATION", "MAX_BODY_BYTES", "WALL_BODY_BYTES", "Body", "read_body", "stash_location"]

MAX_BODY_BYTES = 1024 * 1024  # read at most this much of any body
WALL_BODY_BYTES = 64 * 1024  # enough of an error page to find bot-wall markers
LOCATION = "clinicpress.location"  # response extension: the Location header, moved aside


@dataclass(frozen=True)
class Body:
    kind: Literal["page", "wall"]
    data: bytes
    content_type: str | None
    complete: bool


async def read_body(
    response: httpx.Response, method: str, policy: HostPolicy, anchors: bool, timeout: float
) -> Body | None:
    """Read what classification needs: an HTML page, or the start of an error page."""
    if method != "GET":
        return None
    code = response.status_code
    content_type = response.headers.get("content-type")
    encoding = response.headers.get("content-encoding")
    if 200 <= code < 300 and (policy.soft_404 or anchors) and is_html(content_type):
        raw, complete = await _read_raw(response, MAX_BODY_BYTES, timeout)
        data = decode_content(raw, encoding, MAX_BODY_BYTES)
        return None if data is None else Body("page", data, content_type, complete)
    if code in WALL_CODES:
        if bot_wall_marker(response.headers, None):
            return Body("wall", b"", content_type, True)
        raw, complete = await _read_raw(response, WALL_BODY_BYTES, timeout)
        data = decode_content(raw, encoding, WALL_BODY_BYTES)
        return Body("wall", data or b"", content_type, complete)
    await _read_raw(response, MAX_BODY_BYTES, timeout)  # drained for connection reuse only
    return None


async def _read_raw(response: httpx.Response, limit: int, timeout: float) -> tuple[bytes, bool]:
    # Raw bytes: decompression is ours, with a bound (decode_content). Errors here do not
    # change the status; an incomplete body is marked so nothing is concluded from its absence.
    chunks: list[bytes] = []
    read = 0
    complete = False
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(timeout):
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
                read += len(chunk)
                if read >= limit:
                    break
            else:
                complete = True
    return b"".join(chunks), complete


async def stash_location(response: httpx.Response) -> None:
    """Move Location out of httpx's way: we follow redirects by hand.

    Even with follow_redirects=False, httpx builds the next request from Location and raises
    on one it cannot parse (``javascript:…``, ``http://0177.0.0.1/``), losing the response.
    """
    location = response.headers.get("location")
    if location is not None:
        del response.headers["location"]
        response.extensions[LOCATION] = location
