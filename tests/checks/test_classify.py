"""The link checker's decisions, without sockets.

First a table of the pure :func:`classify` (reply facts → status and reason) and of the
other pure rules; then a few protocol tests through ``httpx.MockTransport`` (in the style of
httpx's tests/client/test_redirects.py): the whole checker, its HTTP exchanges made up.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from clinicpress.checks.linkcheck_html import HtmlFindings
from clinicpress.checks.links import LinkReport, check_urls_async
from clinicpress.checks.links.classify import (
    Classified,
    Reply,
    anchor_verdict,
    classify,
    head_unreliable,
    went_home,
)
from clinicpress.checks.model import LinkStatus
from clinicpress.network import retry_after, retryable
from clinicpress.settings.links import LinkCheckSettings

OK, BROKEN, UNVERIFIED = LinkStatus.OK, LinkStatus.BROKEN, LinkStatus.UNVERIFIED
REDIRECTED, BOT = LinkStatus.REDIRECTED, LinkStatus.BOT_BLOCKED
FINAL = "https://example.org/new-place"

# (reply, facts of the walk, status, words the reason must contain)
DOI = {"kind": "doi", "ident": "10.1/x"}
case = pytest.param
TABLE = [
    case(Reply(200, "OK"), {}, OK, "200 OK", id="200"),
    case(Reply(204, "No Content"), {}, OK, "204", id="204"),
    case(Reply(404, "Not Found"), {}, BROKEN, "404 Not Found", id="404"),
    case(Reply(410, "Gone"), {}, BROKEN, "410 Gone", id="410"),
    case(Reply(404), {"final_url": FINAL, "hops": 1}, BROKEN, "redirected to", id="404-via"),
    case(
        Reply(200, page=HtmlFindings(soft_404="Page not found")), {}, BROKEN, "the page says", id="soft-404"
    ),
    case(
        Reply(200), {"final_url": "https://example.org/", "went_home": True}, BROKEN, "home page", id="home"
    ),
    case(Reply(200), {"final_url": FINAL, "first_status": 301, "hops": 2}, REDIRECTED, "cite", id="301"),
    case(Reply(200), {"final_url": FINAL, "first_status": 308, "hops": 1}, REDIRECTED, "(308)", id="308"),
    case(Reply(200), {"final_url": FINAL, "first_status": 302, "hops": 1}, OK, "temporary", id="302"),
    case(Reply(200), {"final_url": FINAL, "first_status": 307, "hops": 2}, OK, "(307)", id="307-301"),
    case(Reply(403, wall="cf-mitigated header"), {}, BOT, "bot wall (cf-mitigated", id="403-wall"),
    case(Reply(403, "Forbidden"), {}, UNVERIFIED, "no bot-wall markers", id="403-plain"),
    case(Reply(403, browser=200), {}, BOT, "200 to a browser User-Agent", id="403-browser-200"),
    case(Reply(403, browser=403), {}, UNVERIFIED, "User-Agent got 403", id="403-browser-403"),
    case(Reply(999), {}, BOT, "999 is only sent to bots", id="999"),
    case(Reply(401, "Unauthorized"), {}, UNVERIFIED, "needs a login", id="401"),
    case(Reply(429, retry_after=2, tries=3), {}, UNVERIFIED, "after 3 tries", id="429-retry-after"),
    case(Reply(429, "Too Many Requests"), {}, UNVERIFIED, "rate limited", id="429"),
    case(Reply(429, wall="DataDome"), {}, BOT, "DataDome", id="429-wall"),
    case(Reply(500, tries=2), {}, UNVERIFIED, "server error 500 after 2 tries", id="500"),
    case(Reply(503, "Service Unavailable"), {}, UNVERIFIED, "server error 503", id="503"),
    case(Reply(301), {}, UNVERIFIED, "without a Location header", id="301-no-location"),
    case(Reply(418, "I'm a teapot"), {}, BROKEN, "HTTP 418", id="418"),
    case(Reply(199), {}, UNVERIFIED, "unexpected HTTP status", id="1xx"),
    case(
        Reply(200),
        {**DOI, "final_url": FINAL, "first_status": 301, "hops": 1},
        OK,
        "resolves to",
        id="doi-ok",
    ),
    case(Reply(404), DOI, BROKEN, "DOI not found: 10.1/x", id="doi-unknown"),
    case(Reply(404), {"kind": "pmid", "ident": "1"}, BROKEN, "PubMed ID not found: 1", id="pmid-unknown"),
    case(Reply(404), {**DOI, "final_url": FINAL, "hops": 1}, BROKEN, "404 (redirected", id="doi-gone"),
]


@pytest.mark.parametrize(("reply", "facts", "status", "words"), TABLE)
def test_classify(reply: Reply, facts: dict[str, object], status: LinkStatus, words: str) -> None:
    verdict = classify(reply, **facts)  # type: ignore[arg-type]
    assert verdict.status is status
    assert words in verdict.reason
    assert "\n" not in verdict.reason


def test_missing_anchor() -> None:
    ok = Classified(OK, "200 OK")
    page = HtmlFindings(anchors=frozenset({"methods", "results"}))
    assert anchor_verdict("results", page, None, ok) == Classified(OK, "200 OK; anchor #results found")
    missing = anchor_verdict("dosage", page, FINAL, ok)
    assert missing.status is BROKEN
    assert missing.reason.startswith("missing anchor #dosage")
    assert FINAL in missing.reason
    cut = anchor_verdict("dosage", HtmlFindings(anchors=frozenset(), complete=False), None, ok)
    assert cut.status is UNVERIFIED  # absent from a page cut short: not concluded
    pdf = anchor_verdict("page=3x", None, None, Classified(REDIRECTED, "moved"))
    assert pdf.status is REDIRECTED
    assert "not checked (not an HTML page)" in pdf.reason


@pytest.mark.parametrize(
    ("start", "final", "home"),
    [
        ("/2019/05/study", "https://example.org/", True),
        ("/2019/05/study", "https://example.org", True),
        ("/2019/05/study", "https://example.org/?lang=en", False),
        ("/2019/05/study", "https://example.org/news", False),
        ("/en", "https://example.org/", False),  # a language alias going home is normal
        ("/index.html", "https://example.org/", False),
        ("/", "https://example.org/", False),
    ],
)
def test_went_home(start: str, final: str, home: bool) -> None:
    assert went_home(start, final) is home


def test_retry_rules() -> None:
    assert [c for c in (200, 301, 403, 404, 408, 429, 500, 503, 599) if retryable(c)] == [
        408,
        429,
        500,
        503,
        599,
    ]
    assert [c for c in (400, 403, 404, 405, 408, 429, 500, 501, 999) if head_unreliable(c)] == [
        400, 403, 404, 405, 501, 999,
    ]  # fmt: skip
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert retry_after("3", now=epoch) == 3.0
    assert retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=epoch + timedelta(seconds=4)) == 6.0
    assert retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=epoch + timedelta(seconds=40)) == 0.0
    assert retry_after("Thu, 01 Jan 1970 00:00:10 -0000", now=epoch) == 10.0  # no zone: UTC
    assert retry_after("soon", now=epoch) is None
    assert retry_after(None, now=epoch) is None


# -- protocol: the whole checker over httpx.MockTransport ------------------------------------------

SETTINGS = LinkCheckSettings(allow_private_hosts=["127.0.0.1"], timeout=1.0, retries=2, min_interval=0)
HTML = {"Content-Type": "text/html; charset=utf-8"}
BASE = "http://127.0.0.1"  # a literal the settings allow: vetted without DNS, never connected to


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    """A streamed response, as from a server (``content=`` would arrive already read)."""
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


def check(
    handler: Callable[[httpx.Request], httpx.Response],
    urls: Sequence[str],
    settings: LinkCheckSettings = SETTINGS,
) -> LinkReport:
    transport = httpx.MockTransport(handler)
    return asyncio.run(check_urls_async(urls, settings, backoff=0.0, transport=transport))


def test_a_301_chain_is_redirected_with_every_hop_asked() -> None:
    seen: list[str] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        hops = {"/a": (301, "/b"), "/b": (302, "http://127.0.0.1/c")}
        if request.url.path in hops:
            code, where = hops[request.url.path]
            return reply(code, headers={"Location": where})
        return reply(200, b"<title>C</title>", HTML)

    result = check(app, [f"{BASE}/a"]).results[f"{BASE}/a"]
    assert result.status is REDIRECTED
    assert result.final_url == f"{BASE}/c"
    assert seen == ["GET /a", "GET /b", "GET /c"]


def test_a_redirect_loop_is_broken() -> None:
    def app(request: httpx.Request) -> httpx.Response:
        return reply(302, headers={"Location": "/y" if request.url.path == "/x" else "/x"})

    result = check(app, [f"{BASE}/x"]).results[f"{BASE}/x"]
    assert result.status is BROKEN
    assert result.reason.startswith("redirect loop:")


def test_a_redirect_to_a_private_address_is_refused_before_any_request() -> None:
    asked: list[str] = []

    def app(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return reply(301, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    result = check(app, [f"{BASE}/start"]).results[f"{BASE}/start"]
    assert result.status is LinkStatus.REFUSED
    assert "link-local address 169.254.169.254" in result.reason
    assert asked == [f"{BASE}/start"]


def test_429_retry_after_is_honoured_then_ok() -> None:
    count = Counter[str]()

    def app(request: httpx.Request) -> httpx.Response:
        count[request.url.path] += 1
        if count[request.url.path] == 1:
            return reply(429, headers={"Retry-After": "0"})
        return reply(200)

    result = check(app, [f"{BASE}/busy"]).results[f"{BASE}/busy"]
    assert result.status is OK
    assert count["/busy"] == 2


def test_429_asking_for_too_long_is_not_waited_for() -> None:
    result = check(lambda r: reply(429, headers={"Retry-After": "3600"}), [f"{BASE}/slow"])
    assert result.results[f"{BASE}/slow"].status is UNVERIFIED
    assert "asked to wait 3600 s" in result.results[f"{BASE}/slow"].reason


def test_plain_403_is_asked_again_as_a_browser() -> None:
    agents: list[str] = []

    def app(request: httpx.Request) -> httpx.Response:
        agents.append(request.headers["user-agent"])
        return reply(200 if "Mozilla" in request.headers["user-agent"] else 403)

    result = check(app, [f"{BASE}/ua"]).results[f"{BASE}/ua"]
    assert result.status is BOT
    assert agents == [SETTINGS.user_agent, SETTINGS.browser_user_agent]


def test_missing_anchor_through_the_checker() -> None:
    page = b'<html><head><title>Study</title></head><body><h2 id="methods">Methods</h2></body></html>'
    report = check(lambda r: reply(200, page, HTML), [f"{BASE}/p#methods", f"{BASE}/p#dosage"])
    assert report.results[f"{BASE}/p#methods"].status is OK
    assert report.results[f"{BASE}/p#dosage"].status is BROKEN
    assert "missing anchor #dosage" in report.results[f"{BASE}/p#dosage"].reason


def test_a_doi_org_url_is_fetched_at_the_configured_resolver() -> None:
    asked: list[str] = []

    def app(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return reply(200, b"<title>A study</title>", HTML)

    settings = SETTINGS.model_copy(update={"doi_resolver": f"{BASE}/doi/"})
    cited = ["https://doi.org/10.1234/x", "http://dx.doi.org/10.1234/y", "doi:10.1234/z"]
    report = check(app, cited, settings)
    assert list(report.results) == cited  # the report keeps the URL as cited
    assert all(r.status is OK for r in report.results.values())
    assert sorted(asked) == [f"{BASE}/doi/10.1234/x", f"{BASE}/doi/10.1234/y", f"{BASE}/doi/10.1234/z"]
