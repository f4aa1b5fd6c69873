"""The web channel: one static, self-contained HTML5 page per article."""

from __future__ import annotations

from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

from .base import Artifact, RenderContext, Renderer
from .markdown import css_markup, jinja_env, page_context

TEMPLATE = "web.html.j2"
STYLESHEET = "web.css"


def render_web_html(article: Article, site: SiteConfig, context: RenderContext) -> str:
    """The page as text; pure: every date comes from the article."""
    template = jinja_env().get_template(TEMPLATE)
    return template.render(**page_context(article, site), version=context.version, css=css_markup(STYLESHEET))


class WebRenderer(Renderer):
    channel = Channel.WEB

    def render(self, article: Article, site: SiteConfig, context: RenderContext) -> list[Artifact]:
        html = render_web_html(article, site, context)
        return [
            Artifact(
                channel=self.channel,
                relpath=f"web/{article.key}/index.html",
                data=html.encode("utf-8"),
                media_type="text/html",
            )
        ]
