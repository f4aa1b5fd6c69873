"""Site-wide web files regenerated on every publish: index, Atom feed, sitemap.

They list every article live in the release (read from its reports), so an
article published earlier and untouched this time stays listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from clinicpress.renderers.base import Artifact
from clinicpress.renderers.markdown import css_markup, jinja_env, org_line
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Channel


@dataclass(frozen=True)
class CatalogEntry:
    """One live article as the index shows it."""

    slug: str
    title: str
    summary: str
    published: date
    last_reviewed: date
    published_at: datetime
    language: str = ""  # the edition's language ("" in reports from before editions)
    translation_of: str | None = None  # a translation: its original's slug


def edition_alternates(entries: Sequence[CatalogEntry], site: SiteConfig) -> dict[str, list[tuple[str, str]]]:
    """Each live edition's hreflang alternates (language, URL), itself included, as the sitemap
    lists them (issue 26): an original and its live translations, when there is more than one."""
    groups: dict[str, list[CatalogEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.translation_of or entry.slug, []).append(entry)
    alternates: dict[str, list[tuple[str, str]]] = {}
    for members in groups.values():
        named = [m for m in members if m.language]
        if len(named) < 2:
            continue
        links = sorted((m.language, _page_url(site, m.slug)) for m in named)
        for member in named:
            alternates[member.slug] = links
    return alternates


def _page_url(site: SiteConfig, slug: str) -> str:
    return f"{site.organization.base_url}/{slug}/"


def render_catalog(entries: list[CatalogEntry], site: SiteConfig, now: datetime) -> list[Artifact]:
    """``web/index.html``, ``web/feed.xml`` and ``web/sitemap.xml`` for the live articles."""
    # Babel (~60 ms) only when a release is written: a publish that changes nothing renders no catalog.
    from clinicpress.renderers import i18n

    ordered = sorted(entries, key=lambda e: (e.published, e.slug), reverse=True)
    language = i18n.site_language(site)

    def long_date(value: date) -> str:
        return i18n.long_date(value, language)

    context = {
        **i18n.template_gettext(language),
        "lang": language,
        "site": site,
        "entries": [(entry, _page_url(site, entry.slug)) for entry in ordered],
        "alternates": edition_alternates(ordered, site),
        "updated": max((e.published_at for e in ordered), default=now),
        "base_url": site.organization.base_url,
        "long_date": long_date,
        "licenses": i18n.license_parts(site, language),
        "org": site.organization,
        "org_line": org_line(site),
        "css": css_markup("web.css"),
    }
    files = {
        "web/index.html": ("catalog_index.html.j2", "text/html"),
        "web/feed.xml": ("catalog_feed.xml.j2", "application/atom+xml"),
        "web/sitemap.xml": ("catalog_sitemap.xml.j2", "application/xml"),
    }
    return [
        Artifact(Channel.WEB, relpath, jinja_env().get_template(name).render(**context).encode(), media_type)
        for relpath, (name, media_type) in files.items()
    ]
