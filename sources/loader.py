"""Load canonical articles: Markdown files with YAML front matter.

Every failure is an :class:`ArticleError` naming the file, the field and what
was expected; a YAML error also gives its line in the file.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from clinicpress.errors import ArticleError, InputError
from clinicpress.sources.article import Article, FrontMatter
from clinicpress.validation import input_error_from

DEFAULT_CONTENT_DIR = Path("content")
MAX_ARTICLE_BYTES = 1024 * 1024
MAX_YAML_ALIASES = 0  # anchors/aliases are never needed in front matter; refusing them stops YAML bombs
# Front matter is at most 3 levels deep (sources → item → key); PyYAML composes recursively, so a
# file of 100,000 '[' would otherwise end in RecursionError instead of a message.
MAX_YAML_DEPTH = 16
_FENCE = "---"
# Lines end at CR, LF or CRLF only: str.splitlines() also splits at U+2028, \x0c and others,
# which no editor shows as a line break.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


_RESOLVERS_WITHOUT_DATES = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _FrontMatterLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (``*name``): a billion-laughs file gets nowhere.

    It also leaves dates as text: YAML's own date parsing raises a bare
    ValueError for ``2026-13-40``, while the model names the field.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.yaml_implicit_resolvers = _RESOLVERS_WITHOUT_DATES
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not allowed in front matter",
                problem_mark=event.start_mark,
            )
        if self._depth >= MAX_YAML_DEPTH:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(
                problem=f"nested more than {MAX_YAML_DEPTH} levels deep", problem_mark=event.start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML keeps the last of two equal keys without a word; an editor would not know
        # which "title" or "published" is the one that counts.
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.MarkedYAMLError(
                        problem=f"duplicate key {key_node.value!r}", problem_mark=key_node.start_mark
                    )
                seen.add(key_node.value)
        # Named, not super(): the libyaml loader below shares this method.
        return yaml.constructor.SafeConstructor.construct_mapping(self, node, deep)


class _CFrontMatterLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's SafeLoader (about 9x faster here) with the same rules, after :func:`_prescan`.

    libyaml composes in C, so aliases and depth are refused beforehand, from its events.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.yaml_implicit_resolvers = _RESOLVERS_WITHOUT_DATES

    construct_mapping = _FrontMatterLoader.construct_mapping


def _prescan(front: str) -> None:
    """Refuse what _FrontMatterLoader refuses while composing: aliases, and nesting too deep."""
    depth = 0
    for event in yaml.parse(front, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not allowed in front matter",
                problem_mark=event.start_mark,  # type: ignore[arg-type]  # libyaml's Mark has the same fields
            )
        if isinstance(event, yaml.CollectionStartEvent | yaml.ScalarEvent) and depth >= MAX_YAML_DEPTH:
            raise yaml.MarkedYAMLError(
                problem=f"nested more than {MAX_YAML_DEPTH} levels deep",
                problem_mark=event.start_mark,  # type: ignore[arg-type]
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _load_front_matter(front: str) -> Any:
    if not yaml.__with_libyaml__:
        return yaml.load(front, Loader=_FrontMatterLoader)  # noqa: S506 - a SafeLoader subclass
    _prescan(front)
    return yaml.load(front, Loader=_CFrontMatterLoader)  # noqa: S506 - a SafeLoader subclass


def _split_front_matter(path: Path, text: str) -> tuple[str, str, int]:
    """Return (front matter, body, line number where the body starts)."""
    lines = _LINE.findall(text)
    if not lines or lines[0].strip() != _FENCE:
        raise ArticleError(
            path,
            "front matter",
            "the file does not start with '---'",
            "YAML front matter between '---' lines",
        )
    for index, line in enumerate(lines[1:], start=1):
        # Only at column 0: an indented '...' or '---' is text inside a YAML block scalar.
        if line.rstrip() in (_FENCE, "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    raise ArticleError(path, "front matter", "no closing '---' line", "front matter closed by '---'")


def _parse_yaml(path: Path, front: str) -> dict[str, Any]:
    try:
        data = _load_front_matter(front)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 2 if mark is not None else "?"  # +1 for 1-based, +1 for the '---' line
        raise ArticleError(
            path, "front matter", f"invalid YAML at line {line}: {exc.problem}", "valid YAML"
        ) from exc
    except yaml.YAMLError as exc:
        problem = f"invalid YAML: {_one_line(str(exc))}"
        raise ArticleError(path, "front matter", problem, "valid YAML") from exc
    except (ValueError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise these bare, e.g. int() of a 5,000-digit number.
        raise ArticleError(
            path, "front matter", f"a value cannot be read ({_one_line(str(exc))})", "valid YAML"
        ) from exc
    if data is None:
        raise ArticleError(
            path, "front matter", "is empty", "at least title, summary, published, last_reviewed"
        )
    if not isinstance(data, dict):
        raise ArticleError(path, "front matter", f"is a {type(data).__name__}", "a mapping of keys to values")
    return data


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_article(path: Path | str) -> Article:
    """Read one article file and validate it against the canonical model."""
    article_path = Path(path)
    return _parse_article(article_path, _read(article_path))


def _read(article_path: Path) -> bytes:
    try:
        raw = article_path.read_bytes()
    except FileNotFoundError as exc:
        raise ArticleError(article_path, None, "file not found", "a Markdown article") from exc
    except IsADirectoryError as exc:
        raise ArticleError(article_path, None, "is a folder", "a Markdown article file") from exc
    except OSError as exc:
        raise ArticleError(article_path, None, f"cannot read ({exc.strerror})") from exc
    if len(raw) > MAX_ARTICLE_BYTES:
        raise ArticleError(
            article_path, None, f"file is {len(raw):,} bytes", f"at most {MAX_ARTICLE_BYTES:,} bytes"
        )
    if b"\x00" in raw:
        raise ArticleError(article_path, None, "is a binary file", "UTF-8 Markdown text")
    return raw


# The memo keys (:func:`memo_key`) of the files _parse_article parsed in this process: kept by its cache.
_PARSED: set[str] = set()


# A served process publishes the same catalog again and again: an unchanged file (same path,
# same bytes) is not parsed again. Articles are frozen, so sharing one is safe; errors are not kept.
@functools.lru_cache(maxsize=4096)
def _parse_article(article_path: Path, raw: bytes) -> Article:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(
            article_path, None, f"not UTF-8 text (bad byte at offset {exc.start})", "UTF-8 Markdown text"
        ) from exc

    if len(_PARSED) >= 8192:
        _PARSED.clear()
    _PARSED.add(memo_key(article_path, raw))
    front, body, body_line = _split_front_matter(article_path, text)
    data = _parse_yaml(article_path, front)
    try:
        front_matter = FrontMatter.model_validate(data)
    except ValidationError as exc:
        raise input_error_from(exc, article_path, ArticleError, model=FrontMatter) from exc

    if not body.strip():
        raise ArticleError(
            article_path, "body", "is empty", f"Markdown text after the front matter (line {body_line})"
        )
    article = Article(**front_matter.model_dump(), body=body.strip() + "\n", path=article_path)
    _check_citations(article)
    return article


def _check_citations(article: Article) -> None:
    count = len(article.sources)
    for number in article.cited_numbers():
        if not 1 <= number <= count:
            raise ArticleError(
                article.path,
                "body",
                f"cites [^{number}] but sources has {count} entr{'y' if count == 1 else 'ies'}",
                f"[^1] to [^{count}]" if count else "a sources list in the front matter",
            )


def discover_articles(
    paths: Sequence[Path | str] = (), content_dir: Path = DEFAULT_CONTENT_DIR
) -> list[Path]:
    """The article files named on the command line, or every ``*.md`` in content/."""
    targets = [Path(p) for p in paths] or [content_dir]
    found: list[Path] = []
    for target in targets:
        if target.is_dir():
            found.extend(sorted(p for p in target.glob("*.md") if p.is_file()))
        elif target.exists():
            found.append(target)
        else:
            raise InputError(target, None, "no such file or folder", "an article (.md) or a folder of them")
    if not found:
        raise InputError(targets[0], None, "holds no articles", "at least one *.md file")
    return list(dict.fromkeys(found))


class ArticleMemo(Protocol):
    """Loaded articles kept between processes (``checks/facts_cache.py``), as JSON by :func:`memo_key`."""

    def recall_articles(self, keys: Sequence[str]) -> dict[str, str]: ...

    def remember_articles(self, values: Mapping[str, str]) -> None: ...


def memo_key(path: Path, raw: bytes) -> str:
    """What a loaded article is kept under: its file's path and bytes (the article holds its path)."""
    return hashlib.sha256(str(path).encode() + b"\x00" + raw).hexdigest()


@functools.lru_cache(maxsize=4096)  # a CLI's load, then its flow's: validated once
def _recalled(text: str, path: Path) -> Article | None:
    """The article a memo kept, or None (a miss) when it is not one this code wrote for ``path``."""
    try:
        article = Article.model_validate_json(text)
    except (ValidationError, ValueError):
        return None
    return article if article.path == path else None


def _load_all(paths: list[Path], memo: ArticleMemo | None) -> Iterator[Article]:
    """Each file read once; with ``memo``, parsed only if its (path, bytes) were never loaded."""
    if memo is None:
        yield from (load_article(path) for path in paths)
        return
    raws = [(path, _read(path)) for path in paths]
    keys = [memo_key(path, raw) for path, raw in raws]
    kept = memo.recall_articles(keys)
    new: dict[str, str] = {}
    for (path, raw), key in zip(raws, keys, strict=True):
        article = None
        if key in kept:
            # Parsed in this process already (the CLI's load, then its flow's): the parse's cache.
            article = _parse_article(path, raw) if key in _PARSED else _recalled(kept[key], path)
        if article is None:
            article = _parse_article(path, raw)
            new[key] = article.model_dump_json()
        yield article
    if new:
        memo.remember_articles(new)


def load_articles(paths: Iterable[Path], memo: ArticleMemo | None = None) -> list[Article]:
    """Load several articles; two articles with one slug is an error.

    ``memo``: articles loaded by an earlier process (the facts cache under --out); a file whose
    path and bytes it holds is not parsed again (the same article: tests/checks/test_facts_cache.py).
    """
    articles: list[Article] = []
    seen: dict[str, Path] = {}
    files = list(paths)
    for path, article in zip(files, _load_all(files, memo), strict=True):
        if article.key in seen:
            raise ArticleError(
                path, "slug", f"{article.key!r} is already used by {seen[article.key]}", "a unique slug"
            )
        seen[article.key] = path
        articles.append(article)
    return articles
