"""The article body rendered once, and what every channel's template shares.

The body is parsed by markdown-it-py with raw HTML off (the ``js-default``
preset), so ``<script>`` in an article becomes text, and its ``validateLink``
keeps ``javascript:``, ``vbscript:``, ``file:`` and non-image ``data:`` URLs
from becoming links. ``[^N]`` is a citation of ``sources[N-1]``.

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
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererProtocol
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markupsafe import Markup

from clinicpress.errors import RenderError
from clinicpress.site import SiteConfig, format_date
from clinicpress.sources.article import CITATION, Article

RENDERERS_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = RENDERERS_DIR / "templates"
ASSETS_DIR = RENDERERS_DIR / "assets"

# The env key through which the citation rule learns how many sources exist.
_ENV_SOURCES = "clinicpress_sources"


def _citation_rule(state: StateInline, silent: bool) -> bool:
    """Inline rule: ``[^N]`` → a ``citation`` token carrying N."""
    if state.src[state.pos] != "[":
        return False
    match = CITATION.match(state.src, state.pos)
    if match is None:
        return False
    number = int(match.group(1))
    count = state.env.get(_ENV_SOURCES)
    # Fail closed: a citation that points at no source must not reach a reader.
    if isinstance(count, int) and not 1 <= number <= count:
        raise RenderError(
            f"the body cites [^{number}] but the article lists {count} source(s); expected [^1]..[^{count}]"
        )
    if not silent:
        token = state.push("citation", "", 0)
        token.meta = {"n": number}
        token.markup = match.group(0)
    state.pos = match.end()
    return True


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


def _demote_h1(state: StateCore) -> None:
    """The page title is the only h1: a ``#`` heading in the body becomes h2."""
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close") and token.tag == "h1":
            token.tag = "h2"


def _make_parser() -> MarkdownIt:
    # js-default: html=False, tables and strikethrough on, links validated.
    md = MarkdownIt("js-default")
    md.inline.ruler.before("link", "citation", _citation_rule)
    md.core.ruler.push("demote_h1", _demote_h1)
    md.add_render_rule("citation", _render_citation)
    return md


MD = _make_parser()


def body_tokens(article: Article) -> list[Token]:
    """The body's token stream (fresh each call: tokens are mutable)."""
    return body_tokens_of(article.body, len(article.sources))


def body_tokens_of(body: str, source_count: int) -> list[Token]:
    """``body_tokens`` from the two things the parse depends on (for callers that cache)."""
    return MD.parse(body, {_ENV_SOURCES: source_count})


@functools.lru_cache(maxsize=64)
def _body_html(body: str, source_count: int) -> str:
    env: dict[str, Any] = {_ENV_SOURCES: source_count}
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
