"""Consistency: title, license, review dates and sources read back the same from every channel."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from clinicpress.checks.consistency import consistency_problems
from clinicpress.checks.model import Problem, Severity
from clinicpress.renderers.base import Artifact, RenderContext
from clinicpress.renderers.handout import HandoutRenderer
from clinicpress.renderers.newsletter import personalise, render_message_template
from clinicpress.renderers.registry import render_article
from clinicpress.renderers.web import WebRenderer
from clinicpress.site import SiteConfig
from clinicpress.sources import Article, Channel, Reviewer

ROOT = Path(__file__).resolve().parents[1]
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
    [stale] = HandoutRenderer().render(article, stale_license(site), CONTEXT)
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
    [stale] = HandoutRenderer().render(renamed, site, CONTEXT)
    found = messages(consistency_problems(article, site, swap(artifacts, stale)))
    assert any(m.startswith("handout: document title (metadata) differs") for m in found)
    assert any(m.startswith("handout: title differs") and "not on page 1" in m for m in found)


def test_missing_or_unreadable_channel_blocks(
    article: Article, site: SiteConfig, artifacts: list[Artifact]
) -> None:
    without_pdf = [a for a in artifacts if not a.relpath.endswith(".pdf")]
    assert messages(consistency_problems(article, site, without_pdf)) == [
        f"handout: handouts/{SLUG}.pdf was not rendered"
    ]
    garbage = Artifact(Channel.HANDOUT, f"handouts/{SLUG}.pdf", b"%PDF-1.7 not really", "application/pdf")
    [problem] = consistency_problems(article, site, swap(artifacts, garbage))
    assert problem.message.startswith("handout: document differs")


def test_only_the_article_channels_are_read(
    article: Article, site: SiteConfig, artifacts: list[Artifact]
) -> None:
    web_only = article.model_copy(update={"channels": [Channel.WEB]})
    web = [a for a in artifacts if a.channel is Channel.WEB]
    assert consistency_problems(web_only, site, web) == []


def test_pdf_text_from_pdftotext_and_from_pypdf_agree(
    article: Article, site: SiteConfig, artifacts: list[Artifact], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both extractors find the same facts (pdftotext where installed, pypdf elsewhere)."""
    import shutil

    from clinicpress.checks import consistency

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is not installed (Debian: apt-get install -y poppler-utils)")
    assert consistency_problems(article, site, artifacts) == []
    monkeypatch.setattr(consistency.shutil, "which", lambda _name: None)
    assert consistency_problems(article, site, artifacts) == []
