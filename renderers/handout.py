"""The handout channel: a printable, tagged PDF made with WeasyPrint.

WeasyPrint fetches nothing from the network: its URL fetcher here serves
``data:`` URLs and files inside ``renderers/assets/`` and refuses anything
else (a remote image in an article is dropped with a warning, never fetched).
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from clinicpress.errors import RenderError
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

from .base import Artifact, RenderContext, Renderer
from .markdown import ASSETS_DIR, css_markup, jinja_env, page_context

TEMPLATE = "handout.html.j2"
STYLESHEET = "handout.css"
# PDF/UA-1 makes a tagged PDF (screen readers); WeasyPrint 70 supports it for ~5 % more time.
PDF_VARIANT = "pdf/ua-1"
DISCLAIMER = "This handout supports, not replaces, the advice of your care team."

_LOG = logging.getLogger(__name__)


class FetchRefused(ValueError):
    """The handout tried to load something other than data: or a bundled asset."""


class LocalOnlyURLFetcher(URLFetcher):  # type: ignore[misc]  # weasyprint ships no types
    """WeasyPrint 70's fetcher API: a ``URLFetcher`` whose ``fetch`` returns a response.

    WeasyPrint catches the exception (unless ``fail_on_errors``), logs a
    warning and renders on without the resource.
    """

    def __init__(self, assets_dir: Path = ASSETS_DIR) -> None:
        super().__init__(allowed_protocols=("data", "file"), allow_redirects=False)
        self._assets = assets_dir.resolve()

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> Any:
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            return super().fetch(url, headers)  # decoded in-process by urllib's DataHandler
        if scheme == "file":
            path = Path(unquote(urlsplit(url).path)).resolve()
            if path.is_file() and path.is_relative_to(self._assets):
                media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": media_type})
        _LOG.warning("handout: refused to fetch %s (only data: URLs and bundled assets)", url[:200])
        raise FetchRefused(f"the handout fetches nothing outside renderers/assets: {url[:200]}")


URL_FETCHER = LocalOnlyURLFetcher()
# One FontConfiguration for every render: warm renders are ~100 ms with a shared one.
FONT_CONFIG = FontConfiguration()
# WeasyPrint does not promise thread safety and the font configuration is shared.
_LOCK = threading.Lock()


def render_handout_html(article: Article, site: SiteConfig) -> str:
    template = jinja_env().get_template(TEMPLATE)
    return template.render(**page_context(article, site), css=css_markup(STYLESHEET))


def render_handout_pdf(article: Article, site: SiteConfig) -> bytes:
    html = render_handout_html(article, site)
    try:
        with _LOCK:
            document = HTML(string=html, base_url=ASSETS_DIR.as_uri() + "/", url_fetcher=URL_FETCHER)
            pdf = document.write_pdf(font_config=FONT_CONFIG, pdf_variant=PDF_VARIANT)
    except Exception as exc:  # WeasyPrint raises many types; the caller wants one
        raise RenderError(f"{article.key}: the handout PDF could not be made ({exc})") from exc
    if not isinstance(pdf, bytes):
        raise RenderError(f"{article.key}: WeasyPrint returned no PDF")
    return pdf


class HandoutRenderer(Renderer):
    channel = Channel.HANDOUT

    def render(self, article: Article, site: SiteConfig, context: RenderContext) -> list[Artifact]:
        return [
            Artifact(
                channel=self.channel,
                relpath=f"handouts/{article.key}.pdf",
                data=render_handout_pdf(article, site),
                media_type="application/pdf",
            )
        ]
