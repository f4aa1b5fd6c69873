"""The article as plain text (the email's text part), built from Markdown tokens.

Built from the token stream rather than from the HTML (DESIGN, "Facts
measured"): no HTML-to-text guessing, and the citations and links come out
the same way every time. Paragraphs wrap at 72 columns; a URL is never broken,
so a line holding one long URL may be longer.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from urllib.parse import urljoin

from markdown_it.token import Token

from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, edition_language

from . import i18n
from .markdown import body_tokens, canonical_url, source_entries

WIDTH = 72


def wrap(text: str, width: int = WIDTH, first: str = "", rest: str = "") -> str:
    """Wrap one paragraph; hard line breaks (``\\n``) in ``text`` are kept."""
    lines: list[str] = []
    for number, segment in enumerate(text.split("\n")):
        lines.append(
            textwrap.fill(
                " ".join(segment.split()),
                width=width,
                initial_indent=first if number == 0 else rest,
                subsequent_indent=rest,
                break_long_words=False,  # never split a URL
                break_on_hyphens=False,
            )
            or (first if number == 0 else rest).rstrip()
        )
    return "\n".join(lines)


def underline(title: str, char: str) -> str:
    return f"{title}\n{char * min(len(title), WIDTH)}"


def _closing(tokens: Sequence[Token], start: int) -> int:
    """Index of the token closing ``tokens[start]`` (nesting back to zero)."""
    depth = 0
    for index in range(start, len(tokens)):
        depth += tokens[index].nesting
        if depth == 0:
            return index
    return len(tokens) - 1


def _indent(block: str, first: str, rest: str) -> str:
    lines = block.split("\n")
    out = [first + lines[0]] + [(rest + line) if line else "" for line in lines[1:]]
    return "\n".join(out)


class _TextBuilder:
    def __init__(self, base_url: str | None, language: str) -> None:
        self.base_url = base_url
        self.language = language

    def _href(self, href: str) -> str:
        # A relative link means nothing in an email: make it absolute.
        if self.base_url and not href.startswith("#") and ":" not in href.split("/", 1)[0]:
            return urljoin(self.base_url, href)
        return href

    def inline(self, children: Sequence[Token] | None) -> str:
        parts: list[str] = []
        link_stack: list[tuple[str, int]] = []
        for token in children or ():
            kind = token.type
            if kind in ("text", "code_inline"):
                parts.append(token.content)
            elif kind == "softbreak":
                parts.append(" ")
            elif kind == "hardbreak":
                parts.append("\n")
            elif kind == "citation":
                parts.append(f"[{token.meta['n']}]")
            elif kind == "link_open":
                link_stack.append((str(token.attrGet("href") or ""), len(parts)))
            elif kind == "link_close" and link_stack:
                href, start = link_stack.pop()
                label = "".join(parts[start:]).strip()
                if href and not href.startswith("#") and href != label and f"mailto:{label}" != href:
                    parts.append(f" ({self._href(href)})")
            elif kind == "image":
                alt = self.inline(token.children) or i18n.tr(self.language, "image")
                src = str(token.attrGet("src") or "")
                parts.append(f"[{alt}]" + (f" ({self._href(src)})" if src else ""))
        return "".join(parts)

    def blocks(self, tokens: Sequence[Token], width: int) -> list[str]:
        out: list[str] = []
        index = 0
        while index < len(tokens):
            token = tokens[index]
            kind = token.type
            if kind == "paragraph_open":
                out.append(wrap(self.inline(tokens[index + 1].children), width))
                index = _closing(tokens, index)
            elif kind == "heading_open":
                title = " ".join(self.inline(tokens[index + 1].children).split())
                # reST-like: "=" is the article title, "-" a section, "~" anything deeper.
                out.append(underline(title, "-" if token.tag in ("h1", "h2") else "~"))
                index = _closing(tokens, index)
            elif kind in ("bullet_list_open", "ordered_list_open"):
                end = _closing(tokens, index)
                out.append(self.list(tokens[index : end + 1], width))
                index = end
            elif kind == "blockquote_open":
                end = _closing(tokens, index)
                inner = "\n\n".join(self.blocks(tokens[index + 1 : end], width - 2))
                out.append(_indent(inner, "> ", "> ").replace("\n\n", "\n>\n"))
                index = end
            elif kind in ("fence", "code_block"):
                out.append("\n".join("    " + line for line in token.content.rstrip("\n").split("\n")))
            elif kind == "hr":
                out.append("* * *")
            elif kind == "table_open":
                end = _closing(tokens, index)
                out.append(self.table(tokens[index : end + 1]))
                index = end
            index += 1
        return out

    def list(self, tokens: Sequence[Token], width: int) -> str:
        ordered = tokens[0].type == "ordered_list_open"
        number = int(tokens[0].attrGet("start") or 1) if ordered else 0
        # markdown-it hides the paragraphs of a tight list: no blank lines between its items.
        tight = any(t.type == "paragraph_open" and t.hidden for t in tokens)
        items: list[str] = []
        index = 1
        while index < len(tokens) - 1:
            if tokens[index].type == "list_item_open":
                end = _closing(tokens, index)
                marker = f"{number}. " if ordered else "- "
                inner = self.blocks(tokens[index + 1 : end], width - len(marker))
                body = ("\n" if tight else "\n\n").join(inner)
                items.append(_indent(body, marker, " " * len(marker)))
                number += 1
                index = end
            index += 1
        return ("\n" if tight else "\n\n").join(items)

    def table(self, tokens: Sequence[Token]) -> str:
        rows: list[str] = []
        cells: list[str] = []
        for index, token in enumerate(tokens):
            if token.type == "tr_open":
                cells = []
            elif token.type in ("th_open", "td_open"):
                cells.append(" ".join(self.inline(tokens[index + 1].children).split()))
            elif token.type == "tr_close":
                rows.append(" | ".join(cells))
            elif token.type == "thead_close" and rows:
                rows.append("-" * min(len(rows[-1]), WIDTH))
        return "\n".join(rows)


def render_body_text(
    article: Article, base_url: str | None = None, language: str = i18n.SOURCE_LANGUAGE
) -> str:
    """The body as plain text: blocks separated by one blank line."""
    builder = _TextBuilder(base_url, language)
    return "\n\n".join(builder.blocks(body_tokens(article), WIDTH))


def sources_text(article: Article) -> str:
    """``[1] Title`` then the URL (and DOI) indented under it, one source a block."""
    entries: list[str] = []
    for entry in source_entries(article):
        marker = f"[{entry.number}] "
        lines = [wrap(entry.title, WIDTH, marker, " " * len(marker))]
        lines.append(" " * len(marker) + entry.url)
        if entry.doi:
            lines.append(f"{' ' * len(marker)}DOI: {entry.doi}")
        entries.append("\n".join(lines))
    return "\n\n".join(entries)


def render_article_text(article: Article, site: SiteConfig) -> str:
    """Title, dates, body and numbered sources (the email adds its own footer)."""
    url = canonical_url(article, site)
    language = edition_language(article, site)
    parts = [
        underline(article.title, "="),
        wrap(article.summary),
        wrap(i18n.review_line(article, language)),
        render_body_text(article, base_url=url, language=language),
    ]
    if article.sources:
        parts += [underline(i18n.tr(language, "Sources"), "-"), sources_text(article)]
    return "\n\n".join(parts) + "\n"
