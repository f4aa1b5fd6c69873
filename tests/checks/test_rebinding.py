"""DNS rebinding: the link checker connects only to the address it vetted; the handout to none.

Real parts only: an HTTP server on 127.0.0.2 (Linux routes all of 127/8 to lo) and, on
127.0.0.1 *with the same port*, a listener that only counts connections, so a checker that
resolved a name again and followed the second answer would land on the listener. The DNS
is a resolver we control: ``socket.getaddrinfo`` (what asyncio's ``loop.getaddrinfo`` and
anyio call) answers the test names from a table; IP literals go to the real one
(numeric only, so no DNS query ever leaves the machine); other names do not exist.
``allow_private_networks = ["127.0.0.2/32"]`` makes 127.0.0.2 count as public.

See also tests/checks/test_links.py::test_redirect_to_metadata_address_is_refused and the
``sources-private-via-redirect`` case of tests/cli/test_hostile.py (redirects to 169.254/16, 10/8).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from rebind_hosts import (
    DEAD_IP,
    LISTENER_IP,
    ORIGIN_IP,
    SETTINGS,
    Hosts,
    Resolver,
)

from clinicpress.checks.links import LinkReport, check_urls_async
from clinicpress.checks.model import LinkStatus
from clinicpress.errors import ClinicpressError
from clinicpress.network import ConnectFailed, Policy, VettedResolver, fetch
from clinicpress.network.aiohttp_transport import aiohttp_transport
from clinicpress.renderers.handout import FetchRefused, LocalOnlyURLFetcher, render_handout_pdf
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.site import SiteConfig
from clinicpress.sources.loader import load_article


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    running = Hosts()
    yield running
    running.close()


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    fake = Resolver()
    fake.answers = {
        "rebind.test": [[ORIGIN_IP], [LISTENER_IP]],  # vetted answer first, the rebinding after
        "private.test": [[LISTENER_IP]],
        "public.test": [[ORIGIN_IP]],
        "multi.test": [[DEAD_IP, ORIGIN_IP], [LISTENER_IP]],
        "dead.test": [[DEAD_IP], [LISTENER_IP]],
    }
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


def run(urls: Sequence[str], settings: LinkCheckSettings = SETTINGS) -> LinkReport:
    async def bounded() -> LinkReport:
        async with asyncio.timeout(10):  # a hang fails the test instead of stalling the suite
            return await check_urls_async(urls, settings, backoff=0.01)

    return asyncio.run(bounded())


# -- the link checker --------------------------------------------------------------------------


def test_second_dns_answer_is_never_connected_to(hosts: Hosts, resolver: Resolver) -> None:
    """The name answers 127.0.0.2 once, then 127.0.0.1: every request, redirect hop and
    retry goes to 127.0.0.2, and the name is resolved exactly once."""
    before, hits = hosts.listener.connections, hosts.origin.hits.copy()
    page, hop, flaky = (hosts.url("rebind.test", p) for p in ("/page", "/hop", "/flaky"))
    report = run([page, hop, flaky])
    assert hosts.listener.connections == before  # first: the failure this test is about
    assert {url: r.status for url, r in report.results.items()} == {
        page: LinkStatus.OK,
        hop: LinkStatus.OK,
        flaky: LinkStatus.OK,
    }, report.results
    assert report.results[hop].final_url == page
    got = hosts.origin.hits - hits
    assert got == Counter({"/page": 2, "/hop": 1, "/flaky": 2})  # 5 connections, all to 127.0.0.2
    assert resolver.asked["rebind.test"] == 1


def test_first_dns_answer_private_is_refused_and_never_contacted(hosts: Hosts, resolver: Resolver) -> None:
    before = hosts.listener.connections
    result = run([hosts.url("private.test", "/")]).results[hosts.url("private.test", "/")]
    assert result.status is LinkStatus.REFUSED
    assert f"resolves to loopback address {LISTENER_IP}" in result.reason
    assert hosts.listener.connections == before


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/to-listener", f"{LISTENER_IP} is not allowed"), ("/to-private-name", "resolves to loopback")],
    ids=["to-address", "to-name"],
)
def test_redirect_to_the_listener_is_refused_and_never_contacted(
    hosts: Hosts, resolver: Resolver, path: str, reason: str
) -> None:
    before, hits = hosts.listener.connections, hosts.origin.hits[path]
    result = run([hosts.url("public.test", path)]).results[hosts.url("public.test", path)]
    assert result.status is LinkStatus.REFUSED
    assert result.reason.startswith("redirect to http://"), result.reason
    assert reason in result.reason, result.reason
    assert hosts.origin.hits[path] == hits + 1
    assert hosts.listener.connections == before


def test_several_vetted_addresses_the_first_that_connects_wins(hosts: Hosts, resolver: Resolver) -> None:
    """multi.test answers 127.0.0.3 (refused) and 127.0.0.2, then 127.0.0.1: the pinned connect
    tries the vetted addresses in order and never the later answer."""
    settings = LinkCheckSettings(
        allow_private_networks=[f"{ORIGIN_IP}/31"], timeout=1.0, retries=0, min_interval=0
    )
    before, hits = hosts.listener.connections, hosts.origin.hits["/page"]
    url = hosts.url("multi.test", "/page")
    assert run([url], settings).results[url].status is LinkStatus.OK
    assert hosts.origin.hits["/page"] == hits + 1
    assert hosts.listener.connections == before
    assert resolver.asked["multi.test"] == 1


def test_a_pinned_address_that_refuses_is_a_connect_failure_as_before(
    hosts: Hosts, resolver: Resolver
) -> None:
    """Connect failures keep their meaning: one link, connection refused → network down, unverified."""
    settings = LinkCheckSettings(allow_private_networks=[f"{DEAD_IP}/32"], timeout=1.0, retries=1)
    before = hosts.listener.connections
    url = hosts.url("dead.test", "/page")
    report = run([url], settings)
    assert report.network_down
    assert report.results[url].status is LinkStatus.UNVERIFIED
    assert "could not connect to dead.test" in report.results[url].reason
    assert hosts.listener.connections == before
    assert resolver.asked["dead.test"] == 1  # the retry used the cached, vetted answer


def test_a_name_the_run_did_not_vet_is_never_connected_to(hosts: Hosts, resolver: Resolver) -> None:
    """Fail closed: the pinned transport (under every fetch) refuses a name without a vetted
    answer in the run; it never resolves a name itself."""
    before, hits = hosts.listener.connections, hosts.origin.hits["/page"]
    vetted = VettedResolver(allowed_networks=[ipaddress.ip_network(f"{ORIGIN_IP}/32")])

    async def direct() -> None:
        transport = aiohttp_transport(vetted.pinned)
        async with asyncio.timeout(5), httpx.AsyncClient(transport=transport, trust_env=False) as client:
            with pytest.raises(httpx.ConnectError, match=r"no vetted address for rebind\.test"):
                await client.get(hosts.url("rebind.test", "/page"))

    asyncio.run(direct())
    assert resolver.asked["rebind.test"] == 0
    assert hosts.origin.hits["/page"] == hits
    assert hosts.listener.connections == before


def test_allow_private_networks_is_validated() -> None:
    good = LinkCheckSettings(allow_private_networks=["10.20.0.0/16", "fd00:1::/64", "127.0.0.2"])
    assert [str(n) for n in good.allow_private_networks] == ["10.20.0.0/16", "fd00:1::/64", "127.0.0.2/32"]
    assert LinkCheckSettings().allow_private_networks == []
    for bad in (["10.20.0.1/16"], ["intranet"], "10.0.0.0/8"):  # host bits set, a name, not a list
        with pytest.raises(ValidationError, match="allow_private_networks"):
            LinkCheckSettings(allow_private_networks=bad)


# -- the handout renderer ----------------------------------------------------------------------


def test_handout_fetches_neither_the_name_nor_the_address(
    hosts: Hosts,
    resolver: Resolver,
    site: SiteConfig,
    write_article: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Neither image is fetched and the name is not even resolved: a remote image is printed as its
    alt text before WeasyPrint sees the page (issue 24), and WeasyPrint's fetcher, asked anyway,
    serves only its own assets and the article's files (renderers/handout.py, LocalOnlyURLFetcher)."""
    by_name = hosts.url("rebind.test", "/x.png")
    by_address = hosts.url(LISTENER_IP, "/y.png")
    body = f"Short.\n\n![x]({by_name})\n\n![y]({by_address})\n"
    article = load_article(write_article(body=body))
    before = hosts.listener.connections
    with caplog.at_level(logging.WARNING, logger="clinicpress.renderers.handout"):
        pdf = render_handout_pdf(article, site)
    assert pdf.startswith(b"%PDF")
    assert hosts.listener.connections == before
    assert resolver.asked["rebind.test"] == 0
    assert not caplog.records  # stripped before the render: nothing asked, nothing refused
    fetcher = LocalOnlyURLFetcher()
    for url in (by_name, by_address):
        with pytest.raises(FetchRefused):
            fetcher.fetch(url)
    assert hosts.listener.connections == before
    assert resolver.asked["rebind.test"] == 0


# -- errors keep their cause -------------------------------------------------------------------


def _causes(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and its causes, as ``raise ... from`` chained them."""
    found: list[BaseException] = []
    while exc is not None and exc not in found:
        found.append(exc)
        exc = exc.__cause__
    return found


def test_a_refused_pinned_connect_keeps_its_cause(hosts: Hosts) -> None:
    """Errors are mapped at one boundary each with the original kept (``raise ... from exc``):
    the OS's refusal, then httpx's error (the transport's contract), then clinicpress's."""
    policy = Policy(allowed_networks=(ipaddress.ip_network(f"{DEAD_IP}/32"),), timeout=2.0, retries=0)
    with pytest.raises(ConnectFailed) as caught:
        fetch(f"http://{DEAD_IP}:{hosts.port}/", policy=policy, accept="*/*", max_bytes=1024)
    assert isinstance(caught.value, ClinicpressError)
    assert caught.value.net == "connect"
    causes = _causes(caught.value)
    assert any(isinstance(c, httpx.ConnectError) for c in causes), causes
    assert any(isinstance(c, ConnectionRefusedError) for c in causes), causes
