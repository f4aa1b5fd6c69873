"""What the page says about itself: its title, summary, dates and addresses (canonical, og:url, <base>).

Read from the whole page before its furniture goes (meta tags and JSON-LD live in <head>).
Dates are only ever the page's own: a "modified" date is reported, never taken for a
clinical review, and nothing is guessed from the URL or the file's age.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag

from clinicpress.sources.importer.dom import attr, in_furniture, text

_TITLE_SUFFIX = re.compile(r"\s+(?:\||–|—|-|·|::)\s+")
_TEXT_DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%m/%d/%Y", "%Y-%m-%d")


@dataclass(frozen=True)
class Addresses:
    """The page's addresses, each an absolute http(s) URL or None."""

    canonical: str | None = None  # <link rel=canonical>
    og_url: str | None = None  # <meta property=og:url>
    base_href: str | None = None  # <base href>
    fetched: str | None = None  # where the page was fetched from (after redirects)
    site: str | None = None  # the site's [organization] base_url, for a saved local file

    @property
    def own(self) -> str | None:
        """The address the page names for itself (it also names the slug): canonical, og:url, fetched."""
        return self.canonical or self.og_url or self.fetched

    def base(self) -> tuple[str | None, str | None]:
        """What relative links resolve against, and which address that is (for the report)."""
        order = (
            ("canonical", self.canonical),
            ("og:url", self.og_url),
            ("<base href>", self.base_href),
            ("fetched URL", self.fetched),
            ("[organization] base_url", self.site),
        )
        for name, url in order:
            if url:
                return url, name
        return None, None


def meta(soup: BeautifulSoup, *names: str) -> str | None:
    """The first non-empty <meta name|property=…> content among ``names``, in their order."""
    for name in names:
        for tag in soup.find_all("meta"):
            if name in (attr(tag, "name").lower(), attr(tag, "property").lower()):
                content = " ".join(attr(tag, "content").split())
                if content:
                    return content
    return None


def addresses(soup: BeautifulSoup, fetched: str | None, site: str | None) -> Addresses:
    """The page's own addresses; relative ones resolved against where it was fetched from (a saved
    file's, against the site's base URL)."""
    # A site root gets its trailing slash, so "img/x.png" lands under it, not beside it.
    site_root = site.rstrip("/") + "/" if site else None

    def absolute(value: str | None) -> str | None:
        if not value:
            return None
        url = urljoin(fetched or site_root or "", value.strip())
        return url if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc else None

    canonical = None
    for tag in soup.find_all("link"):
        if "canonical" in attr(tag, "rel").lower().split() and attr(tag, "href"):
            canonical = absolute(attr(tag, "href"))
            break
    base_tag = soup.find("base", href=True)
    base_href = absolute(attr(base_tag, "href")) if isinstance(base_tag, Tag) else None
    return Addresses(canonical, absolute(meta(soup, "og:url")), base_href, absolute(fetched), site_root)


def parse_date(value: str) -> date | None:
    """A date as pages write it (ISO, 'March 14, 2024', '14 Mar 2024', '3/14/2024'), else None."""
    value = " ".join(value.split())
    if re.match(r"^\d{4}-\d{2}-\d{2}", value):
        try:
            day = date.fromisoformat(value[:10])
        except ValueError:
            return None
        return day if 1900 <= day.year <= 2200 else None
    for fmt in _TEXT_DATE_FORMATS:
        try:
            day = datetime.strptime(value, fmt).date()
        except ValueError:
            continue
        return day if 1900 <= day.year <= 2200 else None
    return None


def _json_ld(soup: BeautifulSoup) -> dict[str, str]:
    """datePublished / dateModified from JSON-LD (Yoast and most SEO plugins write it)."""
    found: dict[str, str] = {}
    for script in soup.find_all("script", attrs={"type": "application/ld+json"}):
        try:
            data = json.loads(script.get_text())
        except (ValueError, RecursionError):
            continue
        stack: list[Any] = [data]
        budget = 10_000  # a hostile page gets a bounded walk
        while stack and budget:
            budget -= 1
            item = stack.pop()
            if isinstance(item, dict):
                for key in ("datePublished", "dateModified"):
                    if isinstance(item.get(key), str):
                        found.setdefault(key, item[key])
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return found


def dates(soup: BeautifulSoup) -> tuple[date | None, date | None]:
    """Published and modified dates: meta tags and JSON-LD first, else <time> in the article."""
    ld = _json_ld(soup)
    published_text = meta(soup, "article:published_time", "datePublished", "date") or ld.get("datePublished")
    modified_text = meta(soup, "article:modified_time", "dateModified", "og:updated_time") or ld.get(
        "dateModified"
    )
    published = parse_date(published_text) if published_text else None
    modified = parse_date(modified_text) if modified_text else None
    if published is not None:
        return published, modified
    # <time> in the article (its header included), never one in a reader's comment.
    scope = soup.find("article") or soup.find("main") or soup
    times = [t for t in scope.find_all("time") if not in_furniture(t, comments_only=True)]
    for tag in times or soup.find_all("time"):
        when = parse_date(attr(tag, "datetime") or text(tag))
        if when is None:
            continue
        classes = attr(tag, "class").lower()
        if "updated" in classes or "modified" in classes or attr(tag, "itemprop") == "dateModified":
            modified = modified or when
        elif published is None:
            published = when
    return published, modified


def title_tag(soup: BeautifulSoup) -> Tag | None:
    """The article's h1: in <article>, else <main>, else anywhere but the site's header and furniture."""
    for scope in (soup.find("article"), soup.find("main"), soup):
        if not isinstance(scope, Tag):
            continue
        for h1 in scope.find_all("h1"):
            if text(h1) and not in_furniture(h1, site_header=True):
                return h1
    return None


def title(soup: BeautifulSoup, h1: Tag | None) -> str | None:
    """The h1's text, else og:title, else <title> without the site's name."""
    if h1 is not None:
        return text(h1)
    og = meta(soup, "og:title", "twitter:title")
    if og:
        return og
    if soup.title is not None and text(soup.title):
        parts = _TITLE_SUFFIX.split(text(soup.title))
        site = (meta(soup, "og:site_name") or "").lower()
        kept = [p for p in parts if p.lower() != site] or parts
        return kept[0]
    return None
