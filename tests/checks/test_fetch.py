"""The one fetch (clinicpress/network/fetch.py): its guarantees, mostly without sockets.

Protocol tests go through ``httpx.MockTransport`` (in the style of httpx's
tests/client/test_redirects.py): the fetcher still vets every host, so the URLs use literal
addresses (no DNS). ``PUBLIC`` is a global address that is never connected to (the mock
answers); ``BASE`` is loopback, allowed by the policy as the link tests allow it. The archive
test at the end uses a real loopback stand-in (tests/integrity_standin.py).
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import ipaddress
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta

import httpx
import pytest
from integrity_standin import IntegrityStandin

from clinicpress import clock
from clinicpress.checks.archive import lookup_archives
from clinicpress.errors import ClinicpressError
from clinicpress.network import (
    ConnectFailed,
    Fetched,
    Fetcher,
    FetchError,
    Hop,
    NoAnswer,
    Policy,
    RedirectFailed,
    Refused,
    TooLarge,
    Unreadable,
    fetch,
)
from clinicpress.network.replies import decoded
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.site import Archive

PUBLIC = "http://93.184.215.14"  # a global address: vetted as public, never connected to here
BASE = "http://127.0.0.1"  # loopback: allowed by POLICY, as the link tests allow it
POLICY = Policy(allowed_hosts=frozenset({"127.0.0.1"}), timeout=1.0, retries=1, backoff=0.0)
# Seconds: no assertion on speed, only a bound for a broken mechanism that would wait forever.
HANG_GUARD = 30.0
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    """A streamed response, as from a server (``content=`` would arrive already read)."""
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


def get(handler: Handler, url: str, policy: Policy = POLICY, max_bytes: int = 1024) -> Fetched:
    return fetch(
        url, policy=policy, accept="*/*", max_bytes=max_bytes, transport=httpx.MockTransport(handler)
    )


def failure(handler: Handler, url: str, policy: Policy = POLICY, max_bytes: int = 1024) -> FetchError:
    with pytest.raises(FetchError) as caught:
        get(handler, url, policy, max_bytes)
    assert isinstance(caught.value, ClinicpressError)  # one exception tree
    return caught.value


# -- redirects: one walk, every hop vetted and recorded ----------------------------------------


def test_a_redirect_chain_is_followed_and_every_hop_recorded() -> None:
    seen: list[str] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        hops = {"/a": (301, "/b"), "/b": (302, f"{PUBLIC}/c")}
        if request.url.path in hops:
            code, where = hops[request.url.path]
            return reply(code, headers={"Location": where})
        return reply(200, b"the page")

    got = get(app, f"{BASE}/a")
    assert (got.status, got.body, got.url) == (200, b"the page", f"{PUBLIC}/c")
    assert got.hops == (Hop(301, f"{BASE}/b"), Hop(302, f"{PUBLIC}/c"))
    assert seen == [f"{BASE}/a", f"{BASE}/b", f"{PUBLIC}/c"]


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local address 169.254.169.254 is not allowed"),
        ("http://10.0.0.8/", "private address 10.0.0.8 is not allowed"),
        ("http://[::ffff:127.0.0.2]/", "loopback address 127.0.0.2 (embedded in ::ffff:7f00:2)"),
    ],
)
def test_a_redirect_to_a_private_address_is_refused_before_any_request(location: str, why: str) -> None:
    asked: list[str] = []

    def app(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return reply(302, headers={"Location": location})

    refused = failure(app, f"{PUBLIC}/start")
    assert isinstance(refused, Refused)
    assert why in refused.reason
    assert refused.hops == (Hop(302, str(httpx.URL(location))),)
    assert asked == [f"{PUBLIC}/start"]


def test_a_loop_a_bad_scheme_and_too_many_hops_stop_the_walk() -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return reply(302, headers={"Location": "/y" if request.url.path == "/x" else "/x"})

    stop = failure(loop, f"{PUBLIC}/x")
    assert isinstance(stop, RedirectFailed)
    assert (stop.kind, stop.status) == ("loop", 302)
    assert stop.reason == f"redirect loop: {PUBLIC}/x → {PUBLIC}/y → {PUBLIC}/x"

    stop = failure(lambda r: reply(301, headers={"Location": "file:///etc/passwd"}), f"{PUBLIC}/f")
    assert isinstance(stop, RedirectFailed)
    assert (stop.kind, stop.reason) == ("scheme", "redirect to a disallowed scheme (file:)")

    def onward(request: httpx.Request) -> httpx.Response:
        return reply(302, headers={"Location": f"/{int(request.url.path.strip('/') or 0) + 1}"})

    stop = failure(onward, f"{PUBLIC}/0", replace(POLICY, max_redirects=3))
    assert isinstance(stop, RedirectFailed)
    assert (stop.kind, stop.reason, len(stop.hops)) == ("too-many", "more than 3 redirects", 3)


def test_a_cookie_set_on_the_way_makes_a_redirect_back_no_loop() -> None:
    """Sites that set a cookie and redirect back to the same URL are not a loop."""

    def app(request: httpx.Request) -> httpx.Response:
        if "seen=1" in request.headers.get("cookie", ""):
            return reply(200, b"welcome back")
        return reply(302, headers={"Location": "/page", "Set-Cookie": "seen=1; Path=/"})

    got = get(app, f"{PUBLIC}/page")
    assert (got.status, got.body, len(got.hops)) == (200, b"welcome back", 1)


def test_params_are_merged_into_the_query() -> None:
    seen: list[httpx.URL] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return reply(200, b"{}")

    async def asked() -> None:
        async with Fetcher(POLICY, transport=httpx.MockTransport(app)) as fetcher:
            url, params = f"{PUBLIC}/api?fixed=1", {"url": "https://example.org/a b"}
            await fetcher.fetch(url, accept="application/json", max_bytes=64, params=params)

    asyncio.run(asked())
    assert dict(seen[0].params) == {"fixed": "1", "url": "https://example.org/a b"}


# -- bounded: size, decompression, time --------------------------------------------------------


def test_a_body_over_the_size_asked_for_is_too_large() -> None:
    assert get(lambda r: reply(200, b"x" * 1024), f"{PUBLIC}/fits").body == b"x" * 1024
    too_large = failure(lambda r: reply(200, b"x" * 1025), f"{PUBLIC}/big")
    assert isinstance(too_large, TooLarge)


def test_decompression_is_bounded() -> None:
    """A 40 MB gzip bomb (~40 KB sent) is decompressed only up to the cap: memory, not time."""
    bomb = gzip.compress(b"\0" * 40_000_000)
    assert decoded(bomb, "gzip", 1000) == b"\0" * 1000
    tracemalloc.start()
    try:
        too_large = failure(
            lambda r: reply(200, bomb, {"Content-Encoding": "gzip"}),
            f"{PUBLIC}/bomb",
            max_bytes=len(bomb) * 2,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(too_large, TooLarge)
    assert peak < 8_000_000, peak
    unknown = failure(lambda r: reply(200, b"...", {"Content-Encoding": "br"}), f"{PUBLIC}/br")
    assert isinstance(unknown, Unreadable)
    assert "'br'" in unknown.reason


def test_only_codings_decompressed_with_a_bound_are_asked_for() -> None:
    asked: list[str] = []

    def app(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers["accept-encoding"])
        return reply(200)

    get(app, f"{PUBLIC}/")
    assert asked == ["gzip, deflate"]


def test_a_body_that_never_ends_is_read_only_up_to_the_cap() -> None:
    pulled = Counter[str]()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            pulled["chunks"] += 1
            yield b"x" * 1024
            await asyncio.sleep(0)  # a server streaming as fast as it can

    async def app(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=AsyncStream(endless()))

    assert isinstance(failure(app, f"{PUBLIC}/endless", max_bytes=10 * 1024), TooLarge)
    assert pulled["chunks"] <= 12  # the cap, and the chunk that crossed it


class AsyncStream(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks:
            yield chunk


def test_headers_that_never_come_are_no_answer() -> None:
    async def silent(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never set: only the fetch's own deadline ends this
        raise AssertionError("unreachable")

    async def asked() -> None:
        policy = replace(POLICY, timeout=0.05, retries=0)
        async with Fetcher(policy, transport=httpx.MockTransport(silent)) as fetcher:
            await asyncio.wait_for(fetcher.fetch(f"{PUBLIC}/silent", accept="*/*", max_bytes=64), HANG_GUARD)

    with pytest.raises(NoAnswer):
        asyncio.run(asked())


# -- retries and Retry-After ------------------------------------------------------------------


def _retry_after_date(seconds_from_now: float) -> str:
    return email.utils.format_datetime(clock.now() + timedelta(seconds=seconds_from_now), usegmt=True)


def _counting(first: httpx.Response) -> tuple[Counter[str], Handler]:
    count = Counter[str]()

    def app(request: httpx.Request) -> httpx.Response:
        count[request.url.path] += 1
        return first if count[request.url.path] == 1 else reply(200, b"ok")

    return count, app


@pytest.mark.parametrize(
    ("retry_after", "asked"),
    [
        pytest.param(lambda: "0", 2, id="seconds-now"),
        pytest.param(lambda: "3600", 1, id="seconds-too-long"),
        pytest.param(lambda: _retry_after_date(-60), 2, id="date-past"),
        pytest.param(lambda: _retry_after_date(3600), 1, id="date-too-long"),
    ],
)
def test_retry_after_in_seconds_and_as_an_http_date(retry_after: Callable[[], str], asked: int) -> None:
    count, app = _counting(reply(429, headers={"Retry-After": retry_after()}))
    got = get(app, f"{PUBLIC}/busy")
    assert count["/busy"] == asked
    assert got.status == (200 if asked == 2 else 429)
    if asked == 1:
        assert got.retry_after is not None
        assert got.retry_after > POLICY.retry_after_cap


def test_a_retry_after_date_is_read_against_the_product_clock(pin_clock: Callable[[date], None]) -> None:
    """Three years on by the product's clock, a date a minute before *its* now is past: asked
    again at once (read against the machine's clock, it would be years away: not asked again)."""
    pin_clock(clock.today() + timedelta(days=3 * 365))
    count, app = _counting(reply(503, headers={"Retry-After": _retry_after_date(-60)}))
    assert get(app, f"{PUBLIC}/later").status == 200
    assert count["/later"] == 2


def test_a_failed_connection_is_retried_then_mapped_with_its_cause() -> None:
    count = Counter[str]()

    def app(request: httpx.Request) -> httpx.Response:
        count["asked"] += 1
        raise httpx.ConnectError("connection refused", request=request)

    failed = failure(app, f"{PUBLIC}/down")
    assert isinstance(failed, ConnectFailed)
    assert (failed.net, failed.transient, failed.tries, count["asked"]) == ("connect", True, 2, 2)
    assert isinstance(failed.__cause__, httpx.ConnectError)
    assert "could not connect to 93.184.215.14 (connection refused)" in failed.reason


def test_a_refused_host_is_never_asked() -> None:
    asked: list[str] = []

    def app(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return reply(200)

    for url in ("http://127.0.0.2/", "http://[::1]/", "http://2130706433/", "ftp://93.184.215.14/"):
        assert isinstance(failure(app, url), Refused), url
    assert asked == []


# -- third parties: only what is public is named to them ---------------------------------------


def test_shareable_means_public_without_any_allowance() -> None:
    policy = replace(POLICY, allowed_networks=(ipaddress.ip_network("10.20.0.0/16"),))

    async def shareable(url: str) -> bool:
        async with Fetcher(policy, transport=httpx.MockTransport(lambda r: reply(200))) as fetcher:
            return await fetcher.shareable(url)

    assert asyncio.run(shareable(f"{PUBLIC}/paper"))
    for private in (f"{BASE}/intranet", "http://10.20.1.2/wiki", "http://169.254.169.254/", "doi:10.1/x"):
        assert not asyncio.run(shareable(private)), private


@pytest.fixture(scope="module")
def standin() -> Iterator[IntegrityStandin]:
    with IntegrityStandin() as server:
        yield server


def test_an_intranet_source_is_never_sent_to_the_archive(standin: IntegrityStandin) -> None:
    """The archive is a third party: a source that only allow_private_hosts lets through is
    not looked up; a public one is, and a DOI at a mirror is asked about at doi.org."""
    links = LinkCheckSettings(
        allow_private_hosts=["127.0.0.1"], doi_resolver=f"{standin.base}/doi/", timeout=2.0
    )
    intranet = f"{standin.base}/page/clinic-protocol"  # loopback, allowed for the link check
    public = f"{PUBLIC}/paper"
    doi = standin.doi_url("10.5555/archived")
    standin.archive_asked.clear()
    found = lookup_archives([intranet, public, doi], Archive(endpoint=f"{standin.base}/wayback"), links)
    assert intranet not in standin.archive_asked  # first: the leak this test is about
    assert sorted(standin.archive_asked) == sorted([public, "https://doi.org/10.5555/archived"])
    assert set(found) == {public, doi}  # the intranet source: not looked up, so not recorded
    assert all(a is not None and a.url.startswith("https://web.archive.org/") for a in found.values())
