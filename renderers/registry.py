"""Every channel's renderer, and the one call that renders an article."""

from __future__ import annotations

from clinicpress.faults import fault_point
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

from .base import Artifact, RenderContext, Renderer
from .fingerprint import template_fingerprint
from .handout import HandoutRenderer
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


__all__ = ["RENDERERS", "render_article", "template_fingerprint"]
