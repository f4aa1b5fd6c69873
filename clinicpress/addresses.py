"""What makes an email address or an unsubscribe URL sendable: one rule for every layer.

The site config validates its sending addresses with it at load (exit 2 naming
the key), the subscribers CSV validates each row with it, and the newsletter
renderer checks again before a value reaches a header (defence in depth: a
value that passed here can never fail there, so nothing blocks at ``publish``
that ``check`` accepted).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_ADDRESS = 254  # RFC 5321: the longest forward-path

# ASCII only: non-ASCII addresses need SMTPUTF8, which we do not negotiate.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a sendable address, or None when it is."""
    if "\r" in address or "\n" in address:
        return "contains a line break"
    if not address:
        return "is empty"
    if not address.isascii():
        return "has non-ASCII characters (internationalised addresses are not supported)"
    if len(address) > MAX_ADDRESS:
        return f"is {len(address)} characters long (at most {MAX_ADDRESS})"
    if address.count("@") != 1:
        return "must contain exactly one @"
    local, domain = address.split("@")
    if not local or len(local) > 64 or not _LOCAL.match(local):
        return "has an invalid part before the @"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "has an invalid domain"
    if not re.fullmatch(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]+", labels[-1]):
        return "has an invalid top-level domain"
    return None


def unsubscribe_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a List-Unsubscribe target (RFC 8058 one-click needs https), or None."""
    if "\r" in url or "\n" in url:
        return "contains a line break"
    parts = urlsplit(url)
    # '<', '>', ',' and spaces would end or split the List-Unsubscribe entry.
    if parts.scheme != "https" or not parts.netloc or re.search(r"[\s<>,\"]", url):
        return "is not an https:// URL without spaces, <, > or ,"
    return None
