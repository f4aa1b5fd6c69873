"""Shared fixtures: article and site files written into a temporary folder."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clinicpress.site import SiteConfig, load_site
from clinicpress.sources.article import Article
from clinicpress.sources.loader import load_article

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_ARTICLE = ROOT / "content" / "ketamine-therapy-substance-abuse.md"
REFERENCE_SITE = ROOT / "content" / "site.toml"

MINIMAL_FRONT_MATTER = """\
title: Test Article
summary: A short summary.
published: 2026-01-05
last_reviewed: 2026-11-01
"""

WriteArticle = Callable[..., Path]


# The reference article and site, shared read-only (frozen models) by the tests that need them.
@pytest.fixture(scope="session")
def site() -> SiteConfig:
    return load_site(REFERENCE_SITE)


@pytest.fixture(scope="session")
def article() -> Article:
    return load_article(REFERENCE_ARTICLE)


@pytest.fixture
def write_article(tmp_path: Path) -> WriteArticle:
    """Write an article file: ``write_article(front_matter=..., body=..., name=...)``."""

    def write(
        front_matter: str = MINIMAL_FRONT_MATTER, body: str = "Some text.\n", name: str = "a.md"
    ) -> Path:
        path = tmp_path / name
        path.write_text(f"---\n{front_matter}---\n{body}", encoding="utf-8")
        return path

    return write


def site_text(**replacements: str) -> str:
    """The reference site.toml with ``key = value`` lines replaced (first match)."""
    text = REFERENCE_SITE.read_text(encoding="utf-8")
    for key, value in replacements.items():
        text, count = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", text, count=1)
        assert count == 1, f"no {key} line in site.toml"
    return text


@pytest.fixture
def write_site(tmp_path: Path) -> Callable[..., Path]:
    """Write a site.toml: the reference one with some keys replaced."""

    def write(name: str = "site.toml", **replacements: str) -> Path:
        path = tmp_path / name
        path.write_text(site_text(**replacements), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One real Prefect API for the whole session (flow tests only ask for it)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
