"""The facts cache (checks/facts_cache.py): a hit is exactly what a miss computes, and never wrong.

Each test starts with this process's memory of parses and grades cleared, so "cold" means what a
new process sees; "warm" is a later process that finds the facts on disk.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REFERENCE_ARTICLE, ROOT
from facts_memory import forget

import clinicpress.checks.body as body_module
import clinicpress.checks.facts_cache as facts_module
import clinicpress.checks.readability as readability_module
import clinicpress.sources.loader as loader_module
from clinicpress.checks.facts_cache import FactsCache, open_facts, prime_facts
from clinicpress.checks.links import LinkReport
from clinicpress.checks.model import ArticleReport, LinkResult, LinkStatus
from clinicpress.checks.verify import all_urls, verify_article
from clinicpress.errors import ArticleError
from clinicpress.site import SiteConfig
from clinicpress.sources.loader import load_articles

HOSTILE = ROOT / "tests" / "hostile" / "articles"
EXTRA_BODIES = {
    "links.md": "See [the guide](https://example.org/guide) and [^1].\n\n- a list item\n- [x](#top)\n",
    "table.md": "| a | b |\n| - | - |\n| long words everywhere | c |\n\nA plain sentence here.[^1]\n",
    "hard.md": (
        "Pharmacokinetic considerations notwithstanding, multidisciplinary interdisciplinary "
        "psychopharmacological interventions necessitate comprehensive individualized evaluation.[^1]\n"
    ),
}


@pytest.fixture(autouse=True)
def out_folder(tmp_path: Path) -> None:
    """The --out of the tests: the cache is used only in one that exists (a site published before)."""
    (tmp_path / "out").mkdir()


@pytest.fixture(autouse=True)
def fresh_memory() -> Iterator[None]:
    forget()
    yield
    forget()


@pytest.fixture
def articles(tmp_path: Path) -> list[Path]:
    """The sample article and a few bodies with links, lists, tables and hard sentences."""
    folder = tmp_path / "content"
    folder.mkdir()
    reference = REFERENCE_ARTICLE.read_text(encoding="utf-8")
    front, _ = reference.split("\n---\n", 1)
    paths = [folder / "sample.md"]
    paths[0].write_text(reference, encoding="utf-8")
    for index, (name, extra) in enumerate(EXTRA_BODIES.items()):
        text = front.replace("\nslug: ", f"\nslug: x{index}-", 1) + "\n---\n" + extra
        if "\nslug: " not in front:
            text = front + f"\nslug: extra-{index}" + "\n---\n" + extra
        (folder / name).write_text(text, encoding="utf-8")
        paths.append(folder / name)
    return paths


def _all_ok(urls: list[str]) -> LinkReport:
    return LinkReport(
        results={u: LinkResult(url=u, status=LinkStatus.OK, reason="200") for u in urls},
        network_down=False,
        summary=None,
    )


def _reports(paths: list[Path], site: SiteConfig, facts: FactsCache | None) -> tuple[Any, ...]:
    """What a publish works out before rendering: the articles, their URLs and their reports."""
    loaded = load_articles(paths, memo=facts)
    prime_facts(loaded, facts, site)
    urls = all_urls(loaded)
    links = _all_ok(urls)
    on = min(a.last_reviewed for a in loaded)
    reports: list[ArticleReport] = [verify_article(a, site, links, on=on) for a in loaded]
    return loaded, urls, [r.model_dump() for r in reports]


def test_cache_on_and_off_give_equal_reports(articles: list[Path], site: SiteConfig, tmp_path: Path) -> None:
    off = _reports(articles, site, None)
    forget()
    facts = open_facts(tmp_path / "out")
    cold = _reports(articles, site, facts)  # misses: computed and stored
    forget()
    warm = _reports(articles, site, facts)  # hits: read back
    assert off == cold == warm
    # The warm run really read everything from the cache: nothing stored, every body a hit.
    forget()
    loaded = load_articles(articles, memo=facts)
    stats = prime_facts(loaded, facts)
    assert (stats.bodies, stats.hits, stats.stored) == (len(articles), len(articles), 0)
    assert any("readability" in str(r) for r in off[2])  # the hard body's warning is in the comparison


def test_a_warm_run_parses_grades_and_loads_nothing(
    articles: list[Path], site: SiteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = open_facts(tmp_path / "out")
    _reports(articles, site, facts)
    forget()

    def refuse(*args: object) -> None:
        raise AssertionError("worked out again although the facts were on disk")

    monkeypatch.setattr(body_module, "body_tokens_of", refuse)
    monkeypatch.setattr(readability_module, "_grade", refuse)
    monkeypatch.setattr(loader_module, "_split_front_matter", refuse)
    _reports(articles, site, facts)


def test_hostile_articles_load_the_same_with_the_cache(site: SiteConfig, tmp_path: Path) -> None:
    """Each hostile file alone: the same article, or the same error, with the cache off, cold and warm."""
    facts = open_facts(tmp_path / "out")
    paths = sorted(HOSTILE.glob("*.md"))
    assert len(paths) > 20
    loaded = 0
    for path in paths:
        outcomes = []
        for memo in (None, facts, facts):
            forget()
            try:
                outcomes.append(_reports([path], site, memo))
            except ArticleError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1] == outcomes[2], path.name
        loaded += not isinstance(outcomes[0], str)
    assert loaded > 5  # some load (and are graded), some are refused


def test_a_changed_body_is_a_miss(articles: list[Path], site: SiteConfig, tmp_path: Path) -> None:
    facts = open_facts(tmp_path / "out")
    _reports(articles, site, facts)
    forget()
    target = articles[1]
    target.write_text(
        target.read_text(encoding="utf-8") + "\nNew [link](https://example.org/new).\n", encoding="utf-8"
    )
    loaded = load_articles(articles, memo=facts)
    stats = prime_facts(loaded, facts)
    assert (stats.hits, stats.stored) == (len(articles) - 1, 1)
    assert "https://example.org/new" in all_urls(loaded)
    forget()
    assert _reports(articles, site, facts) == _reports(articles, site, None)


def test_a_corrupt_cache_file_is_ignored_and_made_again(
    articles: list[Path], site: SiteConfig, tmp_path: Path
) -> None:
    expected = _reports(articles, site, None)
    path = tmp_path / "out" / ".cache" / "facts.sqlite"
    path.parent.mkdir()
    path.write_bytes(b"this is not a database\x00" * 100)
    forget()
    assert _reports(articles, site, open_facts(tmp_path / "out")) == expected
    forget()
    loaded = load_articles(articles, memo=open_facts(tmp_path / "out"))
    assert prime_facts(loaded, open_facts(tmp_path / "out")).hits == len(articles)  # made again, used


def test_a_tampered_row_is_a_miss_not_a_wrong_answer(
    articles: list[Path], site: SiteConfig, tmp_path: Path
) -> None:
    expected = _reports(articles, site, None)
    facts = open_facts(tmp_path / "out")
    assert facts is not None
    forget()
    _reports(articles, site, facts)
    with facts.connect() as conn:  # every value replaced by something this code never writes
        conn.execute("UPDATE facts SET value = '{\"grade\": \"x\"}' WHERE key LIKE 'grade:%'")
        conn.execute("UPDATE facts SET value = '[1, 2]' WHERE key LIKE 'links:%'")
        conn.execute("UPDATE facts SET value = '{\"title\": 5}' WHERE key LIKE 'article:%'")
    forget()
    assert _reports(articles, site, facts) == expected


def test_another_code_fingerprint_does_not_see_the_rows(articles: list[Path], tmp_path: Path) -> None:
    facts = open_facts(tmp_path / "out")
    assert facts is not None
    loaded = load_articles(articles, memo=facts)
    prime_facts(loaded, facts)
    other = FactsCache(facts.path, fingerprint="another-rule")
    assert prime_facts(loaded, other).hits == 0
    with other.connect() as conn:  # the other code's rows are gone: the file does not grow per rule
        kept = conn.execute("SELECT DISTINCT fingerprint FROM facts").fetchall()
    assert kept == [("another-rule",)]


def test_the_fingerprint_follows_the_deciding_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule changed in the grading code (here: one more line in readability.py) misses everything."""
    before = facts_module.code_fingerprint.__wrapped__()
    spec = importlib.util.find_spec("clinicpress.checks.readability")
    assert spec is not None
    assert spec.origin is not None
    changed = tmp_path / "readability.py"
    changed.write_text(Path(spec.origin).read_text(encoding="utf-8") + "\n# a new rule\n", encoding="utf-8")
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        found = real_find_spec(name, package)
        if name == "clinicpress.checks.readability" and found is not None:
            found.origin = str(changed)
        return found

    monkeypatch.setattr(facts_module.importlib.util, "find_spec", find_spec)
    assert facts_module.code_fingerprint.__wrapped__() != before


def test_the_switch_and_no_cache_turn_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_facts(tmp_path) is not None
    assert open_facts(tmp_path, enabled=False) is None
    assert open_facts(tmp_path / "never-published") is None  # a new --out: nothing written there
    monkeypatch.setenv(facts_module.ENV_SWITCH, "0")
    assert open_facts(tmp_path) is None


def test_check_keeps_the_facts_beside_the_link_cache(tmp_path: Path) -> None:
    from clinicpress.checks.cache import open_cache
    from clinicpress.checks.facts_cache import facts_beside
    from clinicpress.settings.links import LinkCheckSettings

    cache = open_cache(tmp_path / "out", LinkCheckSettings())
    assert cache is not None
    facts = facts_beside(cache.path)
    assert facts is not None
    assert facts.path == tmp_path / "out" / ".cache" / "facts.sqlite"
    assert facts_beside(None) is None


def test_a_warm_check_does_not_import_textstat(
    articles: list[Path], site: SiteConfig, tmp_path: Path
) -> None:
    """Grades read from disk: a new process never imports textstat, nltk or pyphen (~0.6 s)."""
    out = tmp_path / "out"
    _reports(articles, site, open_facts(out))
    script = f"""
import sys
from pathlib import Path
from clinicpress.checks.facts_cache import open_facts, prime_facts
from clinicpress.checks.readability import readability_problems
from clinicpress.sources.loader import load_articles
facts = open_facts({str(out)!r})
articles = load_articles([Path(p) for p in {[str(p) for p in articles]!r}], memo=facts)
print(prime_facts(articles, facts).hits, sum(len(readability_problems(a)) for a in articles))
print(sorted(m for m in ("textstat", "nltk", "pyphen") if m in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    hits, imported = done.stdout.strip().splitlines()
    found, warnings = hits.split()
    assert found == str(len(articles))
    assert int(warnings) >= 1
    assert imported == "[]"


def test_a_cli_load_then_its_flow_load_parse_once(
    articles: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI loads (to fail fast), then its flow loads with the cache: no second parse or validation."""
    facts = open_facts(tmp_path / "out")
    first = load_articles(articles, memo=facts)  # an earlier process: the facts are on disk
    forget()
    cli = load_articles(articles)  # this process's first load parses (the CLI passes no cache)

    def refuse(*args: object) -> None:
        raise AssertionError("loaded twice in one process")

    monkeypatch.setattr(loader_module, "_split_front_matter", refuse)
    monkeypatch.setattr(loader_module, "_recalled", refuse)
    assert load_articles(articles, memo=facts) == cli == first


def test_a_warm_run_knows_a_spanish_editions_language_findings(
    site: SiteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The language check's findings are primed in each edition's language, as the check reads them
    (a Spanish edition's findings are not worked out again on every run)."""
    import clinicpress.checks.language as language_module

    spanish = tmp_path / "terapia.md"
    spanish.write_text((ROOT / "tests/fixtures/i18n/terapia-con-ketamina.md").read_text("utf-8"), "utf-8")
    facts = open_facts(tmp_path / "out")
    _reports([spanish], site, facts)
    forget()

    def refuse(*args: object) -> None:
        raise AssertionError("worked out again although the findings were on disk")

    monkeypatch.setattr(language_module, "_article_language_problems", refuse)
    _reports([spanish], site, facts)
