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

An image is part of the format too: :func:`body_images` lists the body's images (one parse),
:func:`locate_image` finds a local one's file, never outside the article's folder, and
:func:`sniff_image` names its type by its bytes; the checks, the renderers, the version hash
and the importer all use these, so what is checked is what is embedded and published.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

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


# --- images ---------------------------------------------------------------------------------

# The image types every channel shows (web, handout, email) by their first bytes. SVG is not
# among them: it can carry scripts and external references, and nothing here sanitises it.
IMAGE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}


def sniff_image(data: bytes) -> str | None:
    """The media type the bytes are (PNG, JPEG, GIF or WebP, by their magic numbers), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class BodyImage:
    """One image of the body, as the parse has it."""

    src: str  # the address as the parser normalised it (percent-encoded); the renderers see the same
    alt: str  # its alternative text, as plain text ("" when the brackets are empty)
    line: int  # 1-based line in the body

    @property
    def remote(self) -> bool:
        return urlsplit(self.src).scheme.lower() in ("http", "https")

    @property
    def local(self) -> bool:
        """A file path (relative to the article's file): no scheme, no host."""
        parts = urlsplit(self.src)
        return not parts.scheme and not self.src.startswith("//")


def _alt(children: list[Token] | None) -> str:
    parts = [c.content for c in children or () if c.type in ("text", "code_inline")]
    return " ".join("".join(parts).split())


@functools.lru_cache(maxsize=1024)
def body_images(body: str, source_count: int) -> tuple[BodyImage, ...]:
    """The body's images in order (cached per body: the checks, renderers and version ask)."""
    if "![" not in body:  # no image syntax at all: no parse
        return ()
    found: list[BodyImage] = []
    for block in body_tokens_of(body, source_count):
        line = block.map[0] + 1 if block.map else 1
        stack = list(block.children or ())
        while stack:
            token = stack.pop(0)
            if token.type == "image":
                found.append(BodyImage(str(token.attrGet("src") or ""), _alt(token.children), line))
            elif token.children:
                stack[:0] = token.children
    return tuple(found)


@dataclass(frozen=True)
class LocalImage:
    """Where a local image's file is, or why it cannot be used."""

    src: str
    path: Path | None  # the file (symlinks resolved), inside the article's folder; None: see problem
    media_type: str | None  # by its bytes (:func:`sniff_image`); None: not a type every channel shows
    digest: str | None  # sha256 of its bytes
    problem: str | None  # why it cannot be used (absolute, outside the folder, no such file)


def locate_image(folder: Path, src: str) -> LocalImage:
    """The file a local image ``src`` names, relative to the article's ``folder``: never outside it.

    An absolute path, a path that leads out of ``folder`` (``..``, or a symlink that does), and a
    missing or unreadable file are a ``problem``, not a path: nothing outside is ever read.
    """
    relative = unquote(urlsplit(src).path)
    if not relative:
        return LocalImage(src, None, None, None, "names no file; expected a path relative to the article")
    if relative.startswith(("/", "\\")) or Path(relative).is_absolute():
        return LocalImage(src, None, None, None, "is an absolute path; expected one relative to the article")
    root = folder.resolve()
    target = (root / relative).resolve()  # follows symlinks: where the bytes really are
    if not target.is_relative_to(root):
        return LocalImage(src, None, None, None, f"leads outside the article's folder {folder}")
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return LocalImage(src, None, None, None, f"is missing: no such file {target}")
    except OSError as exc:
        return LocalImage(src, None, None, None, f"cannot be read ({exc.strerror or exc})")
    return LocalImage(src, target, sniff_image(data), hashlib.sha256(data).hexdigest(), None)


def article_images(body: str, source_count: int, article_path: Path) -> dict[str, LocalImage]:
    """Every local image of a body by its ``src``, located beside the article's file."""
    folder = article_path.parent
    return {
        image.src: locate_image(folder, image.src) for image in body_images(body, source_count) if image.local
    }
