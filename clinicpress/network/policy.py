"""A run's network policy: where it may connect, how long it waits, how often it asks again.

Plain values, so the network layer knows nothing of the settings that fill them in:
:meth:`Policy.of` reads ``[checks.links]`` (any object with its fields), and a caller changes
a field for itself with ``dataclasses.replace`` (the integrity lookups follow no redirects).
:meth:`Policy.resolver` is the one place a run's :class:`VettedResolver` is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from clinicpress.network.addresses import IPNetwork, normalise_hosts
from clinicpress.network.resolver import VettedResolver

__all__ = ["LinkRules", "Policy"]


class LinkRules(Protocol):
    """What :meth:`Policy.of` reads: ``[checks.links]`` (``LinkCheckSettings``) has it all."""

    @property
    def allow_private_hosts(self) -> Sequence[str]: ...
    @property
    def allow_private_networks(self) -> Sequence[IPNetwork]: ...
    @property
    def timeout(self) -> float: ...
    @property
    def max_redirects(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def user_agent(self) -> str: ...


@dataclass(frozen=True)
class Policy:
    """Where a run may connect, how long it waits, how often it asks again (plain values)."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    timeout: float = 10.0  # seconds per socket operation and for a body; headers get twice this
    max_redirects: int = 10
    retries: int = 1  # more tries for a transient failure or a 408/429/5xx
    backoff: float = 0.5  # seconds before the first retry, doubling, with jitter
    retry_after_cap: float = 5.0  # a server asking to wait longer is not waited for
    user_agent: str = "clinicpress"
    connections: int = 8  # in flight at once (per-host limits are the caller's ``slot``)

    @classmethod
    def of(cls, rules: LinkRules) -> Policy:
        """The policy of ``[checks.links]``; change a field for one caller with ``dataclasses.replace``."""
        return cls(
            allowed_hosts=normalise_hosts(rules.allow_private_hosts),
            allowed_networks=tuple(rules.allow_private_networks),
            timeout=rules.timeout,
            max_redirects=rules.max_redirects,
            retries=rules.retries,
            user_agent=rules.user_agent,
        )

    def resolver(self) -> VettedResolver:
        """The one way a run's vetted resolver is made: under this policy's address rules."""
        return VettedResolver(
            allowed_hosts=self.allowed_hosts, allowed_networks=self.allowed_networks, timeout=self.timeout
        )
