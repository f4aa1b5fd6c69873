"""What the checks read from an article's body, from one Markdown parse.

The links (to check) and the prose (to grade) come from the article
syntax's parse (``sources/markdown.py``, the one the renderers render), so
what is checked is what is published. Both come from one parse, cached per
body: a catalog publish asks for every article's links, then for every
article's prose, and a parse costs more than both answers. A body's links
may also be known without a parse: read from the facts cache on disk
(``checks/facts_cache.py``, :func:`know_links`), which a miss filled from
this same parse.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from markdown_it.token import Token

from clinicpress.sources.markdown import body_tokens_of


@dataclass(frozen=True)
class BodyFacts:
    links: tuple[str, ...]  # links written in the body, in order (in-page ``#anchors`` excluded)
    body: str = field(repr=False)
    source_count: int = field(repr=False)

    @property
    def prose(self) -> tuple[str, ...]:
        """Paragraphs (list items and quotes included) as plain text: parsed when first asked for."""
        return parsed_prose(self.body, self.source_count)


# Links read from the facts cache, by (body, source count); bounded like the parse cache.
_KNOWN_LINKS: dict[tuple[str, int], tuple[str, ...]] = {}
KNOWN_LIMIT = 8192


def know_links(body: str, source_count: int, links: tuple[str, ...]) -> None:
    """Take ``links`` as this body's links without parsing it (they came from its parse before)."""
    if len(_KNOWN_LINKS) >= KNOWN_LIMIT:
        _KNOWN_LINKS.clear()
    _KNOWN_LINKS[(body, source_count)] = links


@functools.lru_cache(maxsize=4096)
def body_facts(body: str, source_count: int) -> BodyFacts:
    known = _KNOWN_LINKS.get((body, source_count))
    links = known if known is not None else _parse(body, source_count)[0]
    return BodyFacts(links=links, body=body, source_count=source_count)


def parsed_prose(body: str, source_count: int) -> tuple[str, ...]:
    return _parse(body, source_count)[1]


# The one parse of a body: its links and its prose. The cache's size bounds memory; the answers
# are small (the token stream is not kept).
@functools.lru_cache(maxsize=4096)
def _parse(body: str, source_count: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    tokens = body_tokens_of(body, source_count)
    return tuple(_links(tokens)), tuple(_prose_blocks(tokens))


def _links(tokens: list[Token]) -> list[str]:
    found: list[str] = []
    for token in tokens:
        if token.type == "link_open":
            href = token.attrGet("href")
            if isinstance(href, str) and not href.startswith("#"):
                found.append(href)
        if token.children:
            found.extend(_links(token.children))
    return found


def _inline_text(children: Sequence[Token] | None) -> str:
    parts: list[str] = []
    for token in children or ():
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif token.type == "image":
            parts.append(_inline_text(token.children))
        # citation, link_open/close (the address), html: not prose
    return " ".join("".join(parts).split())


def _prose_blocks(tokens: list[Token]) -> list[str]:
    blocks: list[str] = []
    depth_table = 0
    for index, token in enumerate(tokens):
        if token.type == "table_open":
            depth_table += 1
        elif token.type == "table_close":
            depth_table -= 1
        elif token.type == "paragraph_open" and not depth_table:
            text = _inline_text(tokens[index + 1].children)
            if text:
                # A list item without a full stop is still one sentence, not part of the next.
                blocks.append(text if text[-1] in '.!?:;"”’)' else text + ".")
    return blocks


__all__ = ["BodyFacts", "body_facts", "know_links", "parsed_prose"]
