"""Where articles come from: the canonical model and the Markdown loader."""

from clinicpress.sources.article import Article, Channel, FrontMatter, Reviewer, Source
from clinicpress.sources.loader import discover_articles, load_article, load_articles

__all__ = [
    "Article",
    "Channel",
    "FrontMatter",
    "Reviewer",
    "Source",
    "discover_articles",
    "load_article",
    "load_articles",
]
