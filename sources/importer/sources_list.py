"""The page's own reference list ("Sources", "References", …) → the article's ``sources:``.

Ours, not a library's: only what the page states. An item with a link (or a DOI or URL in
its text) becomes a source; an item without one is reported for a person to find and
confirm, never completed from elsewhere. The section is taken out of the page, so the body
does not repeat it.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag
from bs4.element import NavigableString

from clinicpress.sources.importer.dom import attr, in_furniture, is_furniture, text

_SOURCES_HEADING = re.compile(
    r"^\s*(sources|references|citations|works cited|bibliography|studies cited)\s*:?\s*$", re.IGNORECASE
)
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:)\]]")
_DOI_IN_TEXT = re.compile(r"\b(?:doi:\s*|https?://(?:dx\.)?doi\.org/)?(10\.\d{4,9}/[^\s\"<>]+[^\s\"<>.,;)])")


def _heading_level(tag: Tag) -> int | None:
    if tag.name and re.fullmatch(r"h[1-6]", tag.name):
        return int(tag.name[1])
    return None


def _sources_heading(soup: BeautifulSoup) -> Tag | None:
    """The first 'Sources'-like heading (or a paragraph/bold line saying only that) outside furniture."""
    for tag in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "strong", "b"]):
        if not _SOURCES_HEADING.match(text(tag)) or in_furniture(tag):
            continue
        # A <strong> alone in a <p> counts as its paragraph.
        while isinstance(tag.parent, Tag) and tag.parent.name in ("p", "div", "strong", "b"):
            if text(tag.parent) != text(tag):
                break
            tag = tag.parent
        return tag
    return None


def take_sources(soup: BeautifulSoup, base: str | None, notes: list[str]) -> list[dict[str, str]]:
    """Take the page's sources section out of ``soup``; its items with a link, as ``sources:``."""
    heading = _sources_heading(soup)
    if heading is None:
        return []
    level = _heading_level(heading) or 7
    section: list[Tag | NavigableString] = []
    for sibling in heading.next_siblings:
        if isinstance(sibling, Tag) and (_heading_level(sibling) or 9) <= level:
            break
        if isinstance(sibling, Tag) and is_furniture(sibling):
            continue  # a share box or "related posts" after the list is not a source
        if isinstance(sibling, Tag | NavigableString):
            section.append(sibling)
    items: list[Tag] = []
    for node in section:
        if isinstance(node, Tag):
            lis = node.find_all("li") if node.name in ("ul", "ol", "div", "section") else []
            items.extend(lis or ([node] if text(node) else []))
        elif node.strip():
            wrapper = soup.new_tag("p")
            wrapper.string = str(node)
            items.append(wrapper)
    sources: list[dict[str, str]] = []
    for item in items:
        found = source_of(item, base)
        if found is None:
            notes.append(f"source without a link, find and confirm it: {text(item)[:200]}")
        else:
            sources.append(found)
    if not items:
        notes.append(
            f"the page has a {text(heading)!r} heading with nothing under it (the links were lost): "
            "find and confirm the sources; none were made up"
        )
    for node in [heading, *section]:
        node.extract()
    return sources


def source_of(item: Tag, base: str | None) -> dict[str, str] | None:
    """One list item as {title, url}: its first http(s) link, else a URL or DOI in its text, else None."""
    words = text(item)
    url = None
    for link in item.find_all("a"):
        href = urljoin(base or "", attr(link, "href").strip())
        if urlsplit(href).scheme in ("http", "https"):
            url = href
            break
    if url is None:
        doi = _DOI_IN_TEXT.search(words)
        plain = _URL_IN_TEXT.search(words)
        if plain is not None and not (doi and "doi.org" in plain.group(0)):
            url = plain.group(0)
        elif doi is not None:
            url = f"https://doi.org/{doi.group(1)}"
    if url is None:
        return None
    title = words.replace(url, "").strip(" .–—-:") or url
    return {"title": title[:500], "url": url}
