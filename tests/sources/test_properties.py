"""Property tests: arbitrary input into the loader and the renderers.

The loader may only ever raise InputError (ArticleError is one); the renderers'
HTML parses strictly and stays inert (see tests/hostile/inert.py) whatever the
text. Budget: a few seconds per property (``max_examples`` below); the PDF
property runs three examples (~0.5 s each).
"""

from __future__ import annotations

import string
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from hostile.inert import inert_problems
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clinicpress.errors import InputError
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.handout import render_handout_html, render_handout_pdf
from clinicpress.renderers.newsletter import build_message
from clinicpress.renderers.web import render_web_html
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article
from clinicpress.sources.loader import load_article

CONTEXT = RenderContext(published_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC), version="0" * 64)
KEYS = ["title", "slug", "summary", "published", "last_reviewed", "reviewed_by", "next_review", "channels"]
KEYS += ["sources", "author", "<<", ""]
# derandomize: the same examples on every run, so the suite (and CI) is deterministic.
COMMON = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Text that exercises Markdown, HTML and URL parsing: the alphabet of an attack.
HOSTILE_BITS = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)", "data:text/html,x",
    "[x](javascript:alert(1))", "![a](http://127.0.0.1:1/x.png)", "[^1]", "[^2]", "\"", "'", "&amp;", "&#0;",
    "<", ">", "`", "*", "_", "#", "\r\n", "\n", "\t", "\u2028", "\x00", "\x0b", "\ufeff", "---", "...",
    "<style>@import url(http://127.0.0.1:1/)</style>", "| a | b |\n| - | - |", "> quote", "1. item", "- item",
    "<!--", "-->", "<![CDATA[", "]]>", "\u202e", "é", "💊",
]  # fmt: skip
hostile_text = st.lists(st.one_of(st.sampled_from(HOSTILE_BITS), st.text(max_size=12)), max_size=12).map(
    "".join
)
yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    hostile_text,
    st.dates(),
    st.sampled_from(["2026-01-05", "2026-13-40", "0", "web", "handout", "https://example.org/"]),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from([*KEYS, "title", "url"]), children)
    ),
    max_leaves=12,
)


def _load(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(data)
    error: InputError | None = None
    try:
        load_article(path)
    except InputError as exc:  # the only exception allowed out
        error = exc
    if error is not None:
        assert str(error).startswith(str(path))  # every message names the file


@settings(COMMON, max_examples=150)
@given(data=st.binary(max_size=600))
def test_loader_on_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    _load(tmp_path, data)
    _load(tmp_path, b"---\n" + data + b"\n---\nBody\n")


@settings(COMMON, max_examples=150)
@given(front=st.text(max_size=300), body=hostile_text)
def test_loader_on_arbitrary_text(tmp_path: Path, front: str, body: str) -> None:
    _load(tmp_path, f"---\n{front}\n---\n{body}".encode("utf-8", "surrogatepass"))


@settings(COMMON, max_examples=100)
@given(front=st.dictionaries(st.sampled_from(KEYS), yaml_values, max_size=9), body=hostile_text)
def test_loader_on_arbitrary_front_matter(tmp_path: Path, front: dict[str, Any], body: str) -> None:
    base: dict[str, Any] = {
        "title": "T",
        "summary": "S",
        "published": "2026-01-05",
        "last_reviewed": "2026-11-01",
    }
    for mapping in (front, base | front):
        text = yaml.safe_dump(mapping, allow_unicode=True)
        _load(tmp_path, f"---\n{text}---\n{body}".encode("utf-8", "surrogatepass"))


# -- renderers --------------------------------------------------------------------------------------


def _one_line(text: str, limit: int) -> str:
    """What a single-line field may hold: no line breaks, no control characters, not blank."""
    kept = "".join(c for c in text if len(f"a{c}b".splitlines()) == 1 and (c.isprintable() or c == " "))
    return kept.strip()[:limit].strip() or "x"


def one_line(limit: int) -> st.SearchStrategy[str]:
    return hostile_text.map(lambda t: _one_line(t, limit))


source_urls = st.one_of(
    st.just("https://example.org/a"),
    hostile_text.map(lambda t: "https://example.org/" + "".join(c for c in t if not c.isspace())),
    st.sampled_from(["doi:10.1000/x<y>", "pmid:123", 'https://example.org/?q="><script>alert(1)</script>']),
)


@st.composite
def articles(draw: st.DrawFn) -> Article:
    """An Article as the loader would accept it: the model validates, then the renderers run."""
    sources = draw(st.lists(st.fixed_dictionaries({"title": one_line(500), "url": source_urls}), max_size=3))
    names = st.fixed_dictionaries({"name": one_line(120), "credentials": one_line(60)})
    reviewer = draw(st.one_of(st.none(), names))
    data = {
        "title": draw(one_line(200)),
        "slug": draw(st.sampled_from(["a", "some-article"])),
        "summary": draw(one_line(400)),
        "published": draw(st.dates(date(1900, 1, 1), date(2200, 1, 1))),
        "last_reviewed": draw(st.dates(date(1900, 1, 1), date(2199, 1, 1))),
        "reviewed_by": reviewer,
        "sources": sources,
        "body": draw(hostile_text) + "\n",
        "path": Path("a.md"),
    }
    try:
        article = Article.model_validate(data)
    except ValueError:  # pydantic's ValidationError: the loader would refuse it (tested above)
        assume(False)
        raise
    # The loader also refuses a body citing a source that is not listed.
    assume(all(1 <= n <= len(article.sources) for n in article.cited_numbers()))
    assume(article.body.strip())
    return article


@settings(COMMON, max_examples=120)
@given(article=articles())
def test_web_and_email_html_parse_and_stay_inert(site: SiteConfig, article: Article) -> None:
    web = render_web_html(article, site, CONTEXT)
    assert inert_problems(web) == []
    # Jinja escapes every '<' it is given: the only "<script" is the page's own JSON-LD element.
    assert web.lower().count("<script") == web.count('<script type="application/ld+json">') == 1
    message = build_message(article, site, CONTEXT)
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    assert html_part is not None
    assert text_part is not None
    # css-inline re-serialises the email as HTML5 does: '<' inside an attribute value (an image's
    # alt text) is written raw. That is data, not an element; the strict parse decides.
    assert inert_problems(str(html_part.get_content())) == []
    assert isinstance(text_part.get_content(), str)
    assert message["Subject"] == article.title
    assert inert_problems(render_handout_html(article, site)) == []


@settings(COMMON, max_examples=3)
@given(article=articles())
def test_handout_pdf_is_made_for_any_article(site: SiteConfig, article: Article) -> None:
    assert render_handout_pdf(article, site).startswith(b"%PDF")


def test_alphabet_is_printable_enough() -> None:
    # Guard against an accidental all-whitespace alphabet (the strategies would be vacuous).
    assert any(set(bit) & set(string.ascii_letters) for bit in HOSTILE_BITS)
