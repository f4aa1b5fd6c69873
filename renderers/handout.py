"""The handout channel: a printable, tagged PDF made with WeasyPrint, and its large-print edition.

With ``[handout] large_print`` (the default) each article also gets
``handouts/<slug>-large-print.pdf``: the same template and content, restyled by
``handout-large-print.css`` (20 pt body in the bundled Liberation Sans, larger headings). Both
PDFs are made in the same render job (one worker of the pool), so they go live and roll back
together as the article's handout channel.

WeasyPrint fetches nothing from the network: its URL fetcher here serves
``data:`` URLs, files inside ``renderers/assets/`` and the article's own local images
(exactly those files, found inside the article's folder and of a type checked by their
bytes), and refuses anything else. A remote image never reaches it: the body is rendered
with its alt text instead (``markdown.channel_images``), and the check report warns
(``checks/images.py``), so nothing is decided, or logged to stderr, during the render.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import unquote, urlsplit

import segno
from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from clinicpress.errors import RenderError
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

from .base import Artifact, RenderContext, Renderer
from .markdown import (
    ASSETS_DIR,
    canonical_url,
    channel_images,
    css_markup,
    disclaimer,
    jinja_env,
    page_context,
    short_url,
    shown_images,
)

TEMPLATE = "handout.html.j2"
STYLESHEET = "handout.css"
# Read after STYLESHEET and overriding it: the same layout in large print.
LARGE_PRINT_STYLESHEET = "handout-large-print.css"
LARGE_PRINT_SUFFIX = "-large-print"
# PDF/UA-1 makes a tagged PDF (screen readers); WeasyPrint 70 supports it for ~5 % more time.
PDF_VARIANT = "pdf/ua-1"
DISCLAIMER = disclaimer("handout")

PageSize = Literal["letter", "a4"]
DEFAULT_PAGE_SIZE: PageSize = "letter"
# CSS ``size`` keywords; US clinics print on Letter, A4 is the option for everyone else.
_CSS_PAGE_SIZE: dict[PageSize, str] = {"letter": "Letter", "a4": "A4"}

_LOG = logging.getLogger(__name__)


class FetchRefused(ValueError):
    """The handout tried to load something other than data: or a bundled asset."""


class LocalOnlyURLFetcher(URLFetcher):  # type: ignore[misc]  # weasyprint ships no types
    """WeasyPrint 70's fetcher API: a ``URLFetcher`` whose ``fetch`` returns a response.

    WeasyPrint catches the exception (unless ``fail_on_errors``), logs a
    warning and renders on without the resource.
    """

    def __init__(self, assets_dir: Path = ASSETS_DIR, images: Mapping[Path, str] | None = None) -> None:
        super().__init__(allowed_protocols=("data", "file"), allow_redirects=False)
        self._assets = assets_dir.resolve()
        self._images = dict(images or {})  # an article's local image files → their media type

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> Any:
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            return super().fetch(url, headers)  # decoded in-process by urllib's DataHandler
        if scheme == "file":
            path = Path(unquote(urlsplit(url).path)).resolve()
            if path.is_file() and path.is_relative_to(self._assets):
                media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": media_type})
            if path in self._images:
                return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": self._images[path]})
        _LOG.warning("handout: refused to fetch %s (only data: URLs and bundled assets)", url[:200])
        raise FetchRefused(f"the handout fetches nothing outside renderers/assets: {url[:200]}")


URL_FETCHER = LocalOnlyURLFetcher()


def _fetcher(article: Article) -> LocalOnlyURLFetcher:
    """The shared fetcher, or one that also serves this article's local images (and no other file)."""
    images = {image.path: image.media_type for image in shown_images(article)}
    return LocalOnlyURLFetcher(images=images) if images else URL_FETCHER


# One FontConfiguration for every render: warm renders are ~100 ms with a shared one.
FONT_CONFIG = FontConfiguration()
# WeasyPrint does not promise thread safety and the font configuration is shared.
_LOCK = threading.Lock()


def site_page_size(site: SiteConfig) -> PageSize:
    """``[handout] page_size`` of the site config (validated there)."""
    return site.handout.page_size


def check_page_size(value: object) -> PageSize:
    text = str(value).strip().lower()
    for size in get_args(PageSize):
        if text == size:
            return size  # type: ignore[no-any-return]  # one of the Literal's own values
    raise RenderError(f"handout page size {value!r}; expected one of {', '.join(get_args(PageSize))}")


@functools.lru_cache(maxsize=64)
def qr_data_uri(url: str) -> str:
    """An SVG QR code of ``url`` as a data: URL (the fetcher serves data: and nothing remote)."""
    # Error level M survives a smudge or a fold; border=4 is the quiet zone scanners need.
    qr = segno.make(url, error="m", micro=False)
    uri: str = qr.svg_data_uri(scale=4, border=4, dark="#000", light="#fff", svgclass=None, lineclass=None)
    return uri


def handout_relpath(slug: str) -> str:
    """Where the handout goes under --out (the web root serves it too: ``web.served_handout``)."""
    return f"handouts/{slug}.pdf"


def large_print_relpath(slug: str) -> str:
    """Where the large-print handout goes under --out: ``handouts/<slug>-large-print.pdf``."""
    return f"handouts/{slug}{LARGE_PRINT_SUFFIX}.pdf"


def render_handout_html(
    article: Article, site: SiteConfig, page_size: PageSize | None = None, *, large_print: bool = False
) -> str:
    template = jinja_env().get_template(TEMPLATE)
    url = canonical_url(article, site)
    size = check_page_size(page_size) if page_size is not None else site_page_size(site)
    css = css_markup(STYLESHEET)
    if large_print:
        css += css_markup(LARGE_PRINT_STYLESHEET)
    return template.render(
        **page_context(article, site, channel_images(article, Channel.HANDOUT)),
        css=css,
        page_size=_CSS_PAGE_SIZE[size],
        large_print=large_print,
        disclaimer=DISCLAIMER,
        qr_data_uri=qr_data_uri(url),
        web_short_url=short_url(url),
    )


def render_handout_pdf(
    article: Article, site: SiteConfig, page_size: PageSize | None = None, *, large_print: bool = False
) -> bytes:
    html = render_handout_html(article, site, page_size, large_print=large_print)
    try:
        with _LOCK:
            document = HTML(string=html, base_url=ASSETS_DIR.as_uri() + "/", url_fetcher=_fetcher(article))
            pdf = document.write_pdf(font_config=FONT_CONFIG, pdf_variant=PDF_VARIANT)
    except Exception as exc:  # WeasyPrint raises many types; the caller wants one
        edition = "large-print handout" if large_print else "handout"
        raise RenderError(f"{article.key}: the {edition} PDF could not be made ({exc})") from exc
    if not isinstance(pdf, bytes):
        raise RenderError(f"{article.key}: WeasyPrint returned no PDF")
    return pdf


class HandoutRenderer(Renderer):
    channel = Channel.HANDOUT

    def __init__(self, page_size: PageSize | None = None) -> None:
        # None: the site's ``[handout] page_size`` (Letter when unset).
        self.page_size = check_page_size(page_size) if page_size is not None else None

    def render(self, article: Article, site: SiteConfig, context: RenderContext) -> list[Artifact]:
        prints = [(handout_relpath(article.key), False)]
        if site.handout.large_print:
            if article.key.endswith(LARGE_PRINT_SUFFIX):
                # Its handout would be another article's large-print file: one would overwrite the other.
                base = article.key.removesuffix(LARGE_PRINT_SUFFIX)
                raise RenderError(
                    f"{article.key}: a slug ending in {LARGE_PRINT_SUFFIX!r} names the large-print handout "
                    f"of an article {base!r} ([handout] large_print); choose another slug"
                )
            prints.append((large_print_relpath(article.key), True))
        return [
            Artifact(
                channel=self.channel,
                relpath=relpath,
                data=render_handout_pdf(article, site, self.page_size, large_print=large_print),
                media_type="application/pdf",
            )
            for relpath, large_print in prints
        ]
