"""The hand-written fixture edition (tests/fixtures/editions/) in a content folder beside a site
config with no network: shared by tests/checks/test_editions.py and tests/cli/test_translate_status.py."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

from conftest import LAST_REVIEWED, site_text

from clinicpress.checks.editions import PublishedText
from clinicpress.site import SiteConfig, load_site
from clinicpress.sources.article import Article
from clinicpress.sources.loader import load_article
from clinicpress.sources.versioning import content_hash, reviewed_text

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "editions"
ORIGINAL = "ketamine-therapy-short"
TRANSLATION = "terapia-con-ketamina-breve"
OLD_DOSE, NEW_DOSE = "Approximately 0.5 mg", "About 0.5 mg"  # an edit of the original's wording
NOON = datetime(2026, 1, 1, 12, tzinfo=UTC).timetz()


def edition_site_text(**replacements: str) -> str:
    """The reference site with no network: every link skipped, no integrity or archive lookups."""
    text = site_text(max_redirects='10\nexclude = ["."]', **replacements)
    for comment in ("# look up retractions", "# look up a Wayback"):
        text, count = re.subn(rf"(?m)^enabled = true(\s+{comment})", r"enabled = false\1", text)
        assert count == 1, comment
    return text


def edition_folder(tmp_path: Path) -> Path:
    """content/ with site.toml, the English original and its Spanish translation (review dates
    relative to the product clock)."""
    content = tmp_path / "content"
    content.mkdir()
    for path in FIXTURES.glob("*.md"):
        text = re.sub(r"(?m)^last_reviewed: .*$", f"last_reviewed: {LAST_REVIEWED}", path.read_text("utf-8"))
        (content / path.name).write_text(text, encoding="utf-8")
    (content / "site.toml").write_text(edition_site_text(), encoding="utf-8")
    return content


def load_slug(folder: Path, slug: str) -> Article:
    return next(a for p in folder.glob("*.md") if (a := load_article(p)).key == slug)


def edit_original(folder: Path) -> Article:
    path = folder / f"{ORIGINAL}.md"
    text = path.read_text("utf-8")
    assert OLD_DOSE in text
    path.write_text(text.replace(OLD_DOSE, NEW_DOSE), encoding="utf-8")
    return load_article(path)


def edition_site(folder: Path) -> SiteConfig:
    return load_site(folder / "site.toml")


def noon(day: date) -> datetime:
    return datetime.combine(day, NOON)


def published_text(article: Article, day: date) -> PublishedText:
    return PublishedText(article.key, content_hash(article), reviewed_text(article), noon(day))
