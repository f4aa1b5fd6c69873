"""The article body's Markdown syntax: one parser for every reader of the body.

The body is parsed by markdown-it-py with raw HTML off (the ``js-default``
preset), so ``<script>`` in an article becomes text, and its ``validateLink``
keeps ``javascript:``, ``vbscript:``, ``file:`` and non-image ``data:`` URLs
from becoming links. ``[^N]`` is a citation of ``sources[N-1]``; a ``#``
heading is demoted to h2 (the title is the page's only h1).

The checks read links and prose from this parse, and the renderers render it
(adding how a citation looks in HTML), so what is checked is what is
published. It sits in ``sources/`` because it is part of the article format,
below both (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from clinicpress.errors import RenderError
from clinicpress.sources.article import CITATION

# The env key through which the citation rule learns how many sources exist.
_ENV_SOURCES = "clinicpress_sources"


def parse_env(source_count: int) -> dict[str, Any]:
    """The markdown-it env a parse of a body with ``source_count`` sources needs."""
    return {_ENV_SOURCES: source_count}


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


def _demote_h1(state: StateCore) -> None:
    """The page title is the only h1: a ``#`` heading in the body becomes h2."""
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close") and token.tag == "h1":
            token.tag = "h2"


def make_parser() -> MarkdownIt:
    """A parser of the article syntax; a renderer adds its render rule for ``citation`` tokens."""
    # js-default: html=False, tables and strikethrough on, links validated.
    md = MarkdownIt("js-default")
    md.inline.ruler.before("link", "citation", _citation_rule)
    md.core.ruler.push("demote_h1", _demote_h1)
    return md


_PARSER = make_parser()


def body_tokens_of(body: str, source_count: int) -> list[Token]:
    """A body's token stream (fresh each call: tokens are mutable)."""
    return _PARSER.parse(body, parse_env(source_count))
