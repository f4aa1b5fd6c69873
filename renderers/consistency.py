"""Consistency: after rendering, every channel must carry the same facts.

Each artifact is read back the way its audience gets it — the web page as
HTML, the newsletter through the ``email`` package (both parts), the handout
as PDF text, link annotations and metadata — and its title, license line(s),
review line (dates and reviewer) and the list of cited source URLs are
compared with the article and the site config. Any difference blocks
publishing and names the channel and the field: a handout that prints another
expiry date than the web page is worse than no handout. The web page's link to
its handout is read back too: relative, and leading to where the release serves
the handout under the web root (or absent when the article has no handout). With
``[handout] large_print`` the large-print handout is read the same way as the handout, and the
page's link to it too.

Both readers are C libraries, in process: HTML is parsed by lxml directly
(lenient like a browser, no BeautifulSoup tree), the PDF by PDFium through
pypdfium2 (no pdftotext child, no pure-Python PDF parser). A read is CPU
work in a render worker, once per article and channel.
"""

from __future__ import annotations

import email
import email.policy
import importlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urljoin, urlsplit

from clinicpress.checks.model import Check, Problem, Severity
from clinicpress.pdftext import pdfium, read_pdf_content
from clinicpress.renderers import i18n
from clinicpress.renderers.base import Artifact
from clinicpress.renderers.handout import large_print_relpath
from clinicpress.renderers.markdown import review_line
from clinicpress.renderers.web import served_handout
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel, edition_language

# lxml ships no type information; imported this way mypy --strict passes whether
# or not the project later adds them to its ignore list (as in checks/linkcheck_html.py).
etree: Any = importlib.import_module("lxml.etree")
lxml_html: Any = importlib.import_module("lxml.html")

SHOWN_CHARS = 120


@dataclass(frozen=True)
class Facts:
    """What must read the same everywhere."""

    title: str
    licenses: list[str]
    review: str
    sources: list[str]
    handout: str | None = None  # where the web page's handout link must lead (under --out), if any
    large_print: str | None = None  # where its large-print link must lead, if any
    sources_heading: str = "Sources"  # the heading the sources follow, in the edition's language


@dataclass
class _Reader:
    channel: str  # "web", "handout", "newsletter (HTML part)", …
    problems: list[Problem] = field(default_factory=list)

    def differs(self, name: str, expected: object, found: object) -> None:
        shown = f"expected {_show(expected)}, found {_show(found)}"
        message = f"{self.channel}: {name} differs from the article: {shown}"
        self.problems.append(Problem(check=Check.CONSISTENCY, severity=Severity.BLOCKED, message=message))

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
    has_handout = Channel.HANDOUT in article.channels
    language = edition_language(article, site)
    return Facts(
        title=norm(article.title),
        licenses=[norm(line) for line in i18n.license_lines(site, language)],
        review=norm(review_line(article, language)),
        sources=[s.url for s in article.sources],
        handout=served_handout(f"handouts/{article.key}.pdf") if has_handout else None,
        large_print=(
            served_handout(large_print_relpath(article.key))
            if has_handout and site.handout.large_print
            else None
        ),
        sources_heading=i18n.tr(language, "Sources"),
    )


# --- HTML (web page, newsletter HTML part) ----------------------------------------------

# UTF-8 bytes with the encoding given: lxml refuses a str that starts with an XML declaration
# naming an encoding, and a <meta charset> inside the markup must not re-decode it.
_HTML_PARSER = lxml_html.HTMLParser(encoding="utf-8")
# The text a reader sees in an element, as BeautifulSoup's get_text() gave it: every text node
# but those inside script, style, template, rt or rp (comments are not text nodes). One
# difference: such an element itself (<script class="license">) reads as empty, not as its code.
_VISIBLE_TEXT = etree.XPath(
    "descendant::text()"
    "[not(ancestor::*[self::script or self::style or self::template or self::rt or self::rp])]"
)
# Elements with a class, but not inside a <template>: its content is no part of the page (and
# neither CSS selectors nor BeautifulSoup's select() match there).
_WITH_CLASS = etree.XPath("//*[@class][not(ancestor::template)]")
_CLASSES = ("license", "review", "source-url", "handout-link", "large-print-link")


def _text(element: Any) -> str:
    return norm("".join(_VISIBLE_TEXT(element)))


def read_html(reader: _Reader, html: str, facts: Facts) -> dict[str, list[Any]]:
    """Compare the page's facts; returns its elements by class (what CSS ``.license`` etc. select)."""
    # lxml's HTML parser, as a browser would: lenient, never raises on tag soup. A document that
    # is empty (or only whitespace or comments) has no root element: it carries none of the facts.
    try:
        root = lxml_html.document_fromstring(html.encode("utf-8", errors="replace"), parser=_HTML_PARSER)
    except etree.ParserError:
        root = None
    h1s: list[Any] = [] if root is None else list(root.iter("h1"))
    # What CSS ".license" etc. select, in document order: the class attribute holds the word. Words
    # split on any whitespace and compare case-sensitively, as BeautifulSoup's select() did.
    classed: dict[str, list[Any]] = {name: [] for name in _CLASSES}
    for element in [] if root is None else _WITH_CLASS(root):
        for name in set(str(element.get("class")).split()).intersection(_CLASSES):
            classed[name].append(element)
    reader.compare("title (h1)", [facts.title], [_text(h) for h in h1s])
    reader.compare("license line", facts.licenses, [_text(el) for el in classed["license"]])
    reader.compare("review line", [facts.review], [_text(el) for el in classed["review"]])
    links = classed["source-url"]
    reader.compare("source URLs (links)", facts.sources, [str(a.get("href") or "") for a in links])
    reader.compare("source URLs (printed)", facts.sources, [_text(a) for a in links])
    return classed


# Resolves a page's relative links as a browser does; the host is never contacted.
_WEB_ROOT_URL = "https://web-root.invalid/"


def read_handout_link(
    reader: _Reader, page_relpath: str, links: list[Any], facts: Facts, *, large_print: bool = False
) -> None:
    """The page links its handout once, relatively, to where the release serves it; or not at all.

    With ``large_print``: the same for its link to the large-print handout."""
    hrefs = [str(a.get("href") or "") for a in links]
    expected, name = (
        (facts.large_print, "large-print link") if large_print else (facts.handout, "handout link")
    )
    if expected is None:
        reader.compare(name, [], hrefs)
        return
    if len(hrefs) != 1:
        reader.differs(f"{name}, count", 1, len(hrefs))
        return
    [href] = hrefs
    parts = urlsplit(href)
    # Relative to the page, so it works wherever (and under whatever path) the web root is served.
    if parts.scheme or parts.netloc or href.startswith("/"):
        reader.differs(name, f"a link relative to {page_relpath}", href)
        return
    leads_to = urljoin(_WEB_ROOT_URL + page_relpath, href).removeprefix(_WEB_ROOT_URL)
    reader.compare(f"{name} (where it leads under --out)", expected, leads_to)


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
    heading = re.escape(facts.sources_heading)
    match = re.search(rf"^{heading}\n-+\n(.*?)(?=^-{{20,}}$|\Z)", text, re.MULTILINE | re.DOTALL)
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


def read_pdf(channel: str, data: bytes, facts: Facts) -> list[Problem]:
    reader = _Reader(channel)
    try:
        content = read_pdf_content(data)
    except pdfium.PdfiumError as exc:
        reader.differs("document", "a readable PDF", f"unreadable ({exc})")
        return reader.problems
    pages, uris, meta_title = content.pages, content.uris, norm(content.title)
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
    start = everything.rfind(squash(facts.sources_heading))
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


# A reader gets the artifact's bytes, the facts, the channel's name and the artifact's path.
_Read = Callable[[bytes, Facts, str, str], list[Problem]]


def _web(data: bytes, facts: Facts, channel: str, relpath: str) -> list[Problem]:
    reader = _Reader(channel)
    read_html(reader, data.decode("utf-8", errors="replace"), facts)
    return reader.problems


def _web_page(data: bytes, facts: Facts, channel: str, relpath: str) -> list[Problem]:
    """The article's own page: its facts, and its link to the handout (relative to ``relpath``)."""
    reader = _Reader(channel)
    classed = read_html(reader, data.decode("utf-8", errors="replace"), facts)
    read_handout_link(reader, relpath, classed["handout-link"], facts)
    read_handout_link(reader, relpath, classed["large-print-link"], facts, large_print=True)
    return reader.problems


# Which artifact of an article each channel is read from, and how.
_READERS: dict[Channel, list[tuple[str, str, _Read]]] = {
    Channel.WEB: [("web/{slug}/index.html", "web", _web_page)],
    Channel.HANDOUT: [("handouts/{slug}.pdf", "handout", lambda d, f, c, _: read_pdf(c, d, f))],
    Channel.NEWSLETTER: [
        ("newsletter/{slug}.eml", "newsletter", lambda d, f, c, _: read_email(c, d, f)),
        ("newsletter/{slug}.html", "newsletter preview", _web),
    ],
}
# Read like the handout when ``[handout] large_print`` is on.
_LARGE_PRINT = (large_print_relpath("{slug}"), "large-print handout", _READERS[Channel.HANDOUT][0][2])


def _readers(channel: Channel, site: SiteConfig) -> list[tuple[str, str, _Read]]:
    if channel is Channel.HANDOUT and site.handout.large_print:
        return [*_READERS[channel], _LARGE_PRINT]
    return _READERS[channel]


def consistency_problems(article: Article, site: SiteConfig, artifacts: Sequence[Artifact]) -> list[Problem]:
    """Blocked problems for every fact that a channel's artifact does not carry as the article says."""
    facts = expected_facts(article, site)
    by_path = {a.relpath: a for a in artifacts}
    problems: list[Problem] = []
    for channel in article.channels:
        for pattern, name, read in _readers(channel, site):
            relpath = pattern.format(slug=article.key)
            artifact = by_path.get(relpath)
            if artifact is None:
                message = f"{name}: {relpath} was not rendered"
                problems.append(Problem(check=Check.CONSISTENCY, severity=Severity.BLOCKED, message=message))
                continue
            problems.extend(read(artifact.data, facts, name, relpath))
    return problems


__all__ = [
    "Facts",
    "consistency_problems",
    "expected_facts",
    "norm",
    "read_email",
    "read_handout_link",
    "read_pdf",
    "squash",
]
