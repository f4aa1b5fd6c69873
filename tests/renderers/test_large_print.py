"""The large-print handout (issue 26, part 4): read back from the PDF, not from the HTML.

``handouts/<slug>-large-print.pdf``: body text at 20 pt in the bundled Liberation Sans (embedded),
headings larger, the same sources, QR code, license and review lines as the handout, tagged like it;
``[handout] large_print = false`` makes none. The regular handout does not change.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pypdf
import pytest
from conftest import site_text
from fontTools.ttLib import TTFont

from clinicpress.checks.model import ArticleReport, Verdict
from clinicpress.errors import RenderError
from clinicpress.outputs.publish import ReadyArticle, publish_release, rollback_article
from clinicpress.pdftext import pdfium, read_pdf_content
from clinicpress.renderers.base import Artifact, RenderContext
from clinicpress.renderers.consistency import consistency_problems, expected_facts, read_pdf
from clinicpress.renderers.handout import (
    HandoutRenderer,
    large_print_relpath,
    render_handout_pdf,
)
from clinicpress.renderers.markdown import ASSETS_DIR
from clinicpress.renderers.pool import RenderPool
from clinicpress.renderers.registry import render_article
from clinicpress.site import SiteConfig, load_site
from clinicpress.sources.article import Article, Channel

CONTEXT = RenderContext(published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC), version="0" * 64)
SLUG = "ketamine-therapy-substance-abuse"
FONTS = ASSETS_DIR / "fonts"
CITATION = re.compile(r"\[\d+\]")
# handout-large-print.css's @page margins (0.75in top, 1.75in bottom; 72 points an inch).
TOP_MARGIN, BOTTOM_MARGIN = 0.75 * 72, 1.75 * 72


def _without_large_print(site: SiteConfig) -> SiteConfig:
    return site.model_copy(update={"handout": site.handout.model_copy(update={"large_print": False})})


@pytest.fixture(scope="module")
def large(article: Article, site: SiteConfig) -> bytes:
    return render_handout_pdf(article, site, large_print=True)


def text_runs(pdf: bytes) -> list[tuple[float, str, str]]:
    """(size in points, text, font name) of every shown text run, as a PDF viewer draws it.

    The size is the font size of ``Tf`` scaled by the text matrix and the CTM (WeasyPrint may
    set either), measured vertically.
    """
    runs: list[tuple[float, str, str]] = []
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:

        def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float) -> None:
            if not text.strip():
                return
            # The y axis of (text matrix × CTM): its length is the vertical scale of the font size.
            c, d = tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3]
            name = str(font.get("/BaseFont")) if font else ""
            runs.append((round(size * math.hypot(c, d), 2), text.strip(), name))

        page.extract_text(visitor_text=visit)
    return runs


def size_of(runs: list[tuple[float, str, str]], starts: str) -> float:
    [size] = {size for size, text, _ in runs if text.startswith(starts)}
    return size


# --- 20 pt, headings larger ----------------------------------------------------------------


def test_body_text_reads_back_at_20_pt_and_headings_larger(large: bytes, article: Article) -> None:
    runs = text_runs(large)
    by_chars: Counter[float] = Counter()
    for size, text, _ in runs:
        by_chars[size] += len(text)
    assert by_chars.most_common(1)[0][0] == 20.0, by_chars
    # Body paragraphs, the summary, the sources and the footer's license line: 20 pt.
    for starts in ("Chances are you", "Ketamine therapy is being studied", "Jones JL", "Licensed by"):
        assert size_of(runs, starts) == 20.0, starts
    # Nothing smaller, but the citation marks ([4]: superscripts).
    small = [(size, text) for size, text, _ in runs if size < 20.0 and not CITATION.fullmatch(text)]
    assert small == []
    # Headings larger than the body, the title largest.
    title, section = size_of(runs, article.title.split(" with")[0]), size_of(runs, "What is Ketamine")
    assert title > section > 20.0


def test_the_regular_handout_is_unchanged(article: Article, site: SiteConfig, large: bytes) -> None:
    without = render_handout_pdf(article, _without_large_print(site))
    regular, large_print = HandoutRenderer().render(article, site, CONTEXT)  # after `large` loaded its fonts
    assert regular.relpath == f"handouts/{SLUG}.pdf"
    assert regular.data == without  # byte for byte: the setting and the large print leave it alone
    assert large_print.relpath == f"handouts/{SLUG}-large-print.pdf"
    runs = text_runs(regular.data)
    assert size_of(runs, "Chances are you") == 12.0
    assert all("DejaVu" in font for _, _, font in runs)


# --- the bundled font, embedded -------------------------------------------------------------


def _embedded_fonts(pdf: bytes) -> dict[str, TTFont]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    fonts: dict[str, TTFont] = {}
    for page in reader.pages:
        for ref in page["/Resources"]["/Font"].values():
            font: Any = ref.get_object()
            descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            descriptor = descendant["/FontDescriptor"].get_object()
            assert "/FontFile2" in descriptor, f"{font['/BaseFont']} is not embedded as TrueType"
            fonts[str(font["/BaseFont"])] = TTFont(
                io.BytesIO(descriptor["/FontFile2"].get_object().get_data())
            )
    return fonts


def test_the_font_is_the_bundled_liberation_sans_embedded(large: bytes) -> None:
    bundled = TTFont(FONTS / "LiberationSans-Regular.ttf")["name"].getDebugName(5)  # "Version 2.1.5"
    fonts = _embedded_fonts(large)
    assert len(fonts) >= 2  # regular and bold at least
    for name, font in fonts.items():
        names = font["name"]
        # The embedded program is the bundled file (subset), not whatever the machine has installed:
        # the system's Liberation Sans here is 1.07 (another licence), DejaVu Sans the fallback.
        assert (names.getDebugName(1), names.getDebugName(5)) == ("Liberation Sans", bundled), name
    assert bundled == "Version 2.1.5"


def test_the_fonts_ship_with_their_licence() -> None:
    for style in ("Regular", "Bold", "Italic", "BoldItalic"):
        names = TTFont(FONTS / f"LiberationSans-{style}.ttf")["name"]
        assert names.getDebugName(13) == "Licensed under the SIL Open Font License, Version 1.1"
    licence = (FONTS / "OFL.txt").read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence
    assert "Copyright (c) 2012 Red Hat, Inc. with Reserved Font Name Liberation." in licence
    assert "2.1.5" in (FONTS / "README.md").read_text(encoding="utf-8")


# --- the same facts, the same tags -----------------------------------------------------------


def _structure(pdf: bytes) -> tuple[list[str], list[str], str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    root: Any = reader.trailer["/Root"]
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

    walk(root["/StructTreeRoot"])
    return roles, alts, str(root.get("/Lang", ""))


def test_the_same_sources_qr_code_license_and_review_lines(
    large: bytes, article: Article, site: SiteConfig
) -> None:
    # The consistency check's reader: title (metadata and page 1), license and review lines on every
    # page, every source URL printed in order after "Sources" and each a live link.
    assert read_pdf("large-print handout", large, expected_facts(article, site)) == []
    last = read_pdf_content(large).pages[-1]
    assert "Scan the code" in last
    assert "serenitymaliburehab.com/" in last
    roles, alts, _ = _structure(large)
    assert any(
        alt.startswith("QR code that opens this article online at serenitymaliburehab.com/") for alt in alts
    )
    assert "/Figure" in roles


def test_tagged_like_the_regular_handout(large: bytes, article: Article, site: SiteConfig) -> None:
    regular = render_handout_pdf(article, site)
    large_roles, _, large_lang = _structure(large)
    regular_roles, _, regular_lang = _structure(regular)
    assert large_lang == regular_lang == "en"
    for role in ("/H1", "/H2", "/P", "/L", "/LI", "/Figure"):
        assert role in large_roles, f"no {role} in the structure tree"
    assert sorted(set(large_roles)) == sorted(set(regular_roles))
    meta = pypdf.PdfReader(io.BytesIO(large)).metadata
    assert meta is not None
    assert meta.title == article.title


# --- the last page ---------------------------------------------------------------------------


def _filled(page: Any) -> float:
    """How far down the page box the text reaches (0 empty, 1 full), running header and footer left out."""
    height = page.get_height()
    top, bottom = height - TOP_MARGIN, BOTTOM_MARGIN
    text = page.get_textpage()
    lows = [text.get_charbox(i)[1] for i in range(text.count_chars())]
    body = [y for y in lows if bottom < y < top]
    return (top - min(body)) / (top - bottom) if body else 0.0


def test_no_page_is_nearly_empty_the_last_one_included(large: bytes, article: Article) -> None:
    # At 20 pt the sources and the QR block are longer than a page: they follow the body on its
    # page rather than move to a new one (which left the body's last page a fifth full), and the QR
    # block keeps the last source with it rather than end the handout alone.
    pages = read_pdf_content(large).pages
    fills = [round(_filled(page), 2) for page in pdfium.PdfDocument(large)]
    assert min(fills) >= 1 / 3, f"a page filled to less than a third: {fills}"
    last_source = article.sources[-1].title.split()[0]
    assert last_source in pages[-1]
    assert "Scan the code" in pages[-1]


def test_the_page_number_is_in_the_top_margin_clear_of_the_footer(large: bytes) -> None:
    # The 20 pt license and review lines take the footer's whole width: "Page n of N" moves up.
    pdf = pdfium.PdfDocument(large)
    for number, page in enumerate(pdf, start=1):
        text = page.get_textpage()
        searcher = text.search(f"Page {number} of {len(pdf)}")
        found = searcher.get_next()
        assert found is not None, f"no page number on page {number}"
        bottom = text.get_charbox(found[0])[1]
        assert bottom > page.get_height() - TOP_MARGIN, f"page {number}: its number is not in the top margin"


# --- the setting, the web page, the release ---------------------------------------------------


def test_the_setting_is_on_by_default_and_false_turns_it_off(tmp_path: Path) -> None:
    on = tmp_path / "on.toml"
    on.write_text(site_text(), encoding="utf-8")
    assert load_site(on).handout.large_print is True
    off = tmp_path / "off.toml"
    off.write_text(site_text(page_size='"letter"\nlarge_print = false'), encoding="utf-8")
    assert load_site(off).handout.large_print is False


def test_large_print_false_makes_no_file_and_no_link(article: Article, site: SiteConfig) -> None:
    off = _without_large_print(site)
    artifacts = render_article(article, off, CONTEXT)
    assert [a.relpath for a in artifacts if a.channel is Channel.HANDOUT] == [f"handouts/{SLUG}.pdf"]
    page = next(a for a in artifacts if a.channel is Channel.WEB).data.decode()
    assert "large-print" not in page
    assert consistency_problems(article, off, artifacts) == []


def test_the_web_page_links_both_and_the_check_reads_the_link_back(
    article: Article, site: SiteConfig
) -> None:
    artifacts = render_article(article, site, CONTEXT)
    assert consistency_problems(article, site, artifacts) == []
    [page] = [a for a in artifacts if a.channel is Channel.WEB]
    html = page.data.decode()
    assert f'href="../handouts/{SLUG}.pdf"' in html
    link = f'<a class="large-print-link" href="../handouts/{SLUG}-large-print.pdf" type="application/pdf">'
    assert link + "Large print (PDF)</a>" in html

    def edited(old: str, new: str) -> list[Artifact]:
        data = html.replace(old, new).encode()
        return [Artifact(a.channel, a.relpath, data, a.media_type) if a is page else a for a in artifacts]

    [moved] = consistency_problems(article, site, edited("-large-print.pdf", "-large.pdf"))
    assert moved.message.startswith("web: large-print link (where it leads under --out) differs")
    [gone] = consistency_problems(article, site, edited('class="large-print-link" ', ""))
    assert gone.message == "web: large-print link, count differs from the article: expected 1, found 0"


def test_a_missing_or_wrong_large_print_pdf_is_blocked(article: Article, site: SiteConfig) -> None:
    artifacts = render_article(article, site, CONTEXT)
    target = large_print_relpath(SLUG)
    [missing] = consistency_problems(article, site, [a for a in artifacts if a.relpath != target])
    assert missing.message == f"large-print handout: {target} was not rendered"
    other = article.model_copy(update={"title": "Another Title"})
    wrong = render_handout_pdf(other, site, large_print=True)
    swapped = [
        Artifact(a.channel, a.relpath, wrong, a.media_type) if a.relpath == target else a for a in artifacts
    ]
    problems = consistency_problems(article, site, swapped)
    assert problems
    assert all(p.message.startswith("large-print handout: ") for p in problems)


def test_a_slug_that_names_another_articles_large_print_is_refused(
    article: Article, site: SiteConfig
) -> None:
    clash = article.model_copy(update={"slug": "ketamine-large-print"})
    with pytest.raises(
        RenderError, match="'-large-print' names the large-print handout of an article 'ketamine'"
    ):
        HandoutRenderer().render(clash, site, CONTEXT)
    assert len(HandoutRenderer().render(clash, _without_large_print(site), CONTEXT)) == 1


def test_it_goes_live_is_served_and_rolls_back_with_the_release(
    tmp_path: Path, article: Article, site: SiteConfig
) -> None:
    out = tmp_path / "out"
    report = ArticleReport(path=f"content/{SLUG}.md", slug=SLUG, verdict=Verdict.OK)
    first = render_article(article, site, CONTEXT)
    publish_release(out, [ReadyArticle(article, report, "v1", first)], site, CONTEXT.published_at)
    printed, served = out / large_print_relpath(SLUG), out / "web" / large_print_relpath(SLUG)
    v1 = printed.read_bytes()
    assert v1.startswith(b"%PDF")
    assert os.stat(served).st_ino == os.stat(printed).st_ino  # one file, two names
    channels = json.loads((out / "reports" / f"{SLUG}.json").read_text(encoding="utf-8"))["channels"]
    assert channels["handout"] == [
        f"handouts/{SLUG}.pdf",
        f"handouts/{SLUG}-large-print.pdf",
        f"web/handouts/{SLUG}.pdf",
        f"web/handouts/{SLUG}-large-print.pdf",
    ]
    # A new version without large print: the old file leaves both places; a rollback brings it back.
    off = _without_large_print(site)
    second = render_article(article, off, CONTEXT)
    publish_release(out, [ReadyArticle(article, report, "v2", second)], off, CONTEXT.published_at)
    assert not printed.exists()
    assert not served.exists()
    rollback_article(out, SLUG, site, CONTEXT.published_at)
    assert printed.read_bytes() == served.read_bytes() == v1


def test_it_renders_in_the_render_pool_with_the_handout(article: Article, site: SiteConfig) -> None:
    small = article.model_copy(update={"slug": "small", "body": "Short text citing a source.[^1]\n"})
    with RenderPool(workers=1) as pool:
        [result] = pool.render_and_check([(small, site, CONTEXT)])
    assert not isinstance(result, RenderError)
    assert result.problems == []
    handouts = [a.relpath for a in result.artifacts if a.channel is Channel.HANDOUT]
    assert handouts == ["handouts/small.pdf", "handouts/small-large-print.pdf"]


def test_the_bench_rows_compare_on_with_off_measured_in_the_same_run() -> None:
    from bench.suite import large_print_rows

    row = {"off": 10.0, "on": 14.0}
    rows = {"full": row, "floor": row, "edited": row, "one": row}
    data = {"articles": 20, "rows": rows, "load": 1.0}
    full, floor, edited, one = large_print_rows(data)
    assert floor.goal == full.goal
    assert (full.ratio, full.goal, full.verdict) == ("1.40× (+40%)", "≤ 1.60× (+60 %)", "met")
    assert full.baseline == "large print off 10.00 s"
    assert (edited.verdict, one.verdict) == ("—", "—")
    slow = {**data, "rows": {**data["rows"], "full": {"off": 10.0, "on": 17.0}}}
    assert large_print_rows(slow)[0].verdict == "**not met**"
