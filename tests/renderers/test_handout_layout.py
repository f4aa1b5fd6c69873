"""The end of the handout: no last page that is nearly empty (issue 24, item 7).

The sources and the "read it online" block (QR code, address, crisis line) end the handout
together; when they do not fit on the page the body ends on, they start a page of their own
rather than leave one source and the QR code alone on the last page.
"""

from __future__ import annotations

from typing import Any

from clinicpress.pdftext import pdfium, read_pdf_content
from clinicpress.renderers.handout import render_handout_pdf
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article

# The page box inside handout.css's @page margins (0.75in top, 1.1in bottom; 72 points an inch).
TOP_MARGIN, BOTTOM_MARGIN = 0.75 * 72, 1.1 * 72


def filled(page: Any) -> float:
    """How much of the page box the text reaches down to (0 empty, 1 full), read back from the PDF."""
    height = page.get_height()
    top, bottom = height - TOP_MARGIN, BOTTOM_MARGIN
    text = page.get_textpage()
    lows = [text.get_charbox(i)[1] for i in range(text.count_chars())]
    body = [y for y in lows if bottom < y < top]  # not the running header and footer
    return (top - min(body)) / (top - bottom) if body else 0.0


def test_no_page_of_the_sample_handout_is_nearly_empty(article: Article, site: SiteConfig) -> None:
    pdf = pdfium.PdfDocument(render_handout_pdf(article, site))
    fills = [round(filled(page), 2) for page in pdf]
    assert min(fills) >= 1 / 3, f"a page filled to less than a third: {fills}"


def test_the_sources_and_the_qr_block_end_on_the_same_page(article: Article, site: SiteConfig) -> None:
    pages = read_pdf_content(render_handout_pdf(article, site)).pages
    last = pages[-1]
    assert "Sources" in last
    assert "Scan the code" in last
    assert all(source.title.split()[0] in last for source in article.sources)
