"""A PDF's text, link URIs and title, read in process by PDFium (pypdfium2).

Used by the post-render consistency check (the handout read back), the quote
check (a cited source that is a PDF) and the preview (page images). It sits in
the core layer so that checks and renderers both use it without importing
each other (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import ctypes
import importlib
import threading
from contextlib import closing
from dataclasses import dataclass
from typing import Any

# pypdfium2 ships no type information; imported this way mypy --strict passes whether or not it
# is installed with stubs.
pdfium: Any = importlib.import_module("pypdfium2")
pdfium_c: Any = importlib.import_module("pypdfium2.raw")

# PDFium is not thread-safe, not even across documents (pypdfium2's documentation): one read
# at a time per process. Every PDFium user in the process takes this lock (the consistency check,
# the quote check, the preview's page images).
PDFIUM_LOCK = threading.Lock()
# PDFium's text extraction returns U+0002 for a hyphen that ends a line after a letter when the
# next line starts with a letter or digit ("health-" / "care"). The page prints the hyphen, and
# long URLs break after one: read it back as printed.
_PDFIUM_LINE_END_HYPHEN = "\x02"


@dataclass(frozen=True)
class PdfContent:
    """What a handout says, as PDFium reads it."""

    title: str  # the document information dictionary's /Title
    pages: list[str]  # the text of every page
    uris: list[str]  # the URI of every link annotation, page by page


def _link_uris(pdf: Any, page: Any) -> list[str]:
    """The URI of every link annotation on the page (other link actions are not links out)."""
    uris: list[str] = []
    position, link = ctypes.c_int(0), pdfium_c.FPDF_LINK()
    while pdfium_c.FPDFLink_Enumerate(page, ctypes.byref(position), ctypes.byref(link)):
        action = pdfium_c.FPDFLink_GetAction(link)
        if not action or pdfium_c.FPDFAction_GetType(action) != pdfium_c.PDFACTION_URI:
            continue
        size = int(pdfium_c.FPDFAction_GetURIPath(pdf, action, None, 0))
        if size <= 1:  # 0: no URI; 1: the empty string (its NUL)
            continue
        buffer = ctypes.create_string_buffer(size)
        pdfium_c.FPDFAction_GetURIPath(pdf, action, buffer, size)
        uris.append(buffer.raw[: size - 1].decode("utf-8", errors="replace"))
    return uris


def _open_pdf(data: bytes) -> Any:
    """The document, reading ``data`` in place: keep ``data`` alive until it is closed.

    Loaded here, not by ``PdfDocument(data)``: that refuses a document without pages with
    whatever error PDFium reported last (and leaves the document open)."""
    handle = pdfium_c.FPDF_LoadMemDocument64(data, len(data), None)
    if not handle:
        error = int(pdfium_c.FPDF_GetLastError())
        reason = pdfium.internal.ErrorToStr.get(error)
        raise pdfium.PdfiumError(f"Failed to load document (PDFium: {reason}).", err_code=error)
    return pdfium.PdfDocument(handle)


def read_pdf_content(data: bytes) -> PdfContent:
    """Title, page texts and link URIs; raises ``pypdfium2.PdfiumError`` if PDFium cannot read it.

    A page's text is what lies within the page box (as a reader sees it). Every document, page
    and text page is closed before returning: a worker reads thousands."""
    with PDFIUM_LOCK, closing(_open_pdf(data)) as pdf:
        pages: list[str] = []
        uris: list[str] = []
        for index in range(len(pdf)):
            with closing(pdf.get_page(index)) as page, closing(page.get_textpage()) as textpage:
                text = str(textpage.get_text_bounded())
                pages.append(text.replace(_PDFIUM_LINE_END_HYPHEN, "-"))
                uris += _link_uris(pdf, page)
        return PdfContent(title=str(pdf.get_metadata_value("Title")), pages=pages, uris=uris)
