"""Collect the URLs an article cites: its sources list and the links in its body."""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from clinicpress.sources.article import Article


@cache
def _parser() -> MarkdownIt:
    # Same preset as the renderers: raw HTML off, so only Markdown links count.
    return MarkdownIt("js-default")


def _links(tokens: list[Token]) -> list[str]:
    found: list[str] = []
    for token in tokens:
        if token.type == "link_open":
            href = token.attrGet("href")
            if isinstance(href, str) and not href.startswith("#"):
                found.append(href)
        if token.children:
            found.extend(_links(token.children))
    return found


def body_links(article: Article) -> list[str]:
    """Links written in the Markdown body (in-page ``#anchors`` excluded)."""
    return _links(_parser().parse(article.body))


def article_urls(article: Article) -> list[str]:
    """Every URL to verify for one article, sources first, without duplicates."""
    return list(dict.fromkeys([source.url for source in article.sources] + body_links(article)))
