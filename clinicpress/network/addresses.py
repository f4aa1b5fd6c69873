"""SSRF address rules: which addresses a check or an import may connect to (pure: no I/O).

Refused: literal and resolved private, loopback, link-local, unspecified, multicast, reserved
and otherwise not globally routable addresses, also when embedded in an IPv6 address
(IPv4-mapped, 6to4, Teredo, NAT64, IPv4-compatible). Exceptions are plain values: host names
(``allow_private_hosts``) and networks (``allow_private_networks``), never a settings object,
so this layer knows nothing of the checks that use it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence

import httpx

__all__ = [
    "IPAddress",
    "IPNetwork",
    "disallowed_reason",
    "host_of",
    "literal_ip",
    "normalise_hosts",
    "refusal",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def normalise_hosts(names: Iterable[str]) -> frozenset[str]:
    """Host names normalised the way hosts are compared (case, brackets, final dot)."""
    return frozenset(h.strip().strip("[]").lower().rstrip(".") for h in names)


def host_of(url: httpx.URL) -> str:
    """The host httpcore connects to (IDNA-encoded, IPv6 without brackets), lower case."""
    return url.raw_host.decode("ascii", "replace").lower()


def literal_ip(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, as the C resolver would read it."""
    bare = host.rstrip(".")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    # inet_aton accepts what getaddrinfo accepts without DNS: 2130706433, 0x7f.1, 127.1, 0177.0.0.1.
    if bare and all(c.isalnum() or c == "." for c in bare) and bare[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def disallowed_reason(addr: IPAddress, allowed_networks: Sequence[IPNetwork] = ()) -> str | None:
    """Why connecting to ``addr`` is refused, or None for a public address.

    Addresses in ``allowed_networks`` are allowed, also when embedded in an IPv6 address
    (``::ffff:10.0.0.1`` is 10.0.0.1).
    """
    if any(addr in network for network in allowed_networks):  # other IP version: never in it
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = addr.ipv4_mapped or addr.sixtofour
        if embedded is None and addr.teredo is not None:
            embedded = addr.teredo[1]
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        elif embedded is None and int(addr) >> 32 == 0 and int(addr) > 1:
            embedded = ipaddress.IPv4Address(int(addr))  # deprecated IPv4-compatible ::a.b.c.d
        if embedded is not None:
            why = disallowed_reason(embedded, allowed_networks)
            return f"{why} (embedded in {addr})" if why else None
    checks = (
        ("loopback", addr.is_loopback),
        ("unspecified", addr.is_unspecified),
        ("link-local", addr.is_link_local),
        ("multicast", addr.is_multicast),
        ("private", addr.is_private),
        ("reserved", addr.is_reserved),
        ("not globally routable", not addr.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"{name} address {addr}"
    return None


def refusal(
    addresses: Iterable[IPAddress], allowed_networks: Sequence[IPNetwork] = ()
) -> tuple[IPAddress, str] | None:
    """The first address refused and why, or None if all may be connected to.

    One refused answer refuses the host: which answer a connection would use is not ours to pick.
    """
    for addr in addresses:
        why = disallowed_reason(addr, allowed_networks)
        if why:
            return addr, why
    return None
