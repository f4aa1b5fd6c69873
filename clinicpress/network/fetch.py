"""The one way clinicpress fetches a URL: every request the tool makes on its own comes through here.

The link checker, ``clinicpress import``, the quote check, Crossref and PubMed, the archive lookup
(and any lookup to come) each open a :class:`Fetcher` (or call :func:`fetch`), and get, for every
request and every redirect hop:

* **vetted**: the host is vetted before any connection by the run's :class:`VettedResolver`
  (``addresses.py``; ``allow_private_*`` as the :class:`Policy` says); http(s) only;
* **pinned**: the transport connects only to the addresses vetted, never to a second DNS answer
  (``transport.py``), and TLS is checked against the host name;
* **bounded**: each socket operation within ``timeout``, the headers within twice that, the body
  within ``timeout`` and at most the bytes asked for, as sent and decompressed (only gzip and
  deflate are asked for, and decompressed with the same bound: ``replies.decoded``);
* **retried politely** (:meth:`Fetcher.attempt`): transient failures and 408/429/5xx answers
  are asked again ``retries`` times, after ``Retry-After`` (seconds or an HTTP date, read
  against the product clock) when the server says, up to ``retry_after_cap``; else backoff;
* **redirects walked here only** (:meth:`Fetcher.walk`): every hop recorded and vetted; the
  same URL with the same cookies again is a loop; more than ``max_redirects`` stops;
* **one exception tree**: httpx's (and timeouts') errors become ``errors.py``'s at one boundary
  (in :meth:`Fetcher.exchange`), the original kept as ``__cause__``;
* **nothing private told to others**: :meth:`Fetcher.shareable` says whether a URL may be named
  to a third party (an archive, a registry): only when its host is public without any allowance.

Callers with special needs pass them in, not a walk of their own: the link checker gives
:meth:`Fetcher.walk` its own hop (HEAD or GET, a browser retry), a :class:`~.replies.Read` plan
per reply (a page's title and ids, a bot wall's markers), and its per-host ``slot`` (politeness).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Literal, TypeVar
from urllib.parse import urlsplit

import httpx

from clinicpress import clock
from clinicpress.network.addresses import host_of
from clinicpress.network.aiohttp_transport import aiohttp_transport
from clinicpress.network.errors import (
    ConnectFailed,
    Dropped,
    FetchError,
    Hop,
    NoAnswer,
    NotResolved,
    RedirectFailed,
    Refused,
    TLSFailed,
)
from clinicpress.network.policy import Policy
from clinicpress.network.replies import (
    ENCODINGS,
    REDIRECTS,
    Answer,
    Cut,
    Fetched,
    Read,
    Walked,
    backoff_delay,
    decoded,
    read_if_ok,
    retry_after,
    retryable,
    whole,
)

__all__ = ["Fetcher", "fetch", "parse"]

Slot = Callable[[str], contextlib.AbstractAsyncContextManager[None]]
A = TypeVar("A", bound=Answer)


class Fetcher:
    """One run's fetching: the vetted resolver, one pinned transport, the cookies, the evidence.

    ``async with Fetcher(policy) as fetcher: got = await fetcher.fetch(url, accept=…, max_bytes=…)``.
    ``transport`` replaces the pinned network transport (tests: ``httpx.MockTransport``; hosts
    are vetted all the same); ``slot(host)`` is entered around each request (politeness).
    """

    def __init__(
        self, policy: Policy, *, transport: httpx.AsyncBaseTransport | None = None, slot: Slot | None = None
    ) -> None:
        self.policy = policy
        self.resolver = policy.resolver()
        limits = httpx.Limits(
            max_connections=policy.connections, max_keepalive_connections=policy.connections
        )
        self._transport = transport or aiohttp_transport(self.resolver.pinned, limits=limits)
        self._slot: Slot = slot or (lambda host: contextlib.nullcontext())
        self.cookies = httpx.Cookies()  # one jar per run, as a browser session would keep
        self._cookies_kept = False  # asking the jar costs a walk of it: most runs keep none
        self.reached = False  # some server answered (or TCP connected): the network works
        self._timeouts = httpx.Timeout(policy.timeout).as_dict()
        self._headers = {"User-Agent": policy.user_agent, "Accept-Encoding": ENCODINGS}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._transport.aclose()

    @property
    def network_seen(self) -> bool:
        """Evidence that the network works: a server answered, or a name resolved to a public address."""
        return self.reached or self.resolver.public_seen

    # -- the simple way: one URL, redirects followed, the whole body -----------------------
    async def fetch(
        self, url: str, *, accept: str, max_bytes: int, params: Mapping[str, str] | None = None
    ) -> Fetched:
        """GET ``url`` (with ``params`` added to its query): the final answer, its body whole.

        Raises a :class:`~.errors.FetchError`: refused, not resolved, no connection, a redirect
        walk that stops, a 2xx body over ``max_bytes`` (``TooLarge``) or not decodable.
        """
        plan = read_if_ok(max_bytes)
        walked = await self.walk(
            parse(url, params), lambda at: self.attempt("GET", at, accept=accept, read=plan)
        )
        return replace(walked.answer, hops=walked.hops)

    async def shareable(self, url: str) -> bool:
        """Whether ``url`` may be named to a third party (the archive, a registry): an http(s)
        URL whose host is public without any allowance. ``allow_private_*`` let the tool connect
        to an intranet host; they never let its addresses leave for someone else."""
        try:
            parsed = parse(url)
        except FetchError:
            return False
        return (await self.resolver.vet_public(host_of(parsed))).allowed

    # -- the redirect walk ------------------------------------------------------------------
    async def walk(self, start: httpx.URL, hop: Callable[[httpx.URL], Awaitable[A]]) -> Walked[A]:
        """Ask ``hop`` for ``start``, then for each redirect's target, until an answer that is not a
        redirect. Raises :class:`RedirectFailed` (``hops`` set) for a Location that is not http(s)
        or cannot be read, a loop (the same URL with the same cookies), more than ``max_redirects``;
        a hop's own FetchError passes up with ``hops`` set."""
        url = start
        path = [str(url)]
        # The same URL with the same cookies again can only loop; with a changed cookie it may not
        # (sites that set a cookie and redirect back), and max_redirects bounds that case.
        seen = {(path[0], self._cookies_for(url))}
        hops: list[Hop] = []
        while True:
            try:
                got = await hop(url)
            except FetchError as exc:
                exc.hops = tuple(hops)
                raise
            location = got.location
            if got.status not in REDIRECTS or not location:
                return Walked(got, tuple(hops))
            location = location.strip()
            scheme = urlsplit(location).scheme.lower()
            if scheme and scheme not in ("http", "https"):
                why = f"redirect to a disallowed scheme ({scheme}:)"
                raise _stopped(path[-1], why, "scheme", got.status, location, hops)
            try:
                nxt = url.join(location).copy_with(fragment=None)
            except (httpx.InvalidURL, ValueError) as exc:
                why = f"redirects to a URL that cannot be read ({exc})"
                raise _stopped(path[-1], why, "unreadable", got.status, location, hops) from exc
            nxt_text = str(nxt)
            visit = (nxt_text, self._cookies_for(nxt))
            if visit in seen:
                why = "redirect loop: " + " → ".join(_short(p, 60) for p in [*path, nxt_text])
                raise _stopped(path[-1], why, "loop", got.status, nxt_text, hops)
            if len(hops) == self.policy.max_redirects:
                why = f"more than {self.policy.max_redirects} redirects"
                raise _stopped(path[-1], why, "too-many", got.status, nxt_text, hops)
            seen.add(visit)
            path.append(nxt_text)
            hops.append(Hop(got.status, nxt_text))
            url = nxt

    def _cookies_for(self, url: httpx.URL) -> frozenset[tuple[str, str, str]]:
        if not self._cookies_kept:
            return frozenset()
        host = host_of(url)
        return frozenset(
            (c.domain, c.name, c.value or "")
            for c in self.cookies.jar
            if host == c.domain.lstrip(".") or host.endswith("." + c.domain.lstrip("."))
        )

    # -- one hop, asked again while it is worth it ------------------------------------------
    async def attempt(
        self, method: str, url: httpx.URL, *, accept: str, read: Callable[[int, httpx.Headers], Read | None]
    ) -> Fetched:
        """:meth:`exchange`, asked again (``retries`` times) after a transient failure or a
        408/429/5xx, waiting what Retry-After asks (at most ``retry_after_cap``) or the backoff.
        A body that was read broken is a transient failure; one over the size or in an unknown
        coding raises at once."""
        tries = 0
        while True:
            tries += 1
            wait: float | None = None
            try:
                got = whole(await self.exchange(method, url, accept=accept, read=read))
            except FetchError as exc:
                exc.tries = tries
                if not exc.transient or tries > self.policy.retries:
                    raise
            else:
                got = replace(got, tries=tries)
                if not retryable(got.status) or tries > self.policy.retries:
                    return got
                wait = got.retry_after
                if wait is not None and wait > self.policy.retry_after_cap:
                    return got
            await asyncio.sleep(backoff_delay(self.policy.backoff, tries) if wait is None else wait)

    # -- one request -------------------------------------------------------------------------
    async def vet(self, url: httpx.URL) -> None:
        """Raise unless ``url`` may be connected to: http(s), a host the address rules allow."""
        if url.scheme not in ("http", "https"):
            raise Refused(str(url), f"{url.scheme}: is not an http(s) URL")
        host = host_of(url)
        vetting = await self.resolver.vet(host)
        if vetting.why is not None and vetting.literal:
            raise Refused(str(url), f"{vetting.why} is not allowed")
        if vetting.why is not None:
            raise Refused(str(url), f"{host} resolves to {vetting.why}, which is not allowed")
        if vetting.failure is not None:
            raise NotResolved(str(url), vetting.detail, vetting.failure)

    async def exchange(
        self,
        method: str,
        url: httpx.URL,
        *,
        accept: str,
        read: Callable[[int, httpx.Headers], Read | None],
        headers: Mapping[str, str] | None = None,
    ) -> Fetched:
        """One request to ``url`` (vetted first, every time: a DNS error is asked again), in the
        host's slot; ``read(status, headers)`` says how much of the body to read (None: none).
        A body cut short is no error here: ``cut`` says why."""
        await self.vet(url)
        host = host_of(url)
        try:
            async with self._slot(host):
                # Built in the slot: thousands of requests may wait for one, and need nothing yet.
                request = httpx.Request(
                    method,
                    url,
                    headers={**self._headers, "Accept": accept, **(headers or {})},
                    extensions={"timeout": self._timeouts},
                )
                if self._cookies_kept:
                    self.cookies.set_cookie_header(request)
                async with asyncio.timeout(2 * self.policy.timeout):  # the headers, however slowly sent
                    response = await self._transport.handle_async_request(request)
                self.reached = True
                response.request = request
                try:
                    if "set-cookie" in response.headers:  # most answers set none: skip the cookie work
                        self.cookies.extract_cookies(response)
                        self._cookies_kept = True
                    plan = read(response.status_code, response.headers)
                    body, cut = await self._body(response, plan) if plan is not None else (b"", None)
                finally:
                    await response.aclose()
        except (httpx.HTTPError, TimeoutError) as exc:  # the one boundary: foreign errors become ours
            raise self._failure(url, host, exc) from exc
        return Fetched(
            url=str(url),
            status=response.status_code,
            reason_phrase=response.reason_phrase,
            headers=response.headers,
            method=method,
            body=body,
            cut=cut,
            retry_after=_asked_to_wait(response.headers),
        )

    async def _body(self, response: httpx.Response, plan: Read) -> tuple[bytes, Cut | None]:
        # Raw bytes: decompression is ours, with the same bound. A read that breaks or times out
        # is no error here: the body is marked cut, and nothing is concluded from what is missing.
        chunks: list[bytes] = []
        size = 0
        cut: Cut | None = None
        try:
            async with asyncio.timeout(self.policy.timeout):
                async for chunk in response.aiter_raw():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > plan.limit:
                        cut = "size"
                        break
        except (TimeoutError, httpx.HTTPError):
            cut = "broken"
        if not plan.keep:
            return b"", None
        data = decoded(b"".join(chunks), response.headers.get("content-encoding"), plan.limit + 1)
        if data is None:
            return b"", "encoding"
        if len(data) > plan.limit:
            return data[: plan.limit], "size"
        return data, cut

    def _failure(self, url: httpx.URL, host: str, exc: BaseException) -> FetchError:
        """What a foreign error (httpx's, a timeout) means; :meth:`exchange` raises it ``from`` it."""
        failure = _failure(str(url), host, exc, self.policy.timeout)
        if failure.reached:
            self.reached = True
        return failure


def parse(url: str, params: Mapping[str, str] | None = None) -> httpx.URL:
    """``url`` (with ``params`` merged into its query) if it is an http(s) URL with a host."""
    try:
        parsed = httpx.URL(url)
        if params:
            parsed = parsed.copy_merge_params(dict(params))
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError(url, f"not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise Refused(url, "not an http(s) URL")
    return parsed


def _failure(url: str, host: str, exc: BaseException, timeout: float) -> FetchError:
    """What a foreign error means for a fetch (the caller raises it ``from`` the original)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectFailed(url, f"connection to {host} timed out")
    if isinstance(exc, httpx.ConnectError):
        if _tls_failure(exc):
            return TLSFailed(url, f"TLS/certificate error ({exc})")
        return ConnectFailed(url, f"could not connect to {host} ({str(exc) or type(exc).__name__})")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return NoAnswer(url, f"no answer within {timeout:g} s")
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        return Dropped(url, f"connection dropped ({type(exc).__name__}: {exc})")
    return FetchError(url, f"request failed ({type(exc).__name__}: {exc})")


def _tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLError | ssl.CertificateError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _asked_to_wait(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    return None if value is None else retry_after(value, clock.now())


def _stopped(
    url: str,
    why: str,
    kind: Literal["scheme", "unreadable", "loop", "too-many"],
    status: int,
    target: str,
    hops: Sequence[Hop],
) -> RedirectFailed:
    stop = RedirectFailed(url, why, kind=kind, status=status, target=target)
    stop.hops = tuple(hops)
    return stop


def _short(url: str, limit: int) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def fetch(
    url: str,
    *,
    policy: Policy,
    accept: str,
    max_bytes: int,
    params: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Fetched:
    """One URL, the safe way (see the module docstring), for synchronous callers: a fetcher and an
    event loop of its own (from async code, use :class:`Fetcher`)."""

    async def one() -> Fetched:
        async with Fetcher(policy, transport=transport) as fetcher:
            return await fetcher.fetch(url, accept=accept, max_bytes=max_bytes, params=params)

    return asyncio.run(one())
