"""Consistency: title, license, review dates and sources read back the same from every channel."""

from __future__ import annotations

import dataclasses
import io
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path

import pypdf
import pypdfium2
import pytest

from clinicpress.checks.model import Problem, Severity
from clinicpress.pdftext import read_pdf_content
from clinicpress.renderers.base import Artifact, RenderContext
from clinicpress.renderers.consistency import consistency_problems, squash
from clinicpress.renderers.handout import HandoutRenderer
from clinicpress.renderers.newsletter import personalise, render_message_template
from clinicpress.renderers.registry import render_article
from clinicpress.renderers.web import WebRenderer
from clinicpress.site import SiteConfig
from clinicpress.sources import Article, Channel, Reviewer
from clinicpress.sources.article import Source

ROOT = Path(__file__).resolve().parents[2]
SLUG = "ketamine-therapy-substance-abuse"
CONTEXT = RenderContext(published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC), version="0" * 64)


@pytest.fixture(scope="module")
def artifacts(article: Article, site: SiteConfig) -> list[Artifact]:
    return render_article(article, site, CONTEXT)


def swap(artifacts: list[Artifact], *replacements: Artifact) -> list[Artifact]:
    by_path = {a.relpath: a for a in replacements}
    return [by_path.get(a.relpath, a) for a in artifacts]


def messages(problems: list[Problem]) -> list[str]:
    return [p.message for p in problems]


def stale_license(site: SiteConfig) -> SiteConfig:
    lic = site.licenses[0].model_copy(update={"expires": date(2026, 4, 30)})
    return site.model_copy(update={"licenses": [lic]})


def test_reference_channels_agree(article: Article, site: SiteConfig, artifacts: list[Artifact]) -> None:
    assert consistency_problems(article, site, artifacts) == []


def test_reviewer_named_everywhere(article: Article, site: SiteConfig) -> None:
    reviewed = article.model_copy(update={"reviewed_by": Reviewer(name="Jane Doe", credentials="MD")})
    assert consistency_problems(reviewed, site, render_article(reviewed, site, CONTEXT)) == []


def test_handout_with_another_license_date_blocks(
    article: Article, site: SiteConfig, artifacts: list[Artifact]
) -> None:
    stale, _large = HandoutRenderer().render(article, stale_license(site), CONTEXT)
    problems = consistency_problems(article, site, swap(artifacts, stale))
    assert problems
    assert all(p.check == "consistency" and p.severity is Severity.BLOCKED for p in problems)
    assert all(m.startswith("handout: license line (page ") for m in messages(problems))
    assert "valid through April 30, 2027" in problems[0].message


def test_web_page_with_old_review_dates_and_reordered_sources(
    article: Article, site: SiteConfig, artifacts: list[Artifact]
) -> None:
    older = article.model_copy(
        update={
            "last_reviewed": date(2025, 6, 1),
            "next_review": date(2026, 6, 1),
            "sources": [article.sources[1], article.sources[0], *article.sources[2:]],
            "body": "No citations here.",
        }
    )
    [stale] = WebRenderer().render(older, site, CONTEXT)
    found = messages(consistency_problems(article, site, swap(artifacts, stale)))
    assert any(m.startswith("web: review line differs") and "June 1, 2025" in m for m in found)
    assert any(m.startswith("web: source URLs (links), item 1 differs") for m in found)
    assert any(m.startswith("web: source URLs (printed), item 1 differs") for m in found)
    assert all(m.startswith("web: ") for m in found)


def test_email_parts_are_read_separately(
    article: Article, site: SiteConfig, artifacts: list[Artifact]
) -> None:
    template = render_message_template(article, site, CONTEXT)
    other_url = "https://example.org/not-the-cited-source"
    broken = dataclasses.replace(
        template,
        subject="Another title",
        text=template.text.replace(article.sources[2].url, other_url),
        html=template.html.replace("Last reviewed November 26, 2026", "Last reviewed November 25, 2026"),
    )
    eml = Artifact(
        Channel.NEWSLETTER, f"newsletter/{SLUG}.eml", personalise(broken).as_bytes(), "message/rfc822"
    )
    found = messages(consistency_problems(article, site, swap(artifacts, eml)))
    assert any(m.startswith("newsletter: Subject differs") for m in found)
    assert any(
        m.startswith("newsletter (text part): source URLs, item 3 differs") and other_url in m for m in found
    )
    assert any(m.startswith("newsletter (HTML part): review line differs") for m in found)
    assert not any(m.startswith(("web", "handout", "newsletter preview")) for m in found)


def test_pdf_title_metadata_is_read(article: Article, site: SiteConfig, artifacts: list[Artifact]) -> None:
    renamed = article.model_copy(update={"title": "A Different Title For The Same Handout"})
    stale, _large = HandoutRenderer().render(renamed, site, CONTEXT)
    found = messages(consistency_problems(article, site, swap(artifacts, stale)))
    assert any(m.startswith("handout: document title (metadata) differs") for m in found)
    assert any(m.startswith("handout: title differs") and "not on page 1" in m for m in found)


def test_missing_or_unreadable_channel_blocks(
    article: Article, site: SiteConfig, artifacts: list[Artifact]
) -> None:
    without_pdf = [a for a in artifacts if not a.relpath.endswith(".pdf")]
    assert messages(consistency_problems(article, site, without_pdf)) == [
        f"handout: handouts/{SLUG}.pdf was not rendered",
        f"large-print handout: handouts/{SLUG}-large-print.pdf was not rendered",
    ]
    garbage = Artifact(Channel.HANDOUT, f"handouts/{SLUG}.pdf", b"%PDF-1.7 not really", "application/pdf")
    [problem] = consistency_problems(article, site, swap(artifacts, garbage))
    assert problem.message.startswith("handout: document differs")


def test_only_the_article_channels_are_read(
    article: Article, site: SiteConfig, artifacts: list[Artifact]
) -> None:
    web_only = article.model_copy(update={"channels": [Channel.WEB]})
    web = WebRenderer().render(web_only, site, CONTEXT)  # its page links no handout
    assert consistency_problems(web_only, site, web) == []


def handout_of(artifacts: list[Artifact]) -> Artifact:
    return next(a for a in artifacts if a.relpath == f"handouts/{SLUG}.pdf")


def test_pdfium_reads_what_pypdf_reads(artifacts: list[Artifact]) -> None:
    """Two independent PDF readers agree on the handout: title, link URIs and (whitespace aside) text."""
    data = handout_of(artifacts).data
    content = read_pdf_content(data)
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert reader.metadata is not None
    assert content.title == reader.metadata.title
    annotations = [annot.get_object() for page in reader.pages for annot in page.get("/Annots") or []]
    assert content.uris == [str(a["/A"]["/URI"]) for a in annotations if "/A" in a]
    assert [squash(text) for text in content.pages] == [squash(page.extract_text()) for page in reader.pages]


def test_handout_source_without_its_link_annotation_blocks(
    article: Article, site: SiteConfig, artifacts: list[Artifact]
) -> None:
    """The URL is still printed, but clicking it goes nowhere: that is reported, and only that."""
    unlinked = article.sources[1].url
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(handout_of(artifacts).data)))
    removed = 0
    for page in writer.pages:
        annots = page.get("/Annots")
        if annots is None:
            continue
        annots = annots.get_object()
        for ref in list(annots):
            action = ref.get_object().get("/A")
            if action is not None and action.get_object().get("/URI") == unlinked:
                annots.remove(ref)
                removed += 1
    assert removed == 1
    out = io.BytesIO()
    writer.write(out)
    pdf = Artifact(Channel.HANDOUT, f"handouts/{SLUG}.pdf", out.getvalue(), "application/pdf")
    [problem] = consistency_problems(article, site, swap(artifacts, pdf))
    assert problem.message.startswith("handout: source URLs (links) differs from the article")
    assert problem.message.endswith(f"found \"no link annotation for ['{unlinked}']\"")


@pytest.mark.parametrize("cut", ["empty", "first KB", "half", "no trailer", "bytes flipped"])
def test_truncated_or_garbled_pdf_is_unreadable_not_an_exception(
    article: Article, site: SiteConfig, artifacts: list[Artifact], cut: str
) -> None:
    data = handout_of(artifacts).data
    broken = {
        "empty": b"",
        "first KB": data[:1024],
        "half": data[: len(data) // 2],
        "no trailer": data[:-300],
        "bytes flipped": bytes(b ^ 0x5A for b in data),
    }[cut]
    garbled = Artifact(Channel.HANDOUT, f"handouts/{SLUG}.pdf", broken, "application/pdf")
    [problem] = consistency_problems(article, site, swap(artifacts, garbled))
    assert problem.message.startswith(
        "handout: document differs from the article: expected 'a readable PDF', found 'unreadable ("
    )


def test_pdf_without_pages_blocks(article: Article, site: SiteConfig, artifacts: list[Artifact]) -> None:
    out = io.BytesIO()
    pypdf.PdfWriter().write(out)
    empty = Artifact(Channel.HANDOUT, f"handouts/{SLUG}.pdf", out.getvalue(), "application/pdf")
    assert messages(consistency_problems(article, site, swap(artifacts, empty))) == [
        "handout: document differs from the article: expected 'at least one page', found 'no pages'"
    ]


def test_pdf_url_broken_after_a_hyphen_is_read_as_printed(article: Article, site: SiteConfig) -> None:
    """PDFium returns U+0002 for a hyphen that ends a line inside a word; the page shows "-"."""
    url = "https://example.org/" + "-".join(["ab"] * 60)
    cited = article.model_copy(update={"sources": [*article.sources, Source(title="Hyphens", url=url)]})
    handout, _large = HandoutRenderer().render(cited, site, CONTEXT)
    with pypdfium2.PdfDocument(handout.data) as pdf:
        raw = []
        for index in range(len(pdf)):
            with closing(pdf.get_page(index)) as page, closing(page.get_textpage()) as textpage:
                raw.append(textpage.get_text_bounded())
    assert "b\x02a" in "".join(raw), "the URL no longer breaks after a hyphen: this test tests nothing"
    web_and_newsletter = [a for a in render_article(cited, site, CONTEXT) if a.channel is not Channel.HANDOUT]
    assert consistency_problems(cited, site, [*web_and_newsletter, handout, _large]) == []


def newsletter_with_html(article: Article, site: SiteConfig, change: tuple[str, str]) -> Artifact:
    template = render_message_template(article, site, CONTEXT)
    assert template.html.count(change[0]) == 1
    changed = dataclasses.replace(template, html=template.html.replace(*change))
    data = personalise(changed).as_bytes()
    return Artifact(Channel.NEWSLETTER, f"newsletter/{SLUG}.eml", data, "message/rfc822")


@pytest.mark.parametrize("classes", ["x license", "license x", "x\n\tlicense  y"])
def test_license_class_among_other_classes_is_found(
    article: Article, site: SiteConfig, artifacts: list[Artifact], classes: str
) -> None:
    eml = newsletter_with_html(article, site, ('class="license"', f'class="{classes}"'))
    assert consistency_problems(article, site, swap(artifacts, eml)) == []


@pytest.mark.parametrize("classes", ["licensed", "x-license", "License", "license-line"])
def test_a_class_that_only_contains_the_word_is_not_the_license(
    article: Article, site: SiteConfig, artifacts: list[Artifact], classes: str
) -> None:
    eml = newsletter_with_html(article, site, ('class="license"', f'class="{classes}"'))
    assert messages(consistency_problems(article, site, swap(artifacts, eml))) == [
        "newsletter (HTML part): license line differs from the article: expected "
        f"{[lic.line() for lic in site.licenses]!r}, found []"
    ]


def web_page_of(artifacts: list[Artifact]) -> bytes:
    return next(a for a in artifacts if a.relpath == f"web/{SLUG}/index.html").data


@pytest.mark.parametrize("page", [b"", b" \n\t ", b"<!-- nothing here -->", b"\xff\xfe\x00"])
def test_empty_web_page_finds_nothing_and_does_not_raise(
    article: Article, site: SiteConfig, artifacts: list[Artifact], page: bytes
) -> None:
    web = Artifact(Channel.WEB, f"web/{SLUG}/index.html", page, "text/html")
    found = messages(consistency_problems(article, site, swap(artifacts, web)))
    assert found[0] == f"web: title (h1) differs from the article: expected {[article.title]!r}, found []"
    assert all(m.startswith("web: ") for m in found)
    assert len(found) == 7  # title, license, review, source links, printed sources, both handout links


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b"<!DOCTYPE html>", b'<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html>'),
        (b"<head>", b'<head><meta charset="iso-8859-1">'),
    ],
)
def test_web_page_is_read_as_utf8_whatever_it_declares(
    article: Article, site: SiteConfig, artifacts: list[Artifact], before: bytes, after: bytes
) -> None:
    """The renderers write UTF-8 (lxml refuses a str that declares an encoding: bytes it is)."""
    page = web_page_of(artifacts)
    assert page.count(before) == 1
    web = Artifact(Channel.WEB, f"web/{SLUG}/index.html", page.replace(before, after), "text/html")
    assert consistency_problems(article, site, swap(artifacts, web)) == []


@pytest.mark.parametrize("hidden", ["template", "script", "style"])
def test_title_inside_a_hidden_element_is_not_read(
    article: Article, site: SiteConfig, artifacts: list[Artifact], hidden: str
) -> None:
    page = web_page_of(artifacts).decode()
    h1 = page[page.index("<h1") : page.index("</h1>") + len("</h1>")]
    web_page = page.replace(h1, f"<h1><{hidden}>{article.title}</{hidden}></h1>", 1).encode()
    web = Artifact(Channel.WEB, f"web/{SLUG}/index.html", web_page, "text/html")
    assert messages(consistency_problems(article, site, swap(artifacts, web))) == [
        f"web: title (h1) differs from the article: expected {[article.title]!r}, found ['']"
    ]


def test_license_inside_a_template_is_not_on_the_page(
    article: Article, site: SiteConfig, artifacts: list[Artifact]
) -> None:
    page = web_page_of(artifacts).decode()
    start = page.index('<p class="license">')
    end = page.index("</p>", start) + len("</p>")
    web_page = (page[:start] + "<template>" + page[start:end] + "</template>" + page[end:]).encode()
    web = Artifact(Channel.WEB, f"web/{SLUG}/index.html", web_page, "text/html")
    licenses = [lic.line() for lic in site.licenses]
    assert messages(consistency_problems(article, site, swap(artifacts, web))) == [
        f"web: license line differs from the article: expected {licenses!r}, found []"
    ]
