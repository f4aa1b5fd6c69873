"""``clinicpress import``: a legacy blog page becomes a canonical article, and nothing is made up.

Fixtures in tests/fixtures/import/ are pages of our own: a WordPress-style post
with every kind of page furniture, a minimal page, a page without an h1, the
reference article as the clinic's blog rendered it (its Sources heading lost
its links), a hostile page, and a blog page saved from a browser whose links and
images are relative. URL imports run against tests/httpfarm.py.
"""

from __future__ import annotations

import re
import socket
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup
from conftest import ROOT
from hostile.inert import inert_problems, visible_text
from httpfarm import HTTPFarm, Reply
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from clinicpress.cli import app
from clinicpress.errors import ArticleError, InputError
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.site import License, load_site
from clinicpress.sources.importer import ImportResult, extract, import_page, report_lines
from clinicpress.sources.importer import fetch as importer_fetch
from clinicpress.sources.importer.convert import escape_text, to_markdown
from clinicpress.sources.importer.metadata import Addresses
from clinicpress.sources.loader import load_article
from clinicpress.sources.markdown import body_tokens_of

FIXTURES = ROOT / "tests" / "fixtures" / "import"
SEED = Path("/work/shared/seed/ketamine-therapy-substance-abuse.txt")
LOOPBACK = LinkCheckSettings(allow_private_hosts=["127.0.0.1"], timeout=2.0, retries=0)
HTML = {"Content-Type": "text/html; charset=utf-8"}


def _import(name: str, content: Path, **kwargs: object) -> ImportResult:
    return import_page(str(FIXTURES / name), content_dir=content, **kwargs)  # type: ignore[arg-type]


def _front_and_body(text: str) -> tuple[dict[str, object], str]:
    _, front, body = text.split("---\n", 2)
    data = yaml.safe_load(front)
    assert isinstance(data, dict)
    return data, body


def _filled_in(result: ImportResult) -> Path:
    """The file as an editor completes it: only the fields the import reported missing are added."""
    stand_ins = {"title": "Stand-in title", "summary": "Stand-in summary.", "published": "2025-01-01"}
    stand_ins["last_reviewed"] = "2026-11-01"
    added = "".join(f"{key}: {stand_ins[key]}\n" for key in result.missing_fields)
    text = result.article_text.replace("\n---\n", f"\n{added}---\n", 1)
    path = result.path.with_name("filled-" + result.path.name)
    path.write_text(text, encoding="utf-8")
    return path


def _assert_no_invented_source(result: ImportResult, page: str) -> None:
    front, _ = _front_and_body(result.article_text)
    for source in front.get("sources", []):  # type: ignore[attr-defined]
        url = source["url"]
        doi = url.removeprefix("https://doi.org/")
        path = urlsplit(url).path  # a relative link on the page, resolved against its address
        assert url in page or doi in page or f'href="{path}"' in page, f"{url} is not on the page"
        assert source["title"].split(".")[0] in page


# -- the WordPress-style post -------------------------------------------------------------------


@pytest.fixture
def content(tmp_path: Path) -> Path:
    return tmp_path / "content"


def test_wordpress_post_keeps_the_article_and_drops_the_furniture(content: Path) -> None:
    result = _import("wordpress-post.html", content)
    assert result.path == content / "family-therapy-recovery.md"  # the legacy URL's slug
    assert result.path.read_text(encoding="utf-8") == result.article_text
    front, body = _front_and_body(result.article_text)
    assert front["title"] == "How Family Therapy Supports Recovery"
    assert front["slug"] == "family-therapy-recovery"
    assert str(front["summary"]).startswith("Family therapy helps relatives")
    assert front["published"] == date(2024, 3, 14)
    assert result.missing_fields == ["last_reviewed"]
    assert "last_reviewed" not in front  # a clinical review date is never read off a web page
    for furniture in (
        "Skip to content",
        "We use cookies",
        "Accept",
        "Programs",
        "Call 24/7",
        "Home",
        "Editorial Team",
        "Share this",
        "Twitter",
        "Related posts",
        "Posted in",
        "thoughts on",
        "helped my family",
        "Post Comment",
        "Recent Posts",
        "Licensed by",
        "Copyright",
        "dataLayer",
        "cookie-notice",
    ):
        assert furniture not in body, furniture
    assert "## What happens in a session?" in body
    assert "### How often?" in body
    assert (
        "- communication without blame, including\n  1. listening first,\n  2. saying what you need." in body
    )
    assert "**whole family**" in body
    assert "*anger, guilt and fear*" in body
    assert "| Phase | Sessions |\n| --- | --- |\n| Residential | Weekly |" in body
    assert "> Recovery is a family effort." in body
    assert (
        "![A family talking with a therapist in a bright room]"
        "(https://www.serenitymaliburehab.com/wp-content/uploads/2024/03/family-session.jpg)"
    ) in body
    assert "[SAMHSA guide on family therapy](https://www.samhsa.gov/resource/ebp/" in body
    assert "in-network\\* vs. out-of-network\\_" in body  # literal, not emphasis
    assert "Chat with us" in body
    assert "javascript" not in body
    assert any("kept as text" in n and "javascript" in n for n in result.notes)
    assert any("image without alt text" in n and "chart.png" in n for n in result.notes)


def test_wordpress_sources_are_the_pages_own_and_unlinked_ones_are_reported(content: Path) -> None:
    result = _import("wordpress-post.html", content)
    front, body = _front_and_body(result.article_text)
    assert front["sources"] == [
        {
            "title": (
                "Substance Abuse and Mental Health Services Administration. Substance Use Disorder "
                "Treatment and Family Therapy. TIP 39. store.samhsa.gov"
            ),
            "url": (
                "https://store.samhsa.gov/product/tip-39-substance-use-disorder-treatment-and-family-therapy"
                "/pep20-02-02-012"
            ),
        },
        {
            "title": (
                "McCrady BS, Wilson AD, et al. Alcohol-focused behavioral couple therapy. Fam Process. "
                "2016. doi:10.1111/famp.12231"
            ),
            "url": "https://doi.org/10.1111/famp.12231",
        },
    ]
    assert [n for n in result.notes if n.startswith("source without a link")] == [
        "source without a link, find and confirm it: National Institute on Drug Abuse. "
        "Principles of Drug Addiction Treatment, third edition."
    ]
    assert "Sources" not in body
    assert "Principles of Drug Addiction" not in body
    _assert_no_invented_source(result, (FIXTURES / "wordpress-post.html").read_text(encoding="utf-8"))


def test_wordpress_license_footer_becomes_a_valid_site_toml_block(content: Path) -> None:
    result = _import("wordpress-post.html", content)
    assert result.suggested_site_toml is not None
    assert "does not name the state" in result.suggested_site_toml
    [block] = tomllib.loads(result.suggested_site_toml)["licenses"]
    license_ = License(**block)
    assert license_.program_id == "190655AP"
    assert license_.expires == date(2027, 4, 30)
    assert license_.issuer == "State Department of Health Care Services"  # as written: no state invented


def test_wordpress_loads_once_the_missing_field_is_filled_in(content: Path) -> None:
    result = _import("wordpress-post.html", content)
    assert result.loader_message == (
        f"{result.path}: last_reviewed: required field is missing; expected a value"
    )
    with pytest.raises(ArticleError, match="last_reviewed: required field is missing"):
        load_article(result.path)
    article = load_article(_filled_in(result))
    assert article.key == "family-therapy-recovery"
    assert len(article.sources) == 2
    assert article.cited_numbers() == []  # no citation is invented either


# -- other pages --------------------------------------------------------------------------------


def test_minimal_page(content: Path) -> None:
    result = _import("minimal.html", content)
    assert result.path == content / "sleep-and-early-recovery.md"
    front, body = _front_and_body(result.article_text)
    assert front == {"title": "Sleep and early recovery", "slug": "sleep-and-early-recovery"}
    assert body == "Poor sleep is common in the first weeks without alcohol. It usually improves with time.\n"
    assert result.missing_fields == ["summary", "published", "last_reviewed"]
    assert "# Missing (the page does not state them; never guessed): summary, published, last_reviewed" in (
        result.article_text
    )
    assert result.suggested_site_toml is None
    assert load_article(_filled_in(result)).title == "Sleep and early recovery"


def test_page_without_h1_takes_the_title_tag_without_the_site_name(content: Path) -> None:
    result = _import("no-h1.html", content)
    front, body = _front_and_body(result.article_text)
    assert front["title"] == "What Is a Dual Diagnosis?"
    assert front["summary"] == (
        "A dual diagnosis means a substance use disorder and a mental health condition at the same time."
    )
    assert result.missing_fields == ["published", "last_reviewed"]
    assert "#### Why treat both together?" in body
    assert "\\# of clients" in body  # a '#' that starts a line of text stays text
    assert "1990s programs" in body
    article = load_article(_filled_in(result))
    assert article.key == "what-is-a-dual-diagnosis"
    assert "<h1" not in article.body
    assert "# of clients" in article.body


def test_reference_page_keeps_every_paragraph_and_invents_no_source(content: Path) -> None:
    result = _import("ketamine-therapy-substance-abuse.html", content)
    front, body = _front_and_body(result.article_text)
    assert front["title"] == "Ketamine Therapy Can Help with Substance Abuse"
    assert front["slug"] == "ketamine-therapy-substance-abuse"
    assert front["published"] == date(2023, 5, 22)
    assert "sources" not in front
    assert any("'Sources' heading with nothing under it" in n for n in result.notes)
    assert result.missing_fields == ["summary", "last_reviewed"]
    seed_lines = [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    for line in seed_lines:
        if line.startswith(("Serenity Blog Banner", "Licensed by", "Copyright", "Sources")):
            assert line not in body
        elif line != "Ketamine Therapy Can Help with Substance Abuse":
            assert line in body, line
    assert result.suggested_site_toml is not None
    assert 'program_id = "190655AP"' in result.suggested_site_toml
    article = load_article(_filled_in(result))
    assert article.sources == []


@pytest.mark.parametrize(
    "name",
    [
        "wordpress-post.html",
        "minimal.html",
        "no-h1.html",
        "ketamine-therapy-substance-abuse.html",
        "relative-links.html",
    ],
)
def test_no_fixture_gets_an_invented_source_or_citation(content: Path, name: str) -> None:
    result = _import(name, content)
    _assert_no_invented_source(result, (FIXTURES / name).read_text(encoding="utf-8"))
    assert not re.search(r"(?<!\\)\[\^\d", result.article_text)


def test_hostile_page_imports_as_plain_text(content: Path) -> None:
    from clinicpress.renderers.base import RenderContext
    from clinicpress.renderers.web import render_web_html

    result = _import("hostile.html", content)
    front, body = _front_and_body(result.article_text)
    assert front["title"] == "<img src=x onerror=alert(1)> Injected page"  # text as the page shows it
    assert 'alert("inline script")' not in body  # <script> elements are dropped, not converted
    assert sum("was kept as text" in n for n in result.notes) == 4  # javascript:, data:, file:, JaVaScRiPt:
    article = load_article(_filled_in(result))
    assert article.cited_numbers() == []  # "[^1]" on the page is text, not a citation
    site = load_site(ROOT / "content" / "site.toml")
    page = render_web_html(article, site, RenderContext(datetime(2026, 1, 5, tzinfo=UTC), "0" * 64))
    assert inert_problems(page) == []
    assert "<img src=x onerror=alert(1)> Injected page" in visible_text(page)


# -- writing ------------------------------------------------------------------------------------


def test_existing_file_is_not_overwritten_without_force(content: Path) -> None:
    first = _import("minimal.html", content)
    first.path.write_text("edited by a person\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        _import("minimal.html", content)
    assert str(caught.value) == f"{first.path}: already exists; expected --force to overwrite it"
    assert first.path.read_text(encoding="utf-8") == "edited by a person\n"
    again = _import("minimal.html", content, force=True)
    assert again.path.read_text(encoding="utf-8") == again.article_text
    assert sorted(p.name for p in content.iterdir()) == ["sleep-and-early-recovery.md"]  # no temp left


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: d / "nope.html", "file not found"),
        (lambda d: d, "is a folder"),
    ],
)
def test_unreadable_input_is_an_input_error(tmp_path: Path, make: object, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        import_page(str(make(tmp_path)), content_dir=tmp_path / "content")  # type: ignore[operator]
    assert not (tmp_path / "content").exists()


def test_page_without_any_title_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "___.html"
    page.write_text("<html><body><p>Only text.</p></body></html>", encoding="utf-8")
    with pytest.raises(InputError, match="the page has no title"):
        import_page(str(page), content_dir=tmp_path / "content")


def test_report_lines_say_what_is_missing(content: Path) -> None:
    lines = report_lines(_import("ketamine-therapy-substance-abuse.html", content))
    assert lines[0] == f"wrote {content / 'ketamine-therapy-substance-abuse.md'}"
    assert lines[1] == "missing (the page does not state them, nothing was guessed): summary, last_reviewed"
    check = f"until then `clinicpress check {content / 'ketamine-therapy-substance-abuse.md'}` says:"
    assert any(line.startswith(check) for line in lines), lines
    assert "[[licenses]]" in lines


# -- URLs ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def farm() -> Iterator[HTTPFarm]:
    page = (FIXTURES / "wordpress-post.html").read_bytes()
    with HTTPFarm() as server:
        server.route("/blog/family-therapy-recovery/", Reply(200, HTML, page))
        server.route("/old-address", Reply.redirect(301, "/blog/family-therapy-recovery/"))
        server.route("/to-metadata", Reply.redirect(302, "http://169.254.169.254/latest/meta-data/"))
        server.route("/to-file", Reply.redirect(302, "file:///etc/passwd"))
        server.route("/pdf", Reply(200, {"Content-Type": "application/pdf"}, b"%PDF-1.7"))
        server.route("/huge", Reply(200, HTML, b"<p>" + b"x" * 4096 + b"</p>"))
        server.route("/loop", Reply.redirect(302, "/loop"))
        yield server


def test_url_import_with_loopback_allowed(farm: HTTPFarm, content: Path) -> None:
    result = import_page(farm.url("/old-address"), content_dir=content, force=False, link_settings=LOOPBACK)
    # The page's canonical URL names the slug, as for the file.
    assert result.path == content / "family-therapy-recovery.md"
    assert result.missing_fields == ["last_reviewed"]
    assert farm.last_headers("/blog/family-therapy-recovery/")["User-Agent"] == LOOPBACK.user_agent


def test_url_import_refuses_loopback_unless_allowed(farm: HTTPFarm, content: Path) -> None:
    farm.reset()
    with pytest.raises(InputError, match=r"loopback address 127\.0\.0\.1 is not allowed"):
        import_page(farm.url("/old-address"), content_dir=content, link_settings=LinkCheckSettings())
    assert list(farm.requests()) == []  # refused before connecting
    assert not content.exists()


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/to-metadata", "link-local address 169.254.169.254"),
        ("/to-file", "redirect to a disallowed scheme (file:)"),
        ("/pdf", "is application/pdf; expected an HTML page"),
        ("/missing", "the server answered HTTP 404"),
        ("/loop", "redirect loop: "),
    ],
)
def test_url_import_failures_are_input_errors(
    farm: HTTPFarm, content: Path, path: str, fragment: str
) -> None:
    with pytest.raises(InputError, match=re.escape(fragment)):
        import_page(farm.url(path), content_dir=content, link_settings=LOOPBACK)
    assert not content.exists()


def test_url_import_size_cap(farm: HTTPFarm, content: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer_fetch, "MAX_PAGE_BYTES", 1024)  # the cap lives with the fetch
    with pytest.raises(InputError, match="is larger than 1,024 bytes"):
        import_page(farm.url("/huge"), content_dir=content, link_settings=LOOPBACK)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://example.org/page.html",
        "http://10.0.0.8/blog/",
        "http://[::1]/blog/",
        "http://2130706433/blog/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_url_import_refuses_other_schemes_and_private_addresses(content: Path, url: str) -> None:
    with pytest.raises(InputError):
        import_page(url, content_dir=content, link_settings=LOOPBACK)
    assert not content.exists()


# -- the CLI (wired by the lead) ----------------------------------------------------------------


def test_cli_import_writes_next_to_the_site_config_and_reports(content: Path) -> None:
    content.mkdir()
    site = content / "site.toml"
    site.write_text((ROOT / "content" / "site.toml").read_text(encoding="utf-8"), encoding="utf-8")
    runner = CliRunner()
    args = ["import", str(FIXTURES / "minimal.html"), "--site", str(site), "--out", str(content / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (content / "sleep-and-early-recovery.md").is_file()
    assert "missing (the page does not state them, nothing was guessed)" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "already exists; expected --force" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert not (content / "out").exists()  # import writes only the article


# -- DNS rebinding: the import connects only to the address it vetted --------------------------


def test_url_import_is_pinned_to_the_vetted_address(content: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that answers 127.0.0.2 (allowed here) first and 127.0.0.1 after: the page and its
    redirect hop come from 127.0.0.2, the listener on 127.0.0.1 (same port) sees no connection,
    and the name is resolved once (tests/checks/test_rebinding.py has the parts; real sockets, no DNS)."""
    from rebind_hosts import LISTENER_IP, ORIGIN_IP, Hosts, Resolver

    hosts = Hosts()
    try:
        resolver = Resolver()
        resolver.answers = {"rebind.test": [[ORIGIN_IP], [LISTENER_IP]]}
        monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
        settings = LinkCheckSettings(allow_private_networks=[f"{ORIGIN_IP}/32"], timeout=2.0, retries=0)
        try:
            result: ImportResult | InputError = import_page(
                hosts.url("rebind.test", "/hop"), content_dir=content, link_settings=settings
            )
        except InputError as exc:  # what an unpinned client gets from the listener: a hang-up
            result = exc
        assert hosts.listener.connections == 0, f"connected to the second DNS answer ({result})"
        assert isinstance(result, ImportResult), result
        assert result.path.exists()
        assert hosts.origin.hits["/hop"] == 1
        assert hosts.origin.hits["/page"] == 1
        assert resolver.asked["rebind.test"] == 1
    finally:
        hosts.close()


# -- relative links and images: resolved against the page's own address --------------------------

SAVED = (FIXTURES / "relative-links.html").read_text(encoding="utf-8")
CANONICAL_TAG = '<link rel="canonical" href="https://clinic.example/blog/naloxone-saves-lives/">'
OG_URL_TAG = '<meta property="og:url" content="https://og.clinic.example/blog/naloxone-saves-lives/">'
BASE_TAG = '<base href="https://base.clinic.example/">'


def _saved_page(tmp_path: Path, *without: str) -> Path:
    """The saved page without some of its address tags, as another file."""
    text = SAVED
    for tag in without:
        assert tag in text
        text = text.replace(tag, "")
    page = tmp_path / "saved.html"
    page.write_text(text, encoding="utf-8")
    return page


def test_saved_page_resolves_relative_links_and_images_against_its_canonical_url(content: Path) -> None:
    result = _import("relative-links.html", content)
    assert result.path == content / "naloxone-saves-lives.md"  # the canonical URL names the slug
    front, body = _front_and_body(result.article_text)
    assert front["title"] == "Naloxone Saves Lives: What Families Should Know"
    assert front["published"] == date(2024, 9, 2)
    assert result.missing_fields == ["last_reviewed"]
    assert "![A chart](https://clinic.example/img/x.png)" in body  # was dropped with its alt text
    assert (
        "![A naloxone nasal spray kit in its box](https://clinic.example/blog/naloxone-saves-lives/kit.jpg)"
    ) in body
    assert "A nasal spray kit, as handed out at our front desk." in body  # the caption is kept
    assert "[outpatient program](https://clinic.example/programs/outpatient/)" in body
    assert "[printable guide](https://clinic.example/resources/naloxone-guide/)" in body
    assert "[the overdose FAQ](https://cdn.clinic.example/docs/overdose-faq.html)" in body
    assert "[write to us](mailto:help@clinic.example)" in body
    assert "1. Call 911 and say that someone is not breathing.\n2. Give one spray" in body
    assert "## How to use it" in body
    assert "](/" not in body
    assert "](." not in body
    assert "](kit" not in body
    for furniture in (
        "Clinic Example home",
        "Contact us",
        "Recent posts",
        "Alcohol and sleep",
        "Licensed by",
    ):
        assert furniture not in body, furniture
    assert "Copyright" not in body
    assert "Privacy Policy" not in body
    assert "Sources" not in body
    assert "Lifesaving naloxone" not in body
    assert front["sources"] == [
        {
            "title": (
                "Substance Abuse and Mental Health Services Administration. Opioid Overdose Prevention "
                "Toolkit. store.samhsa.gov"
            ),
            "url": "https://store.samhsa.gov/product/opioid-overdose-prevention-toolkit/sma18-4742",
        },
        {
            "title": "Clinic Example research team. Naloxone distribution at discharge. Our study",
            "url": "https://clinic.example/research/naloxone-at-discharge/",  # a relative link, resolved
        },
    ]
    assert "source without a link, find and confirm it: Centers for Disease Control and Prevention. " in (
        "\n".join(result.notes)
    )
    assert result.suggested_site_toml is not None
    assert 'program_id = "300861AP"' in result.suggested_site_toml


def test_saved_page_output_is_an_article_check_loads(content: Path) -> None:
    result = _import("relative-links.html", content)
    assert (
        result.loader_message == f"{result.path}: last_reviewed: required field is missing; expected a value"
    )
    article = load_article(_filled_in(result))  # only the field the import reported missing is added
    assert article.key == "naloxone-saves-lives"
    assert [source.url for source in article.sources] == [
        "https://store.samhsa.gov/product/opioid-overdose-prevention-toolkit/sma18-4742",
        "https://clinic.example/research/naloxone-at-discharge/",
    ]
    assert "![A chart](https://clinic.example/img/x.png)" in article.body
    assert article.cited_numbers() == []


@pytest.mark.parametrize(
    ("without", "site_url", "image"),
    [
        ((), None, "https://clinic.example/img/x.png"),  # canonical first
        ((CANONICAL_TAG,), None, "https://og.clinic.example/img/x.png"),  # then og:url
        ((CANONICAL_TAG, OG_URL_TAG), None, "https://base.clinic.example/img/x.png"),  # then <base href>
        ((CANONICAL_TAG, OG_URL_TAG, BASE_TAG), "https://site.example", "https://site.example/img/x.png"),
    ],
)
def test_relative_addresses_resolve_in_the_documented_order(
    tmp_path: Path, without: tuple[str, ...], site_url: str | None, image: str
) -> None:
    page = _saved_page(tmp_path, *without)
    result = import_page(str(page), content_dir=tmp_path / "content", site_url=site_url)
    assert f"![A chart]({image})" in result.article_text
    guessed = [n for n in result.notes if "resolved against the site's base_url" in n]
    assert bool(guessed) == (site_url is not None)  # a guess from site.toml is reported as one


def test_saved_page_with_no_address_keeps_relative_links_as_text_and_says_so(tmp_path: Path) -> None:
    page = _saved_page(tmp_path, CANONICAL_TAG, OG_URL_TAG, BASE_TAG)
    result = import_page(str(page), content_dir=tmp_path / "content")
    _, body = _front_and_body(result.article_text)
    assert "Ask at any pharmacy, or pick up a free kit at our outpatient program." in body
    assert "\nA chart\n" in body  # the alt text stays as words; no image without an address
    assert "](/" not in body
    assert any("relative" in n and "/programs/outpatient/" in n for n in result.notes)
    assert any("kept as its alt text" in n and "/img/x.png" in n for n in result.notes)
    assert load_article(_filled_in(result)).key == "naloxone-saves-lives-what-families-should-know"


def test_short_page_is_converted_without_trafilatura_and_still_resolves_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below trafilatura's minimum it would flatten the page into one paragraph: the fallback keeps it."""
    calls: list[str] = []
    real = extract.trafilatura.extract

    def counting(*args: object, **kwargs: object) -> str | None:
        calls.append("called")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(extract.trafilatura, "extract", counting)
    page = tmp_path / "short.html"
    page.write_text(
        '<html><head><link rel="canonical" href="https://clinic.example/blog/short/"></head><body>'
        "<nav><a href='/'>Home</a></nav><article><h1>Short</h1><p>One line.</p>"
        '<p><img src="/img/x.png" alt="A chart"></p><ul><li>a</li><li>b</li></ul></article></body></html>',
        encoding="utf-8",
    )
    result = import_page(str(page), content_dir=tmp_path / "content")
    _, body = _front_and_body(result.article_text)
    assert body == "One line.\n\n![A chart](https://clinic.example/img/x.png)\n\n- a\n- b\n"
    assert calls == []
    _import("relative-links.html", tmp_path / "other")
    assert calls == ["called"]  # a page of article length goes through trafilatura


def test_url_import_resolves_relative_links_against_the_fetched_url(farm: HTTPFarm, content: Path) -> None:
    page = SAVED.replace(CANONICAL_TAG, "").replace(OG_URL_TAG, "").replace(BASE_TAG, "")
    farm.route("/blog/naloxone-saves-lives/", Reply(200, HTML, page.encode()))
    result = import_page(farm.url("/blog/naloxone-saves-lives/"), content_dir=content, link_settings=LOOPBACK)
    assert f"![A chart]({farm.url('/img/x.png')})" in result.article_text
    assert f"]({farm.url('/blog/naloxone-saves-lives/kit.jpg')})" in result.article_text
    assert result.path == content / "naloxone-saves-lives.md"


def test_cli_import_of_a_saved_page_resolves_against_the_sites_base_url(tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    site = content / "site.toml"
    site.write_text((ROOT / "content" / "site.toml").read_text(encoding="utf-8"), encoding="utf-8")
    page = _saved_page(tmp_path, CANONICAL_TAG, OG_URL_TAG, BASE_TAG)
    result = CliRunner().invoke(app, ["import", str(page), "--site", str(site)])
    assert result.exit_code == 0, result.output
    base_url = load_site(site).organization.base_url
    text = (content / "naloxone-saves-lives-what-families-should-know.md").read_text(encoding="utf-8")
    assert f"![A chart]({base_url}/img/x.png)" in text
    assert "resolved against the site's base_url" in result.output


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (Addresses("https://a/c", "https://a/o", "https://a/b", "https://a/f", "https://s/"), "canonical"),
        (Addresses(None, "https://a/o", "https://a/b", "https://a/f", "https://s/"), "og:url"),
        (Addresses(None, None, "https://a/b", "https://a/f", "https://s/"), "<base href>"),
        (Addresses(None, None, None, "https://a/f", "https://s/"), "fetched URL"),
        (Addresses(None, None, None, None, "https://s/"), "[organization] base_url"),
        (Addresses(), None),
    ],
)
def test_base_address_order(addresses: Addresses, expected: str | None) -> None:
    assert addresses.base()[1] == expected


@pytest.mark.parametrize(
    ("words", "escaped"),
    [
        ("[^1] *x* _y_ <b>", "\\[^1\\] \\*x\\* \\_y\\_ \\<b\\>"),
        ("# of clients", "\\# of clients"),
        ("- not a list", "\\- not a list"),
        ("1990. A year", "1990\\. A year"),
        ("&amp; stays text", "\\&amp; stays text"),
        ("N-methyl-D-aspartate, 28 to 84 mg", "N-methyl-D-aspartate, 28 to 84 mg"),
    ],
)
def test_page_text_never_becomes_markup(words: str, escaped: str) -> None:
    assert escape_text(words) == escaped


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60))
def test_any_page_text_parses_back_as_the_same_text(raw: str) -> None:
    """Whatever the page's words, the article syntax reads them back as those words and nothing else."""
    words = " ".join(raw.split())
    assume(words)
    tokens = body_tokens_of(escape_text(words), 3)
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    children = tokens[1].children or []
    assert {c.type for c in children} == {"text"}
    assert "".join(c.content for c in children) == words


def test_what_trafilatura_leaves_out_is_reported(content: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = extract._trafilatura

    def losing_a_paragraph(page: str) -> BeautifulSoup | None:
        found = real(page)
        assert found is not None
        for p in found.find_all("p"):
            if "Our team answers questions" in p.get_text():
                p.decompose()
        return found

    monkeypatch.setattr(extract, "_trafilatura", losing_a_paragraph)
    result = _import("relative-links.html", content)
    [note] = [n for n in result.notes if n.startswith("left out by the main-content extraction")]
    assert "Our team answers questions about overdose prevention around the clock" in note


def test_when_trafilatura_finds_nothing_the_article_container_is_converted(
    content: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract, "_trafilatura", lambda page: None)
    result = _import("wordpress-post.html", content)
    _, body = _front_and_body(result.article_text)
    assert any(n.startswith("trafilatura kept 0 of the article's") for n in result.notes)
    assert "## What happens in a session?" in body
    assert "| Phase | Sessions |" in body
    for furniture in ("Share this", "Related posts", "Editorial Team", "Recent Posts", "Licensed by"):
        assert furniture not in body, furniture


def test_spaces_between_links_and_emphasis_survive_the_extraction(tmp_path: Path) -> None:
    """trafilatura alone turns "<a>one</a> <a>two</a>" into "onetwo": the importer keeps the space."""
    filler = "<p>" + "A paragraph about recovery, family support and treatment plans. " * 6 + "</p>"
    page = tmp_path / "spaces.html"
    page.write_text(
        '<html><head><link rel="canonical" href="https://clinic.example/blog/spaces/"></head><body>'
        f"<article><h1>Spaces</h1>{filler}"
        '<p>See <a href="/one">one</a> <a href="/two">two</a> and <b>bold</b> <i>italic</i> words, '
        '<strong>Call</strong> <a href="tel:+14242352009">424-235-2009</a> today.</p>'
        f"{filler}</article></body></html>",
        encoding="utf-8",
    )
    result = import_page(str(page), content_dir=tmp_path / "content")
    assert (
        "See [one](https://clinic.example/one) [two](https://clinic.example/two) and **bold** *italic* "
        "words, **Call** [424-235-2009](tel:+14242352009) today."
    ) in result.article_text


def test_converter_writes_only_what_the_article_syntax_reads() -> None:
    html = (
        "<h1>Second h1</h1><table><tr><td>a</td><td>b | c</td></tr><tr><td>d</td><td>e</td></tr></table>"
        "<dl><dt>Term</dt><dd>Meaning</dd></dl><p>line<br>break</p><hr><pre>x = 1\n\ny = 2</pre>"
        '<p><a href="data:text/html,x">data</a> <img src="data:image/png;base64,AA" alt="inline"></p>'
    )
    notes: list[str] = []
    markdown = to_markdown(BeautifulSoup(html, "lxml"), "https://clinic.example/", notes)
    assert markdown == (
        "## Second h1\n\n| a | b \\| c |\n| --- | --- |\n| d | e |\n\nTerm\n\nMeaning\n\n"
        "line\\\nbreak\n\n* * *\n\n```\nx = 1\n\ny = 2\n```\n\ndata inline\n"
    )
    assert [n.split(":", 1)[0] for n in notes] == [
        "a link with a data URL was kept as text",
        "an image without an http(s) address was kept as its alt text",
    ]
