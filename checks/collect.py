"""Collect the URLs an article cites: its sources list and the links in its body."""

from __future__ import annotations

from clinicpress.checks.body import body_facts
from clinicpress.checks.images import image_urls
from clinicpress.sources.article import Article


def body_links(article: Article) -> list[str]:
    """Links written in the Markdown body (in-page ``#anchors`` excluded)."""
    # The renderers' own parse (cached per body): the links checked are exactly the links published.
    return list(body_facts(article.body, len(article.sources)).links)


def article_urls(article: Article) -> list[str]:
    """Every URL to verify for one article, sources first, without duplicates."""
    cited = [source.url for source in article.sources]
    return list(dict.fromkeys(cited + body_links(article) + image_urls(article)))
