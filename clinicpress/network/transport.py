"""HTTP transports that connect only to vetted addresses (no DNS rebinding), async and sync.

httpcore hands the network backend the URL's host; the backends here never resolve it: a
``vetted`` callable (normally :meth:`VettedResolver.pinned`) gives the addresses the run
vetted for it, and none means no connection (fail closed). TLS is untouched: httpcore passes
the host name to ``start_tls``, so SNI and the certificate check use the name, not the address.
Several addresses are tried in the resolver's order, the next one started every 250 ms until
one connects (Happy Eyeballs, as httpx does for a name; the sync backend tries them in turn).

Errors from below (OSError, timeouts) are mapped to httpcore's connect errors at one boundary,
:func:`_mapped`, with the original kept as ``__cause__`` (as httpx's ``_transports/default.py``
does) and, because httpcore's pool re-raises ``from None``, also in ``attempts`` of
:class:`PinnedConnectError`; httpx then maps those to ``httpx.ConnectError`` / ``ConnectTimeout``.

The link checker uses the same contract on aiohttp: ``network/aiohttp_transport.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import httpcore
import httpx

from clinicpress.network.addresses import IPAddress

if TYPE_CHECKING:
    pass

__all__ = [
    "HAPPY_EYEBALLS_DELAY",
    "PinnedAsyncBackend",
    "PinnedConnectError",
    "PinnedConnectTimeout",
    "PinnedSyncBackend",
    "Vetted",
    "async_transport",
    "first_to_connect",
    "no_address",
    "sync_transport",
    "tls_context",
]

HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next vetted address is tried too (anyio's, RFC 8305)

# Given a host as httpcore hands it over, the addresses we may connect to (() for none).
Vetted = Callable[[str], tuple[IPAddress, ...]]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default context (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), built once per process:
    loading the CA bundle costs ~50 ms."""
    return httpx.create_ssl_context()


def async_transport(vetted: Vetted, *, limits: httpx.Limits | None = None) -> httpx.AsyncHTTPTransport:
    """An httpx async transport whose connections go only to ``vetted`` addresses."""
    limits = limits or httpx.Limits()
    transport = httpx.AsyncHTTPTransport(verify=tls_context(), limits=limits, trust_env=False)
    # httpx 0.28 has no network_backend argument: its own pool, rebuilt with our backend.
    # tests/checks/test_rebinding.py fails if this stops working.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=PinnedAsyncBackend(vetted),
    )
    return transport


def sync_transport(vetted: Vetted, *, limits: httpx.Limits | None = None) -> httpx.HTTPTransport:
    """An httpx sync transport whose connections go only to ``vetted`` addresses."""
    limits = limits or httpx.Limits()
    transport = httpx.HTTPTransport(verify=tls_context(), limits=limits, trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=tls_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=PinnedSyncBackend(vetted),
    )
    return transport


class PinnedConnectError(httpcore.ConnectError):
    """No vetted address connected. ``attempts`` keeps each address's error: httpcore's pool
    re-raises connect errors ``from None``, which drops ``__cause__`` on the way up."""

    def __init__(self, message: str, attempts: Sequence[BaseException] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)


class PinnedConnectTimeout(httpcore.ConnectTimeout):
    """No vetted address connected within the connect timeout (``attempts`` as above)."""

    def __init__(self, message: str, attempts: Sequence[BaseException] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)


@contextlib.contextmanager
def _mapped(host: str) -> Iterator[None]:
    """The one place foreign connect errors become httpcore's, keeping the cause."""
    try:
        yield
    except (httpcore.ConnectError, httpcore.ConnectTimeout):
        raise
    except TimeoutError as exc:  # before OSError: TimeoutError is one
        raise PinnedConnectTimeout(f"no vetted address of {host} connected in time", (exc,)) from exc
    except OSError as exc:
        raise PinnedConnectError(f"could not connect to {host}: {exc}", (exc,)) from exc


def no_address(host: str) -> httpcore.ConnectError:
    """The error for a host this run never vetted: no connection, and no second DNS answer."""
    return httpcore.ConnectError(f"no vetted address for {host} in this run (not resolving it again)")


class PinnedAsyncBackend(httpcore.AsyncNetworkBackend):
    """httpcore's async network backend, connecting only to vetted addresses."""

    def __init__(self, vetted: Vetted) -> None:
        self._vetted = vetted
        self._inner = httpcore.AnyIOBackend()  # what httpcore's default backend uses under asyncio

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self._vetted(host)
        if not addresses:
            raise no_address(host)

        def connect(address: IPAddress, limit: float | None) -> Awaitable[httpcore.AsyncNetworkStream]:
            return self._inner.connect_tcp(
                str(address), port, timeout=limit, local_address=local_address, socket_options=socket_options
            )

        with _mapped(host):
            if len(addresses) == 1:
                return await connect(addresses[0], timeout)  # what httpx does with a one-address name
            async with asyncio.timeout(timeout):  # one connect timeout for all the attempts
                return await first_to_connect([functools.partial(connect, a, None) for a in addresses])

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("pinned transports connect over TCP only")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class PinnedSyncBackend(httpcore.NetworkBackend):
    """httpcore's sync network backend, connecting only to vetted addresses (in turn)."""

    def __init__(self, vetted: Vetted) -> None:
        self._vetted = vetted
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._vetted(host)
        if not addresses:
            raise no_address(host)
        options = list(socket_options or ())
        deadline = None if timeout is None else time.monotonic() + timeout
        errors: list[Exception] = []
        with _mapped(host):
            for address in addresses:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise PinnedConnectTimeout(f"no vetted address of {host} connected in time", errors)
                try:
                    return self._inner.connect_tcp(
                        str(address), port, timeout=left, local_address=local_address, socket_options=options
                    )
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    errors.append(exc)
            raise PinnedConnectError("All connection attempts failed", errors) from errors[-1]

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("pinned transports connect over TCP only")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


async def first_to_connect(
    attempts: Sequence[Callable[[], Awaitable[httpcore.AsyncNetworkStream]]],
) -> httpcore.AsyncNetworkStream:
    """Happy Eyeballs over fixed addresses: the next attempt starts when the last one failed or
    has not connected within HAPPY_EYEBALLS_DELAY; the first to connect wins, the rest are
    cancelled (or closed, if they connected too). A dead first address costs 250 ms, not a timeout.
    """
    waiting = list(attempts)
    running: set[asyncio.Future[httpcore.AsyncNetworkStream]] = set()
    errors: list[BaseException] = []
    winner: httpcore.AsyncNetworkStream | None = None
    try:
        while waiting or running:
            if waiting:
                running.add(asyncio.ensure_future(waiting.pop(0)()))
            done, running = await asyncio.wait(
                running,
                timeout=HAPPY_EYEBALLS_DELAY if waiting else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                exc = task.exception()
                if exc is None:
                    stream = task.result()
                    if winner is None:
                        winner = stream
                    else:
                        await stream.aclose()  # two connected at once: keep one
                elif isinstance(exc, httpcore.ConnectError | httpcore.ConnectTimeout):
                    errors.append(exc)
                elif winner is None:
                    raise exc
            if winner is not None:
                return winner
    finally:
        for task in running:
            task.cancel()
        for result in await asyncio.gather(*running, return_exceptions=True):
            if isinstance(result, httpcore.AsyncNetworkStream):  # connected while being cancelled
                await result.aclose()
    raise PinnedConnectError("All connection attempts failed", errors) from (errors[0] if errors else None)
