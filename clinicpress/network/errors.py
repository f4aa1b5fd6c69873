"""What a fetch fails with: one branch of clinicpress's exception tree (``clinicpress/errors.py``).

    ClinicpressError
    └── FetchError          a URL could not be fetched as asked (``url``, a one-line ``reason``)
        ├── Refused         the address rules refuse the host, or a URL is not http(s)
        ├── NotResolved     DNS gave no usable answer (``failure``: dns-missing or dns-error)
        ├── ConnectFailed   no vetted address connected (refused, unreachable, timed out)
        ├── TLSFailed       the TLS handshake or the certificate check failed
        ├── NoAnswer        connected, but the answer did not come in time
        ├── Dropped         the connection broke during the answer
        ├── RedirectFailed  a loop, too many hops, a Location that cannot be read or followed
        ├── TooLarge        the body is over the size asked for
        └── Unreadable      the body is not what was asked for (not JSON, an unknown encoding)

``transient``: asking again may help (the retry rules read it). ``net``: the failure was at the
DNS or connect level (the link check's "network down" evidence). ``reached``: a server answered
something (TCP worked), which is evidence that the network is up. The fetch layer fills in
``hops`` (the redirects followed before the failure) and ``tries`` as the error passes up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clinicpress.errors import ClinicpressError
from clinicpress.network.resolver import NetFailure

__all__ = [
    "ConnectFailed",
    "Dropped",
    "FetchError",
    "Hop",
    "NoAnswer",
    "NotResolved",
    "RedirectFailed",
    "Refused",
    "TLSFailed",
    "TooLarge",
    "Unreadable",
]


@dataclass(frozen=True, slots=True)
class Hop:
    """One redirect followed: the status that sent us on, and where to."""

    status: int
    url: str


class FetchError(ClinicpressError):
    """``url`` could not be fetched; ``reason`` says why in one line (it names the host)."""

    transient = False
    reached = False

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.hops: tuple[Hop, ...] = ()
        self.tries = 1

    @property
    def net(self) -> NetFailure | None:
        return None


class Refused(FetchError):
    """The address rules (``addresses.py``, ``allow_private_*``) refuse the host: never contacted."""


class NotResolved(FetchError):
    """The host's name gave no usable answer; a DNS error (not a missing name) is worth a retry."""

    def __init__(self, url: str, reason: str, failure: NetFailure) -> None:
        super().__init__(url, reason)
        self.failure = failure
        self.transient = failure == "dns-error"  # a missing name is an answer; a DNS error may clear

    @property
    def net(self) -> NetFailure | None:
        return self.failure


class ConnectFailed(FetchError):
    """No vetted address of the host connected (refused, unreachable, or not in time)."""

    transient = True

    @property
    def net(self) -> NetFailure | None:
        return "connect"


class TLSFailed(FetchError):
    """TCP connected, TLS did not (a certificate that does not verify): asking again will not help."""

    reached = True


class NoAnswer(FetchError):
    """Connected, but the answer (headers, or the whole body) did not come in time."""

    transient = True
    reached = True


class Dropped(FetchError):
    """The connection broke during the answer (reset, closed early, a protocol error)."""

    transient = True
    reached = True


class RedirectFailed(FetchError):
    """The redirect walk stopped: ``status`` is the redirect's, ``target`` where it pointed."""

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        kind: Literal["scheme", "unreadable", "loop", "too-many"],
        status: int,
        target: str,
    ) -> None:
        super().__init__(url, reason)
        self.kind = kind
        self.status = status
        self.target = target


class TooLarge(FetchError):
    """The body is larger than the size asked for (decompressed or not)."""


class Unreadable(FetchError):
    """The body is not what was asked for: not JSON, or compressed in a way we do not decode."""
