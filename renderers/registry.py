"""Every channel's renderer, and the one call that renders an article."""

from __future__ import annotations

import hashlib

from clinicpress.faults import fault_point
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

from .base import Artifact, RenderContext, Renderer
from .handout import HandoutRenderer
from .markdown import ASSETS_DIR, TEMPLATES_DIR
from .newsletter import NewsletterRenderer
from .web import WebRenderer

# Insertion order is render order: web, handout, newsletter (cheap first, email last).
RENDERERS: dict[Channel, Renderer] = {
    Channel.WEB: WebRenderer(),
    Channel.HANDOUT: HandoutRenderer(),
    Channel.NEWSLETTER: NewsletterRenderer(),
}


def render_article(article: Article, site: SiteConfig, context: RenderContext) -> list[Artifact]:
    """Artifacts of the article's own channels, in the fixed order of ``RENDERERS``."""
    wanted = set(article.channels)
    artifacts: list[Artifact] = []
    for channel, renderer in RENDERERS.items():
        if channel in wanted:
            fault_point(f"render.{channel.value}")
            artifacts.extend(renderer.render(article, site, context))
    return artifacts


def template_fingerprint() -> str:
    """sha256 over every template and asset (name and bytes, sorted by name).

    Part of the article version, so that a template change re-publishes.
    """
    digest = hashlib.sha256()
    files = [
        p
        for folder in (TEMPLATES_DIR, ASSETS_DIR)
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".")
    ]
    for path in sorted(files, key=lambda p: (p.parent.name, p.name)):
        # Name and length are hashed too: renaming or splitting files changes the digest.
        name = f"{path.parent.name}/{path.name}".encode()
        data = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()
