"""The pinned transport: httpx's transport interface on aiohttp, connecting only to vetted addresses.

:func:`aiohttp_transport` builds an ``httpx.AsyncBaseTransport`` over one aiohttp connector whose
resolver answers only vetted addresses (the contract of ``transport.py``). Every request of the
tool goes through it, by way of ``fetch.py``. Measured on 2,000 loopback GETs (2 cores, whole
process with ~0.5 s of imports): httpx over httpcore/anyio (32 clients × 4 connections) spent
~2.9 s CPU (the pool's per-connection ``has_expired`` socket polls, anyio's cancel scopes),
httpx over aiohttp ~1.3 s, aiohttp's C parser and asyncio protocols doing the I/O. aiohttp is
imported when the first request is sent, not with this module (~0.2 s; half of it is aiohttp
building its default TLS contexts).

Fail closed without a vetted address, TLS checked against the host name; aiohttp's errors are
mapped to httpx's at one boundary (:func:`_aiohttp_errors`, the cause kept), as the transport
interface asks; ``fetch.py`` maps those to clinicpress's own.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, cast

import httpx

from clinicpress.network.addresses import host_of
from clinicpress.network.transport import HAPPY_EYEBALLS_DELAY, Vetted, no_address, tls_context

if TYPE_CHECKING:
    import aiohttp
    from aiohttp.abc import ResolveResult

__all__ = ["MAX_HEADER_LINE", "PinnedAiohttpTransport", "aiohttp_transport"]


MAX_HEADER_LINE = 65536  # aiohttp's 8190 default turns a long Set-Cookie into an error; h11 allows more


def aiohttp_transport(vetted: Vetted, *, limits: httpx.Limits | None = None) -> PinnedAiohttpTransport:
    """An httpx async transport on aiohttp whose connections go only to ``vetted`` addresses.

    One connector holds every connection (aiohttp's pool has no per-connection polling, so one
    client of 128 connections costs no more per request than 32 clients of 4). Open it
    in a running event loop; close it with ``aclose`` (an ``httpx.AsyncClient`` does both).
    """
    return PinnedAiohttpTransport(vetted, limits or httpx.Limits())


class _PinnedResolver:
    """aiohttp's resolver interface, answering only what ``vetted`` allows; never DNS."""

    def __init__(self, vetted: Vetted) -> None:
        self._vetted = vetted

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self._vetted(host)
        if not addresses:
            raise OSError(no_address(host))
        return [
            {
                "hostname": host,  # aiohttp's server_hostname: TLS checks the name, not the address
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class PinnedAiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over an aiohttp session pinned to vetted addresses.

    Before each request the URL's host is checked against ``vetted`` (aiohttp connects to a
    literal address without asking its resolver); names go through :class:`_PinnedResolver`.
    The session keeps no cookies (httpx's client does), decompresses nothing (callers read raw
    bytes with their own bound) and follows no redirects. aiohttp's errors become httpx's.
    """

    def __init__(self, vetted: Vetted, limits: httpx.Limits) -> None:
        self._vetted = vetted
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp  # here: ~0.2 s of import (2 cores), only for callers of this transport

        connector = aiohttp.TCPConnector(
            resolver=cast("aiohttp.abc.AbstractResolver", _PinnedResolver(self._vetted)),
            use_dns_cache=False,  # the run's VettedResolver is the only cache of answers
            limit=self._limits.max_connections or 0,
            limit_per_host=0,  # per-host limits are the caller's politeness
            keepalive_timeout=self._limits.keepalive_expiry,
            happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            max_line_size=MAX_HEADER_LINE,
            max_field_size=MAX_HEADER_LINE,
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import yarl  # aiohttp's URL type, imported with it

        host = host_of(request.url)  # as the pinned backends see it: ASCII (IDNA), lower case
        if not self._vetted(host):
            raise httpx.ConnectError(no_address(host), request=request)
        session = self._session or self._open()
        timeout = request.extensions.get("timeout", {})
        content = await request.aread()  # b"" for a check's GET/HEAD; a streamed body is read here
        with _aiohttp_errors(request):
            response = await session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # httpx has quoted it: send it as is
                # Names as the caller spelled them (some servers, and tests, care about case).
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
                data=content or None,
                allow_redirects=False,
                compress=False,
                # Per request, so a run of http:// links never loads the CA bundle (~50 ms).
                ssl=tls_context() if request.url.scheme == "https" else True,
                timeout=_timeout(timeout),
            )
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_AiohttpStream(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _timeout(timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
    import aiohttp

    return aiohttp.ClientTimeout(
        total=None,
        connect=timeout.get("pool"),  # aiohttp's connect includes waiting for a pooled connection
        sock_connect=timeout.get("connect"),
        sock_read=timeout.get("read"),
    )


class _AiohttpStream(httpx.AsyncByteStream):
    """A response body as httpx reads it: raw chunks, errors mapped; closing releases or drops
    the connection (aiohttp reuses it only when the body was read to the end)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _aiohttp_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


@contextlib.contextmanager
def _aiohttp_errors(request: httpx.Request) -> Iterator[None]:
    """aiohttp's exceptions as the httpx ones httpcore would have raised (cause kept)."""
    import aiohttp

    try:
        yield
    except aiohttp.ClientSSLError as exc:  # certificate or handshake: the ssl error's own words
        cause = getattr(exc, "certificate_error", None) or exc.os_error
        raise httpx.ConnectError(str(cause), request=request) from exc
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:  # before ClientOSError: it is one
        raise httpx.ConnectError(str(exc.os_error), request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientOSError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(f"{type(exc).__name__}: {exc}", request=request) from exc
