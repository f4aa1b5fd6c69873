"""Site-wide web files regenerated on every publish: index, Atom feed, sitemap.

They list every article live in the release (read from its reports), so an
article published earlier and untouched this time stays listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from clinicpress.renderers.base import Artifact
from clinicpress.renderers.markdown import css_markup, jinja_env, org_line
from clinicpress.site import SiteConfig, format_date
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


def _page_url(site: SiteConfig, slug: str) -> str:
    return f"{site.organization.base_url}/{slug}/"


def render_catalog(entries: list[CatalogEntry], site: SiteConfig, now: datetime) -> list[Artifact]:
    """``web/index.html``, ``web/feed.xml`` and ``web/sitemap.xml`` for the live articles."""
    ordered = sorted(entries, key=lambda e: (e.published, e.slug), reverse=True)
    context = {
        "site": site,
        "entries": [(entry, _page_url(site, entry.slug)) for entry in ordered],
        "updated": max((e.published_at for e in ordered), default=now),
        "base_url": site.organization.base_url,
        "long_date": format_date,
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
