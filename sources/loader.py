"""Load canonical articles: Markdown files with YAML front matter.

Every failure is an :class:`ArticleError` naming the file, the field and what
was expected; a YAML error also gives its line in the file. :func:`load_each` loads
what loads and skips each file that does not, with that error (``check``/``publish``);
:func:`load_articles` is all or nothing (``--strict``).

The front matter is read in one pass of one parser (libyaml's when PyYAML has it), under
rules checked as its nodes are composed (no aliases, bounded depth, no duplicate keys).

A little over 400 lines: the parser's rules, the loading and the errors they raise stay together,
since every message names what the rules found (file, field, line).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

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
_T = TypeVar("_T")
# Lines end at CR, LF or CRLF only: str.splitlines() also splits at U+2028, \x0c and others,
# which no editor shows as a line break.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


_RESOLVERS_WITHOUT_DATES = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _FrontMatterRules(yaml.composer.Composer):
    """What front matter may hold, checked while its nodes are composed, whichever parser reads it.

    Aliases (``*name``) are refused: a billion-laughs file gets nowhere. Nesting stops at
    MAX_YAML_DEPTH. Two equal keys are refused. Dates stay text: YAML's own date parsing raises a
    bare ValueError for ``2026-13-40``, while the model names the field.
    """

    _depth = 0  # collections open around the node being composed
    # Given by the parser the loaders below put after this class (the stubs' Composer has none).
    check_event: Callable[..., bool]
    peek_event: Callable[[], Any]

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not allowed in front matter",
                problem_mark=self.peek_event().start_mark,
            )
        return super().compose_node(parent, index)

    # Depth is counted where a collection opens (not per scalar): fewer calls, the same limit.
    def compose_sequence_node(self, anchor: Any) -> Any:
        return self._nested(yaml.composer.Composer.compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor: Any) -> Any:
        return self._nested(yaml.composer.Composer.compose_mapping_node, anchor)

    def _nested(self, compose: Callable[[Any, Any], Any], anchor: Any) -> Any:
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.MarkedYAMLError(
                problem=f"nested more than {MAX_YAML_DEPTH} levels deep",
                problem_mark=self.peek_event().start_mark,
            )
        self._depth += 1
        try:
            return compose(self, anchor)
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
        # Named, not super(): this class is not a constructor; the loaders below put one after it.
        return yaml.constructor.SafeConstructor.construct_mapping(self, node, deep)  # type: ignore[arg-type]


class _FrontMatterLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    _FrontMatterRules,
    yaml.constructor.SafeConstructor,
    yaml.resolver.Resolver,
):
    """PyYAML's pure-Python parser under the front-matter rules (when PyYAML has no libyaml)."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _FrontMatterRules.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.yaml_implicit_resolvers = _RESOLVERS_WITHOUT_DATES


# libyaml's parser; PyYAML built without libyaml has none, and the class below is then never used.
_CParser: Any = getattr(getattr(yaml, "cyaml", None), "CParser", yaml.parser.Parser)


class _CFrontMatterLoader(
    _FrontMatterRules,
    _CParser,  # type: ignore[misc]  # found at run time: the stubs do not export it
    yaml.constructor.SafeConstructor,
    yaml.resolver.Resolver,
):
    """libyaml's parser (its events, made in C) under the same rules, in one pass over the text.

    The composer is PyYAML's Python one (first in the MRO, before CParser's C composer), so the
    rules above see every node as it is composed: nothing is parsed twice, and both loaders share
    every check and message but the parser's own (tests/sources/test_loader.py compares them).
    """

    def __init__(self, stream: str) -> None:
        _CParser.__init__(self, stream)
        _FrontMatterRules.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.yaml_implicit_resolvers = _RESOLVERS_WITHOUT_DATES


def _load_front_matter(front: str) -> Any:
    # Read at each call, not at import: the test of both loaders turns libyaml off.
    loader: Any = _CFrontMatterLoader if yaml.__with_libyaml__ else _FrontMatterLoader  # no stub knows them
    return yaml.load(front, Loader=loader)  # noqa: S506 - SafeConstructor, under the rules above


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


def _attempt(read: Callable[[Path], _T], path: Path) -> _T | InputError:
    try:
        return read(path)
    except InputError as exc:
        return exc


def _load_all(paths: list[Path], memo: ArticleMemo | None) -> Iterator[Article | InputError]:
    """Each file read once, in order: its article, or the error that names why it does not load.

    With ``memo``, a file is parsed only if its (path, bytes) were never loaded.
    """
    if memo is None:
        yield from (_attempt(load_article, path) for path in paths)
        return
    raws = [(path, _attempt(_read, path)) for path in paths]
    keys = {path: memo_key(path, raw) for path, raw in raws if isinstance(raw, bytes)}
    kept = memo.recall_articles(list(keys.values()))
    new: dict[str, str] = {}
    for path, raw in raws:
        if not isinstance(raw, bytes):
            yield raw
            continue
        key = keys[path]
        article = None
        if key in kept:
            # Parsed in this process already (the CLI's load, then its flow's): the parse's cache.
            article = _parse_article(path, raw) if key in _PARSED else _recalled(kept[key], path)
        if article is None:
            try:
                article = _parse_article(path, raw)
            except InputError as exc:
                yield exc
                continue
            new[key] = article.model_dump_json()
        yield article
    if new:
        memo.remember_articles(new)


def load_articles(paths: Iterable[Path], memo: ArticleMemo | None = None) -> list[Article]:
    """Load several articles, all or nothing: the first file that does not load raises its error,
    and so does a second article with one slug (``--strict``; :func:`load_each` goes on).

    ``memo``: articles loaded by an earlier process (the facts cache under --out); a file whose
    path and bytes it holds is not parsed again (the same article: tests/checks/test_facts_cache.py).
    """
    articles: list[Article] = []
    seen: dict[str, Path] = {}
    files = list(paths)
    for path, loaded in zip(files, _load_all(files, memo), strict=True):
        if isinstance(loaded, InputError):
            raise loaded
        if loaded.key in seen:
            raise ArticleError(
                path, "slug", f"{loaded.key!r} is already used by {seen[loaded.key]}", "a unique slug"
            )
        seen[loaded.key] = path
        articles.append(loaded)
    return articles


class Skipped(BaseModel):
    """A file that does not load: skipped, so that one bad draft does not hold back the rest."""

    model_config = ConfigDict(frozen=True)

    path: str
    field: str | None  # None: the file itself (binary, not UTF-8, too big, unreadable)
    problem: str
    error: str  # the one line: "<file>: <field>: <problem>; expected <what>"

    @classmethod
    def of(cls, exc: InputError, path: Path) -> Skipped:
        return cls(path=exc.path or str(path), field=exc.field, problem=exc.problem, error=exc.one_line())

    @property
    def reason(self) -> str:
        """Why, in a word or two, for a count: ``unreadable``, ``unknown key``, or the field."""
        if self.field is None:
            return "unreadable"
        return "unknown key" if self.problem.startswith("unknown key") else self.field

    def as_json(self) -> dict[str, str | None]:
        return {"path": self.path, "field": self.field, "error": self.error}


class Loaded(BaseModel):
    """What a set of files gave: the articles that load and one :class:`Skipped` per file that does not."""

    model_config = ConfigDict(frozen=True)

    articles: list[Article]
    skipped: list[Skipped]


def load_each(paths: Iterable[Path], memo: ArticleMemo | None = None) -> Loaded:
    """Load every file that loads; each one that does not is skipped with its error (issue 24).

    A slug claimed by two files skips both: which of them is the article at that address is for
    a person to say (a copy named ``x-draft.md`` sorts before ``x.md``), and the live version
    stays live meanwhile. ``memo`` as for :func:`load_articles`.
    """
    files = list(paths)
    loaded = list(zip(files, _load_all(files, memo), strict=True))
    claims: dict[str, list[Path]] = {}
    for path, item in loaded:
        if isinstance(item, Article):
            claims.setdefault(item.key, []).append(path)
    articles: list[Article] = []
    skipped: list[Skipped] = []
    for path, item in loaded:
        if isinstance(item, InputError):
            skipped.append(Skipped.of(item, path))
            continue
        claimed = claims[item.key]
        if len(claimed) == 1:
            articles.append(item)
            continue
        first = claimed.index(path) == 0
        others = ", ".join(str(other) for other in claimed if other != path)
        problem = f"{item.key!r} is {'also' if first else 'already'} used by {others}"
        skipped.append(Skipped.of(ArticleError(path, "slug", problem, "a unique slug"), path))
    return Loaded(articles=articles, skipped=skipped)
