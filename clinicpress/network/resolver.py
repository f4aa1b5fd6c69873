"""The vetted resolver: each host name resolved once per run, every answer vetted, the answer kept.

The HTTP clients never resolve a name themselves (see :mod:`clinicpress.network.transport`):
they connect only to what :meth:`VettedResolver.pinned` returns for it, which is the cached
answer this resolver vetted. A second DNS answer (DNS rebinding) is therefore never used.
Transient failures (a DNS timeout or server error) are not cached, so a retry asks again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from clinicpress.network.addresses import IPAddress, IPNetwork, literal_ip, normalise_hosts, refusal

__all__ = ["NetFailure", "Resolution", "VettedResolver", "Vetting", "vet"]

# Network-level outcome of a lookup or a connection, as a link check reports it.
NetFailure = Literal["dns-missing", "dns-error", "connect"]

# gaierror codes meaning "the resolver answered: no such name / no address".
_DNS_MISSING = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


@dataclass(frozen=True)
class Resolution:
    """One DNS answer: its addresses in the resolver's order, or why there are none."""

    addresses: tuple[IPAddress, ...] = ()
    failure: NetFailure | None = None
    detail: str = ""


@dataclass(frozen=True)
class Vetting:
    """Whether a host may be connected to, and at which addresses.

    Exactly one of: ``addresses`` (allowed), ``why`` (refused: a disallowed address, literal
    when ``literal``), ``failure`` (the name did not resolve; ``detail`` says how).
    """

    addresses: tuple[IPAddress, ...] = ()
    why: str | None = None
    literal: bool = False
    failure: NetFailure | None = None
    detail: str = ""

    @property
    def allowed(self) -> bool:
        return self.why is None and self.failure is None


def vet(
    host: str,
    resolution: Resolution | None,
    *,
    allowed_hosts: frozenset[str],
    allowed_networks: Sequence[IPNetwork],
) -> Vetting:
    """Pure: the vetting of ``host`` given its DNS answer (None for a literal address)."""
    allowed = host.rstrip(".") in allowed_hosts
    literal = literal_ip(host)
    if literal is not None:
        refused = None if allowed else refusal((literal,), allowed_networks)
        return Vetting(why=refused[1], literal=True) if refused else Vetting(addresses=(literal,))
    if resolution is None:
        return Vetting(failure="dns-error", detail=f"{host} was not resolved in this run")
    if resolution.failure is not None:
        return Vetting(failure=resolution.failure, detail=resolution.detail)
    refused = None if allowed else refusal(resolution.addresses, allowed_networks)
    return Vetting(why=refused[1]) if refused else Vetting(addresses=resolution.addresses)


class VettedResolver:
    """One run's DNS: resolve once per name, vet every answer, remember the vetted answer."""

    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str] = (),
        allowed_networks: Sequence[IPNetwork] = (),
        timeout: float = 10.0,
    ) -> None:
        self.allowed_hosts = normalise_hosts(allowed_hosts)
        self.allowed_networks = tuple(allowed_networks)
        self.timeout = timeout
        # Evidence that DNS works: some name resolved to a public address in this run.
        self.public_seen = False
        self._answers: dict[str, Resolution] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Final vettings (a literal, or a name with a kept answer): a run asks for the same few
        # hosts on every request and redirect hop, and parsing addresses each time cost ~3 % CPU.
        self._settled: dict[str, Vetting] = {}

    # -- vetting ------------------------------------------------------------------------
    async def vet(self, host: str) -> Vetting:
        """Resolve ``host`` (once per run) and vet the answer; for a literal address, no DNS."""
        host = host.lower()
        settled = self._settled.get(host)
        if settled is not None:
            return settled
        if literal_ip(host) is not None:
            return self._settle(host, None, literal=True)
        return self._settle(host, await self._resolve(host))

    async def vet_public(self, host: str) -> Vetting:
        """:meth:`vet` without any allowance (``allow_private_*``), on the same cached answer: may
        ``host`` be named to a third party? The allowances let us connect; they never let a
        private name or address leave for someone else."""
        host = host.lower()
        resolution = None if literal_ip(host) is not None else await self._resolve(host)
        return vet(host, resolution, allowed_hosts=frozenset(), allowed_networks=())

    def vet_sync(self, host: str) -> Vetting:
        """:meth:`vet` for synchronous callers (the importer): the same rules and cache."""
        host = host.lower()
        if literal_ip(host) is not None:
            return self._vet(host, None)
        cached = self._answers.get(host)
        if cached is None:
            cached = self._remember(host, self._lookup_sync(host))
        return self._vet(host, cached)

    def pinned(self, host: str) -> tuple[IPAddress, ...]:
        """The addresses a client may connect to for ``host``: what vetting let through.

        The same rules on the same cached answer, so vetting and connecting cannot disagree;
        () when this run has no vetted answer for the name (the transport then fails closed).
        """
        host = host.lower()
        settled = self._settled.get(host)
        if settled is not None:
            return settled.addresses
        literal = literal_ip(host) is not None
        return self._settle(host, None if literal else self._answers.get(host), literal=literal).addresses

    def _vet(self, host: str, resolution: Resolution | None) -> Vetting:
        return vet(host, resolution, allowed_hosts=self.allowed_hosts, allowed_networks=self.allowed_networks)

    def _settle(self, host: str, resolution: Resolution | None, *, literal: bool = False) -> Vetting:
        """:meth:`_vet`, remembered when it cannot change in this run: a literal address, or a
        name whose answer is kept (answers are never replaced; transient failures are not kept)."""
        vetting = self._vet(host, resolution)
        if literal or (resolution is not None and self._answers.get(host) is resolution):
            self._settled[host] = vetting
        return vetting

    # -- resolving ----------------------------------------------------------------------
    async def _resolve(self, host: str) -> Resolution:
        # A lock per name, so concurrent links to one host ask once.
        async with self._locks.setdefault(host, asyncio.Lock()):
            cached = self._answers.get(host)
            if cached is not None:
                return cached
            return self._remember(host, await self._lookup(host))

    def _remember(self, host: str, resolution: Resolution) -> Resolution:
        if resolution.failure != "dns-error":  # transient failures are asked again
            self._answers[host] = resolution
        if any(refusal((a,)) is None for a in resolution.addresses):
            self.public_seen = True  # a public answer: the resolver works
        return resolution

    async def _lookup(self, host: str) -> Resolution:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except TimeoutError:
            return Resolution(failure="dns-error", detail=f"DNS lookup of {host} timed out")
        except (OSError, UnicodeError, ValueError) as exc:
            return _failed(host, exc)
        return _answer(infos)

    def _lookup_sync(self, host: str) -> Resolution:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError) as exc:
            return _failed(host, exc)
        return _answer(infos)


def _answer(infos: Sequence[tuple[Any, ...]]) -> Resolution:
    # IPv6 scope ids ("fe80::1%eth0") are dropped: the address is what is vetted.
    found = (ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos)
    return Resolution(addresses=tuple(dict.fromkeys(found)))


def _failed(host: str, exc: BaseException) -> Resolution:
    """What a lookup error means: a missing name (an answer) or a transient failure."""
    if isinstance(exc, socket.gaierror):
        if exc.errno in _DNS_MISSING:
            return Resolution(failure="dns-missing", detail=f"{host} did not resolve ({exc.strerror})")
        return Resolution(failure="dns-error", detail=f"DNS lookup of {host} failed ({exc.strerror})")
    if isinstance(exc, UnicodeError | ValueError):
        return Resolution(failure="dns-missing", detail=f"{host} is not a valid host name ({exc})")
    return Resolution(failure="dns-error", detail=f"DNS lookup of {host} failed ({exc})")
