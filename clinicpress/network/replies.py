"""Answers and the pure rules every fetch shares: what an answer holds, retry or not, how long to
wait, how much body to read and how to decompress it with a bound. No I/O here."""

from __future__ import annotations

import email.utils
import json
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any, Generic, Literal, Protocol, TypeVar

import httpx

from clinicpress.network.errors import Dropped, Hop, TooLarge, Unreadable

__all__ = [
    "ENCODINGS",
    "REDIRECTS",
    "Answer",
    "Cut",
    "Fetched",
    "Read",
    "Walked",
    "backoff_delay",
    "decoded",
    "read_if_ok",
    "retry_after",
    "retryable",
    "whole",
]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Asked for in Accept-Encoding, and the only codings decompressed (with a bound): no br, no zstd.
ENCODINGS = "gzip, deflate"
_DECOMPRESSED = frozenset({"gzip", "x-gzip", "deflate"})
Cut = Literal["size", "broken", "encoding"]


@dataclass(frozen=True, slots=True)
class Read:
    """How much of a body to read: at most ``limit`` bytes as sent, and kept decoded up to the same
    limit; with ``keep=False`` the body is read only so the connection can be used again."""

    limit: int
    keep: bool = True


@dataclass(frozen=True)
class Fetched:
    """One answer: its status line, headers and (decoded) body, and how the fetch got there."""

    url: str  # where this answer came from (after the redirects in ``hops``)
    status: int
    reason_phrase: str
    headers: httpx.Headers
    method: str = "GET"
    body: bytes = b""  # decoded, at most the bytes asked for; b"" when not read
    cut: Cut | None = None  # why ``body`` is not the whole body: over the size, broken, unknown coding
    retry_after: float | None = None  # seconds, from Retry-After
    tries: int = 1
    hops: tuple[Hop, ...] = ()

    @property
    def location(self) -> str | None:
        location: str | None = self.headers.get("location")
        return location

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters ("" when absent)."""
        value: str = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        message = Message()
        message["content-type"] = self.headers.get("content-type", "")
        return message.get_content_charset()

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise Unreadable(self.url, "the reply is not JSON") from exc


class Answer(Protocol):
    """What the walk needs of a hop's answer (a :class:`Fetched`, or a caller's own record)."""

    @property
    def status(self) -> int: ...
    @property
    def location(self) -> str | None: ...


A = TypeVar("A", bound=Answer)


@dataclass(frozen=True)
class Walked(Generic[A]):
    """Where a redirect walk ended: the last hop's answer and the redirects followed to it."""

    answer: A
    hops: tuple[Hop, ...] = field(default=())

    @property
    def final_url(self) -> str | None:
        return self.hops[-1].url if self.hops else None


def read_if_ok(max_bytes: int) -> Callable[[int, httpx.Headers], Read | None]:
    """The usual plan: a 2xx body up to ``max_bytes``; nothing of any other answer."""
    plan = Read(max_bytes)
    return lambda status, headers: plan if 200 <= status < 300 else None


def whole(got: Fetched) -> Fetched:
    """``got``, if its body (when one was read) is whole."""
    if got.cut == "size":
        raise TooLarge(got.url, "the body is larger than asked for")
    if got.cut == "broken":
        raise Dropped(got.url, "the connection broke or stalled while the body was read")
    if got.cut == "encoding":
        coding = got.headers.get("content-encoding", "")
        raise Unreadable(got.url, f"the body is compressed as {coding!r}, which is not decoded")
    return got


def retryable(code: int) -> bool:
    """Transient answers: request timeout, rate limit, any server error."""
    return code in (408, 429) or 500 <= code <= 599


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for: a number of seconds, or an HTTP date read
    against ``now`` (the product clock); a date already past asks for 0; unreadable: None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, source unknown (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(first: float, attempt: int) -> float:
    """Exponential backoff with jitter: ~``first`` s before retry 1, doubling; the jitter spreads
    the retries of many requests to one host (not security relevant)."""
    return float(first * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))  # noqa: S311


def decoded(raw: bytes, content_encoding: str | None, limit: int) -> bytes | None:
    """The body as the server meant it, at most ``limit`` bytes; None for a coding we do not decode.

    Decompression is bounded (``max_length``): a small gzip can expand a thousandfold.
    """
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return raw[:limit]
    if encoding not in _DECOMPRESSED:
        return None  # we only ask for gzip/deflate; anything else we do not guess at
    # 47 = 32 + 15: zlib or gzip header detected automatically; raw deflate as a fallback.
    for wbits in (47, -15):
        try:
            return zlib.decompressobj(wbits).decompress(raw, limit)
        except zlib.error:
            continue
    return None
