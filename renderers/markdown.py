"""The article body rendered once, and what every channel's template shares.

The body is parsed with the article syntax of ``sources/markdown.py`` (raw
HTML off, links validated, ``[^N]`` citations); this module adds how a
citation looks in HTML and renders the body once per body.

This module also holds the small helpers the three channels share (one Jinja
environment, the canonical URL, the sources as template data, the CSS
assets), so that a change to any of them reaches every channel alike.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markdown_it.renderer import RendererProtocol
from markdown_it.token import Token
from markupsafe import Markup

from clinicpress.errors import RenderError
from clinicpress.site import SiteConfig, format_date
from clinicpress.sources.article import Article
from clinicpress.sources.markdown import body_tokens_of, make_parser, parse_env

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


# The article's own Markdown syntax (sources/markdown.py), plus how a citation looks in HTML.
MD = make_parser()
MD.add_render_rule("citation", _render_citation)


def body_tokens(article: Article) -> list[Token]:
    """The body's token stream (fresh each call: tokens are mutable)."""
    return body_tokens_of(article.body, len(article.sources))


@functools.lru_cache(maxsize=64)
def _body_html(body: str, source_count: int) -> str:
    env = parse_env(source_count)
    html: str = MD.renderer.render(MD.parse(body, env), MD.options, env)
    return html


def render_body_html(article: Article) -> Markup:
    """The body as safe HTML, rendered once per (body, number of sources)."""
    # Markup: markdown-it escaped everything already (raw HTML is off).
    return Markup(_body_html(article.body, len(article.sources)))  # noqa: S704


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


def review_line(article: Article) -> str:
    """The one review sentence every channel prints (and the consistency check reads back).

    ``Reviewed by Jane Doe, MD on June 1, 2025, next review June 1, 2026``, or
    ``Last reviewed June 1, 2025, next review June 1, 2026`` when no reviewer is named.
    """
    when = format_date(article.last_reviewed)
    if article.reviewed_by is not None:
        line = f"Reviewed by {article.reviewed_by.display()} on {when}"
    else:
        line = f"Last reviewed {when}"
    return f"{line}, next review {format_date(article.review_due)}"


# Printed by every channel: health content for people in addiction treatment must say
# where to turn in a crisis, and that it does not replace their care team.
CRISIS_LINE = (
    "If you are in crisis or thinking about suicide, call or text 988, "
    "the Suicide & Crisis Lifeline, any time. In an emergency, call 911."
)


def disclaimer(noun: str) -> str:
    """``This handout supports, not replaces, the advice of your care team.``"""
    return f"This {noun} supports, not replaces, the advice of your care team."


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


def page_context(article: Article, site: SiteConfig) -> dict[str, Any]:
    """The template variables every channel shares."""
    return {
        "article": article,
        "site": site,
        "org": site.organization,
        "title": article.title,
        "summary": article.summary,
        "lang": site.organization.language,
        "canonical_url": canonical_url(article, site),
        "published": format_date(article.published),
        "published_iso": article.published.isoformat(),
        "last_reviewed": format_date(article.last_reviewed),
        "last_reviewed_iso": article.last_reviewed.isoformat(),
        "next_review": format_date(article.review_due),
        "next_review_iso": article.review_due.isoformat(),
        "reviewed_by": article.reviewed_by.display() if article.reviewed_by else None,
        "review_line": review_line(article),
        "body_html": render_body_html(article),
        "sources": source_entries(article),
        "license_lines": [lic.line() for lic in site.licenses],
        # The web footer links each statement to where a reader verifies it (HSC §11831.12).
        "licenses": [
            {"statement": lic.statement(), "particulars": lic.particulars(), "url": lic.lookup_url}
            for lic in site.licenses
        ],
        "org_line": org_line(site),
        "crisis_line": CRISIS_LINE,
    }


@functools.cache
def jinja_env() -> Environment:
    """One autoescaping environment for every HTML template."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template here is HTML
        undefined=StrictUndefined,  # a typo in a template fails the render, not the reader
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


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
    "css_markup",
    "disclaimer",
    "jinja_env",
    "org_line",
    "page_context",
    "render_body_html",
    "review_line",
    "short_url",
    "source_entries",
]
