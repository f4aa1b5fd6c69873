"""Renderers: web page, handout PDF and newsletter email of the reference article.

Golden files (tests/golden/) are the spec of the web page and the email's
text part. After an intended change, regenerate them and read the diff:

    CLINICPRESS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_renderers.py

Nothing here touches the network: the handout test that cites a remote image
also makes every DNS lookup fail the test.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import re
import socket
from datetime import UTC, datetime
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path
from typing import Any

import pypdf
import pytest

from clinicpress.errors import RenderError
from clinicpress.renderers.base import Artifact, RenderContext
from clinicpress.renderers.handout import (
    DISCLAIMER,
    URL_FETCHER,
    FetchRefused,
    HandoutRenderer,
    render_handout_html,
    render_handout_pdf,
)
from clinicpress.renderers.markdown import ASSETS_DIR, canonical_url, render_body_html
from clinicpress.renderers.newsletter import NewsletterRenderer, build_message, render_newsletter_text
from clinicpress.renderers.registry import RENDERERS, render_article, template_fingerprint
from clinicpress.renderers.text import WIDTH, render_body_text
from clinicpress.renderers.web import WebRenderer, render_web_html
from clinicpress.site import SiteConfig, load_site
from clinicpress.sources import Article, Channel, Reviewer, load_article

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
SLUG = "ketamine-therapy-substance-abuse"
CONTEXT = RenderContext(published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC), version="0" * 64)
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def article() -> Article:
    return load_article(ROOT / "content" / f"{SLUG}.md")


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(ROOT / "content" / "site.toml")


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("CLINICPRESS_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="")
        return
    assert path.exists(), f"{path} is missing: run with CLINICPRESS_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file; if intended, regenerate with CLINICPRESS_UPDATE_GOLDEN=1"
    )


def squash(text: str) -> str:
    """Whitespace removed: pypdf and text wrapping break lines anywhere."""
    return re.sub(r"\s+", "", text)


def one_space(text: str) -> str:
    return " ".join(text.split())


def with_body(article: Article, body: str, **update: Any) -> Article:
    return article.model_copy(update={"body": body, **update})


# --- the shared body -------------------------------------------------------------------


def test_citations_link_to_numbered_sources(article: Article) -> None:
    html = render_body_html(article)
    assert 'depression.&#8288;<sup class="cite"><a href="#source-4">[4]</a></sup>' in html
    assert "[^" not in html
    text = render_body_text(article)
    assert "depression.[4]" in text
    assert "treatments.[2][3]" in text


def test_citation_of_a_missing_source_fails_the_render(article: Article) -> None:
    with pytest.raises(RenderError, match=r"\[\^9\].*5 source"):
        render_body_html(with_body(article, "Claim.[^9]"))


def test_body_h1_is_demoted_and_h2_kept(article: Article) -> None:
    html = render_body_html(with_body(article, "# Top\n\n## Section\n\n### Sub\n"))
    assert "<h1" not in html
    assert "<h2>Top</h2>" in html
    assert "<h2>Section</h2>" in html
    assert "<h3>Sub</h3>" in html


def test_text_from_markdown_tokens(article: Article) -> None:
    body = (
        "## Steps\n\nSee [our guide](/guide/) and [FDA](https://www.fda.gov/) now.[^1]\n\n"
        "- first\n- second\n\n1. one\n2. two\n"
    )
    text = render_body_text(with_body(article, body), base_url="https://example.org/a/")
    assert text == (
        "Steps\n-----\n\n"
        "See our guide (https://example.org/guide/) and FDA\n(https://www.fda.gov/) now.[1]\n\n"
        "- first\n- second\n\n1. one\n2. two"
    )


# --- web --------------------------------------------------------------------------------


def test_web_matches_golden(article: Article, site: SiteConfig) -> None:
    check_golden(f"{SLUG}.web.html", render_web_html(article, site, CONTEXT))


def test_web_artifact_and_page(article: Article, site: SiteConfig) -> None:
    [artifact] = WebRenderer().render(article, site, CONTEXT)
    assert artifact.relpath == f"web/{SLUG}/index.html"
    assert artifact.media_type == "text/html"
    assert artifact.channel is Channel.WEB
    html = artifact.data.decode("utf-8")
    assert html.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert html.count("<h1") == 1
    assert '<meta charset="utf-8">' in html
    assert 'name="viewport"' in html
    assert f'<meta name="description" content="{article.summary}">' in html
    assert f'<link rel="canonical" href="https://www.serenitymaliburehab.com/{SLUG}/">' in html
    assert 'Published <time datetime="2025-06-02">June 2, 2025</time>' in html
    assert 'Last reviewed <time datetime="2026-11-26">November 26, 2026</time>' in html
    assert 'Next review <time datetime="2027-11-26">November 26, 2027</time>' in html
    for number, source in enumerate(article.sources, start=1):
        assert f'<li id="source-{number}">' in html
        assert f">{source.url}</a>" in html  # the full URL is visible, not just linked
    assert "DOI: 10.3389/fpsyt.2018.00277" in html
    for lic in site.licenses:
        assert lic.line() in html
    assert site.organization.postal_address in html
    # Self-contained: nothing for a browser to fetch, nothing to run.
    assert "<script" not in html
    assert '<link rel="stylesheet"' not in html
    assert " src=" not in html
    assert render_web_html(article, site, CONTEXT) == html  # deterministic


def test_web_names_the_reviewer(article: Article, site: SiteConfig) -> None:
    reviewed = article.model_copy(update={"reviewed_by": Reviewer(name="Jane Doe", credentials="MD")})
    html = render_web_html(reviewed, site, CONTEXT)
    assert "November 26, 2026</time> by Jane Doe, MD · Next review" in html


def test_web_escapes_title_and_summary(article: Article, site: SiteConfig) -> None:
    hostile = article.model_copy(update={"title": f"Ketamine {XSS}", "summary": f'"{XSS}'})
    html = render_web_html(hostile, site, CONTEXT)
    assert "<script" not in html
    assert "Ketamine &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'content="&#34;&lt;script&gt;' in html  # the quote cannot end the attribute
    assert "<script" not in render_handout_html(hostile, site)


def test_body_raw_html_and_script_links_are_inert(article: Article, site: SiteConfig) -> None:
    body = (
        f"{XSS}\n\n<img src=x onerror=alert(1)>\n\n"
        "[x](javascript:alert(1)) [v](vbscript:msgbox(1)) [f](file:///etc/passwd) "
        "[d](data:text/html;base64,PHNjcmlwdD4=) [ok](https://example.org/)\n"
    )
    hostile = with_body(article, body)
    web = render_web_html(hostile, site, CONTEXT)
    mail = build_message(hostile, site, CONTEXT).get_body(preferencelist=("html",))
    assert mail is not None
    for html in (web, mail.get_content()):
        assert "<script" not in html
        assert '<img src="x"' not in html
        assert not re.search(r'href="\s*(javascript|vbscript|file|data):', html, re.IGNORECASE)
        assert '<a href="https://example.org/"' in html


# --- newsletter -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def newsletter(article: Article, site: SiteConfig) -> list[Artifact]:
    return NewsletterRenderer().render(article, site, CONTEXT)


@pytest.fixture(scope="module")
def message(newsletter: list[Artifact]) -> EmailMessage:
    parsed = email.message_from_bytes(newsletter[0].data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


def test_email_text_matches_golden(message: EmailMessage) -> None:
    check_golden(f"{SLUG}.email.txt", _parts(message)[0])


def test_email_artifacts(newsletter: list[Artifact], message: EmailMessage) -> None:
    eml, preview = newsletter
    assert (eml.relpath, eml.media_type) == (f"newsletter/{SLUG}.eml", "message/rfc822")
    assert (preview.relpath, preview.media_type) == (f"newsletter/{SLUG}.html", "text/html")
    assert preview.data.decode("utf-8") == _parts(message)[1]


def test_email_headers(message: EmailMessage, article: Article) -> None:
    assert message["From"] == "Serenity Malibu <newsletter@serenitymaliburehab.com>"
    assert message["Reply-To"] == "info@serenitymaliburehab.com"
    assert message["Subject"] == article.title
    assert message["Date"] == "Fri, 27 Nov 2026 12:00:00 +0000"
    # Folded onto its own line (over 78 columns); the parser keeps the fold's space.
    assert message["Message-ID"].strip() == f"<{SLUG}.0000000000000000@serenitymaliburehab.com>"
    assert message["List-Unsubscribe"].strip() == (
        "<https://www.serenitymaliburehab.com/newsletter/unsubscribe>, "
        "<mailto:unsubscribe@serenitymaliburehab.com?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_email_html_is_inlined(message: EmailMessage, article: Article) -> None:
    html = _parts(message)[1]
    assert "<style" not in html
    assert '<body style="' in html
    assert '<h1 style="' in html
    assert re.search(
        r'<span class="preheader" style="display: none;[^"]*">' + re.escape(article.summary), html
    )
    assert html.count("<h1") == 1


def test_email_text_lines_fit(message: EmailMessage) -> None:
    long_lines = [line for line in _parts(message)[0].splitlines() if len(line) > WIDTH]
    # Only a URL alone on its line may be longer: breaking it would break the link.
    assert all(re.fullmatch(r"\s*https?://\S+", line) for line in long_lines), long_lines


def test_email_footer_in_both_parts(message: EmailMessage, site: SiteConfig, article: Article) -> None:
    for part in _parts(message):
        flat = one_space(part)
        for lic in site.licenses:
            assert lic.line() in flat
        assert site.organization.postal_address in flat
        assert site.newsletter.unsubscribe_url in flat
        assert f"Read on the web: {canonical_url(article, site)}" in re.sub(r"<[^>]+>", "", flat)


def test_email_is_reproducible(article: Article, site: SiteConfig, newsletter: list[Artifact]) -> None:
    assert NewsletterRenderer().render(article, site, CONTEXT) == newsletter


def test_email_refuses_line_breaks_in_headers(article: Article, site: SiteConfig) -> None:
    with pytest.raises(RenderError, match="Subject"):
        build_message(article.model_copy(update={"title": "Hi\r\nBcc: all@example.org"}), site, CONTEXT)
    news = site.newsletter.model_copy(update={"from_name": "Clinic\nBcc: all@example.org"})
    with pytest.raises(RenderError, match="From name"):
        build_message(article, site.model_copy(update={"newsletter": news}), CONTEXT)


def test_email_needs_an_aware_date(article: Article, site: SiteConfig) -> None:
    naive = RenderContext(published_at=datetime(2026, 11, 27, 12, 0), version="0" * 64)
    with pytest.raises(RenderError, match="timezone"):
        build_message(article, site, naive)


def test_email_text_without_reply_to(article: Article, site: SiteConfig) -> None:
    news = site.newsletter.model_copy(update={"reply_to": None, "unsubscribe_mailto": None})
    other = site.model_copy(update={"newsletter": news})
    msg = build_message(article, other, CONTEXT)
    assert msg["Reply-To"] is None
    assert msg["List-Unsubscribe"] == "<https://www.serenitymaliburehab.com/newsletter/unsubscribe>"
    assert render_newsletter_text(article, other).endswith(
        "Unsubscribe: https://www.serenitymaliburehab.com/newsletter/unsubscribe\n"
    )


# --- handout ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handout(article: Article, site: SiteConfig) -> Artifact:
    [artifact] = HandoutRenderer().render(article, site, CONTEXT)
    return artifact


@pytest.fixture(scope="module")
def pdf(handout: Artifact) -> pypdf.PdfReader:
    return pypdf.PdfReader(BytesIO(handout.data))


def test_handout_artifact(handout: Artifact) -> None:
    assert (handout.relpath, handout.media_type) == (f"handouts/{SLUG}.pdf", "application/pdf")
    assert handout.data.startswith(b"%PDF-1.7")


def test_handout_pages_and_metadata(pdf: pypdf.PdfReader, article: Article) -> None:
    # 12 pt on Letter: the reference article fills 5 pages (sources end on page 5).
    assert len(pdf.pages) == 5
    assert pdf.metadata is not None
    assert pdf.metadata.title == article.title
    root: Any = pdf.trailer["/Root"]
    assert root["/Lang"] == "en"
    assert root["/MarkInfo"]["/Marked"]  # tagged (PDF/UA-1)
    box = pdf.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (612, 792)  # Letter


def test_handout_text(pdf: pypdf.PdfReader, article: Article, site: SiteConfig) -> None:
    pages = [page.extract_text() for page in pdf.pages]
    total = len(pages)
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {total}" in text
        for lic in site.licenses:
            assert squash(lic.line()) in squash(text)  # the license line on every page
    # The h1 wraps onto two lines, so a one-line title can only be the running header:
    # absent on page 1 (@page :first), present from page 2 on.
    assert article.title not in pages[0]
    assert all(article.title in text for text in pages[1:])
    everything = squash("".join(pages))
    assert squash(DISCLAIMER) in squash(pages[0])
    assert squash("Last reviewed November 26, 2026, next review November 26, 2027") in squash(pages[0])
    for source in article.sources:
        assert squash(source.url) in everything


def test_handout_fetcher_allows_only_data_and_assets(tmp_path: Path) -> None:
    with pytest.raises(FetchRefused):
        URL_FETCHER.fetch("http://example.invalid/a.png")
    with pytest.raises(FetchRefused):
        URL_FETCHER.fetch("https://169.254.169.254/latest/meta-data/")
    with pytest.raises(FetchRefused):
        URL_FETCHER.fetch("file:///etc/passwd")
    with pytest.raises(FetchRefused):
        URL_FETCHER.fetch((ASSETS_DIR / ".." / "handout.py").resolve().as_uri())
    outside = tmp_path / "x.css"
    outside.write_text("p {}")
    with pytest.raises(FetchRefused):
        URL_FETCHER.fetch(outside.as_uri())
    asset = URL_FETCHER.fetch((ASSETS_DIR / "handout.css").as_uri())
    assert b"@page" in asset.read()
    assert URL_FETCHER.fetch("data:text/plain;base64,aGk=").read() == b"hi"


def test_handout_remote_image_is_never_fetched(
    article: Article, site: SiteConfig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lookups: list[Any] = []

    def no_dns(*args: Any, **kwargs: Any) -> Any:
        lookups.append(args)
        raise OSError("the handout must not touch the network")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    body = "Short.\n\n![x](http://example.invalid/a.png)\n"
    with caplog.at_level(logging.WARNING, logger="clinicpress.renderers.handout"):
        data = render_handout_pdf(with_body(article, body), site)
    assert data.startswith(b"%PDF")
    assert lookups == []
    assert any("refused to fetch http://example.invalid/a.png" in r.getMessage() for r in caplog.records)


# --- registry ---------------------------------------------------------------------------


def test_registry_renders_only_the_article_channels_in_order(article: Article, site: SiteConfig) -> None:
    assert list(RENDERERS) == [Channel.WEB, Channel.HANDOUT, Channel.NEWSLETTER]
    some = article.model_copy(update={"channels": [Channel.NEWSLETTER, Channel.WEB]})
    artifacts = render_article(some, site, CONTEXT)
    assert [a.relpath for a in artifacts] == [
        f"web/{SLUG}/index.html",
        f"newsletter/{SLUG}.eml",
        f"newsletter/{SLUG}.html",
    ]


def test_template_fingerprint_is_stable_hex() -> None:
    first = template_fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert template_fingerprint() == first
