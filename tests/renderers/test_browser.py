"""WCAG 2.2 AA: the web page, the email preview and the site index in headless Chromium with axe-core.

Needs Debian's ``chromium`` and axe-core from npm. The test setup installs
them (``make test``); run by hand with:

    apt-get install -y chromium
    npm install --prefix .build/node axe-core@4.14.1

or point ``CLINICPRESS_AXE_JS`` at an ``axe.min.js``. Without either the
tests skip and say which is missing. Chromium runs with a fresh profile and
its background networking off; the pages are local files that load nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from requirements import need

from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.catalog import CatalogEntry, render_catalog
from clinicpress.renderers.newsletter import render_newsletter_html
from clinicpress.renderers.web import render_web_html
from clinicpress.site import SiteConfig, load_site
from clinicpress.sources import Article, Reviewer, load_article

ROOT = Path(__file__).resolve().parents[2]
SLUG = "ketamine-therapy-substance-abuse"
CONTEXT = RenderContext(published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC), version="0" * 64)
AXE_JS = Path(os.environ.get("CLINICPRESS_AXE_JS") or ROOT / ".build/node/node_modules/axe-core/axe.min.js")
# WCAG 2.0, 2.1 and 2.2 at levels A and AA: the rules axe tags for "WCAG 2.2 AA".
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def _load_tools() -> ModuleType:
    # tools/ is not a package of clinicpress: load the DevTools client from its file.
    spec = importlib.util.spec_from_file_location(
        "clinicpress_tools_screenshots", ROOT / "tools/screenshots.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tools = _load_tools()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = tools.find_chromium()
    if executable is None:
        need("chromium", "it runs the pages for axe-core (Debian: apt-get install -y chromium)")
    if not AXE_JS.is_file():
        need("axe-core", f"not found at {AXE_JS} (make browser-deps installs it with npm)")
    try:
        with tools.chromium(executable) as instance:
            yield instance
    except tools.BrowserError as exc:
        need("chromium", f"it could not be started here: {exc}")


def axe_violations(browser: Any, path: Path, tags: list[str]) -> list[dict[str, Any]]:
    page = browser.new_page()
    page.goto(path.as_uri())
    page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;true")
    options = json.dumps({"runOnly": {"type": "tag", "values": tags}, "resultTypes": ["violations"]})
    script = (
        f"axe.run(document, {options})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + n.failureSummary)})))"
    )
    violations: list[dict[str, Any]] = page.evaluate(script, timeout=30)
    return violations


def _describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']}\n  " + "\n  ".join(v["nodes"]) for v in violations
    )


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(ROOT / "content" / "site.toml")


@pytest.fixture(scope="module")
def article() -> Article:
    reviewed = load_article(ROOT / "content" / f"{SLUG}.md")
    # With a reviewer: the longer review line and the JSON-LD reviewedBy are on the page too.
    return reviewed.model_copy(update={"reviewed_by": Reviewer(name="Jane Doe", credentials="MD")})


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, article: Article, site: SiteConfig) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    entry = CatalogEntry(
        slug=SLUG,
        title=article.title,
        summary=article.summary,
        published=article.published,
        last_reviewed=article.last_reviewed,
        published_at=CONTEXT.published_at,
    )
    catalog = {a.relpath: a.data for a in render_catalog([entry], site, CONTEXT.published_at)}
    files = {
        "web": render_web_html(article, site, CONTEXT).encode(),
        "email": render_newsletter_html(article, site).encode(),
        "index": catalog["web/index.html"],
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.html"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize("name", ["web", "email", "index"])
def test_wcag22_aa_no_violations(browser: Any, pages: dict[str, Path], name: str) -> None:
    violations = axe_violations(browser, pages[name], WCAG_TAGS)
    assert violations == [], (
        f"axe-core found WCAG 2.2 AA violations in the {name} page:\n{_describe(violations)}"
    )


def test_web_page_best_practices(browser: Any, pages: dict[str, Path]) -> None:
    # The page (not the email, whose layout tables have no landmarks) also meets axe's best practices.
    violations = axe_violations(browser, pages["web"], ["best-practice"])
    assert violations == [], _describe(violations)


def test_web_page_structure_in_the_browser(browser: Any, pages: dict[str, Path], article: Article) -> None:
    page = browser.new_page()
    page.goto(pages["web"].as_uri())
    facts = page.evaluate(
        "({lang: document.documentElement.lang,"
        " h1: [...document.querySelectorAll('h1')].map(e => e.textContent),"
        " firstTab: document.querySelector('a').getAttribute('href'),"
        " ld: JSON.parse(document.querySelector('script[type=\"application/ld+json\"]').textContent),"
        " skipTarget: !!document.getElementById('main')})"
    )
    assert facts["lang"] == "en"
    assert facts["h1"] == [article.title]
    assert facts["firstTab"] == "#main"
    assert facts["skipTarget"]
    assert facts["ld"]["@type"] == "MedicalWebPage"
    assert facts["ld"]["reviewedBy"]["name"] == "Jane Doe"


def test_axe_catches_a_broken_page(browser: Any, tmp_path: Path) -> None:
    # The control: the same harness does report violations, so zero above means zero.
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><title>x</title></head><body><main><img src="data:,">'
        '<p style="color:#ccc;background:#fff">faint text</p><a href="#"></a></main></body></html>'
    )
    found = {v["id"] for v in axe_violations(browser, bad, WCAG_TAGS)}
    assert {"html-has-lang", "image-alt", "color-contrast", "link-name"} <= found
