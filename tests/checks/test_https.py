"""Real HTTPS: the link checker and ``clinicpress import`` connect only to the address they vetted,
and TLS still checks the certificate against the host name (docs/writing/verified.md).

Real parts only (tests/tlsfarm.py): a test CA from ``trustme``, an HTTPS origin on 127.0.0.2
presenting a certificate for clinic-sources.test, a listener on 127.0.0.1 with the same port
that only counts connections, and ``socket.getaddrinfo`` answering the name from a table
(no DNS query leaves the machine). ``allow_private_networks = ["127.0.0.2/32"]`` makes the
origin count as public; 127.0.0.1 stays refused.

The product's TLS context (``clinicpress.network.tls_context``: httpx's default, which honours
SSL_CERT_FILE, built once per process) is rebuilt for each test with only the test CA trusted,
and rebuilt again after it, so no other test inherits it. Production code is unchanged.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import trustme
from conftest import MINIMAL_FRONT_MATTER, WriteArticle
from tlsfarm import LISTENER_IP, NAME, ORIGIN_IP, FakeDNS, TestPKI, TLSHosts
from typer.testing import CliRunner

from clinicpress.checks.links import LinkReport, check_urls_async
from clinicpress.checks.model import LinkStatus
from clinicpress.cli import app
from clinicpress.network import tls_context
from clinicpress.settings.links import LinkCheckSettings

SETTINGS = LinkCheckSettings(
    allow_private_networks=[f"{ORIGIN_IP}/32"], timeout=2.0, retries=1, min_interval=0
)
runner = CliRunner()

Serve = Callable[[trustme.LeafCert], TLSHosts]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def trusted(pki: TestPKI, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestPKI]:
    """The checker trusts the test CA, and only it (SSL_CERT_FILE, as an operator would set it)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    tls_context.cache_clear()  # built once per process: build it again from the variable
    yield pki
    tls_context.cache_clear()  # the next caller builds it from the restored environment


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS({NAME: [[ORIGIN_IP]]})
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start the origin (presenting the given certificate) and the listener; stopped after."""
    started: list[TLSHosts] = []

    def start(cert: trustme.LeafCert) -> TLSHosts:
        started.append(TLSHosts(cert))
        return started[-1]

    yield start
    for hosts in started:
        hosts.close()


def run(urls: Sequence[str]) -> LinkReport:
    async def bounded() -> LinkReport:
        async with asyncio.timeout(15):  # a hang fails the test instead of stalling the suite
            return await check_urls_async(urls, SETTINGS, backoff=0.01)

    return asyncio.run(bounded())


def _site(write_site: Callable[..., Path]) -> Path:
    site = write_site(allow_private_networks=f'["{ORIGIN_IP}/32"]', timeout="2.0")
    text = site.read_text(encoding="utf-8")
    off = text.replace("[checks.integrity]\nenabled = true", "[checks.integrity]\nenabled = false")
    assert off != text  # no DOI lookups: the test's only server is the origin
    site.write_text(off, encoding="utf-8")
    return site


# The certificate the origin presents, and what the client's TLS says about it.
BAD_CERTIFICATES = [
    pytest.param(lambda pki: pki.leaf("other-host.test"), "Hostname mismatch", id="another-name"),
    pytest.param(
        lambda pki: pki.leaf(untrusted=True), "unable to get local issuer certificate", id="untrusted-ca"
    ),
]
Issue = Callable[[TestPKI], trustme.LeafCert]


# -- the link checker ---------------------------------------------------------------------------


def test_a_valid_https_source_is_ok_on_the_pinned_address(
    trusted: TestPKI, dns: FakeDNS, serve: Serve
) -> None:
    """Verified against the name: each connection went to 127.0.0.2 and sent SNI clinic-sources.test,
    the name the certificate (issued for that name only) was checked against."""
    hosts = serve(trusted.leaf())
    page, hop = hosts.url("/page.html"), hosts.url("/hop")
    report = run([page, hop])
    assert {url: r.status for url, r in report.results.items()} == {
        page: LinkStatus.OK,
        hop: LinkStatus.OK,
    }, report.results
    assert report.results[hop].final_url == page
    assert hosts.origin.hits == Counter({"/page.html": 2, "/hop": 1})
    assert hosts.origin.sni == [NAME] * 3  # one handshake per request (HTTP/1.0), all by name
    assert hosts.listener.connections == 0
    assert dns.asked[NAME] == 1


def test_clinicpress_check_verifies_an_https_source(
    trusted: TestPKI,
    dns: FakeDNS,
    serve: Serve,
    write_article: WriteArticle,
    write_site: Callable[..., Path],
    tmp_path: Path,
) -> None:
    hosts = serve(trusted.leaf())
    url = hosts.url("/page.html")
    front = MINIMAL_FRONT_MATTER + f"sources:\n  - {{title: A study, url: '{url}'}}\n"
    article = write_article(front_matter=front, body="A claim.[^1]\n")
    args = ["check", "--site", str(_site(write_site)), "--out", str(tmp_path / "out"), "--no-cache"]
    result = runner.invoke(app, [*args, "--format", "json", str(article)])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)["articles"]
    assert [(link["url"], link["status"]) for link in report["links"]] == [(url, "ok")]
    assert hosts.origin.sni == [NAME]
    assert hosts.listener.connections == 0


@pytest.mark.parametrize(("cert", "why"), BAD_CERTIFICATES)
def test_a_certificate_that_does_not_verify_is_a_tls_error_never_ok(
    trusted: TestPKI, dns: FakeDNS, serve: Serve, cert: Issue, why: str
) -> None:
    """A certificate for another name, or from a CA we do not trust, on the right address:
    ``unverified`` with the TLS reason, not retried, and no request is sent over it."""
    hosts = serve(cert(trusted))
    url = hosts.url("/page.html")
    result = run([url]).results[url]
    assert result.status is LinkStatus.UNVERIFIED, result
    assert result.reason.startswith("TLS/certificate error"), result.reason
    assert why in result.reason, result.reason
    assert hosts.origin.sni == [NAME]  # the vetted address answered: one handshake, by name
    assert hosts.origin.hits == Counter()  # nothing sent over a connection that did not verify
    assert hosts.listener.connections == 0


def test_a_rebinding_over_https_connects_nowhere_else(trusted: TestPKI, dns: FakeDNS, serve: Serve) -> None:
    """The name answers 127.0.0.2, then 127.0.0.1 (the listener, same port): every request,
    redirect hop and retry is a new connection and handshake to 127.0.0.2, none to 127.0.0.1."""
    dns.answers[NAME] = [[ORIGIN_IP], [LISTENER_IP]]
    hosts = serve(trusted.leaf())
    page, hop, flaky = (hosts.url(p) for p in ("/page.html", "/hop", "/flaky"))
    report = run([page, hop, flaky])
    assert hosts.listener.connections == 0  # first: the failure this test is about
    assert {url: r.status for url, r in report.results.items()} == dict.fromkeys(
        (page, hop, flaky), LinkStatus.OK
    ), report.results
    assert hosts.origin.hits == Counter({"/page.html": 2, "/hop": 1, "/flaky": 2})
    assert hosts.origin.sni == [NAME] * 5
    assert dns.asked[NAME] == 1


# -- clinicpress import -------------------------------------------------------------------------


def test_clinicpress_import_over_https_is_pinned_and_certificate_checked(
    trusted: TestPKI, dns: FakeDNS, serve: Serve, write_site: Callable[..., Path]
) -> None:
    dns.answers[NAME] = [[ORIGIN_IP], [LISTENER_IP]]
    hosts = serve(trusted.leaf())
    site = _site(write_site)
    result = runner.invoke(app, ["import", hosts.url("/page.html"), "--site", str(site)])
    assert hosts.listener.connections == 0, result.output
    assert result.exit_code == 0, result.output
    assert (site.parent / "page.md").is_file()
    assert "title: Sleep and early recovery" in (site.parent / "page.md").read_text(encoding="utf-8")
    assert hosts.origin.hits == Counter({"/page.html": 1})
    assert hosts.origin.sni == [NAME]
    assert dns.asked[NAME] == 1


@pytest.mark.parametrize(("cert", "why"), BAD_CERTIFICATES)
def test_clinicpress_import_refuses_a_certificate_that_does_not_verify(
    trusted: TestPKI,
    dns: FakeDNS,
    serve: Serve,
    write_site: Callable[..., Path],
    cert: Issue,
    why: str,
) -> None:
    hosts = serve(cert(trusted))
    site = _site(write_site)
    result = runner.invoke(app, ["import", hosts.url("/page.html"), "--site", str(site)])
    assert result.exit_code == 2, result.output
    assert "certificate verify failed" in result.output, result.output
    assert why in result.output, result.output
    assert not (site.parent / "page.md").exists()
    assert hosts.origin.hits == Counter()
    assert hosts.origin.sni == [NAME]
    assert hosts.listener.connections == 0
