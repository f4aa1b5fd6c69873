"""An article's version: the hash of its content, the site config and the templates."""

from __future__ import annotations

import hashlib

from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article

# The parts of the site config that appear in the artifacts. Settings that only steer
# checks, delivery or monitoring (the SMTP server, the subscribers file, alert URLs, …)
# must not make a new version: a new version is a new newsletter to every subscriber.
_SITE_PARTS_RENDERED: dict[str, bool | set[str]] = {
    "organization": True,
    "licenses": True,
    "handout": True,
    "newsletter": {"from_name", "from_address", "reply_to", "unsubscribe_url", "unsubscribe_mailto"},
}


def article_version(article: Article, site: SiteConfig, templates: str) -> str:
    """Hex sha256 over what decides the artifacts; the file's path is not part of it."""
    digest = hashlib.sha256()
    for part in (
        article.model_dump_json(exclude={"path"}),
        site.model_dump_json(include=_SITE_PARTS_RENDERED),
        templates,
    ):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()
