"""The article loader: the reference article loads; every bad input names file, field and expectation."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path

import pytest
from conftest import (
    FIXED_DATES_FRONT_MATTER,
    MINIMAL_FRONT_MATTER,
    PUBLISHED,
    REFERENCE_ARTICLE,
    WriteArticle,
)
from requirements import need

from clinicpress.errors import ArticleError, InputError
from clinicpress.sources import Channel, discover_articles, load_article, load_articles, load_each
from clinicpress.sources.article import add_months, slugify


def test_reference_article_loads() -> None:
    article = load_article(REFERENCE_ARTICLE)
    assert article.key == "ketamine-therapy-substance-abuse"
    assert article.channels == [Channel.WEB, Channel.HANDOUT, Channel.NEWSLETTER]
    assert len(article.sources) == 5
    assert all(s.url.startswith("https://") for s in article.sources)
    assert set(article.cited_numbers()) == {1, 2, 3, 4, 5}
    assert "Serenity Blog Banner" not in article.body
    assert article.next_review == date(2027, 11, 26)


FIXED_DATES = (
    "title: Test Article\nsummary: A short summary.\npublished: 2026-01-05\nlast_reviewed: 2026-11-01\n"
)


def test_defaults_slug_next_review_channels(write_article: WriteArticle) -> None:
    article = load_article(write_article(front_matter=FIXED_DATES_FRONT_MATTER))  # loading reads no clock
    assert article.slug == "test-article"
    assert article.next_review == date(2027, 11, 1)
    assert article.channels == list(Channel)


def test_doi_and_pmid_shorthands_become_urls(write_article: WriteArticle) -> None:
    front = MINIMAL_FRONT_MATTER + (
        "sources:\n"
        "  - {title: A, url: 'doi:10.1176/appi.ajp.2019.18101123'}\n"
        "  - {title: B, url: 'pmid:31230464'}\n"
    )
    article = load_article(write_article(front_matter=front))
    assert [s.url for s in article.sources] == [
        "https://doi.org/10.1176/appi.ajp.2019.18101123",
        "https://pubmed.ncbi.nlm.nih.gov/31230464/",
    ]
    assert article.sources[0].doi == "10.1176/appi.ajp.2019.18101123"
    assert article.sources[1].pmid == "31230464"


def _error(path: Path) -> ArticleError:
    with pytest.raises(ArticleError) as caught:
        load_article(path)
    return caught.value


@pytest.mark.parametrize(
    ("front_matter", "field", "fragment"),
    [
        (
            "summary: s\npublished: 2026-01-05\nlast_reviewed: 2026-01-05\n",
            "title",
            "required field is missing",
        ),
        (MINIMAL_FRONT_MATTER.replace(str(PUBLISHED), "5 January 2026"), "published", "a date as YYYY-MM-DD"),
        (MINIMAL_FRONT_MATTER.replace(str(PUBLISHED), "2026-13-40"), "published", "a date as YYYY-MM-DD"),
        (MINIMAL_FRONT_MATTER.replace(str(PUBLISHED), "0026-01-05"), "published", "out of range"),
        (MINIMAL_FRONT_MATTER + "author: someone\n", "author", "unknown key"),
        (MINIMAL_FRONT_MATTER + "channels: [web, fax]\n", "channels.1", "'web', 'handout' or 'newsletter'"),
        (MINIMAL_FRONT_MATTER + "slug: ../etc/passwd\n", "slug", "is not a slug"),
        (
            MINIMAL_FRONT_MATTER + "sources:\n  - {title: X, url: 'javascript:alert(1)'}\n",
            "sources.0.url",
            "http(s)",
        ),
        (MINIMAL_FRONT_MATTER + "sources:\n  - {title: X}\n", "sources.0.url", "required field is missing"),
        (MINIMAL_FRONT_MATTER + "reviewed_by: {name: A, degree: MD}\n", "reviewed_by.degree", "unknown key"),
    ],
)
def test_bad_front_matter_names_the_field(
    write_article: WriteArticle, front_matter: str, field: str, fragment: str
) -> None:
    path = write_article(front_matter=front_matter)
    error = _error(path)
    assert error.path == str(path)
    assert error.field == field
    assert fragment in str(error)
    assert "\n" not in str(error)


def test_unknown_key_lists_the_allowed_keys(write_article: WriteArticle) -> None:
    error = _error(write_article(front_matter=MINIMAL_FRONT_MATTER + "tags: [a]\n"))
    assert "expected one of" in str(error)
    assert "last_reviewed" in str(error)


def test_invalid_yaml_gives_the_file_line(write_article: WriteArticle) -> None:
    # Line 1 is '---', so the broken third front-matter line is line 4 of the file.
    error = _error(write_article(front_matter="title: A\nsummary: B\npublished: [2026\n"))
    assert error.field == "front matter"
    assert "invalid YAML at line" in str(error)


def test_yaml_aliases_are_refused(write_article: WriteArticle) -> None:
    bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\n' + MINIMAL_FRONT_MATTER
    assert "aliases" in str(_error(write_article(front_matter=bomb)))


@pytest.mark.parametrize(
    ("content", "field", "fragment"),
    [
        ("no front matter here\n", "front matter", "does not start with '---'"),
        ("---\ntitle: A\n", "front matter", "no closing '---'"),
        ("---\n---\nbody\n", "front matter", "is empty"),
        ("---\n- a\n- b\n---\nbody\n", "front matter", "a mapping"),
        (f"---\n{MINIMAL_FRONT_MATTER}---\n\n  \n", "body", "is empty"),
        (f"---\n{MINIMAL_FRONT_MATTER}---\nSee [^2].\n", "body", "cites [^2] but sources has 0 entries"),
    ],
)
def test_bad_files(tmp_path: Path, content: str, field: str, fragment: str) -> None:
    path = tmp_path / "x.md"
    path.write_text(content, encoding="utf-8")
    error = _error(path)
    assert error.field == field
    assert fragment in str(error)


def test_binary_non_utf8_and_huge_files(tmp_path: Path) -> None:
    binary = tmp_path / "b.md"
    binary.write_bytes(b"---\x00\x01\x02")
    assert "binary" in str(_error(binary))
    latin = tmp_path / "l.md"
    latin.write_bytes(f"---\n{MINIMAL_FRONT_MATTER}---\ncaf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in str(_error(latin))
    huge = tmp_path / "h.md"
    huge.write_text(f"---\n{MINIMAL_FRONT_MATTER}---\n" + "x" * 1_100_000)
    assert "at most" in str(_error(huge))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert "file not found" in str(_error(tmp_path / "nope.md"))
    with pytest.raises(InputError, match="no such file"):
        discover_articles([tmp_path / "nope"])
    with pytest.raises(InputError, match="holds no articles"):
        discover_articles([tmp_path])


def test_duplicate_slugs_are_refused(write_article: WriteArticle) -> None:
    first = write_article(name="one.md")
    second = write_article(name="two.md")
    with pytest.raises(ArticleError, match="already used by"):
        load_articles([first, second])


def test_discover_defaults_to_content_folder(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("x")
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "site.toml").write_text("x")
    assert discover_articles([], content_dir=tmp_path) == [tmp_path / "a.md", tmp_path / "b.md"]


def test_slugify_and_add_months() -> None:
    assert slugify("Ketamine Therapy: Can It Help?") == "ketamine-therapy-can-it-help"
    assert slugify("Café & Crème") == "cafe-creme"
    assert add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2025, 6, 1), 12) == date(2026, 6, 1)


HOSTILE_YAML = sorted((Path(__file__).resolve().parents[1] / "hostile" / "articles").glob("yaml-*.md"))


@pytest.mark.parametrize("path", [REFERENCE_ARTICLE, *HOSTILE_YAML], ids=lambda p: p.stem)
def test_libyaml_and_pure_python_front_matter_agree(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The libyaml fast path refuses and accepts exactly what the pure-Python loader does."""
    import yaml

    from clinicpress.sources import loader

    if not yaml.__with_libyaml__:
        need("libyaml", "PyYAML without libyaml has only the pure-Python loader (use the PyYAML wheel)")

    def outcome() -> object:
        loader._parse_article.cache_clear()  # parse again, not the article kept from the last call
        try:
            return load_article(path)
        except InputError as exc:
            # The same refusal, field and line; libyaml words a few problems differently.
            return type(exc).__name__, exc.field, re.findall(r"line (\d+)", str(exc)), str(exc)[:60]

    fast = outcome()
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    assert outcome() == fast


def test_front_matter_is_parsed_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """One parser reads the front matter once: the rules are checked as its nodes are composed,
    not by a second pass over libyaml's events (issue 27)."""
    import yaml

    from clinicpress.sources import loader

    passes: list[str] = []

    def counted(name: str) -> Callable[..., object]:
        real = getattr(yaml, name)

        def run(*args: object, **kwargs: object) -> object:
            passes.append(name)
            return real(*args, **kwargs)

        return run

    # Every way PyYAML reads a stream from the top: each call is one pass over the text.
    for name in ("parse", "scan", "compose", "compose_all", "load", "load_all", "safe_load"):
        monkeypatch.setattr(yaml, name, counted(name))
    loader._parse_article.cache_clear()
    load_article(REFERENCE_ARTICLE)
    assert passes == ["load"]


class _Memo:
    """Loaded articles kept between processes, in a dict (what checks/facts_cache.py keeps on disk)."""

    def __init__(self) -> None:
        self.kept: dict[str, str] = {}

    def recall_articles(self, keys: Sequence[str]) -> dict[str, str]:
        return {key: self.kept[key] for key in keys if key in self.kept}

    def remember_articles(self, values: Mapping[str, str]) -> None:
        self.kept.update(values)


def test_load_each_skips_what_does_not_load_with_or_without_a_memo(tmp_path: Path) -> None:
    good = tmp_path / "good.md"
    good.write_text(f"---\n{MINIMAL_FRONT_MATTER}---\nText.\n", encoding="utf-8")
    bad = tmp_path / "bad.md"
    bad.write_text(f"---\n{MINIMAL_FRONT_MATTER}author: x\n---\nText.\n", encoding="utf-8")
    binary = tmp_path / "binary.md"
    binary.write_bytes(b"---\x00")
    memo = _Memo()
    results = [load_each([bad, good, binary], memo=m) for m in (None, memo, memo)]  # the last: recalled
    for loaded in results:
        assert [a.path for a in loaded.articles] == [good]
        assert [(s.path, s.field, s.reason) for s in loaded.skipped] == [
            (str(bad), "author", "unknown key"),
            (str(binary), None, "unreadable"),
        ]
    assert len(memo.kept) == 1  # only what loaded is kept
    with pytest.raises(ArticleError, match="author: unknown key"):  # all or nothing: the first error
        load_articles([good, bad, binary], memo=_Memo())
