"""Published addresses are permanent (issue 24): which slug an article is published at.

A slug is an address printed on every handout (its QR code) and linked from everywhere. An article
with no ``slug:`` gets one from its title (sources/article.py); once its file has published a
slug, a new title must not move it. So the registry keeps which content file published which
slug (``article_addresses``, read by the layers above), and :func:`place_articles` (pure, given
that map) says where each article of a publish, a check or a preview goes:

- no ``slug:`` in the front matter, and its file published before: the address it published last;
- an explicit ``slug:``: that slug; the file's earlier addresses (:func:`moved_from`) become
  redirects to it (outputs/publish.py writes them);
- an old address of another file (a redirect now) is refused: the QR codes printed for that
  article must keep landing on it.

Files are named relative to the content folder (:func:`content_path`), so a moved checkout keeps
its addresses. A renamed file is a new file until it publishes once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from clinicpress.errors import ArticleError
from clinicpress.sources.article import Article, slugify
from clinicpress.sources.loader import Loaded, Skipped

# Content file (relative to the content folder, posix) → the slugs it published and still owns,
# oldest first: the last is its current address, the others redirect to it.
Addresses = Mapping[str, Sequence[str]]


def content_path(path: Path, content_dir: Path) -> str:
    """``path`` relative to the content folder, as the registry keeps it (absolute if outside)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(content_dir.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def kept_slug(slug: str, written: bool, current: str | None) -> str:
    """The slug an article is published at: its own when written in the front matter or when its
    file never published one, else the one its file published last (a title edit moves nothing)."""
    return slug if written or current is None else current


def moved_from(addresses: Addresses, relpath: str, slug: str) -> list[str]:
    """The earlier addresses of the file ``relpath``, which now redirect to ``slug``."""
    return [old for old in addresses.get(relpath, ()) if old != slug]


@dataclass(frozen=True)
class Refused:
    """An article that cannot go to its slug: the problem and what is expected, for an ArticleError."""

    path: Path
    problem: str
    expected: str


@dataclass(frozen=True)
class Placed:
    articles: list[Article]
    refused: list[Refused] = field(default_factory=list)


def place_articles(
    articles: Sequence[Article],
    addresses: Addresses,
    relpath: Callable[[Path], str],
    slug_written: Callable[[Article], bool],
) -> Placed:
    """Each article at its permanent address (see the module's docstring), or refused.

    ``relpath``: an article file → its name in ``addresses``; ``slug_written``: whether the
    article's front matter has a ``slug:`` (asked only when the title's slug differs from the
    file's address, so files are seldom read again).
    """
    current = {path: slugs[-1] for path, slugs in addresses.items() if slugs}
    owner = {slug: path for path, slugs in addresses.items() for slug in slugs}
    placed: list[tuple[Article, str]] = []
    refused: list[Refused] = []
    for article in articles:
        mine = relpath(article.path)
        was = current.get(mine)
        slug = article.key
        if was is not None and was != slug:
            derived = slug == slugify(article.title)
            slug = kept_slug(slug, not derived or slug_written(article), was)
        other = owner.get(slug)
        if other is not None and other != mine and current.get(other) != slug:
            refused.append(
                Refused(
                    article.path,
                    f"{slug!r} is an earlier address of {other}, which redirects to "
                    f"{current.get(other)!r} (printed QR codes must keep landing there)",
                    "another slug (set slug: in the front matter)",
                )
            )
            continue
        placed.append((article if slug == article.key else article.model_copy(update={"slug": slug}), mine))
    claims: dict[str, list[str]] = {}
    for article, mine in placed:
        claims.setdefault(article.key, []).append(mine)
    kept: list[Article] = []
    for article, mine in placed:
        others = [path for path in claims[article.key] if path != mine]
        if not others or owner.get(article.key) == mine:
            kept.append(article)
            continue
        refused.append(
            Refused(
                article.path,
                f"{article.key!r} is also the address of {', '.join(others)}",
                "a unique slug (set slug: in the front matter)",
            )
        )
    return Placed(kept, refused)


def slug_written(article: Article) -> bool:
    """Whether the article's file has a ``slug:`` key in its front matter (read again: the model
    fills a missing slug in from the title). The file loaded a moment ago, so it parses; if it
    changed meanwhile and does not, the slug counts as derived (its address is kept)."""
    try:
        text = article.path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return False
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return False
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip() in ("---", "..."):
            try:
                data = yaml.safe_load("\n".join(lines[1:index]))
            except yaml.YAMLError:
                return False
            return isinstance(data, dict) and data.get("slug") is not None
    return False


@dataclass(frozen=True)
class Moves:
    """What a publish needs of the addresses once its articles are placed: each article's file
    (to record), and each file's earlier addresses (to redirect)."""

    files: dict[str, str]  # slug → its file, relative to the content folder
    addresses: dict[str, list[str]]  # as read from the registry

    def redirects(self, slugs: Iterable[str]) -> dict[str, str]:
        """Old slug → new slug, for the articles ``slugs`` (those going live)."""
        return {
            old: slug
            for slug in slugs
            if slug in self.files
            for old in moved_from(self.addresses, self.files[slug], slug)
        }

    def published(self, slugs: Iterable[str]) -> dict[str, str]:
        """Slug → file, for the articles ``slugs`` (those live after the publish): to record."""
        return {slug: self.files[slug] for slug in slugs if slug in self.files}


def with_addresses(loaded: Loaded, addresses: Addresses, content_dir: Path) -> tuple[Loaded, Moves]:
    """The loaded articles at their permanent addresses (:func:`place_articles`); an article that
    cannot go to its slug is skipped like a file that does not load, naming the file and the slug."""

    def relpath(path: Path) -> str:
        return content_path(path, content_dir)

    placed = place_articles(loaded.articles, addresses, relpath, slug_written)
    refused = [
        Skipped.of(ArticleError(r.path, "slug", r.problem, r.expected), r.path) for r in placed.refused
    ]
    moves = Moves(
        files={article.key: relpath(article.path) for article in placed.articles},
        addresses={path: list(slugs) for path, slugs in addresses.items()},
    )
    return Loaded(articles=placed.articles, skipped=[*loaded.skipped, *refused]), moves
