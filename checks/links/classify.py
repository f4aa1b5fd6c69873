"""Pure decisions of the link checker: reply facts → status and reason. No I/O here.

:func:`classify` reads where a redirect chain ended (a :class:`Reply` and what the walk saw)
and says ``ok``, ``redirected``, ``broken``, ``unverified`` or ``bot-blocked`` with a
one-line reason; :func:`anchor_verdict` checks a ``#fragment`` against the final page. The
small predicates the fetcher acts on (retry? ask HEAD again as GET? went home?) live here too,
so each rule is testable from a table (tests/checks/test_classify.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from clinicpress.checks.linkcheck_html import HtmlFindings, fragment_present
from clinicpress.checks.links.report import short
from clinicpress.checks.model import LinkStatus
from clinicpress.network import retryable
from clinicpress.network.replies import REDIRECTS

__all__ = [
    "GONE",
    "PERMANENT",
    "REDIRECTS",
    "WALL_CODES",
    "Classified",
    "Reply",
    "anchor_verdict",
    "classify",
    "head_unreliable",
    "went_home",
]

PERMANENT = frozenset({301, 308})
WALL_CODES = frozenset({401, 403, 429, 503, 999})
GONE = frozenset({404, 410})
# A one-segment path that is only a language or a home alias: redirecting it home is normal.
_HOME_ALIAS = re.compile(r"^(?:[a-z]{2}(?:[-_][a-z]{2,4})?|home|index(?:\.\w+)?|default(?:\.\w+)?)$", re.I)


@dataclass(frozen=True)
class Reply:
    """A response's status line, the headers we act on and what its body told us."""

    status: int
    reason_phrase: str = ""
    location: str | None = None
    retry_after: float | None = None
    method: str = "GET"
    tries: int = 1
    page: HtmlFindings | None = None  # 2xx HTML, when read
    wall: str | None = None  # bot-wall marker found in headers or body
    browser: int | None = None  # status a browser User-Agent got (after a plain 403)


@dataclass(frozen=True)
class Classified:
    status: LinkStatus
    reason: str


def classify(
    got: Reply,
    *,
    final_url: str | None = None,
    first_status: int | None = None,
    hops: int = 0,
    kind: Literal["doi", "pmid"] | None = None,
    ident: str = "",
    went_home: bool = False,
) -> Classified:
    """The status of a link whose redirect chain ended with ``got``.

    ``final_url``: where the chain ended, if it was redirected; ``first_status``: the first
    redirect's code (301/308 → ``redirected``); ``kind``/``ident``: the link is a DOI or PMID
    checked at its resolver; ``went_home``: a deep URL that ended on the site's home page.
    """
    code = got.status
    phrase = f"{code} {got.reason_phrase}".strip()
    tries = f" after {got.tries} tries" if got.tries > 1 else ""
    via = f" (redirected to {short(final_url)})" if final_url else ""
    label = "DOI" if kind == "doi" else "PubMed ID"

    if 200 <= code < 300:
        if got.page is not None and got.page.soft_404:
            return Classified(LinkStatus.BROKEN, f"soft 404: the page says “{got.page.soft_404}”{via}")
        if final_url and went_home:
            return Classified(
                LinkStatus.BROKEN,
                f"soft 404: redirects to the site's home page ({short(final_url)}), not to the page",
            )
        if kind is not None:
            # The resolver's redirect to the publisher is the normal case: the DOI is the citation.
            resolves = f" to {short(final_url)}" if final_url else ""
            return Classified(LinkStatus.OK, f"{label} {ident} resolves{resolves} ({phrase})")
        if final_url and first_status in PERMANENT:
            return Classified(
                LinkStatus.REDIRECTED, f"moved permanently ({first_status}): cite {short(final_url)} instead"
            )
        reason = f"{phrase} via temporary redirect ({first_status})" if final_url else phrase
        return Classified(LinkStatus.OK, reason)
    if code in GONE and kind is not None and hops == 0:
        return Classified(LinkStatus.BROKEN, f"{label} not found: {ident} (the resolver answered {phrase})")
    if code in GONE:
        return Classified(LinkStatus.BROKEN, f"{phrase}{via}")
    if got.wall:
        return Classified(
            LinkStatus.BOT_BLOCKED, f"{phrase}{via}: bot wall ({got.wall}); open it in a browser to confirm"
        )
    if code == 999:
        return Classified(LinkStatus.BOT_BLOCKED, f"{phrase}{via}: bot wall (999 is only sent to bots)")
    if code == 403 and got.browser is not None and 200 <= got.browser < 300:
        return Classified(
            LinkStatus.BOT_BLOCKED,
            f"403 to the checker but {got.browser} to a browser User-Agent{via}: bot wall; the page exists",
        )
    if code == 403:
        # Not gone (no 404/410) and not shown to be a bot wall: a human must look.
        also = f" (a browser User-Agent got {got.browser})" if got.browser is not None else ""
        return Classified(
            LinkStatus.UNVERIFIED,
            f"{phrase}{via}{also}, no bot-wall markers: access denied, not gone; "
            "open it in a browser to confirm",
        )
    if code == 401:
        login = f"{phrase}{via}: needs a login; open it in a browser to confirm"
        return Classified(LinkStatus.UNVERIFIED, login)
    if code == 429:
        return Classified(LinkStatus.UNVERIFIED, f"rate limited ({phrase}){tries}{via}")
    if retryable(code):
        return Classified(LinkStatus.UNVERIFIED, f"server error {phrase}{tries}{via}")
    if code in REDIRECTS:
        return Classified(LinkStatus.UNVERIFIED, f"{phrase} without a Location header{via}")
    if 400 <= code < 500:
        return Classified(LinkStatus.BROKEN, f"HTTP {phrase}{via}")
    return Classified(LinkStatus.UNVERIFIED, f"unexpected HTTP status {phrase}{via}")


def anchor_verdict(
    fragment: str, page: HtmlFindings | None, final_url: str | None, before: Classified
) -> Classified:
    """``before`` (an ``ok``/``redirected`` verdict) after checking ``#fragment`` on the final page.

    Not HTML: noted as not checked, never guessed. Absent from a page cut short: ``unverified``.
    """
    if page is None or page.anchors is None:
        return Classified(before.status, f"{before.reason}; #{fragment} not checked (not an HTML page)")
    if fragment_present(fragment, page.anchors):
        return Classified(before.status, f"{before.reason}; anchor #{fragment} found")
    where = f" on {short(final_url)}" if final_url else ""
    if not page.complete:
        return Classified(
            LinkStatus.UNVERIFIED,
            f"anchor #{fragment} not in the part of the page read{where} (page cut short)",
        )
    return Classified(
        LinkStatus.BROKEN, f"missing anchor #{fragment}: no element with that id or name{where}"
    )


def went_home(start_path: str, final_url: str) -> bool:
    """A deep URL that ends on a site's home page: the page is gone (soft-404)."""
    segments = [s for s in start_path.split("/") if s]
    if not segments or (len(segments) == 1 and _HOME_ALIAS.match(segments[0])):
        return False
    try:
        final = urlsplit(final_url)
    except ValueError:
        return False
    return final.path in ("", "/") and not final.query


def head_unreliable(code: int) -> bool:
    """HEAD answers that GET may contradict: many servers and CDNs answer HEAD wrongly."""
    return (400 <= code < 500 and code != 429 and code != 408) or code in (501, 999)
