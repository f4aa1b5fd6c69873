"""Signed one-click unsubscribe links: one per recipient, checked without a lookup.

A token is ``<payload>.<mac>``, both base64url without padding (URL-safe as it is):

- payload: ``1\\n<issued, Unix seconds>\\n<slug or empty>\\n<address, lowercased>``
- mac: HMAC-SHA256 over a fixed label and the payload, keyed with the site's unsubscribe secret
  (``[newsletter] unsubscribe_secret``), compared in constant time.

The token carries the address itself, so the endpoint needs no list to find who asked (and never
says whether an address is on one); anyone who holds the link can read the address in it, which
is no more than the message it came in already tells. The slug says which newsletter the link
came from (counted in that send's numbers).

A token expires ``[newsletter] unsubscribe_max_age_days`` after it was issued (two years by
default: old newsletters stay in mailboxes, and an unsubscribe that fails helps nobody). A forged,
altered, expired or malformed token is one ``Refused``: its reason is for the log, never for the
person at the other end (``unsubscribe_server`` answers every refusal alike).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from clinicpress import clock
from clinicpress.addresses import address_problem, unsubscribe_url_problem
from clinicpress.errors import RenderError

__all__ = [
    "MAX_TOKEN_CHARS",
    "TOKEN_PARAMETER",
    "Refused",
    "Unsubscriber",
    "issue_token",
    "read_token",
    "unsubscribe_link",
]

TOKEN_PARAMETER = "t"  # noqa: S105 (a query parameter's name)
VERSION = "1"
# Domain separation: this secret's MACs mean "unsubscribe this address" and nothing else.
_LABEL = b"clinicpress unsubscribe v1\n"
MAX_TOKEN_CHARS = 1024
FUTURE_SKEW = timedelta(days=1)  # clocks of the sending and the answering machine may differ a little
_B64 = re.compile(r"[A-Za-z0-9_-]+")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")


@dataclass(frozen=True)
class Unsubscriber:
    """A token that checked out: who asked, from which newsletter, and when the link was made."""

    address: str
    slug: str | None
    issued: datetime


@dataclass(frozen=True)
class Refused:
    """A token that did not check out; ``reason`` is for the log only."""

    reason: str


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: bytes) -> bytes:
    if not secret:
        raise ValueError("the unsubscribe secret is empty")
    return hmac.new(secret.encode("utf-8"), _LABEL + payload, hashlib.sha256).digest()


def issue_token(address: str, secret: str, *, issued: datetime, slug: str | None = None) -> str:
    """The token for ``address`` (lowercased), made at ``issued``, from the newsletter ``slug``."""
    if problem := address_problem(address):
        raise RenderError(f"unsubscribe token: {address[:80]!r} {problem}")
    if slug is not None and not _SLUG.fullmatch(slug):
        raise RenderError(f"unsubscribe token: {slug[:80]!r} is not a slug")
    seconds = int(issued.timestamp())
    payload = f"{VERSION}\n{seconds}\n{slug or ''}\n{address.strip().lower()}".encode("ascii")
    return f"{_b64encode(payload)}.{_b64encode(_mac(secret, payload))}"


def unsubscribe_link(
    base_url: str,
    address: str,
    secret: str,
    *,
    slug: str | None = None,
    now: datetime | None = None,
) -> str:
    """``base_url`` (``[newsletter] unsubscribe_url``) with ``t=<token>`` for ``address``.

    A query the base URL already has is kept (a ``t`` in it is replaced).
    """
    token = issue_token(address, secret, issued=now or clock.now(), slug=slug)
    parts = urlsplit(base_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != TOKEN_PARAMETER]
    query.append((TOKEN_PARAMETER, token))
    link = urlunsplit(parts._replace(query=urlencode(query)))
    if problem := unsubscribe_url_problem(link):
        raise RenderError(f"unsubscribe link for {base_url[:80]!r} {problem}")
    return link


def read_token(token: str, secret: str, now: datetime, *, max_age_days: int) -> Unsubscriber | Refused:
    """Who ``token`` unsubscribes, or why not. The MAC is checked before anything in it is believed."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        return Refused("malformed token")
    payload_text, mac_text = token.split(".")
    try:
        payload, mac = _b64decode(payload_text), _b64decode(mac_text)
    except (ValueError, binascii.Error):
        return Refused("malformed token")
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        return Refused("signature does not match")
    # Signed by us: the fields are ours, still parsed strictly (a secret shared with an older format).
    try:
        version, seconds, slug, address = payload.decode("ascii").split("\n", 3)
        issued = datetime.fromtimestamp(int(seconds), UTC)
    except (UnicodeDecodeError, ValueError, OverflowError, OSError):
        return Refused("malformed payload")
    if version != VERSION or address_problem(address) or (slug and not _SLUG.fullmatch(slug)):
        return Refused("malformed payload")
    if issued > now + FUTURE_SKEW:
        return Refused("issued in the future")
    if now - issued > timedelta(days=max_age_days):
        return Refused("expired")
    return Unsubscriber(address=address, slug=slug or None, issued=issued)
