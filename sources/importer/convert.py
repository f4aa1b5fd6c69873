"""HTML → Markdown with markdownify, shaped to the article format the renderers read.

markdownify walks the tree and writes CommonMark; this subclass adds what the article
format needs: ATX headings from h2 down (the title is the front matter's h1), '-' bullets,
every link and image resolved against the page's address, only http(s)/mailto/tel links
(others stay as their words), images kept with their alt text, and text escaped so that no
emphasis, link, citation ([^N]) or raw HTML can come out of the page's words.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag
from markdownify import ATX, BACKSLASH, MarkdownConverter

from clinicpress.sources.importer.dom import attr

_LINK_SCHEMES = ("http", "https", "mailto", "tel")
_ESCAPED = re.compile(r"([\\`*_\[\]<>~|])")
_ENTITY = re.compile(r"&(?=#?\w+;)")
# Markers that start a block when they begin a line: headings, lists, setext underlines, breaks.
_LINE_MARKERS = re.compile(r"(^|\s)(#{1,6}|[-+=]+)(?=\s|$)")
_LIST_NUMBER = re.compile(r"(^|\s)(\d{1,9})([.)])(?=\s|$)")


def escape_text(words: str) -> str:
    """Text stays text: no emphasis, link, citation ([^N]), raw HTML or block marker comes out of it."""
    words = _ESCAPED.sub(r"\\\1", words)
    words = _ENTITY.sub(r"\\&", words)
    words = _LINE_MARKERS.sub(r"\1\\\2", words)
    return _LIST_NUMBER.sub(r"\1\2\\\3", words)


def destination(url: str) -> str:
    """A URL as a Markdown link destination: characters that would end or break it, encoded."""
    for char, code in ((" ", "%20"), ("|", "%7C"), ("(", "%28"), (")", "%29"), ("<", "%3C"), (">", "%3E")):
        url = url.replace(char, code)
    return url


class ArticleMarkdown(MarkdownConverter):
    """markdownify for imported articles; ``notes`` collects what a person must look at."""

    def __init__(self, base: str | None, notes: list[str]) -> None:
        super().__init__(
            heading_style=ATX,
            bullets="-",
            strong_em_symbol="*",
            newline_style=BACKSLASH,
            autolinks=False,  # always [words](url): one link form for the checks to read
            escape_asterisks=False,  # escape_text does all the escaping
            escape_underscores=False,
            escape_misc=False,
            table_infer_header=True,  # a table without <th>: its first row heads it, not an empty row
        )
        self.base = base
        self.notes = notes
        self.relative = 0  # relative links and images resolved against base

    def document(self, soup: BeautifulSoup) -> str:
        """The whole body: no trailing spaces, one final newline."""
        markdown = str(self.convert_soup(soup))
        return "\n".join(line.rstrip() for line in markdown.strip().split("\n")) + "\n"

    def escape(self, text: str, parent_tags: set[str]) -> str:
        return escape_text(text) if text else ""

    def resolve(self, href: str) -> str:
        if not urlsplit(href.strip()).scheme:
            self.relative += 1
        return urljoin(self.base or "", href.strip())

    def convert_hN(self, n: int, el: Tag, text: str, parent_tags: set[str]) -> str:
        if "_inline" in parent_tags:
            return text
        words = " ".join(text.replace("\\\n", " ").split())
        # h1 is the title (front matter): a second h1 in the body becomes a section heading.
        return f"\n\n{'#' * min(max(n, 2), 6)} {words}\n\n" if words else ""

    def convert_a(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        href = attr(el, "href").strip()
        if "_noformat" in parent_tags or not href or href.startswith("#"):
            return text
        url = self.resolve(href)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in _LINK_SCHEMES:
            kind = scheme or "relative (the page names no address to resolve it against)"
            self.notes.append(f"a link with a {kind} URL was kept as text: {url[:80]}")
            return text
        lead = " " if text[:1].isspace() else ""
        trail = " " if text[-1:].isspace() else ""
        label = text.strip() or escape_text(url)
        return f"{lead}[{label}]({destination(url)}){trail}"

    def convert_img(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        src = attr(el, "src").strip() or attr(el, "data-src").strip()
        alt = escape_text(" ".join(attr(el, "alt").split()))
        if not src:
            return alt
        url = self.resolve(src)
        if urlsplit(url).scheme.lower() not in ("http", "https") or not urlsplit(url).netloc:
            self.notes.append(f"an image without an http(s) address was kept as its alt text: {url[:80]}")
            return alt
        if not el.has_attr("alt"):
            self.notes.append(f"image without alt text, describe it: {url[:120]}")
        if "_inline" in parent_tags:  # a heading or table cell: markdownify keeps the words only
            return alt
        return f"![{alt}]({destination(url)})"

    def convert_pre(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        code = el.get_text().strip("\n")
        if not code.strip():
            return ""
        fence = "~~~~" if "```" in code else "```"
        return f"\n\n{fence}\n{code}\n{fence}\n\n"

    def convert_dt(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        # Definition lists are not CommonMark (markdownify writes Pandoc's ": "): plain paragraphs.
        words = text.strip()
        return f"\n\n{words}\n\n" if words else ""

    convert_dd = convert_dt

    def convert_hr(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return "\n\n* * *\n\n"  # '---' under a line of text would make it a heading


def to_markdown(
    content: BeautifulSoup, base: str | None, notes: list[str], *, base_name: str | None = None
) -> str:
    """``content`` (HTML) as the article's Markdown body; links and images resolved against ``base``
    (``base_name`` says which address that is: the report names a guess as one)."""
    converter = ArticleMarkdown(base, notes)
    markdown = converter.document(content)
    if converter.relative and base and base_name == "[organization] base_url":
        notes.append(
            f"{converter.relative} relative link(s) and image(s) resolved against the site's base_url "
            f"{base} (the saved page names no address of its own): check they point where they should"
        )
    return markdown
