"""The link checker against a real HTTP server on 127.0.0.1 (tests/httpfarm.py); no internet.

Every test gives its routes their own paths, so the session-wide server needs no reset.
Names under .invalid never resolve (RFC 6761), here or on a machine with internet.
No test asserts how long something took (it would fail on a loaded machine): a bound such as
"a big body is cut off" is shown by what the server saw (tests/httpfarm.py ``served``), or by
memory; ``HANG_GUARD`` only stops a broken mechanism from hanging the suite.
"""

from __future__ import annotations

import asyncio
import gzip
import pickle
import socket
import time
import tracemalloc
import zlib
from collections.abc import Iterator, Sequence

import httpx
import pytest
from httpfarm import HTTPFarm, Reply

from clinicpress.checks.links import (
    REASON_LIMIT,
    LinkBatch,
    LinkReport,
    check_batch_async,
    check_urls,
    check_urls_async,
    merge_batches,
    plan_batches,
)
from clinicpress.checks.links.bodies import MAX_BODY_BYTES
from clinicpress.checks.links.targets import Target, TargetReader
from clinicpress.checks.model import LinkResult, LinkStatus
from clinicpress.site import LinkCheckSettings

FAST = LinkCheckSettings(allow_private_hosts=["127.0.0.1"], timeout=0.5, retries=1, min_interval=0)
# No body checks: the checker asks HEAD first (the HEAD → GET rules).
HEAD_FIRST = FAST.model_copy(update={"soft_404": False, "check_fragments": False})
# Seconds: not an assertion on speed, only a bound for a mechanism that is broken and would
# otherwise wait for an hour (Retry-After: 3600) or half a minute (a 30 s reply).
HANG_GUARD = 60.0


@pytest.fixture(scope="session")
def farm() -> Iterator[HTTPFarm]:
    with HTTPFarm() as running:
        yield running


def run(urls: Sequence[str], settings: LinkCheckSettings = FAST, guard: float | None = None) -> LinkReport:
    return asyncio.run(asyncio.wait_for(check_urls_async(urls, settings, backoff=0.01), guard))


def one(url: str, settings: LinkCheckSettings = FAST, guard: float | None = None) -> LinkResult:
    report = run([url], settings, guard)
    assert list(report.results) == [url]
    return report.results[url]


# -- statuses from HTTP answers -------------------------------------------------------------


def test_200_is_ok(farm: HTTPFarm) -> None:
    result = one(farm.route("/ok", Reply(200, body=b"hello")))
    assert result.status is LinkStatus.OK
    assert result.http_status == 200
    assert result.final_url is None
    assert farm.hits("/ok", "GET") == 1  # the body is read (soft-404 check): one GET, no HEAD
    assert farm.hits("/ok", "HEAD") == 0


def test_200_without_body_checks_is_one_head(farm: HTTPFarm) -> None:
    result = one(farm.route("/ok-head", Reply(200, body=b"hello")), HEAD_FIRST)
    assert result.status is LinkStatus.OK
    assert farm.hits("/ok-head", "HEAD") == 1
    assert farm.hits("/ok-head", "GET") == 0


@pytest.mark.parametrize("code", [404, 410])
def test_gone_is_broken(farm: HTTPFarm, code: int) -> None:
    result = one(farm.route(f"/gone-{code}", Reply(code)))
    assert result.status is LinkStatus.BROKEN
    assert result.http_status == code
    assert str(code) in result.reason
    # A HEAD failure is confirmed with GET before anything is called broken.
    assert farm.hits(f"/gone-{code}", "GET") == 1


def test_other_4xx_is_broken_with_code(farm: HTTPFarm) -> None:
    result = one(farm.route("/bad-request", Reply(400)))
    assert result.status is LinkStatus.BROKEN
    assert "400" in result.reason


def test_head_404_but_get_200_is_ok(farm: HTTPFarm) -> None:
    url = farm.route("/head-404", Reply(200), head=[Reply(404)])
    assert one(url, HEAD_FIRST).status is LinkStatus.OK
    assert farm.hits("/head-404", "GET") == 1


def test_405_on_head_falls_back_to_get(farm: HTTPFarm) -> None:
    # 64 MiB: more than the cap plus every socket buffer on the way (Linux: a few MiB each), so
    # the server cannot finish unless the client reads it all. A long timeout, so that a client
    # without the cap does read it all, however slow the machine.
    url = farm.route("/no-head", Reply(200, body=b"x" * 65536, repeat=1024), head=[Reply(405)])
    result = one(url, HEAD_FIRST.model_copy(update={"timeout": 30.0}), guard=HANG_GUARD)
    assert result.status is LinkStatus.OK
    assert result.http_status == 200
    assert farm.hits("/no-head", "HEAD") == 1
    assert farm.hits("/no-head", "GET") == 1
    farm.wait_idle("/no-head")
    (get,) = [s for s in farm.served("/no-head") if s.method == "GET"]
    # A big body is cut off, not downloaded: the client hung up before the server could finish.
    assert get.client_left
    assert not get.finished
    assert 0 < get.body_sent < get.body_total, get


def test_301_is_redirected_with_final_url(farm: HTTPFarm) -> None:
    target = farm.route("/new-home", Reply(200))
    result = one(farm.route("/old-home", Reply.redirect(301, "/new-home")))
    assert result.status is LinkStatus.REDIRECTED
    assert result.final_url == target
    assert target in result.reason  # suggests the new URL
    assert result.http_status == 200


def test_308_then_302_is_redirected(farm: HTTPFarm) -> None:
    target = farm.route("/p-end", Reply(200))
    farm.route("/p-mid", Reply.redirect(302, target))
    result = one(farm.route("/p-start", Reply.redirect(308, "/p-mid")))
    assert result.status is LinkStatus.REDIRECTED
    assert result.final_url == target


def test_302_is_ok_with_final_url(farm: HTTPFarm) -> None:
    # doi.org style: a temporary redirect from a stable identifier is not a moved citation.
    target = farm.route("/article", Reply(200))
    farm.route("/publisher", Reply.redirect(301, "/article"))
    result = one(farm.route("/doi", Reply.redirect(302, "/publisher")))
    assert result.status is LinkStatus.OK
    assert result.final_url == target


def test_redirect_loop_is_broken(farm: HTTPFarm) -> None:
    farm.route("/loop-b", Reply.redirect(302, "/loop-a"))
    result = one(farm.route("/loop-a", Reply.redirect(302, "/loop-b")))
    assert result.status is LinkStatus.BROKEN
    assert "loop" in result.reason
    assert farm.hits("/loop-a") == 1  # detected without going round again


def test_too_many_redirects_is_broken(farm: HTTPFarm) -> None:
    for i in range(4):
        farm.route(f"/chain-{i}", Reply.redirect(302, f"/chain-{i + 1}"))
    farm.route("/chain-4", Reply(200))
    result = one(farm.url("/chain-0"), FAST.model_copy(update={"max_redirects": 3}))
    assert result.status is LinkStatus.BROKEN
    assert "more than 3 redirects" in result.reason
    assert farm.hits("/chain-4") == 0


def test_999_is_a_bot_wall(farm: HTTPFarm) -> None:
    result = one(farm.route("/wall-999", Reply(999)))
    assert result.status is LinkStatus.BOT_BLOCKED
    assert "bot wall" in result.reason
    assert result.http_status == 999


# -- transient failures and retries ---------------------------------------------------------


def test_slow_response_is_unverified(farm: HTTPFarm) -> None:
    # 30 s: a client without its timeout would wait for the answer and call it OK.
    result = one(farm.route("/slow", Reply(200, delay=30)), guard=HANG_GUARD)
    assert result.status is LinkStatus.UNVERIFIED
    assert result.reason == "no answer within 0.5 s (2 tries)"
    assert farm.hits("/slow") == 2  # one retry
    farm.wait_idle("/slow")
    # Both times the client gave up and hung up while the server was still waiting to answer.
    assert [(s.client_left, s.finished) for s in farm.served("/slow")] == [(True, False)] * 2


def test_503_always_is_unverified(farm: HTTPFarm) -> None:
    result = one(farm.route("/down", Reply(503)))
    assert result.status is LinkStatus.UNVERIFIED
    assert result.http_status == 503
    assert "503" in result.reason


def test_503_once_then_200_is_ok(farm: HTTPFarm) -> None:
    result = one(farm.route("/flaky", Reply(503), Reply(200)))
    assert result.status is LinkStatus.OK
    assert farm.hits("/flaky", "GET") == 2


def test_429_with_retry_after_0_then_200_is_ok(farm: HTTPFarm) -> None:
    url = farm.route("/busy", Reply(429, {"Retry-After": "0"}), Reply(200))
    assert one(url).status is LinkStatus.OK
    assert farm.hits("/busy") == 2


def test_429_asking_for_an_hour_is_not_waited_for(farm: HTTPFarm) -> None:
    result = one(farm.route("/busy-long", Reply(429, {"Retry-After": "3600"})), guard=HANG_GUARD)
    assert result.status is LinkStatus.UNVERIFIED
    assert result.http_status == 429
    # Not retried, and the reason says why: the server asked for longer than we wait.
    assert result.reason == "rate limited (429 Too Many Requests; asked to wait 3600 s)"
    assert farm.hits("/busy-long") == 1


def test_connection_refused_alone_is_network_down() -> None:
    # A port nobody listens on: the only link fails to connect, so nothing shows the network works.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = run([f"http://127.0.0.1:{port}/x"])
    assert report.network_down
    assert report.results[f"http://127.0.0.1:{port}/x"].status is LinkStatus.UNVERIFIED


# -- schemes and configuration --------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["mailto:clinic@example.org", "mailto:a@example.org,b@example.org", "tel:+1-555-0100"]
)
def test_mailto_and_tel_are_skipped(url: str) -> None:
    assert one(url).status is LinkStatus.SKIPPED


@pytest.mark.parametrize("url", ["mailto:", "mailto:not-an-address", "tel:call-us"])
def test_malformed_mailto_and_tel_are_refused(url: str) -> None:
    assert one(url).status is LinkStatus.REFUSED


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "java\nscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "ftp://example.org/x",
        "www.example.org/page",
    ],
)
def test_other_schemes_are_refused(url: str) -> None:
    result = one(url)
    assert result.status is LinkStatus.REFUSED
    assert "\n" not in result.reason


def test_excluded_url_is_skipped(farm: HTTPFarm) -> None:
    url = farm.route("/excluded", Reply(200))
    result = one(url, FAST.model_copy(update={"exclude": [r"/excluded$"]}))
    assert result.status is LinkStatus.SKIPPED
    assert farm.hits("/excluded") == 0


def test_duplicates_give_one_result_each_in_input_order(farm: HTTPFarm) -> None:
    a = farm.route("/dup-a", Reply(200, body=b'<html><h2 id="section">S</h2></html>'))
    b = farm.route("/dup-b", Reply(404))
    report = run([b, a, b, a, "mailto:x@example.org", a + "#section"])
    assert list(report.results) == [b, a, "mailto:x@example.org", a + "#section"]
    assert report.results[a + "#section"].status is LinkStatus.OK
    assert farm.hits("/dup-a") == 1  # the #fragment variant shared the fetch


def test_per_host_limit_is_respected(farm: HTTPFarm) -> None:
    farm.route("/crowd", Reply(200, delay=0.1))
    urls = [farm.url(f"/crowd?i={i}") for i in range(8)]
    report = run(urls, FAST.model_copy(update={"per_host": 2, "concurrency": 8}))
    assert all(r.status is LinkStatus.OK for r in report.results.values())
    assert farm.max_in_flight("/crowd") == 2


def test_user_agent_is_sent(farm: HTTPFarm) -> None:
    farm.route("/ua", Reply(200))
    assert one(farm.url("/ua"), FAST.model_copy(update={"user_agent": "probe/1"})).status is LinkStatus.OK
    assert farm.last_headers("/ua").get("User-Agent") == "probe/1"


# -- SSRF -----------------------------------------------------------------------------------


def test_loopback_not_allowed_is_refused_and_never_contacted(farm: HTTPFarm) -> None:
    url = farm.route("/private", Reply(200))
    result = one(url, FAST.model_copy(update={"allow_private_hosts": []}))
    assert result.status is LinkStatus.REFUSED
    assert "loopback" in result.reason
    assert farm.hits("/private") == 0


def test_redirect_to_metadata_address_is_refused(farm: HTTPFarm) -> None:
    url = farm.route("/to-metadata", Reply.redirect(302, "http://169.254.169.254/latest/meta-data/"))
    result = one(url)
    assert result.status is LinkStatus.REFUSED
    assert "169.254.169.254" in result.reason
    assert result.final_url == "http://169.254.169.254/latest/meta-data/"


def test_redirect_to_javascript_is_refused(farm: HTTPFarm) -> None:
    assert one(farm.route("/to-js", Reply.redirect(302, "javascript:alert(1)"))).status is LinkStatus.REFUSED


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # httpx passes it as a name; the C resolver reads 127.0.0.1
        "http://0x7f.1/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://0/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://224.0.0.1/",
        "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
        "http://[64:ff9b::a00:1]/",  # NAT64 wrapping 10.0.0.1
        "http://localhost/",
        "http://[::]/",
    ],
)
def test_private_addresses_are_refused_even_with_127_0_0_1_allowed(url: str) -> None:
    result = one(url)
    assert result.status is LinkStatus.REFUSED, result.reason


# -- DNS and network down -------------------------------------------------------------------


def test_unresolvable_name_next_to_a_working_link_is_broken(farm: HTTPFarm) -> None:
    ok = farm.route("/alive", Reply(200))
    report = run([ok, "https://no-such-host.invalid/paper"])
    assert not report.network_down
    assert report.summary is None
    missing = report.results["https://no-such-host.invalid/paper"]
    assert missing.status is LinkStatus.BROKEN
    assert "host does not exist" in missing.reason
    assert report.results[ok].status is LinkStatus.OK


def test_all_names_failing_dns_is_network_down() -> None:
    urls = ["https://a.invalid/x", "https://b.invalid/y", "mailto:clinic@example.org", "javascript:x()"]
    report = check_urls(urls, FAST)  # the sync wrapper
    assert report.network_down
    assert report.summary is not None
    assert "\n" not in report.summary
    assert report.summary.startswith("network down: none of 2 sources could be reached")
    for url in urls[:2]:
        assert report.results[url].status is LinkStatus.UNVERIFIED
        assert report.results[url].reason.startswith("network down:")
    assert report.results["mailto:clinic@example.org"].status is LinkStatus.SKIPPED
    assert report.results["javascript:x()"].status is LinkStatus.REFUSED


def test_single_unresolvable_link_is_unverified_never_broken() -> None:
    report = run(["https://only.invalid/"])
    assert report.network_down
    assert report.results["https://only.invalid/"].status is LinkStatus.UNVERIFIED


def test_no_http_links_is_not_network_down() -> None:
    report = run(["mailto:clinic@example.org"])
    assert not report.network_down
    assert report.summary is None


# -- robustness -----------------------------------------------------------------------------


def test_unexpected_exception_becomes_unverified() -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")  # a bug below the checker, not a network failure

    url = "http://127.0.0.1/never"  # a literal FAST allows: vetted without DNS, never connected to
    transport = httpx.MockTransport(explode)
    report = asyncio.run(
        check_urls_async([url, "mailto:clinic@example.org"], FAST, backoff=0.01, transport=transport)
    )
    assert report.results[url].status is LinkStatus.UNVERIFIED
    assert "RuntimeError" in report.results[url].reason
    assert report.results["mailto:clinic@example.org"].status is LinkStatus.SKIPPED


def test_every_result_has_a_one_line_reason(farm: HTTPFarm) -> None:
    farm.route("/long-loop", Reply.redirect(302, "/long-loop?" + "x" * 500))
    report = run([farm.url("/long-loop"), "javascript:\nalert(1)"])
    for result in report.results.values():
        assert result.reason
        assert "\n" not in result.reason
        assert len(result.reason) <= REASON_LIMIT


def test_server_error_only_on_head_is_ok_after_a_last_get(farm: HTTPFarm) -> None:
    url = farm.route("/head-500", Reply(200), head=[Reply(500)])
    assert one(url, HEAD_FIRST).status is LinkStatus.OK
    assert farm.hits("/head-500", "HEAD") == 2  # tried, retried
    assert farm.hits("/head-500", "GET") == 1


def test_unusual_5xx_is_retried(farm: HTTPFarm) -> None:
    assert one(farm.route("/cdn-520", Reply(520), Reply(200))).status is LinkStatus.OK


def test_no_urls_gives_an_empty_report() -> None:
    assert check_urls([], FAST) == LinkReport(results={}, network_down=False, summary=None)


# -- soft-404s ------------------------------------------------------------------------------


def _page(title: str = "A study", h1: str = "", ids: Sequence[str] = (), extra: str = "") -> bytes:
    anchors = "".join(f'<section id="{i}">x</section>' for i in ids)
    heading = f"<h1>{h1}</h1>" if h1 else ""
    head = f"<!doctype html><html><head><title>{title}</title></head>"
    return f"{head}<body>{heading}{anchors}{extra}</body></html>".encode()


HTML = {"Content-Type": "text/html; charset=utf-8"}


def test_soft_404_by_title_is_broken(farm: HTTPFarm) -> None:
    result = one(farm.route("/soft-title", Reply(200, HTML, _page("Page Not Found | Example Journal"))))
    assert result.status is LinkStatus.BROKEN
    assert "soft 404" in result.reason
    assert "Page Not Found" in result.reason
    assert result.http_status == 200


def test_soft_404_by_first_heading_is_broken(farm: HTTPFarm) -> None:
    body = _page("Example Journal", h1="Sorry, this article is no longer available")
    result = one(farm.route("/soft-h1", Reply(200, HTML, body)))
    assert result.status is LinkStatus.BROKEN
    assert "no longer available" in result.reason


@pytest.mark.parametrize(
    "title",
    ["Outcomes in 404 patients treated with ketamine", "Genes not found in mice", "Not found: a history"],
)
def test_titles_that_merely_mention_404_are_ok(farm: HTTPFarm, title: str) -> None:
    path = f"/real-title-{abs(hash(title))}"
    assert one(farm.route(path, Reply(200, HTML, _page(title)))).status is LinkStatus.OK


def test_soft_404_in_gzip_and_utf16_bodies(farm: HTTPFarm) -> None:
    gz = farm.route(
        "/soft-gzip",
        Reply(200, {**HTML, "Content-Encoding": "gzip"}, gzip.compress(_page("404 Not Found"))),
    )
    utf16_body = _page("Page not found").decode().encode("utf-16")
    u16 = farm.route("/soft-utf16", Reply(200, {"Content-Type": "text/html; charset=utf-16"}, utf16_body))
    report = run([gz, u16])
    assert report.results[gz].status is LinkStatus.BROKEN
    assert report.results[u16].status is LinkStatus.BROKEN


def test_gzip_bomb_is_read_only_up_to_the_cap(farm: HTTPFarm) -> None:
    # ~100 KB on the wire, 100 MiB decompressed; built in pieces so the test never holds 100 MiB.
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip stream
    spaces = b" " * (1024 * 1024)
    bomb = b"".join(
        [packer.compress(b"<html><title>Fine</title>"), *(packer.compress(spaces) for _ in range(100))]
    )
    url = farm.route("/bomb", Reply(200, {**HTML, "Content-Encoding": "gzip"}, bomb + packer.flush()))
    tracemalloc.start()
    try:
        result = one(url, guard=HANG_GUARD)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status is LinkStatus.OK
    # Decompressed up to the cap only: the run's memory stayed far below the bomb's 100 MiB.
    assert peak < 32 * MAX_BODY_BYTES, peak  # ~7 MiB in a fresh process (imports included)


def test_deep_link_redirected_to_home_page_is_soft_404(farm: HTTPFarm) -> None:
    farm.route("/", Reply(200, HTML, _page("Example Journal")))
    result = one(farm.route("/articles/2019/ketamine-study", Reply.redirect(301, "/")))
    assert result.status is LinkStatus.BROKEN
    assert "home page" in result.reason
    assert result.final_url == farm.url("/")


def test_language_root_redirected_home_is_ok(farm: HTTPFarm) -> None:
    farm.route("/", Reply(200, HTML, _page("Example Journal")))
    result = one(farm.route("/en", Reply.redirect(302, "/")))
    assert result.status is LinkStatus.OK


def test_soft_404_check_can_be_turned_off_per_host(farm: HTTPFarm) -> None:
    url = farm.route("/soft-off", Reply(200, HTML, _page("Page not found")))
    settings = LinkCheckSettings.model_validate(
        {**FAST.model_dump(), "hosts": {"127.0.0.1": {"soft_404": False}}}
    )
    assert one(url, settings).status is LinkStatus.OK


# -- #fragments -----------------------------------------------------------------------------


def test_missing_anchor_is_broken_and_present_anchors_are_ok(farm: HTTPFarm) -> None:
    body = _page(ids=["methods"], extra='<a name="results">r</a>')
    base = farm.route("/anchors", Reply(200, HTML, body))
    urls = [base + "#methods", base + "#results", base + "#discussion", base + "#top", base]
    report = run(urls)
    assert report.results[base + "#methods"].status is LinkStatus.OK
    assert report.results[base + "#results"].status is LinkStatus.OK  # <a name>
    missing = report.results[base + "#discussion"]
    assert missing.status is LinkStatus.BROKEN
    assert "missing anchor #discussion" in missing.reason
    assert report.results[base + "#top"].status is LinkStatus.OK  # browsers scroll to the top
    assert report.results[base].status is LinkStatus.OK
    assert farm.hits("/anchors") == 1  # every fragment variant shares one fetch


def test_anchor_checked_on_the_page_a_redirect_ends_on(farm: HTTPFarm) -> None:
    farm.route("/anchor-new", Reply(200, HTML, _page(ids=["dosing"])))
    old = farm.route("/anchor-old", Reply.redirect(301, "/anchor-new"))
    report = run([old + "#dosing", old + "#nope"])
    assert report.results[old + "#dosing"].status is LinkStatus.REDIRECTED
    assert report.results[old + "#nope"].status is LinkStatus.BROKEN
    assert "anchor-new" in report.results[old + "#nope"].reason


def test_fragment_check_opt_out_per_host(farm: HTTPFarm) -> None:
    url = farm.route("/anchors-js", Reply(200, HTML, _page())) + "#rendered-by-javascript"
    settings = LinkCheckSettings.model_validate(
        {**FAST.model_dump(), "hosts": {"127.0.0.1": {"check_fragments": False}}}
    )
    assert one(url, settings).status is LinkStatus.OK
    assert one(url, FAST.model_copy(update={"check_fragments": False})).status is LinkStatus.OK


def test_fragment_on_a_non_html_page_is_not_checked(farm: HTTPFarm) -> None:
    url = farm.route("/paper.pdf", Reply(200, {"Content-Type": "application/pdf"}, b"%PDF-1.7"))
    result = one(url + "#figure-2")
    assert result.status is LinkStatus.OK
    assert "not checked" in result.reason


# -- bot walls ------------------------------------------------------------------------------


def test_cloudflare_challenge_header_is_bot_blocked_without_retries(farm: HTTPFarm) -> None:
    url = farm.route("/cf", Reply(403, {"cf-mitigated": "challenge", "Server": "cloudflare"}))
    result = one(url)
    assert result.status is LinkStatus.BOT_BLOCKED
    assert "Cloudflare" in result.reason
    assert farm.hits("/cf") == 1  # no retry, no browser retry: a challenge does not clear


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (503, b"<html><head><title>Just a moment...</title></head></html>"),
        (429, b'<html><div class="g-recaptcha"></div></html>'),
        (403, b"<html><h1>Access Denied</h1>Reference #18.2d351ab8.1700000000.1a2b3c</html>"),
    ],
)
def test_bot_wall_markers_in_the_body(farm: HTTPFarm, code: int, body: bytes) -> None:
    path = f"/wall-body-{code}"
    result = one(farm.route(path, Reply(code, HTML, body)))
    assert result.status is LinkStatus.BOT_BLOCKED, result.reason
    assert result.http_status == code
    assert farm.hits(path) == 1


def test_403_that_clears_with_a_browser_user_agent_is_bot_blocked(farm: HTTPFarm) -> None:
    url = farm.route("/ua-wall", Reply(403), agents={"Mozilla/": Reply(200, HTML, _page())})
    result = one(url)
    assert result.status is LinkStatus.BOT_BLOCKED
    assert "browser User-Agent" in result.reason
    agents = farm.agents("/ua-wall")
    assert agents[0] == FAST.user_agent
    assert agents[1].startswith("Mozilla/")
    assert len(agents) == 2


def test_plain_403_for_browsers_too_is_unverified_not_broken(farm: HTTPFarm) -> None:
    result = one(farm.route("/forbidden", Reply(403, HTML, b"<html><h1>Forbidden</h1></html>")))
    assert result.status is LinkStatus.UNVERIFIED
    assert "no bot-wall markers" in result.reason
    assert farm.hits("/forbidden") == 2  # ours, then once with a browser User-Agent


def test_401_needs_a_login_is_unverified(farm: HTTPFarm) -> None:
    result = one(farm.route("/login", Reply(401)))
    assert result.status is LinkStatus.UNVERIFIED
    assert "login" in result.reason


# -- DOIs and PubMed IDs --------------------------------------------------------------------


@pytest.fixture
def resolvers(farm: HTTPFarm) -> LinkCheckSettings:
    return FAST.model_copy(
        update={"doi_resolver": farm.url("/doi/"), "pubmed_resolver": farm.url("/pubmed/")}
    )


def test_doi_resolver_302_is_ok_not_redirected(farm: HTTPFarm, resolvers: LinkCheckSettings) -> None:
    farm.route("/publisher/article-1", Reply(200, HTML, _page("Ketamine for alcohol use disorder")))
    farm.route("/doi/10.3389/fpsyt.2018.00277", Reply.redirect(302, "/publisher/article-1"))
    doi_url = farm.url("/doi/10.3389/fpsyt.2018.00277")
    report = run([doi_url, "doi:10.3389/fpsyt.2018.00277"], resolvers)
    for url in (doi_url, "doi:10.3389/fpsyt.2018.00277"):
        result = report.results[url]
        assert result.status is LinkStatus.OK, result.reason
        assert "DOI 10.3389/fpsyt.2018.00277 resolves" in result.reason
        assert result.final_url == farm.url("/publisher/article-1")
    assert farm.hits("/doi/10.3389/fpsyt.2018.00277") == 1  # doi: and the URL share one fetch


def test_doi_and_pubmed_urls_are_fetched_at_the_configured_resolvers(
    farm: HTTPFarm, resolvers: LinkCheckSettings
) -> None:
    """However a DOI or PMID is spelled, it is fetched at ``doi_resolver``/``pubmed_resolver``
    (a mirror; here the farm on 127.0.0.1, counting requests), never at doi.org or NCBI; the
    report keeps the URL as cited. A publisher URL carrying a DOI is fetched where it points."""
    farm.route("/doi/10.1234/stand-in", Reply(200, HTML, _page("A study")))
    farm.route("/pubmed/424242/", Reply(200, HTML, _page("A study - PubMed")))
    farm.route("/doi/full/10.1234/stand-in", Reply(200, HTML, _page("A study, at the publisher")))
    dois = ["https://doi.org/10.1234/stand-in", "http://dx.doi.org/10.1234/stand-in", "DOI:10.1234/stand-in"]
    pmids = ["https://pubmed.ncbi.nlm.nih.gov/424242/", "https://www.ncbi.nlm.nih.gov/pubmed/424242"]
    publisher = farm.url("/doi/full/10.1234/stand-in")
    report = run([*dois, *pmids, publisher], resolvers)
    assert list(report.results) == [*dois, *pmids, publisher]
    for url in dois:
        assert report.results[url].status is LinkStatus.OK, report.results[url].reason
        assert "DOI 10.1234/stand-in resolves" in report.results[url].reason
    for url in pmids:
        assert report.results[url].status is LinkStatus.OK, report.results[url].reason
        assert "PubMed ID 424242 resolves" in report.results[url].reason
    assert report.results[publisher].status is LinkStatus.OK
    assert farm.hits("/doi/10.1234/stand-in") == 1  # the three spellings share one fetch
    assert farm.hits("/pubmed/424242/") == 1
    assert farm.hits("/doi/full/10.1234/stand-in") == 1


def test_doi_the_resolver_does_not_know_is_broken(farm: HTTPFarm, resolvers: LinkCheckSettings) -> None:
    farm.route("/doi/10.9999/does-not-exist", Reply(404, HTML, _page("Error: DOI Not Found")))
    result = one("doi:10.9999/does-not-exist", resolvers)
    assert result.status is LinkStatus.BROKEN
    assert result.reason.startswith("DOI not found: 10.9999/does-not-exist")


def test_pmid_is_checked_at_pubmed(farm: HTTPFarm, resolvers: LinkCheckSettings) -> None:
    farm.route("/pubmed/30233240/", Reply(200, HTML, _page("Ketamine - PubMed")))
    farm.route("/pubmed/99999999999/", Reply(404))
    report = run(["pmid:30233240", farm.url("/pubmed/99999999999/")], resolvers)
    assert report.results["pmid:30233240"].status is LinkStatus.OK
    missing = report.results[farm.url("/pubmed/99999999999/")]
    assert missing.status is LinkStatus.BROKEN
    assert missing.reason.startswith("PubMed ID not found: 99999999999")


def test_real_doi_org_urls_are_recognised() -> None:
    reader = TargetReader(FAST)

    def identified(url: str) -> tuple[str | None, str]:
        target = reader.read(url)
        assert isinstance(target, Target), target
        return target.kind, target.ident

    assert identified("https://doi.org/10.1000/xyz") == ("doi", "10.1000/xyz")
    assert identified("http://dx.doi.org/10.1000/a%2Fb") == ("doi", "10.1000/a/b")
    assert identified("https://pubmed.ncbi.nlm.nih.gov/30233240/") == ("pmid", "30233240")
    assert identified("https://doi.org/") == (None, "")


@pytest.mark.parametrize("url", ["doi:11.1/x", "doi:", "pmid:abc"])
def test_malformed_identifiers_are_broken(url: str) -> None:
    assert one(url).status is LinkStatus.BROKEN


# -- politeness -----------------------------------------------------------------------------


def _assert_paced(arrivals: Sequence[float], since: float, interval: float) -> None:
    """Request k (from 0) cannot have started before ``since + k * interval``, and arrived after
    it started: a lower bound that only grows on a loaded machine. (Gaps between arrivals are
    not one: a first request slow to connect arrives late, just before the second.)"""
    for k, arrived in enumerate(sorted(arrivals)):
        assert arrived - since >= k * interval - 0.005, (k, [a - since for a in sorted(arrivals)])


def test_min_interval_between_requests_to_one_host(farm: HTTPFarm) -> None:
    farm.route("/paced", Reply(200))
    urls = [farm.url(f"/paced?i={i}") for i in range(5)]
    since = time.monotonic()  # the farm stamps arrivals with the same clock, in this process
    report = run(urls, FAST.model_copy(update={"min_interval": 0.15, "per_host": 4}), guard=HANG_GUARD)
    assert all(r.status is LinkStatus.OK for r in report.results.values())
    assert len(farm.times("/paced")) == 5
    _assert_paced(farm.times("/paced"), since, 0.15)


def test_per_host_override_of_interval_and_concurrency(farm: HTTPFarm) -> None:
    farm.route("/slow-host", Reply(200, delay=0.05))
    # Six, 0.2 s apart: without the interval they would arrive ~0.05 s apart (one at a time).
    urls = [farm.url(f"/slow-host?i={i}") for i in range(6)]
    settings = LinkCheckSettings.model_validate(
        {
            **FAST.model_dump(),
            "per_host": 8,
            "hosts": {"127.0.0.1": {"per_host": 1, "min_interval": 0.2}},
        }
    )
    since = time.monotonic()
    run(urls, settings, guard=HANG_GUARD)
    assert farm.max_in_flight("/slow-host") == 1
    assert len(farm.times("/slow-host")) == 6
    _assert_paced(farm.times("/slow-host"), since, 0.2)


def test_default_user_agent_has_a_contact_url(farm: HTTPFarm) -> None:
    farm.route("/ua-default", Reply(200))
    one(farm.url("/ua-default"))
    assert "+https://" in farm.last_headers("/ua-default")["User-Agent"]


def test_many_links_at_once_all_come_back(farm: HTTPFarm) -> None:
    farm.route("/bulk", Reply(200, HTML, _page()))
    urls = [farm.url(f"/bulk?i={i}") for i in range(120)]
    settings = FAST.model_copy(update={"concurrency": 24, "per_host": 24, "timeout": 2.0})
    report = run(urls, settings)
    assert [r.status for r in report.results.values()] == [LinkStatus.OK] * 120
    assert farm.hits("/bulk") == 120


# -- batches --------------------------------------------------------------------------------


def test_plan_batches_keeps_a_host_together() -> None:
    urls = [
        *(f"https://a.example/{i}" for i in range(5)),
        *(f"https://b.example/{i}" for i in range(3)),
        "https://c.example/x",
        "mailto:x@example.org",
        "doi:10.1000/1",
        "https://doi.org/10.1000/2",
    ]
    batches = plan_batches(urls, size=6)
    assert sorted(u for b in batches for u in b) == sorted(urls)
    for host in ("a.example", "b.example", "doi"):
        assert sum(any(host in u for u in b) for b in batches) == 1, host
    with pytest.raises(ValueError, match="at least 1"):
        plan_batches(urls, size=0)


def test_merge_decides_network_down_over_all_batches(farm: HTTPFarm) -> None:
    ok = farm.route("/batch-ok", Reply(200))
    dns_only = asyncio.run(check_batch_async(["https://nowhere.invalid/a"], FAST, backoff=0.01))
    working = asyncio.run(check_batch_async([ok], FAST, backoff=0.01))
    assert not dns_only.network_seen
    assert working.network_seen

    # Alone, the DNS-only batch looks like network down; with the other batch it is a dead host.
    alone = merge_batches([dns_only])
    assert alone.network_down
    assert alone.results["https://nowhere.invalid/a"].status is LinkStatus.UNVERIFIED
    merged = merge_batches([dns_only, working], urls=[ok, "https://nowhere.invalid/a"])
    assert not merged.network_down
    assert list(merged.results) == [ok, "https://nowhere.invalid/a"]
    assert merged.results["https://nowhere.invalid/a"].status is LinkStatus.BROKEN
    assert merged.results[ok].status is LinkStatus.OK


def test_batches_survive_serialisation(farm: HTTPFarm) -> None:
    # Prefect persists task results: a batch must round-trip through JSON and pickle.
    batch = asyncio.run(check_batch_async([farm.route("/ser", Reply(200)), "https://x.invalid/"], FAST))
    assert LinkBatch.model_validate_json(batch.model_dump_json()) == batch
    assert pickle.loads(pickle.dumps(batch)) == batch
