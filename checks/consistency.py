"""Consistency: after rendering, every channel must carry the same facts.

Each artifact is read back the way its audience gets it — the web page as
HTML, the newsletter through the ``email`` package (both parts), the handout
as PDF text and metadata (pypdf) — and its title, license line(s), review
line (dates and reviewer) and the list of cited source URLs are compared with
the article and the site config. Any difference blocks publishing and names
the channel and the field: a handout that prints another expiry date than the
web page is worse than no handout.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

import pypdf
from bs4 import BeautifulSoup

from clinicpress.checks.model import Problem, Severity
from clinicpress.renderers.base import Artifact
from clinicpress.renderers.markdown import review_line
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

SHOWN_CHARS = 120


@dataclass(frozen=True)
class Facts:
    """What must read the same everywhere."""

    title: str
    licenses: list[str]
    review: str
    sources: list[str]


@dataclass
class _Reader:
    channel: str  # "web", "handout", "newsletter (HTML part)", …
    problems: list[Problem] = field(default_factory=list)

    def differs(self, name: str, expected: object, found: object) -> None:
        shown = f"expected {_show(expected)}, found {_show(found)}"
        message = f"{self.channel}: {name} differs from the article: {shown}"
        self.problems.append(Problem(check="consistency", severity=Severity.BLOCKED, message=message))

    def compare(self, name: str, expected: object, found: object) -> None:
        if expected == found:
            return
        if isinstance(expected, list) and isinstance(found, list) and len(expected) > 1:
            # Name the first item that differs, not two long lists.
            for index, (want, got) in enumerate(zip(expected, found, strict=False), start=1):
                if want != got:
                    self.differs(f"{name}, item {index}", want, got)
                    return
            self.differs(f"{name}, count", len(expected), len(found))
            return
        self.differs(name, expected, found)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def norm(text: str) -> str:
    """One space between words, NFC, no word joiners: how a reader compares two lines."""
    text = unicodedata.normalize("NFC", text).replace("\u2060", "").replace("\u00a0", " ")
    return " ".join(text.split())


def squash(text: str) -> str:
    """No whitespace at all: PDF text breaks lines (and long URLs) anywhere."""
    return re.sub(r"\s+", "", norm(text))


def expected_facts(article: Article, site: SiteConfig) -> Facts:
    return Facts(
        title=norm(article.title),
        licenses=[norm(lic.line()) for lic in site.licenses],
        review=norm(review_line(article)),
        sources=[s.url for s in article.sources],
    )


# --- HTML (web page, newsletter HTML part) ----------------------------------------------


def read_html(reader: _Reader, html: str, facts: Facts) -> None:
    # lxml's HTML parser, as a browser would: lenient, never raises on tag soup.
    soup = BeautifulSoup(html, "lxml")
    reader.compare("title (h1)", [facts.title], [norm(h.get_text()) for h in soup.find_all("h1")])
    reader.compare("license line", facts.licenses, [norm(el.get_text()) for el in soup.select(".license")])
    reader.compare("review line", [facts.review], [norm(el.get_text()) for el in soup.select(".review")])
    links = soup.select(".source-url")
    reader.compare("source URLs (links)", facts.sources, [str(a.get("href") or "") for a in links])
    reader.compare("source URLs (printed)", facts.sources, [norm(a.get_text()) for a in links])


# --- the email ---------------------------------------------------------------------------


def read_email_text(reader: _Reader, text: str, facts: Facts) -> None:
    lines = text.splitlines()
    reader.compare("title (first line)", facts.title, norm(lines[0]) if lines else "")
    flat = norm(text)
    for line in facts.licenses:
        if line not in flat:
            reader.differs("license line", line, "not in the text")
    if facts.review not in flat:
        reader.differs("review line", facts.review, "not in the text")
    # The Sources block: "[N] title" then the URL alone on an indented line, until the footer rule.
    match = re.search(r"^Sources\n-+\n(.*?)(?=^-{20,}$|\Z)", text, re.MULTILINE | re.DOTALL)
    found = re.findall(r"^\s+(https?://\S+)\s*$", match.group(1), re.MULTILINE) if match else []
    reader.compare("source URLs", facts.sources, found)


def read_email(channel: str, data: bytes, facts: Facts) -> list[Problem]:
    reader = _Reader(channel)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(msg, EmailMessage):  # pragma: no cover - the default policy makes EmailMessage
        reader.differs("message", "an email", type(msg).__name__)
        return reader.problems
    reader.compare("Subject", facts.title, norm(str(msg["Subject"] or "")))
    text_part, html_part = msg.get_body(("plain",)), msg.get_body(("html",))
    text_reader, html_reader = _Reader(f"{channel} (text part)"), _Reader(f"{channel} (HTML part)")
    if text_part is None:
        text_reader.differs("part", "a text/plain part", "none")
    else:
        read_email_text(text_reader, text_part.get_content(), facts)
    if html_part is None:
        html_reader.differs("part", "a text/html part", "none")
    else:
        read_html(html_reader, html_part.get_content(), facts)
    return reader.problems + text_reader.problems + html_reader.problems


# --- the handout PDF ---------------------------------------------------------------------


def _link_uris(page: pypdf.PageObject) -> list[str]:
    uris: list[str] = []
    for annot in page.get("/Annots") or []:
        obj = annot.get_object()
        action = obj.get("/A")
        if obj.get("/Subtype") == "/Link" and action is not None:
            uri = action.get_object().get("/URI")
            if uri is not None:
                uris.append(str(uri))
    return uris


def page_texts(data: bytes, pdf: pypdf.PdfReader) -> list[str]:
    """The text of every page: poppler's pdftotext where installed (~40 ms for a
    5-page handout), else pypdf's pure-Python extractor (~0.5 s, the same facts)."""
    pdftotext = shutil.which("pdftotext")
    if pdftotext is not None:
        try:
            # A fixed argv (no shell), the PDF on stdin. -raw keeps content-stream order, as pypdf
            # reads it: pdftotext's default layout order failed the sources-in-order comparison.
            command = [pdftotext, "-raw", "-enc", "UTF-8", "-", "-"]
            done = subprocess.run(command, input=data, capture_output=True, timeout=60, check=True)  # noqa: S603
        except (OSError, subprocess.SubprocessError):
            pass  # fall back to pypdf below
        else:
            pages = done.stdout.decode("utf-8", "replace").split("\f")
            if len(pages) == len(pdf.pages) + 1 and not pages[-1].strip():
                return pages[:-1]  # pdftotext ends every page with a form feed
    return [page.extract_text() or "" for page in pdf.pages]


def read_pdf(channel: str, data: bytes, facts: Facts) -> list[Problem]:
    reader = _Reader(channel)
    try:
        pdf = pypdf.PdfReader(io.BytesIO(data))
        pages = page_texts(data, pdf)
        uris = [uri for page in pdf.pages for uri in _link_uris(page)]
        meta_title = norm(str(pdf.metadata.title or "")) if pdf.metadata else ""
    except (pypdf.errors.PdfReadError, ValueError, KeyError) as exc:
        reader.differs("document", "a readable PDF", f"unreadable ({exc})")
        return reader.problems
    if not pages:
        reader.differs("document", "at least one page", "no pages")
        return reader.problems
    reader.compare("document title (metadata)", facts.title, meta_title)
    if squash(facts.title) not in squash(pages[0]):
        reader.differs("title", facts.title, "not on page 1")
    # The license and review lines are in every page's footer: check every page.
    for number, text in enumerate(pages, start=1):
        flat = squash(text)
        for line in facts.licenses:
            if squash(line) not in flat:
                reader.differs(f"license line (page {number})", line, "not on the page")
        if squash(facts.review) not in flat:
            reader.differs(f"review line (page {number})", facts.review, "not on the page")
    # Sources: printed in order after the "Sources" heading, and each one a live link.
    everything = squash("".join(pages))
    start = everything.rfind("Sources")
    position, printed = max(start, 0), []
    for url in facts.sources:
        found_at = everything.find(squash(url), position)
        if found_at < 0:
            break
        printed.append(url)
        position = found_at + len(squash(url))
    reader.compare("source URLs (printed, in order)", facts.sources, printed)
    missing_links = [url for url in facts.sources if url not in uris]
    if missing_links:
        reader.differs("source URLs (links)", facts.sources, f"no link annotation for {missing_links}")
    return reader.problems


# --- the check ---------------------------------------------------------------------------


def _web(data: bytes, facts: Facts, channel: str) -> list[Problem]:
    reader = _Reader(channel)
    read_html(reader, data.decode("utf-8", errors="replace"), facts)
    return reader.problems


# Which artifact of an article each channel is read from, and how.
_READERS: dict[Channel, list[tuple[str, str, Callable[[bytes, Facts, str], list[Problem]]]]] = {
    Channel.WEB: [("web/{slug}/index.html", "web", _web)],
    Channel.HANDOUT: [("handouts/{slug}.pdf", "handout", lambda d, f, c: read_pdf(c, d, f))],
    Channel.NEWSLETTER: [
        ("newsletter/{slug}.eml", "newsletter", lambda d, f, c: read_email(c, d, f)),
        ("newsletter/{slug}.html", "newsletter preview", _web),
    ],
}


def consistency_problems(article: Article, site: SiteConfig, artifacts: Sequence[Artifact]) -> list[Problem]:
    """Blocked problems for every fact that a channel's artifact does not carry as the article says."""
    facts = expected_facts(article, site)
    by_path = {a.relpath: a for a in artifacts}
    problems: list[Problem] = []
    for channel in article.channels:
        for pattern, name, read in _READERS[channel]:
            relpath = pattern.format(slug=article.key)
            artifact = by_path.get(relpath)
            if artifact is None:
                message = f"{name}: {relpath} was not rendered"
                problems.append(Problem(check="consistency", severity=Severity.BLOCKED, message=message))
                continue
            problems.extend(read(artifact.data, facts, name))
    return problems


__all__ = ["Facts", "consistency_problems", "expected_facts", "norm", "read_email", "read_pdf", "squash"]
