"""Where articles come from: the canonical model and the Markdown loader."""

from clinicpress.sources.article import Article, Channel, FrontMatter, Reviewer, Source
from clinicpress.sources.loader import (
    Loaded,
    Skipped,
    discover_articles,
    load_article,
    load_articles,
    load_each,
)

__all__ = [
    "Article",
    "Channel",
    "FrontMatter",
    "Loaded",
    "Reviewer",
    "Skipped",
    "Source",
    "discover_articles",
    "load_article",
    "load_articles",
    "load_each",
]
