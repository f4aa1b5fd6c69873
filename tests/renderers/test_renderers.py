"""Renderers: web page, handout PDF and newsletter email of the reference article.

Golden files (tests/golden/) are the spec of the web page and the email's
text part. After an intended change, regenerate them and read the diff:

    CLINICPRESS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/renderers/test_renderers.py

Nothing here touches the network: the handout test that cites a remote image
also makes every DNS lookup fail the test.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import os
import re
import shutil
import socket
from datetime import UTC, datetime
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path
from typing import Any

import pypdf
import pytest
import segno

from clinicpress.errors import RenderError
from clinicpress.renderers.base import Artifact, RenderContext
from clinicpress.renderers.handout import (
    DISCLAIMER,
    URL_FETCHER,
    FetchRefused,
    HandoutRenderer,
    qr_data_uri,
    render_handout_html,
    render_handout_pdf,
    site_page_size,
)
from clinicpress.renderers.markdown import ASSETS_DIR, CRISIS_LINE, canonical_url, render_body_html
from clinicpress.renderers.newsletter import (
    MAX_MESSAGE_BYTES,
    NewsletterRenderer,
    build_message,
    personalise,
    render_message_template,
    render_newsletter_text,
)
from clinicpress.renderers.registry import RENDERERS, render_article, template_fingerprint
from clinicpress.renderers.text import WIDTH, render_body_text
from clinicpress.renderers.web import WebRenderer, render_web_html
from clinicpress.site import SiteConfig
from clinicpress.sources import Article, Channel, Reviewer

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SLUG = "ketamine-therapy-substance-abuse"
CONTEXT = RenderContext(published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC), version="0" * 64)
XSS = "<script>alert(1)</script>"


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


def json_ld_text(html: str) -> str:
    match = re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.DOTALL)
    assert match, "no JSON-LD in the page"
    return match.group(1)


def json_ld_of(html: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json_ld_text(html))
    return data


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
    assert (
        'Last reviewed <time datetime="2026-11-26">November 26, 2026</time>, '
        'next review <time datetime="2027-11-26">November 26, 2027</time>'
    ) in html
    for number, source in enumerate(article.sources, start=1):
        assert f'<li id="source-{number}">' in html
        assert f">{source.url}</a>" in html  # the full URL is visible, not just linked
    assert "DOI: 10.3389/fpsyt.2018.00277" in html
    for lic in site.licenses:
        assert lic.line() in html
    assert site.organization.postal_address in html
    # Self-contained: nothing for a browser to fetch, nothing to run (JSON-LD is data).
    assert html.count("<script") == html.count('<script type="application/ld+json">') == 1
    assert '<link rel="stylesheet"' not in html
    assert " src=" not in html
    assert render_web_html(article, site, CONTEXT) == html  # deterministic


def test_web_names_the_reviewer(article: Article, site: SiteConfig) -> None:
    reviewed = article.model_copy(update={"reviewed_by": Reviewer(name="Jane Doe", credentials="MD")})
    html = render_web_html(reviewed, site, CONTEXT)
    assert 'Reviewed by Jane Doe, MD on <time datetime="2026-11-26">November 26, 2026</time>' in html
    ld = json_ld_of(html)
    assert ld["reviewedBy"] == {"@type": "Person", "name": "Jane Doe", "honorificSuffix": "MD"}


def test_web_escapes_title_and_summary(article: Article, site: SiteConfig) -> None:
    hostile = article.model_copy(update={"title": f"Ketamine {XSS}", "summary": f'"{XSS}'})
    html = render_web_html(hostile, site, CONTEXT)
    assert "<script>" not in html
    assert "</script" not in json_ld_text(html)  # the JSON-LD cannot close its element early
    assert json_ld_of(html)["name"] == f"Ketamine {XSS}"  # and still parses to the title
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
        assert "<script>" not in html
        assert "<script" not in html.replace('<script type="application/ld+json">', "")
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
    assert '<body style="' in html
    assert '<h1 style="' in html
    assert re.search(
        r'<div class="preheader" aria-hidden="true" style="display: none;[^"]*">'
        + re.escape(article.summary),
        html,
    )
    assert html.count("<h1") == 1
    # One <style> block is kept, holding only what cannot be inlined: the @media rules.
    [style] = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    assert "@media only screen and (max-width: 620px)" in style
    assert "@media (prefers-color-scheme: dark)" in style
    outside_media = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", style)
    assert "{" not in outside_media, outside_media
    assert html.index('<meta charset="utf-8">') < 1024  # the charset stays where browsers look for it
    assert 'width="600"' in html
    assert '<meta name="color-scheme" content="light dark">' in html


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
        "Unsubscribe:\nhttps://www.serenitymaliburehab.com/newsletter/unsubscribe\n"
    )


# --- handout ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handout(article: Article, site: SiteConfig) -> Artifact:
    artifact, _large = HandoutRenderer().render(article, site, CONTEXT)
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
    review = squash("Last reviewed November 26, 2026, next review November 26, 2027")
    assert all(review in squash(text) for text in pages)  # top of page 1 and every footer
    assert squash(CRISIS_LINE) in squash(pages[0])
    assert "call or text 988" in one_space(pages[0])
    assert squash("serenitymaliburehab.com/ketamine-therapy-substance-abuse") in squash(pages[-1])
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
    # Replaced by its alt text before the render (checks/images.py warns in the report): no log line.
    assert not any("refused to fetch" in r.getMessage() for r in caplog.records)


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


def test_a_changed_translation_changes_the_template_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clinicpress.renderers import fingerprint

    copy = tmp_path / "locale"
    shutil.copytree(fingerprint.LOCALE_DIR, copy)
    monkeypatch.setattr(fingerprint, "LOCALE_DIR", copy)
    before = template_fingerprint()
    po = copy / "es" / "LC_MESSAGES" / "clinicpress.po"
    po.write_text(po.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert template_fingerprint() != before


# --- issue 5: web page metadata ------------------------------------------------------------


def test_web_social_meta_and_json_ld(article: Article, site: SiteConfig) -> None:
    html = render_web_html(article, site, CONTEXT)
    url = f"https://www.serenitymaliburehab.com/{SLUG}/"
    for tag in (
        f'<meta property="og:url" content="{url}">',
        f'<meta property="og:title" content="{article.title}">',
        '<meta property="og:site_name" content="Serenity Malibu">',
        '<meta name="twitter:card" content="summary">',
        f'<meta name="twitter:title" content="{article.title}">',
        f'<meta name="twitter:description" content="{article.summary}">',
    ):
        assert tag in html
    ld = json_ld_of(html)
    assert ld["@context"] == "https://schema.org"
    assert ld["@type"] == "MedicalWebPage"
    assert (ld["url"], ld["name"], ld["inLanguage"]) == (url, article.title, "en")
    assert (ld["datePublished"], ld["lastReviewed"]) == ("2025-06-02", "2026-11-26")
    assert "reviewedBy" not in ld  # the reference article names no reviewer
    citations = ld["citation"]
    assert [c["url"] for c in citations] == [s.url for s in article.sources]
    assert citations[0]["identifier"] == [
        {"@type": "PropertyValue", "propertyID": "DOI", "value": "10.3389/fpsyt.2018.00277"}
    ]
    assert "identifier" not in citations[4]  # the FDA page has no DOI


def test_web_json_ld_identifies_pmid(article: Article, site: SiteConfig) -> None:
    source = article.sources[0].model_copy(update={"url": "https://pubmed.ncbi.nlm.nih.gov/29997835/"})
    sources = [source, *article.sources[1:]]
    ld = json_ld_of(render_web_html(article.model_copy(update={"sources": sources}), site, CONTEXT))
    assert ld["citation"][0]["identifier"][0] == {
        "@type": "PropertyValue",
        "propertyID": "PMID",
        "value": "29997835",
    }


def test_web_accessibility_skeleton_and_print_css(article: Article, site: SiteConfig) -> None:
    html = render_web_html(article, site, CONTEXT)
    body = html[html.index("<body>") :]
    # The skip link is the first thing in the body and its target exists.
    assert body.startswith('<body>\n<a class="skip-link" href="#main">Skip to main content</a>')
    assert '<main id="main" tabindex="-1">' in html
    assert html.count("<h1") == 1
    assert "@media print" in html
    assert "call or text 988" in html
    assert "This article supports, not replaces, the advice of your care team." in html


# --- issue 5: newsletter per recipient -----------------------------------------------------


def test_personalise_sets_recipient_without_rerendering(article: Article, site: SiteConfig) -> None:
    template = render_message_template(article, site, CONTEXT)
    personal_url = "https://www.serenitymaliburehab.com/newsletter/unsubscribe?t=a1b2&list=news"
    msg = personalise(template, to="pat@example.org", unsubscribe_url=personal_url)
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["To"] == "pat@example.org"
    assert parsed["List-Unsubscribe"].startswith(f"<{personal_url}>, <mailto:")
    text, html = _parts(parsed)
    generic = site.newsletter.unsubscribe_url
    assert f"\n{personal_url}\n" in text
    assert f"\n{generic}\n" not in text
    assert 'href="https://www.serenitymaliburehab.com/newsletter/unsubscribe?t=a1b2&amp;list=news"' in html
    assert f'href="{generic}"' not in html
    # One Message-ID per recipient, the same on a re-run (delivery can recognise a resend).
    again = personalise(template, to="pat@example.org", unsubscribe_url=personal_url)
    other = personalise(template, to="sam@example.org", unsubscribe_url=personal_url)
    assert again["Message-ID"] == msg["Message-ID"] != other["Message-ID"]
    assert msg["Message-ID"] != build_message(article, site, CONTEXT)["Message-ID"]
    # The body was rendered once: personalising is string work on the template.
    assert text.replace(personal_url, generic) == template.text


def test_personalise_refuses_header_injection(article: Article, site: SiteConfig) -> None:
    template = render_message_template(article, site, CONTEXT)
    with pytest.raises(RenderError, match="To"):
        personalise(template, to="pat@example.org\r\nBcc: all@example.org")
    with pytest.raises(RenderError, match="To"):
        personalise(template, to="Pat <pat@example.org>")
    with pytest.raises(RenderError, match="unsubscribe URL"):
        personalise(template, to="pat@example.org", unsubscribe_url="https://x.org/u\r\nBcc: a@b.org")
    with pytest.raises(RenderError, match="unsubscribe URL"):
        personalise(
            template, to="pat@example.org", unsubscribe_url="https://x.org/u>, <https://evil.example/"
        )
    with pytest.raises(RenderError, match="unsubscribe URL"):
        personalise(template, to="pat@example.org", unsubscribe_url="javascript:alert(1)")
    assert personalise(template, subject_prefix="[TEST] ")["Subject"] == f"[TEST] {article.title}"


def test_email_size_and_images(article: Article, site: SiteConfig, newsletter: list[Artifact]) -> None:
    assert len(newsletter[0].data) < MAX_MESSAGE_BYTES
    with_image = with_body(article, "Text.\n\n![A calm clinic garden](https://example.org/g.jpg)\n")
    html = _parts(build_message(with_image, site, CONTEXT))[1]
    images = re.findall(r"<img [^>]*>", html)
    assert images
    assert all(re.search(r'alt="[^"]+"', img) for img in images)
    huge = with_body(article, ("A sentence that fills the newsletter. " * 40 + "\n\n") * 120)
    with pytest.raises(RenderError, match="at most 102400"):
        build_message(huge, site, CONTEXT)


def test_email_carries_disclaimer_and_crisis_line(message: EmailMessage) -> None:
    for part in _parts(message):
        flat = one_space(re.sub(r"<[^>]+>", " ", part)).replace("&amp;", "&")
        assert "This newsletter supports, not replaces, the advice of your care team." in flat
        assert one_space(CRISIS_LINE) in flat
    assert "Read on the web</a>" in _parts(message)[1]  # at the top, too


# --- issue 5: handout options, QR code, tags -----------------------------------------------


def test_handout_a4_by_option(article: Article, site: SiteConfig) -> None:
    artifact, _large = HandoutRenderer(page_size="a4").render(article, site, CONTEXT)
    box = pypdf.PdfReader(BytesIO(artifact.data)).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)
    with pytest.raises(RenderError, match="page size"):
        HandoutRenderer(page_size="legal")  # type: ignore[arg-type]


def test_handout_page_size_from_site_setting(site: SiteConfig) -> None:
    assert site_page_size(site) == "letter"
    a4 = site.model_copy(update={"handout": site.handout.model_copy(update={"page_size": "a4"})})
    assert site_page_size(a4) == "a4"


def test_handout_qr_code_points_to_the_page(article: Article, site: SiteConfig) -> None:
    html = render_handout_html(article, site)
    url = canonical_url(article, site)
    assert qr_data_uri(url) == segno.make(url, error="m", micro=False).svg_data_uri(
        scale=4, border=4, dark="#000", light="#fff", svgclass=None, lineclass=None
    )
    assert f'<img class="qr" src="{qr_data_uri(url)}"' in html
    assert 'alt="QR code that opens this article online at serenitymaliburehab.com/' in html
    assert '<p class="url">serenitymaliburehab.com/ketamine-therapy-substance-abuse</p>' in html


def test_handout_is_large_print(article: Article, site: SiteConfig) -> None:
    css = render_handout_html(article, site)
    assert re.search(r"html \{[^}]*font-size: 12pt;[^}]*line-height: 1\.4;[^}]*color: #111;", css)
    assert "@page { size: Letter; }" in css


def test_handout_sources_numbered_with_doi(pdf: pypdf.PdfReader, article: Article) -> None:
    text = squash("".join(page.extract_text() for page in pdf.pages))
    for number, source in enumerate(article.sources, start=1):
        assert squash(f"{number}.") in text
        assert squash(source.url) in text
        if source.doi:
            assert squash(f"DOI: {source.doi}") in text


def test_handout_tags_and_fonts(pdf: pypdf.PdfReader) -> None:
    root: Any = pdf.trailer["/Root"]
    tree = root["/StructTreeRoot"].get_object()
    roles: list[str] = []
    alts: list[str] = []

    def walk(node: Any) -> None:
        node = node.get_object()
        if isinstance(node, list):
            for child in node:
                walk(child)
            return
        if not hasattr(node, "get"):
            return
        if "/S" in node:
            roles.append(str(node["/S"]))
        if "/Alt" in node:
            alts.append(str(node["/Alt"]))
        if "/K" in node:
            walk(node["/K"])

    walk(tree)
    for role in ("/H1", "/H2", "/P", "/L", "/LI", "/Figure"):
        assert role in roles, f"no {role} in the structure tree"
    assert any(alt.startswith("QR code that opens this article online") for alt in alts)
    # Every font is embedded: the PDF prints the same anywhere, and nothing was fetched to make it.
    resources: list[Any] = [page["/Resources"] for page in pdf.pages]
    fonts = {
        str(font["/BaseFont"]): font
        for res in resources
        for font in (f.get_object() for f in res["/Font"].values())
    }
    assert fonts
    for name, font in fonts.items():
        descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
        descriptor = descendant["/FontDescriptor"].get_object()
        assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), f"{name} not embedded"
        assert "DejaVu" in name
