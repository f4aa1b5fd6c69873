"""What the link checker reads in a response body: soft-404 wording, anchors, bot-wall markers.

Kept apart from the HTTP code so it can be tested (and profiled) on plain bytes. Parsing is
the expensive part of a large run, so it is skipped whenever a cheap byte search proves the
answer: a page without any "not found" wording cannot be a soft-404, and only URLs with a
``#fragment`` need the page's ids. lxml's C parser is used directly (no BeautifulSoup tree).
"""

from __future__ import annotations

import codecs
import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# lxml ships no type stubs; imported this way mypy --strict passes whether or not the project
# later adds lxml to its ignore list (a "type: ignore" would then be an unused-ignore error).
etree: Any = importlib.import_module("lxml.etree")

__all__ = [
    "HtmlFindings",
    "analyse_page",
    "bot_wall_marker",
    "fragment_present",
    "soft_404_text",
]

# A segment of a title or heading (titles are split at " | ", " - ", ": " …) that says the page
# is not there. Whole-segment matches only: "Genes not found in mice" or "Outcomes in 404
# patients" are real titles, not error pages.
_NOT_THERE = re.compile(
    r"""
    (?:(?:oops|sorry|whoops|uh[\s-]?oh)[\s!.,]*)*
    (?:(?:error|http)\s*)?(?:40[04]|410)?\s*[-:]?\s*(?:error)?\s*
    (?:(?:the|this|that|your|requested)\s+)*
    (?:(?:page|file|document|article|resource|content|post|url|item|link)\s+)?
    (?:(?:you\s+(?:are|were)\s+looking\s+for|you\s+requested)\s+)?
    (?:(?:was|is|has|could|can|cannot|can't|couldn't|has\s+been|may\s+have\s+been)\s+)*
    (?:not\s+(?:be\s+)?found|(?:can't|cannot|could\s+not|couldn't)\s+be\s+found|no\s+longer\s+(?:be\s+)?(?:available|exists?)|not\s+available|unavailable
       |(?:does\s+not|doesn't)\s+exist|removed|moved\s+or\s+deleted|gone)
    """,
    re.VERBOSE,
)
_STATUS_ONLY = re.compile(r"(?:(?:error|http)\s*)?(?:404|410)(?:\s*error)?")
# Site-name separators only: a colon starts a subtitle ("Not found: a history of …").
_SEPARATORS = re.compile(r"\s+(?:[|\-–—·•»]|::)\s+|\s*[|–—]\s*")
_TOO_SHORT = frozenset({"gone", "removed", "unavailable"})
# Bytes that must occur (case-insensitively) somewhere for a title or h1 to say "not found".
_SOFT_404_HINTS = (b"not found", b"404", b"410", b"no longer", b"not available", b"unavailable", b"exist")

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]{1,40})""", re.I)

# Bot walls: (header name, value substring or "" for any value, what it is).
_WALL_HEADERS: tuple[tuple[str, str, str], ...] = (
    ("cf-mitigated", "", "Cloudflare challenge"),
    ("x-datadome", "", "DataDome"),
    ("x-dd-b", "", "DataDome"),
    ("x-amzn-waf-action", "", "AWS WAF challenge"),
    ("x-sucuri-block", "", "Sucuri firewall"),
    ("x-iinfo", "", "Imperva/Incapsula"),
    ("server", "akamaighost", "Akamai"),
    ("server", "ddos-guard", "DDoS-Guard"),
    ("set-cookie", "datadome=", "DataDome"),
    ("set-cookie", "_px", "PerimeterX"),
)
_WALL_BODY: tuple[tuple[bytes, str], ...] = (
    (b"<title>just a moment...</title>", "Cloudflare challenge"),
    (b"/cdn-cgi/challenge-platform", "Cloudflare challenge"),
    (b"cf-chl-", "Cloudflare challenge"),
    (b"attention required! | cloudflare", "Cloudflare block"),
    (b"cf-error-details", "Cloudflare block"),
    (b"captcha-delivery.com", "DataDome captcha"),
    (b"g-recaptcha", "captcha"),
    (b"h-captcha", "captcha"),
    (b"hcaptcha.com", "captcha"),
    (b"px-captcha", "PerimeterX captcha"),
    (b"captcha", "captcha"),
    (b"incapsula incident id", "Imperva/Incapsula"),
    (b"_incapsula_resource", "Imperva/Incapsula"),
    (b"sucuri website firewall", "Sucuri firewall"),
    (b"checking your browser", "browser check"),
    (b"verify you are human", "human verification"),
    (b"are you a robot", "human verification"),
    (b"unusual traffic from your computer", "human verification"),
    (b"errors.edgesuite.net", "Akamai"),
)


@dataclass(frozen=True)
class HtmlFindings:
    """What one HTML body told us. ``anchors`` is None when they were not collected."""

    soft_404: str | None = None  # the title/heading text that says "not found"
    anchors: frozenset[str] | None = None
    complete: bool = True  # False when the body was cut at the size cap or the read failed


def charset_of(content_type: str | None, body: bytes) -> str:
    """The body's character encoding: BOM, then Content-Type, then <meta>, else UTF-8."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    candidates: list[str] = []
    if content_type:
        for param in content_type.split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                candidates.append(value.strip().strip("\"'"))
    match = _META_CHARSET.search(body[:2048])
    if match:
        candidates.append(match.group(1).decode("ascii", "replace"))
    for name in candidates:
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            continue
        # A page that says UTF-16 in ASCII bytes is not UTF-16 (HTML spec: treat as UTF-8).
        return "utf-8" if codec.startswith("utf-16") and not body.startswith(b"\xff\xfe") else codec
    return "utf-8"


def is_html(content_type: str | None) -> bool:
    """HTML by Content-Type; a missing type counts (we sniff by parsing, cheaply)."""
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml", "text/plain") or kind.endswith("+html")


def soft_404_text(text: str) -> bool:
    """True when a title or heading says the page is not there."""
    normal = " ".join(text.lower().split()).strip()
    if not normal:
        return False
    for segment in (s.strip(" !.?()[]") for s in _SEPARATORS.split(normal)):
        if segment in _TOO_SHORT:
            continue  # "Gone" or "Unavailable" alone is as likely a film or song title
        if segment and (_STATUS_ONLY.fullmatch(segment) or _NOT_THERE.fullmatch(segment)):
            return True
    return False


def _text(element: Any) -> str:
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def analyse_page(body: bytes, content_type: str | None, *, soft_404: bool, anchors: bool) -> HtmlFindings:
    """Parse only what is needed: a page without any hint word cannot be a soft-404."""
    charset = charset_of(content_type, body)
    if charset.startswith(("utf-16", "utf-32")):
        # Not ASCII-compatible: the byte search below needs ASCII-compatible bytes.
        body, charset = body.decode(charset, "replace").encode("utf-8"), "utf-8"
    lowered = body.lower()
    need_soft = soft_404 and any(hint in lowered for hint in _SOFT_404_HINTS)
    if not (need_soft or anchors) or not body.strip():
        return HtmlFindings(anchors=frozenset() if anchors else None)
    parser = etree.HTMLParser(encoding=charset, recover=True, no_network=True, remove_comments=True)
    try:
        root = etree.fromstring(body, parser)
    except (etree.LxmlError, ValueError):
        root = None
    if root is None:
        return HtmlFindings(anchors=frozenset() if anchors else None)
    said: str | None = None
    if need_soft:
        for element in (root.find(".//title"), root.find(".//h1")):
            text = _text(element)
            if soft_404_text(text):
                said = text
                break
    found: frozenset[str] | None = None
    if anchors:
        values = root.xpath("//@id | //@name")
        found = frozenset(str(v) for v in values) if isinstance(values, list) else frozenset()
    return HtmlFindings(soft_404=said, anchors=found)


def fragment_present(fragment: str, anchors: frozenset[str]) -> bool:
    """Does the page define ``fragment`` (as id or name), the way a browser looks it up?"""
    from urllib.parse import unquote

    decoded = unquote(fragment)
    return any(
        candidate in anchors or f"user-content-{candidate}" in anchors  # GitHub-rendered Markdown
        for candidate in (fragment, decoded)
    )


def checkable_fragment(fragment: str) -> bool:
    """Fragments a browser resolves without ids: empty, #top, text fragments, app routes, PDF params."""
    if not fragment or fragment.lower() == "top":
        return False
    return not (fragment.startswith((":~:", "/", "!")) or "=" in fragment)


def bot_wall_marker(headers: Mapping[str, str], body: bytes | None) -> str | None:
    """Which bot wall answered, from headers or the first bytes of the body; None if none."""
    for name, needle, what in _WALL_HEADERS:
        value = headers.get(name)
        if value is not None and needle in value.lower():
            return what
    if body:
        lowered = body[:65536].lower()
        for needle_bytes, what in _WALL_BODY:
            if needle_bytes in lowered:
                return what
        if b"access denied" in lowered and b"reference #" in lowered:
            return "Akamai"
    return None
