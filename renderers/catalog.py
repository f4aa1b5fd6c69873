"""Site-wide web files regenerated on every publish: index, Atom feed, sitemap.

They list every article live in the release (read from its reports), so an
article published earlier and untouched this time stays listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from clinicpress.renderers.base import Artifact
from clinicpress.site import SiteConfig, format_date
from clinicpress.sources.article import Channel

_TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html", "xml", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["long_date"] = format_date


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
    }
    files = {
        "web/index.html": ("catalog_index.html.j2", "text/html"),
        "web/feed.xml": ("catalog_feed.xml.j2", "application/atom+xml"),
        "web/sitemap.xml": ("catalog_sitemap.xml.j2", "application/xml"),
    }
    return [
        Artifact(Channel.WEB, relpath, _env.get_template(name).render(**context).encode(), media_type)
        for relpath, (name, media_type) in files.items()
    ]
