"""Site-wide web files: index, Atom feed and sitemap list every live article, escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime

from conftest import REFERENCE_SITE

from clinicpress.renderers.catalog import CatalogEntry, render_catalog
from clinicpress.site import load_site

ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def _entry(slug: str, title: str, published: date) -> CatalogEntry:
    return CatalogEntry(
        slug=slug,
        title=title,
        summary="Risks & benefits <b>explained</b>",
        published=published,
        last_reviewed=date(2026, 11, 1),
        published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
    )


def test_index_feed_and_sitemap() -> None:
    site = load_site(REFERENCE_SITE)
    entries = [
        _entry("older", "Older <script>x</script>", date(2024, 1, 1)),
        _entry("newer", "Newer", date(2025, 1, 1)),
    ]
    files = {
        a.relpath: a.data.decode() for a in render_catalog(entries, site, datetime(2026, 11, 27, tzinfo=UTC))
    }
    assert set(files) == {"web/index.html", "web/feed.xml", "web/sitemap.xml"}

    index = files["web/index.html"]
    assert "<script>x" not in index
    assert "Older &lt;script&gt;x&lt;/script&gt;" in index
    assert index.index('href="newer/"') < index.index('href="older/"')  # newest first
    assert "Program ID 190655AP" in index

    feed = ET.fromstring(files["web/feed.xml"])
    titles = [e.findtext(f"{ATOM}title") for e in feed.iter(f"{ATOM}entry")]
    assert titles == ["Newer", "Older <script>x</script>"]  # escaped in XML, intact once parsed
    assert feed.find(f"{ATOM}entry/{ATOM}id").text == "https://www.serenitymaliburehab.com/newer/"  # type: ignore[union-attr]

    sitemap = ET.fromstring(files["web/sitemap.xml"])
    locs = [loc.text for loc in sitemap.iter(f"{SITEMAP}loc")]
    assert locs == [
        "https://www.serenitymaliburehab.com/",
        "https://www.serenitymaliburehab.com/newer/",
        "https://www.serenitymaliburehab.com/older/",
    ]
