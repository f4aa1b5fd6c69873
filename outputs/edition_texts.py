"""The texts articles went live with, kept for translated editions (issue 26).

One table in the registry database (``[registry] url``): ``edition_texts``, one row per article and
text (its ``content_hash``), with the text itself (sources/versioning.reviewed_text) and when it
first went live. A publish of a text already kept changes nothing: the first time stays, since a
stale translation's grace period counts from it (checks/editions.py, which decides; this module
only reads and writes).

``edition_context`` gathers what the edition rules need: the articles by slug (an original not among
those checked is loaded from beside the site config) and the originals' kept texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError

from clinicpress.checks.editions import Editions, PublishedText, with_edition_note
from clinicpress.errors import InputError, RegistryError
from clinicpress.outputs.registry_location import registry_exists, registry_url, shown_url
from clinicpress.outputs.registry_schema import UTCDateTime, open_migrated, transaction
from clinicpress.outputs.release import live_reports
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article
from clinicpress.sources.editions import LiveEdition, has_editions, live_editions, with_alternates
from clinicpress.sources.loader import discover_articles, load_article
from clinicpress.sources.versioning import content_hash, reviewed_text

__all__ = [
    "as_live",
    "edition_context",
    "edition_texts",
    "everything_beside",
    "load_texts",
    "metadata",
    "other_editions",
    "record_texts",
]

metadata = MetaData()

edition_texts = Table(
    "edition_texts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False, index=True),
    Column("content_hash", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("first_published_at", UTCDateTime, nullable=False),
    UniqueConstraint("slug", "content_hash", name="uq_edition_text"),
)


def record_texts(site: SiteConfig, out_dir: Path, articles: Sequence[Article], published_at: datetime) -> int:
    """Keep each article's text as it went live at ``published_at``, once; returns how many were new."""
    url = registry_url(site, out_dir)
    wanted = {(a.key, content_hash(a)): a for a in articles}
    if not wanted:
        return 0
    engine = open_migrated(url)
    try:
        # Twice at most: a concurrent publish of the same text may insert it between our read and
        # our insert (the unique key refuses the second); the retry then finds it kept.
        for attempt in (1, 2):
            try:
                with transaction(engine, f"registry {shown_url(url)}", RegistryError) as conn:
                    query = select(edition_texts.c.slug, edition_texts.c.content_hash).where(
                        edition_texts.c.slug.in_(sorted({slug for slug, _ in wanted}))
                    )
                    kept = {(row.slug, row.content_hash) for row in conn.execute(query)}
                    new = [
                        {
                            "slug": slug,
                            "content_hash": digest,
                            "text": reviewed_text(article),
                            "first_published_at": published_at,
                        }
                        for (slug, digest), article in wanted.items()
                        if (slug, digest) not in kept
                    ]
                    if new:
                        conn.execute(edition_texts.insert(), new)
                    return len(new)
            except RegistryError as exc:
                if attempt == 2 or not isinstance(exc.__cause__, IntegrityError):
                    raise
    finally:
        engine.dispose()
    raise AssertionError("unreachable: the second attempt returns or raises")


def load_texts(site: SiteConfig, out_dir: Path, slugs: Iterable[str]) -> dict[str, list[PublishedText]]:
    """The kept texts of these articles by slug, oldest first; none when no registry exists yet."""
    url = registry_url(site, out_dir)
    wanted = sorted(set(slugs))
    if not wanted or not registry_exists(url):
        return {}
    engine = open_migrated(url)
    query = (
        select(edition_texts)
        .where(edition_texts.c.slug.in_(wanted))
        .order_by(edition_texts.c.first_published_at, edition_texts.c.id)
    )
    try:
        with transaction(engine, f"registry {shown_url(url)}", RegistryError) as conn:
            rows = conn.execute(query).mappings().all()
    finally:
        engine.dispose()
    found: dict[str, list[PublishedText]] = {}
    for row in rows:
        found.setdefault(row["slug"], []).append(
            PublishedText(row["slug"], row["content_hash"], row["text"], row["first_published_at"])
        )
    return found


def everything_beside(content_dir: Path) -> dict[str, Article]:
    """The articles in ``content_dir`` by slug; a file that does not load is left out (it is not
    the one checked: its own check says what is wrong with it)."""
    found: dict[str, Article] = {}
    for path in discover_articles([], content_dir=content_dir):
        try:
            article = load_article(path)
        except InputError:
            continue
        found.setdefault(article.key, article)
    return found


def edition_context(
    site: SiteConfig, out_dir: Path, articles: Sequence[Article], content_dir: Path
) -> Editions | None:
    """What the edition rules need to judge ``articles``; None when none of them is a translation.

    ``content_dir``: where an original not among ``articles`` is looked for (the folder of the
    site config, as ``clinicpress review`` finds articles).
    """
    wanted = {a.translation_of for a in articles if a.translation_of is not None}
    if not wanted:
        return None
    by_slug = {a.key: a for a in articles}
    if not wanted <= by_slug.keys():
        by_slug = {**everything_beside(content_dir), **by_slug}  # the ones checked win over the files beside
    return Editions(articles=by_slug, history=load_texts(site, out_dir, wanted))


def as_live(site: SiteConfig, out_dir: Path, article: Article, content_dir: Path, on: date) -> Article:
    """``article`` as the publish flow renders it on ``on`` when its editions are live as they are
    now: a stale translation's note, and the links to the other editions live. What a check of
    a live version (``approve-send``) compares against, so that an edition is that version still."""
    editions = edition_context(site, out_dir, [article], content_dir)
    if editions is not None:
        article = with_edition_note(article, editions, site, on)
    live = live_editions(live_reports(out_dir))
    return with_alternates(article, live, site) if has_editions(live.values()) else article


def other_editions(
    articles: Sequence[Article], live: Mapping[str, LiveEdition], content_dir: Path
) -> list[Path]:
    """The files beside the site config of the editions of ``articles`` that are not among them:
    the originals they translate and the editions of their group live now (none when none is).

    A publish of some files publishes these too: each page links the editions live with it, and a
    translation's page says when its original changed, so one edition is never published alone.
    """
    groups = {a.translation_of or a.key for a in articles}
    wanted = {e.slug for e in live.values() if e.original in groups}
    wanted |= {a.translation_of for a in articles if a.translation_of is not None}
    wanted -= {a.key for a in articles}
    if not wanted:
        return []
    beside = everything_beside(content_dir)
    return [beside[slug].path for slug in sorted(wanted) if slug in beside]
