"""A license line in the page footer → a suggested ``[[licenses]]`` block for ``site.toml``.

The footer is not part of the article body (every channel prints the site's license line
from ``site.toml``). The block is only a suggestion: it quotes the footer, names the state
only if the footer does, and asks for the issuer's lookup before it is used.
"""

from __future__ import annotations

import json
import re
from datetime import date

from bs4 import BeautifulSoup, Tag

_LICENSE = re.compile(
    r"(?P<kind>Licensed|Certified)\s+by\s+(?:the\s+)?(?P<issuer>[^|]+?)\s*\|\s*"
    r"Program\s+ID(?:\s+Number)?\s*:\s*(?P<id>[A-Za-z0-9-]+)\s*\|\s*"
    r"Program\s+Expiration\s+Date\s*:\s*(?P<expires>\d{1,2}/\d{1,2}/\d{4}|\d{4}-\d{2}-\d{2})",
    re.IGNORECASE,
)


def take_license(soup: BeautifulSoup) -> str | None:
    """The suggested block for the page's license line (None without one); the line leaves the page,
    wherever it sits, so no extractor can mistake it for article text."""
    block = license_block(soup)
    if block is not None:
        holders = [t for t in soup.find_all(True) if _LICENSE.search(" ".join(t.get_text(" ").split()))]
        innermost = [
            t for t in holders if not any(h is not t and any(p is t for p in h.parents) for h in holders)
        ]
        for tag in innermost:
            if isinstance(tag, Tag) and tag.name not in ("body", "html"):
                tag.decompose()
    return block


def license_block(soup: BeautifulSoup) -> str | None:
    """The TOML block for the page's license line, or None when it has none (or its date is not one)."""
    match = _LICENSE.search(" ".join(soup.get_text(" ").split()))
    if match is None:
        return None
    raw = match.group("expires")
    if "/" in raw:
        month, day, year = (int(x) for x in raw.split("/"))
    else:
        year, month, day = (int(x) for x in raw.split("-"))
    try:
        expires = date(year, month, day).isoformat()
    except ValueError:
        return None
    issuer = " ".join(match.group("issuer").split())
    kind = "licensed" if match.group("kind").lower() == "licensed" else "certified"
    lines = [
        f"# From the page footer: {json.dumps(' '.join(match.group(0).split()), ensure_ascii=False)}",
        "# Confirm it with the issuer's license lookup before adding it to content/site.toml.",
    ]
    if issuer.lower().startswith("state "):
        lines.append("# The footer does not name the state: write the issuer's full name.")
    lines += [
        "[[licenses]]",
        f'kind = "{kind}"',
        f"issuer = {json.dumps(issuer)}",  # a JSON string is a valid TOML basic string
        f"program_id = {json.dumps(match.group('id'))}",
        f"expires = {expires}",
    ]
    return "\n".join(lines) + "\n"
