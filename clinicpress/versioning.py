"""An article's version: the hash of its content, the site config and the templates."""

from __future__ import annotations

import hashlib

from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article


def article_version(article: Article, site: SiteConfig, templates: str) -> str:
    """Hex sha256 over what decides the artifacts; the file's path is not part of it."""
    digest = hashlib.sha256()
    for part in (
        article.model_dump_json(exclude={"path"}),
        site.model_dump_json(),
        templates,
    ):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()
