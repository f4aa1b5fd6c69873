"""The pinned transport's contract: connect only to vetted addresses (no DNS rebinding).

A transport is given ``vetted`` (normally :meth:`VettedResolver.pinned`): for a host as the URL
names it, the addresses the run vetted for it. It never resolves a name itself, and a host
without vetted addresses gets no connection at all (:func:`no_address`: fail closed). TLS is
checked against the host name (SNI and the certificate), never against the address.

The one implementation is ``aiohttp_transport.py``: an ``httpx.AsyncBaseTransport`` (httpx's
public transport interface) over one aiohttp connector whose resolver answers only vetted
addresses. It replaced httpx's own transport with a swapped private connection pool: the same
pinning through public interfaces only, and about half the CPU per request (measured in
bench/README.md). Every request of the tool reaches it through ``fetch.py``.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable

import httpx

from clinicpress.network.addresses import IPAddress

__all__ = ["HAPPY_EYEBALLS_DELAY", "Vetted", "no_address", "tls_context"]

HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next vetted address is tried too (anyio's, RFC 8305)

# Given a host as the URL names it (IDNA, lower case), the addresses we may connect to (() for none).
Vetted = Callable[[str], tuple[IPAddress, ...]]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default context (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), built once per process:
    loading the CA bundle costs ~50 ms."""
    return httpx.create_ssl_context()


def no_address(host: str) -> str:
    """Why a host this run never vetted gets no connection (and no second DNS answer)."""
    return f"no vetted address for {host} in this run (not resolving it again)"
