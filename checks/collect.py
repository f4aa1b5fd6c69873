"""Collect the URLs an article cites: its sources list and the links in its body."""

from __future__ import annotations

import functools

from markdown_it.token import Token

from clinicpress.renderers.markdown import body_tokens_of
from clinicpress.sources.article import Article


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
    return list(_body_links(article.body, len(article.sources)))


# A publish asks twice per article (the catalog's URL list, then the article's report), and a
# served process asks again every run: parse once per body (the cache's size bounds memory).
@functools.lru_cache(maxsize=4096)
def _body_links(body: str, source_count: int) -> tuple[str, ...]:
    # The renderers' own parse: the links checked are exactly the links published.
    return tuple(_links(body_tokens_of(body, source_count)))


def article_urls(article: Article) -> list[str]:
    """Every URL to verify for one article, sources first, without duplicates."""
    return list(dict.fromkeys([source.url for source in article.sources] + body_links(article)))
