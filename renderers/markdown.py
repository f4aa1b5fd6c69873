"""The article body rendered once, and what every channel's template shares.

The body is parsed with the article syntax of ``sources/markdown.py`` (raw
HTML off, links validated, ``[^N]`` citations); this module adds how a
citation looks in HTML and renders the body once per body.

This module also holds the small helpers the three channels share (one Jinja
environment, the canonical URL, the sources as template data, the CSS
assets), so that a change to any of them reaches every channel alike.

Images (issue 24 part 5): a local image (a file beside the article) is shown by every channel
from where that channel gets it: the web page from ``web/<slug>/images/<name>`` (the release
serves the file there: :func:`image_artifacts`), the handout from the file itself (WeasyPrint's
fetcher serves exactly these files), the email from the published copy's absolute URL. A
channel that cannot show an image prints its alt text instead (:func:`channel_images`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML, RendererProtocol
from markdown_it.token import Token
from markdown_it.utils import OptionsDict
from markupsafe import Markup

from clinicpress.errors import RenderError
from clinicpress.settings.crisis import DEFAULT_CRISIS_TEXT
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel, edition_language
from clinicpress.sources.markdown import (
    IMAGE_TYPES,
    article_images,
    body_images,
    body_tokens_of,
    make_parser,
    parse_env,
)

from . import i18n
from .base import Artifact

RENDERERS_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = RENDERERS_DIR / "templates"
ASSETS_DIR = RENDERERS_DIR / "assets"


def _render_citation(
    renderer: RendererProtocol,
    tokens: Sequence[Token],
    idx: int,
    options: Mapping[str, Any],
    env: Any,
) -> str:
    number = int(tokens[idx].meta["n"])
    # U+2060 WORD JOINER: a line may not break between "depression." and its "[4]".
    return f'&#8288;<sup class="cite"><a href="#source-{number}">[{number}]</a></sup>'


# The env key through which the image rule learns where this channel shows each image.
_ENV_IMAGES = "clinicpress_images"
# An image's ``src`` → where the channel shows it from; None: its alt text stands in. An image
# not in the map is rendered as written (a remote one on the web page, a data: URL).
ImageMap = Mapping[str, str | None]


def _render_image(
    renderer: RendererProtocol,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: Any,
) -> str:
    token = tokens[idx]
    images: ImageMap = env.get(_ENV_IMAGES) or {}
    src = str(token.attrGet("src") or "")
    assert isinstance(renderer, RendererHTML)
    if src in images:
        where = images[src]
        if where is None:
            return escapeHtml(renderer.renderInlineAsText(token.children or [], options, env))
        token.attrSet("src", where)
    return renderer.image(tokens, idx, options, env)


# The article's own Markdown syntax (sources/markdown.py), plus how a citation and an image look.
MD = make_parser()
MD.add_render_rule("citation", _render_citation)
MD.add_render_rule("image", _render_image)


def body_tokens(article: Article) -> list[Token]:
    """The body's token stream (fresh each call: tokens are mutable)."""
    return body_tokens_of(article.body, len(article.sources))


@functools.lru_cache(maxsize=64)
def _body_html(body: str, source_count: int, images: tuple[tuple[str, str | None], ...] = ()) -> str:
    env = {**parse_env(source_count), _ENV_IMAGES: dict(images)}
    html: str = MD.renderer.render(MD.parse(body, env), MD.options, env)
    return html


def render_body_html(article: Article, images: ImageMap | None = None) -> Markup:
    """The body as safe HTML, rendered once per (body, number of sources, images).

    ``images``: where this channel shows each image (:func:`channel_images`); None: the web page's.
    """
    if images is None:
        images = channel_images(article, Channel.WEB)
    # Markup: markdown-it escaped everything already (raw HTML is off).
    return Markup(_body_html(article.body, len(article.sources), tuple(images.items())))  # noqa: S704


# Under the web root, beside the page: web/<slug>/images/<name>.
IMAGES_DIR = "images"
_NAME_CHARS = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class ShownImage:
    """A local image every channel shows: its file and the name the web root serves it under."""

    src: str
    path: Path
    media_type: str
    name: str  # web/<slug>/images/<name>


def shown_images(article: Article) -> list[ShownImage]:
    """The article's local images that every channel shows: found inside its folder, and PNG, JPEG,
    GIF or WebP by their bytes (``checks/images.py`` reports the others). Names are the file's own,
    lowercased, with the extension of its type; a second file of the same name gets ``-2``."""
    located = article_images(article.body, len(article.sources), article.path)
    shown: list[ShownImage] = []
    taken: set[str] = set()
    for src, found in located.items():
        if found.path is None or found.media_type is None:
            continue
        stem = _NAME_CHARS.sub("-", found.path.stem.lower()).strip("-_")[:60] or "image"
        suffix = IMAGE_TYPES[found.media_type]
        name, count = f"{stem}{suffix}", 1
        while name in taken:
            count += 1
            name = f"{stem}-{count}{suffix}"
        taken.add(name)
        shown.append(ShownImage(src, found.path, found.media_type, name))
    return shown


def channel_images(
    article: Article, channel: Channel, site: SiteConfig | None = None
) -> dict[str, str | None]:
    """Where ``channel`` shows each image of the article from (None: its alt text stands in).

    The web page: ``images/<name>`` beside it. The handout: the file itself (``file:``; the handout's
    fetcher serves exactly these files), never a remote image. The email (``site`` needed): the web
    copy's absolute URL. A local image that is missing, outside the article's folder or of another
    type: its alt text, everywhere.
    """
    images = body_images(article.body, len(article.sources))
    if not images:
        return {}
    shown = {image.src: image for image in shown_images(article)}
    where: dict[str, str | None] = {}
    for image in images:
        if image.local:
            found = shown.get(image.src)
            if found is None:
                where[image.src] = None
            elif channel is Channel.HANDOUT:
                where[image.src] = found.path.as_uri()
            elif channel is Channel.NEWSLETTER:
                assert site is not None, "the email's image URLs need the site's base URL"
                where[image.src] = f"{canonical_url(article, site)}{IMAGES_DIR}/{found.name}"
            else:
                where[image.src] = f"{IMAGES_DIR}/{found.name}"
        elif image.remote and channel is Channel.HANDOUT:
            where[image.src] = None  # the handout fetches nothing: checks/images.py warns
    return where


def image_artifacts(article: Article) -> list[Artifact]:
    """The article's local images as the web root serves them (``web/<slug>/images/<name>``): the
    web page shows them from there and the email links them there. None without a web page or email."""
    if not {Channel.WEB, Channel.NEWSLETTER} & set(article.channels):
        return []
    return [
        Artifact(
            channel=Channel.WEB,
            relpath=f"web/{article.key}/{IMAGES_DIR}/{image.name}",
            data=image.path.read_bytes(),
            media_type=image.media_type,
        )
        for image in shown_images(article)
    ]


def canonical_url(article: Article, site: SiteConfig) -> str:
    """Where the web channel serves the article: ``<base_url>/<slug>/``."""
    return f"{site.organization.base_url}/{article.key}/"


@dataclass(frozen=True)
class SourceEntry:
    """One numbered source as the templates and the text part show it."""

    number: int
    title: str
    url: str
    doi: str | None
    pmid: str | None


def source_entries(article: Article) -> list[SourceEntry]:
    return [
        SourceEntry(number=i, title=s.title, url=s.url, doi=s.doi, pmid=s.pmid)
        for i, s in enumerate(article.sources, start=1)
    ]


def review_line(article: Article, language: str = i18n.SOURCE_LANGUAGE) -> str:
    """The one review sentence every channel prints, in ``language`` (``i18n.review_line``)."""
    return i18n.review_line(article, language)


# Printed by every channel: health content for people in addiction treatment must say
# where to turn in a crisis ([crisis] text_by_language; this is the English default), and that
# it does not replace their care team.
CRISIS_LINE = DEFAULT_CRISIS_TEXT["en"]


def disclaimer(noun: str, language: str = i18n.SOURCE_LANGUAGE) -> str:
    """``This handout supports, not replaces, the advice of your care team.`` in ``language``."""
    return i18n.disclaimer(noun, language)


def short_url(url: str) -> str:
    """What a person types from paper: no scheme, no ``www.``, no trailing slash."""
    short = re.sub(r"^https?://(www\.)?", "", url, flags=re.IGNORECASE)
    return short.rstrip("/")


def org_line(site: SiteConfig) -> str:
    """Name and postal address, without saying the name twice when the address starts with it."""
    org = site.organization
    if org.postal_address.startswith(org.name):
        return org.postal_address
    return f"{org.name} · {org.postal_address}"


def page_context(article: Article, site: SiteConfig, images: ImageMap | None = None) -> dict[str, Any]:
    """The template variables every channel shares, in the edition's language (its gettext too)."""
    language = edition_language(article, site)

    def long_date(value: date) -> str:
        return i18n.long_date(value, language)

    return {
        **i18n.template_gettext(language),
        "article": article,
        "site": site,
        "org": site.organization,
        "title": article.title,
        "summary": article.summary,
        "lang": language,
        "canonical_url": canonical_url(article, site),
        "published": long_date(article.published),
        "published_iso": article.published.isoformat(),
        "last_reviewed": long_date(article.last_reviewed),
        "last_reviewed_iso": article.last_reviewed.isoformat(),
        "next_review": long_date(article.review_due),
        "next_review_iso": article.review_due.isoformat(),
        "reviewed_by": article.reviewed_by.display() if article.reviewed_by else None,
        "review_line": i18n.review_line(article, language),
        "body_html": render_body_html(article, images),  # images: render_body_html's
        "sources": source_entries(article),
        "license_lines": i18n.license_lines(site, language),
        # The web footer links each statement to where a reader verifies it (HSC §11831.12).
        "licenses": i18n.license_parts(site, language),
        "org_line": org_line(site),
        "crisis_line": i18n.crisis_line(site, language),
        "page_numbers": i18n.page_numbers_css(language),
    }


@functools.cache
def jinja_env() -> Environment:
    """One autoescaping environment for every HTML template, in every language.

    The language comes with the template variables (``i18n.template_gettext``, part of
    :func:`page_context`): a template rendered without one fails at its first word.
    """
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template here is HTML
        undefined=StrictUndefined,  # a typo in a template fails the render, not the reader
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    i18n.install(env)
    return env


@functools.cache
def asset_text(name: str) -> str:
    """A CSS asset's text (trusted: it is ours, never the article's)."""
    return (ASSETS_DIR / name).read_text(encoding="utf-8")


def css_markup(name: str) -> Markup:
    # A CSS file is ours, but "</style" in it would still end the element early.
    css = asset_text(name)
    if re.search(r"</style", css, re.IGNORECASE):
        raise RenderError(f"renderers/assets/{name} contains '</style'")
    return Markup(css)  # noqa: S704


__all__ = [
    "ASSETS_DIR",
    "CRISIS_LINE",
    "MD",
    "TEMPLATES_DIR",
    "SourceEntry",
    "asset_text",
    "body_tokens",
    "body_tokens_of",
    "canonical_url",
    "channel_images",
    "css_markup",
    "disclaimer",
    "image_artifacts",
    "jinja_env",
    "org_line",
    "page_context",
    "render_body_html",
    "review_line",
    "short_url",
    "shown_images",
    "source_entries",
]
