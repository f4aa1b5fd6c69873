"""The link checker against a real HTTP server on 127.0.0.1 (tests/httpfarm.py); no internet.

Every test gives its routes their own paths, so the session-wide server needs no reset.
Names under .invalid never resolve (RFC 6761), here or on a machine with internet.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator, Sequence

import pytest
from httpfarm import HTTPFarm, Reply

from clinicpress.checks import links
from clinicpress.checks.links import LinkReport, check_urls, check_urls_async
from clinicpress.checks.model import LinkResult, LinkStatus
from clinicpress.site import LinkCheckSettings

FAST = LinkCheckSettings(allow_private_hosts=["127.0.0.1"], timeout=0.5, retries=1)


@pytest.fixture(scope="session")
def farm() -> Iterator[HTTPFarm]:
    with HTTPFarm() as running:
        yield running


def run(urls: Sequence[str], settings: LinkCheckSettings = FAST) -> LinkReport:
    return asyncio.run(check_urls_async(urls, settings, backoff=0.01))


def one(url: str, settings: LinkCheckSettings = FAST) -> LinkResult:
    report = run([url], settings)
    assert list(report.results) == [url]
    return report.results[url]


# -- statuses from HTTP answers -------------------------------------------------------------


def test_200_is_ok(farm: HTTPFarm) -> None:
    result = one(farm.route("/ok", Reply(200, body=b"hello")))
    assert result.status is LinkStatus.OK
    assert result.http_status == 200
    assert result.final_url is None
    assert farm.hits("/ok", "HEAD") == 1
    assert farm.hits("/ok", "GET") == 0


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
    assert one(url).status is LinkStatus.OK
    assert farm.hits("/head-404", "GET") == 1


def test_405_on_head_falls_back_to_get(farm: HTTPFarm) -> None:
    url = farm.route("/no-head", Reply(200, body=b"x" * 3_000_000), head=[Reply(405)])
    started = time.monotonic()
    result = one(url)
    assert result.status is LinkStatus.OK
    assert result.http_status == 200
    assert farm.hits("/no-head", "HEAD") == 1
    assert farm.hits("/no-head", "GET") == 1
    assert time.monotonic() - started < 2  # a big body is cut off, not downloaded


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


@pytest.mark.parametrize("code", [401, 403, 999])
def test_bot_wall(farm: HTTPFarm, code: int) -> None:
    result = one(farm.route(f"/wall-{code}", Reply(code)))
    assert result.status is LinkStatus.BOT_BLOCKED
    assert "bot wall" in result.reason
    assert result.http_status == code


# -- transient failures and retries ---------------------------------------------------------


def test_slow_response_is_unverified(farm: HTTPFarm) -> None:
    started = time.monotonic()
    result = one(farm.route("/slow", Reply(200, delay=3)))
    assert result.status is LinkStatus.UNVERIFIED
    assert "0.5 s" in result.reason
    assert time.monotonic() - started < 2.5
    assert farm.hits("/slow") == 2  # one retry


def test_503_always_is_unverified(farm: HTTPFarm) -> None:
    result = one(farm.route("/down", Reply(503)))
    assert result.status is LinkStatus.UNVERIFIED
    assert result.http_status == 503
    assert "503" in result.reason


def test_503_once_then_200_is_ok(farm: HTTPFarm) -> None:
    result = one(farm.route("/flaky", Reply(503), Reply(200)))
    assert result.status is LinkStatus.OK
    assert farm.hits("/flaky", "HEAD") == 2


def test_429_with_retry_after_0_then_200_is_ok(farm: HTTPFarm) -> None:
    url = farm.route("/busy", Reply(429, {"Retry-After": "0"}), Reply(200))
    assert one(url).status is LinkStatus.OK
    assert farm.hits("/busy") == 2


def test_429_asking_for_an_hour_is_not_waited_for(farm: HTTPFarm) -> None:
    started = time.monotonic()
    result = one(farm.route("/busy-long", Reply(429, {"Retry-After": "3600"})))
    assert result.status is LinkStatus.UNVERIFIED
    assert "3600" in result.reason
    assert time.monotonic() - started < 1
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
        "doi:10.3389/fpsyt.2018.00277",
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
    a = farm.route("/dup-a", Reply(200))
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


def test_unexpected_exception_becomes_unverified(farm: HTTPFarm, monkeypatch: pytest.MonkeyPatch) -> None:
    async def explode(self: object, start: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(links._Run, "_follow", explode)
    ok = farm.route("/never", Reply(200))
    report = run([ok, "mailto:clinic@example.org"])
    assert report.results[ok].status is LinkStatus.UNVERIFIED
    assert "RuntimeError" in report.results[ok].reason
    assert report.results["mailto:clinic@example.org"].status is LinkStatus.SKIPPED


def test_every_result_has_a_one_line_reason(farm: HTTPFarm) -> None:
    farm.route("/long-loop", Reply.redirect(302, "/long-loop?" + "x" * 500))
    report = run([farm.url("/long-loop"), "javascript:\nalert(1)"])
    for result in report.results.values():
        assert result.reason
        assert "\n" not in result.reason
        assert len(result.reason) <= links.REASON_LIMIT


def test_server_error_only_on_head_is_ok_after_a_last_get(farm: HTTPFarm) -> None:
    url = farm.route("/head-500", Reply(200), head=[Reply(500)])
    assert one(url).status is LinkStatus.OK
    assert farm.hits("/head-500", "HEAD") == 2  # tried, retried
    assert farm.hits("/head-500", "GET") == 1


def test_unusual_5xx_is_retried(farm: HTTPFarm) -> None:
    assert one(farm.route("/cdn-520", Reply(520), Reply(200))).status is LinkStatus.OK


def test_no_urls_gives_an_empty_report() -> None:
    assert check_urls([], FAST) == LinkReport(results={}, network_down=False, summary=None)
