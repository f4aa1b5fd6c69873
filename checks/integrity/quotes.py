"""Quotes that must still stand: the passage an article relies on is in the source's text.

A front-matter source may carry ``quote:``. At check and publish the source is fetched through
the one fetch (``clinicpress.network``: redirects followed, each hop vetted and pinned as the
link checker's, at most ``MAX_SOURCE_BYTES`` as sent and decompressed), its main text taken
(HTML: trafilatura's extraction, falling back to all the page's text; PDF: PDFium's text), and
the quote looked for after normalising both sides (Unicode NFKC, case, whitespace, typographic
quotes and dashes, hyphens at line ends). An ellipsis in the quote (``…`` or ``...``) stands for
left-out words: the parts must appear in order. Not found → a warning; could not read the
source → a warning naming why. The registry keeps found/not-found and a fingerprint of the main
text, and the monitor alerts ``source.quote-missing`` when a quote that was found is gone.

``normalise``, ``quote_found`` and ``fingerprint`` are pure; :func:`check_quotes` does the I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from clinicpress.network import Fetcher, FetchError, Policy, TooLarge
from clinicpress.settings.links import LinkCheckSettings

__all__ = ["QuoteResult", "check_quotes", "fingerprint", "normalise", "quote_found", "quote_key"]

MAX_SOURCE_BYTES = 8 * 1024 * 1024  # a long PDF fits; a video does not
_ACCEPT = "text/html,application/pdf;q=0.9,*/*;q=0.5"
_QUOTES = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4`", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\x02", "-"),  # hyphens: joined below
        **dict.fromkeys("\u2012\u2013\u2014\u2015\u2212", " "),  # dashes separate words
        "\u00ad": None,  # a soft hyphen is not a character of the text
    }
)
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|…|\[\.\.\.\]|\[…\])\s*")
_HYPHEN_BREAK = re.compile(r"(\w)-\s+(\w)")


def normalise(text: str) -> str:
    """Compare-ready text: NFKC, straight quotes and dashes, line-end hyphens joined, case, spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _HYPHEN_BREAK.sub(r"\1\2", text)  # "health-\ncare" as printed across two lines
    text = text.replace("-", "")  # "substance-use" and "substance use-" spellings agree
    text = re.sub(r"[\"']", "", text)  # quote marks around or inside the quote are not the words
    return " ".join(text.casefold().split())


def _squashed(text: str) -> str:
    # Compared without spaces: "ketamine assisted", "ketamine-assisted" and a PDF's
    # "ketamine-\nassisted" are one spelling; a quote of 3+ words does not match by accident.
    return normalise(text).replace(" ", "")


def quote_found(quote: str, text: str) -> bool:
    """Whether ``quote`` (its parts around an ellipsis, in order) appears in ``text``."""
    haystack = _squashed(text)
    position = 0
    parts = [_squashed(p).strip(".,;:") for p in _ELLIPSIS.split(quote)]
    parts = [p for p in parts if p]
    if not parts:
        return False
    for part in parts:
        found = haystack.find(part, position)
        if found < 0:
            return False
        position = found + len(part)
    return True


def fingerprint(text: str) -> str:
    """A fingerprint of a source's main text, normalised: the registry notices when it changes."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()[:32]


def quote_key(url: str, quote: str) -> str:
    """One line per (source, quote): ``<url> #<12 hex of the normalised quote>``."""
    return f"{url} #{hashlib.sha256(normalise(quote).encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class QuoteResult:
    url: str
    quote: str
    found: bool | None  # None: the source's text could not be read
    fingerprint: str | None = None  # of the main text, when read
    reason: str = ""  # why not read, or what was read ("HTML main text", "PDF text")


@dataclass(frozen=True)
class _Text:
    text: str | None
    kind: Literal["html", "pdf", "text", "none"]
    reason: str = ""


def main_text(body: bytes, content_type: str) -> _Text:
    """The main text of a fetched source: a PDF's pages, an HTML page's article, or plain text."""
    if body.startswith(b"%PDF") or "pdf" in content_type:
        from clinicpress.pdftext import read_pdf_content  # PDFium: imported only when needed

        try:
            return _Text("\n".join(read_pdf_content(body).pages), "pdf")
        except Exception as exc:  # PDFium raises its own errors for damaged files
            return _Text(None, "none", f"PDF not readable ({type(exc).__name__})")
    decoded = body.decode("utf-8", errors="replace")
    if "html" in content_type or decoded.lstrip()[:200].lower().startswith(("<!doctype html", "<html")):
        import trafilatura  # slow to import: only for a source with a quote

        extracted = trafilatura.extract(decoded, include_comments=False, favor_recall=True)
        if extracted:
            return _Text(extracted, "html")
        # No article found (a short page): all the page's visible text, tags dropped.
        return _Text(re.sub(r"<[^>]+>", " ", re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", decoded)), "html")
    if content_type.startswith("text/"):
        return _Text(decoded, "text")
    return _Text(None, "none", f"not a page or PDF ({content_type or 'no content type'})")


async def _read(fetcher: Fetcher, url: str) -> tuple[bytes, str] | str:
    """The body and content type at ``url`` after redirects, or why not (one line)."""
    try:
        got = await fetcher.fetch(url, accept=_ACCEPT, max_bytes=MAX_SOURCE_BYTES)
    except TooLarge:
        return f"over {MAX_SOURCE_BYTES // (1024 * 1024)} MB"
    except FetchError as exc:
        return exc.reason[:200]
    if got.status != 200:
        return f"HTTP {got.status}"
    return got.body, got.headers.get("content-type", "").lower()


def _fetched(url: str, resolve: dict[str, str] | None) -> str:
    """Where ``url`` is read: its resolver URL for a DOI/PMID, without any #fragment."""
    return (resolve or {}).get(url, url).split("#", 1)[0]


async def check_quotes(
    pairs: Sequence[tuple[str, str]],
    links: LinkCheckSettings,
    *,
    agent: str,
    resolve: dict[str, str] | None = None,
) -> dict[str, QuoteResult]:
    """Each (url, quote) pair looked for in its source's main text; keyed by :func:`quote_key`.

    ``resolve`` maps a cited URL to where it is fetched (a DOI to its resolver URL). Each
    source is fetched once however many quotes it carries.
    """
    if not pairs:
        return {}
    texts: dict[str, asyncio.Task[tuple[bytes, str] | str]] = {}
    async with Fetcher(replace(Policy.of(links), user_agent=agent, connections=4)) as fetcher:
        for url, _ in pairs:
            fetch_url = _fetched(url, resolve)
            if fetch_url not in texts:
                texts[fetch_url] = asyncio.ensure_future(_read(fetcher, fetch_url))
        await asyncio.gather(*texts.values(), return_exceptions=True)
    read: dict[str, _Text] = {}
    results: dict[str, QuoteResult] = {}
    for url, quote in pairs:
        fetch_url = _fetched(url, resolve)
        if fetch_url not in read:
            task = texts[fetch_url]
            outcome = (
                task.result() if not task.exception() else f"fetch failed ({type(task.exception()).__name__})"
            )
            if isinstance(outcome, str):
                read[fetch_url] = _Text(None, "none", outcome)
            else:
                try:
                    read[fetch_url] = await asyncio.to_thread(main_text, *outcome)
                except Exception as exc:  # an extractor's bug on one odd page: "not checked", never "found"
                    read[fetch_url] = _Text(None, "none", f"text not extracted ({type(exc).__name__})")
        text = read[fetch_url]
        if text.text is None:
            results[quote_key(url, quote)] = QuoteResult(url, quote, None, None, text.reason)
            continue
        results[quote_key(url, quote)] = QuoteResult(
            url, quote, quote_found(quote, text.text), fingerprint(text.text), f"{text.kind} main text"
        )
    return results
