"""The SSRF address rules and the vetted resolver, as pure functions and one resolver with a fake DNS:
the tests that kill the mutants the rebinding, HTTPS and link tests let live (docs/mutation.md).

Every expected reason is spelt out: the name of the first rule that refuses an address is what a
check reports, so a reordered or dropped rule shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from rebind_hosts import Resolver

from clinicpress.network.addresses import disallowed_reason, host_of, literal_ip, normalise_hosts, refusal
from clinicpress.network.resolver import Resolution, VettedResolver, Vetting, _answer, _failed, vet

ip = ipaddress.ip_address
net = ipaddress.ip_network


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback address 127.0.0.1"),
        ("0.0.0.0", "unspecified address 0.0.0.0"),
        ("169.254.1.1", "link-local address 169.254.1.1"),
        ("224.0.0.1", "multicast address 224.0.0.1"),
        ("10.0.0.1", "private address 10.0.0.1"),
        ("100.64.0.1", "not globally routable address 100.64.0.1"),
        ("8.8.8.8", None),
        ("::1", "loopback address ::1"),
        ("::", "unspecified address ::"),
        ("fe80::1", "link-local address fe80::1"),
        ("ff02::1", "multicast address ff02::1"),
        ("fc00::1", "private address fc00::1"),
        ("4000::1", "reserved address 4000::1"),
        ("2606:4700::1111", None),
        # Embedded IPv4: mapped, 6to4, Teredo (client bits inverted), NAT64, IPv4-compatible.
        ("::ffff:10.0.0.1", "private address 10.0.0.1 (embedded in ::ffff:a00:1)"),
        ("::ffff:8.8.8.8", None),
        ("2002:a00:1::", "private address 10.0.0.1 (embedded in 2002:a00:1::)"),
        (
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "loopback address 127.0.0.1 (embedded in 2001:0:4136:e378:8000:63bf:80ff:fffe)",
        ),
        ("64:ff9b::a00:1", "private address 10.0.0.1 (embedded in 64:ff9b::a00:1)"),
        ("64:ff9b::808:808", None),
        ("::127.0.0.1", "loopback address 127.0.0.1 (embedded in ::7f00:1)"),
        ("::8.8.8.8", None),
        ("::200.1.1.1", None),  # the top bit of the embedded address set: still IPv4-compatible
        ("::2", "private address 0.0.0.2 (embedded in ::2)"),
        ("::1:0:1", "reserved address ::1:0:1"),  # above 32 bits: not IPv4-compatible
    ],
)
def test_the_first_rule_that_refuses_names_the_reason(address: str, reason: str | None) -> None:
    assert disallowed_reason(ip(address)) == reason


def test_allowed_networks_also_cover_embedded_addresses() -> None:
    tens = [net("10.0.0.0/8")]
    assert disallowed_reason(ip("10.1.2.3"), tens) is None
    assert disallowed_reason(ip("::ffff:10.1.2.3"), tens) is None
    assert disallowed_reason(ip("64:ff9b::a01:203"), tens) is None
    assert disallowed_reason(ip("10.1.2.3"), [net("fc00::/7")]) == "private address 10.1.2.3"
    assert disallowed_reason(ip("11.0.0.1"), tens) is None  # public anyway
    assert disallowed_reason(ip("127.0.0.1"), tens) == "loopback address 127.0.0.1"


def test_refusal_is_the_first_refused_answer() -> None:
    assert refusal([]) is None
    assert refusal([ip("8.8.8.8"), ip("1.1.1.1")]) is None
    assert refusal([ip("8.8.8.8"), ip("10.0.0.1"), ip("127.0.0.1")]) == (
        ip("10.0.0.1"),
        "private address 10.0.0.1",
    )
    assert refusal([ip("8.8.8.8"), ip("10.0.0.1")], [net("10.0.0.0/8")]) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f", "0.0.0.127"),  # ends in a letter, still a number
        ("127.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("1.2.3.4", "1.2.3.4"),
        ("::1", "::1"),
        ("example.com", None),
        ("1example", None),
        ("1.2.3.4-x", None),
        ("127.0.0.1 x", None),  # inet_aton itself would read 127.0.0.1 and ignore the rest
        ("127.0.0.1\tx", None),
        ("", None),
    ],
)
def test_literal_ip_reads_hosts_as_the_c_resolver_does(host: str, address: str | None) -> None:
    assert literal_ip(host) == (None if address is None else ip(address))


def test_host_names_are_compared_normalised() -> None:
    assert normalise_hosts([" [::1] ", "Example.COM.", "localhost"]) == {"::1", "example.com", "localhost"}
    assert host_of(httpx.URL("https://EXAMPLE.org/x")) == "example.org"
    assert host_of(httpx.URL("http://[::1]:8080/")) == "::1"
    assert host_of(httpx.URL("https://bücher.example/")) == "xn--bcher-kva.example"


# -- vet (pure) ---------------------------------------------------------------------------------------------
def _vet(host: str, resolution: Resolution | None, allowed: Iterable[str] = ()) -> Vetting:
    return vet(host, resolution, allowed_hosts=frozenset(allowed), allowed_networks=())


def test_vet_literals_names_and_failures() -> None:
    refused = _vet("127.0.0.1", None)
    assert (refused.allowed, refused.why, refused.literal, refused.addresses) == (
        False,
        "loopback address 127.0.0.1",
        True,
        (),
    )
    assert _vet("127.0.0.1", None, {"127.0.0.1"}).addresses == (ip("127.0.0.1"),)
    assert _vet("8.8.8.8", None).addresses == (ip("8.8.8.8"),)
    unresolved = _vet("example.org", None)
    assert (unresolved.allowed, unresolved.failure) == (False, "dns-error")
    missing = _vet("example.org", Resolution(failure="dns-missing", detail="gone"))
    assert (missing.allowed, missing.failure, missing.detail) == (False, "dns-missing", "gone")
    answer = Resolution(addresses=(ip("8.8.8.8"), ip("10.0.0.1")))
    mixed = _vet("example.org", answer)
    assert (mixed.allowed, mixed.why, mixed.literal, mixed.addresses) == (
        False,
        "private address 10.0.0.1",
        False,
        (),
    )
    assert _vet("example.org.", answer, {"example.org"}).addresses == answer.addresses
    assert _vet("example.org", Resolution(addresses=(ip("8.8.8.8"),))).allowed


# -- the resolver: once per name, every answer vetted, the vetted answer pinned --------------------------
@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


def test_a_name_is_resolved_once_and_a_second_answer_never_used(dns: Resolver) -> None:
    dns.answers["rebind.test"] = [["8.8.8.8"], ["127.0.0.1"]]
    resolver = VettedResolver()
    first = asyncio.run(resolver.vet("REBIND.test"))
    assert first.addresses == (ip("8.8.8.8"),)
    assert asyncio.run(resolver.vet("rebind.test")) == first
    assert resolver.vet_sync("rebind.test") == first
    assert resolver.pinned("Rebind.Test") == (ip("8.8.8.8"),)
    assert dns.asked["rebind.test"] == 1
    assert resolver.public_seen


def test_the_sync_path_shares_the_answers(dns: Resolver) -> None:
    dns.answers["a.test"] = [["8.8.4.4"], ["10.0.0.1"]]
    resolver = VettedResolver()
    assert resolver.vet_sync("A.test").addresses == (ip("8.8.4.4"),)
    assert resolver.vet_sync("a.test").addresses == (ip("8.8.4.4"),)
    assert asyncio.run(resolver.vet("a.test")).addresses == (ip("8.8.4.4"),)
    assert resolver.pinned("a.test") == (ip("8.8.4.4"),)
    assert dns.asked["a.test"] == 1
    assert resolver.vet_sync("127.0.0.1").why == "loopback address 127.0.0.1"
    # The importer's lookups fail like the checker's: an answer, never an exception.
    assert VettedResolver().vet_sync("missing.test").failure == "dns-missing"


def test_a_refused_answer_pins_nothing_and_proves_no_dns(dns: Resolver) -> None:
    dns.answers["inside.test"] = [["10.0.0.1"], ["8.8.8.8"]]
    resolver = VettedResolver()
    refused = asyncio.run(resolver.vet("inside.test"))
    assert refused.why == "private address 10.0.0.1"
    assert resolver.pinned("inside.test") == ()
    assert asyncio.run(resolver.vet("inside.test")).why == "private address 10.0.0.1"
    assert not resolver.public_seen
    allowed = VettedResolver(allowed_hosts=["Inside.test."])
    assert asyncio.run(allowed.vet("inside.test")).addresses == (ip("8.8.8.8"),)  # the fake's second turn


def test_unresolved_names_and_literals_when_pinned(dns: Resolver) -> None:
    resolver = VettedResolver(allowed_hosts=["127.0.0.1"])
    assert resolver.pinned("never-asked.test") == ()  # fails closed
    assert resolver.pinned("127.0.0.1") == (ip("127.0.0.1"),)
    assert resolver.pinned("10.0.0.1") == ()
    assert VettedResolver(allowed_networks=[net("10.0.0.0/8")]).pinned("10.0.0.1") == (ip("10.0.0.1"),)
    assert asyncio.run(resolver.vet("127.0.0.1")).addresses == (ip("127.0.0.1"),)
    assert dns.asked == {}


def test_transient_failures_are_asked_again_and_missing_names_are_not(
    dns: Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    errors = {"flaky.test": socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")}

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        if host in errors:
            raise errors.pop(host)
        return dns.getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    dns.answers["flaky.test"] = [["8.8.8.8"]]
    resolver = VettedResolver()
    flaky = asyncio.run(resolver.vet("flaky.test"))
    assert (flaky.failure, flaky.allowed) == ("dns-error", False)
    assert resolver.pinned("flaky.test") == ()
    assert asyncio.run(resolver.vet("flaky.test")).addresses == (ip("8.8.8.8"),)
    missing = asyncio.run(resolver.vet("missing.test"))
    assert missing.failure == "dns-missing"
    assert asyncio.run(resolver.vet("missing.test")).failure == "dns-missing"
    assert resolver.vet_sync("missing.test").failure == "dns-missing"
    assert calls.count("flaky.test") == 2
    assert calls.count("missing.test") == 1


def test_a_slow_lookup_is_a_transient_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hang(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(30)

    async def run() -> Any:
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "getaddrinfo", hang)
        resolver = VettedResolver(timeout=0.05)
        return await resolver.vet("slow.test"), resolver

    vetting, resolver = asyncio.run(run())
    assert vetting.failure == "dns-error"
    assert "timed out" in vetting.detail
    assert "slow.test" not in resolver._answers


def test_concurrent_vets_of_one_name_ask_once(dns: Resolver) -> None:
    dns.answers["busy.test"] = [["8.8.8.8"], ["127.0.0.1"]]

    async def run() -> list[Any]:
        resolver = VettedResolver()
        return await asyncio.gather(*(resolver.vet("busy.test") for _ in range(5)))

    results = asyncio.run(run())
    assert {r.addresses for r in results} == {(ip("8.8.8.8"),)}
    assert dns.asked["busy.test"] == 1


def test_answers_keep_order_drop_scope_ids_and_duplicates() -> None:
    infos = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1%eth0", 0, 0, 2)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 0)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1", 0, 0, 0)),
    ]
    assert _answer(infos).addresses == (ip("fe80::1"), ip("8.8.8.8"))


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns-missing"),
        (socket.gaierror(socket.EAI_NODATA, "No address associated with hostname"), "dns-missing"),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), "dns-error"),
        (UnicodeError("label too long"), "dns-missing"),
        (ValueError("bad"), "dns-missing"),
        (OSError("network down"), "dns-error"),
    ],
)
def test_lookup_errors_are_an_answer_or_transient(error: BaseException, failure: str) -> None:
    result = _failed("x.test", error)
    assert result.failure == failure
    assert "x.test" in result.detail
    assert result.addresses == ()


def test_a_kept_answer_cannot_be_changed() -> None:
    """The resolver hands out the very answer it vetted and pins: no caller may edit it."""
    answer = Resolution(addresses=(ip("8.8.8.8"),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        answer.addresses = (ip("127.0.0.1"),)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        _vet("8.8.8.8", None).why = None  # type: ignore[misc]
