"""One check run's I/O: the pinned HTTP clients, redirects walked by hand, retries.

* GET when the body is needed (soft-404 titles, ``#fragment`` ids: :mod:`.bodies`), else HEAD.
  A HEAD that gets any 4xx but 408/429, or 501 or 999, is asked again with GET; 5xx on HEAD
  is retried as HEAD, with one last GET once retries are spent.
* Redirects are followed by hand so that every hop is recorded and every hop's host is
  vetted against SSRF before we connect to it; the clients connect only to the addresses
  the run's :class:`~clinicpress.network.VettedResolver` vetted (no DNS rebinding).
* A 403 without bot-wall markers is asked once more with a browser User-Agent; a bot wall
  is never asked again. Transient failures are retried with backoff, honouring
  ``Retry-After`` up to ``RETRY_AFTER_CAP``.
* One client over aiohttp (:func:`~clinicpress.network.aiohttp_transport.aiohttp_transport`, pinned
  like the httpcore one): measured on the mixed bench farm it needs half the CPU of httpcore
  spread over 32 small clients (httpcore's pool work grows with the square of a client's
  connections, so it needed them spread); aiohttp's pool does not, one connector holds them all.

What a reply means is decided in :mod:`.classify`; pacing in :mod:`.politeness`.

A little over 400 lines on purpose: the request loop, the redirect walk and the retry policy
share one run's state (the client, the resolver, the host slots) and read best together.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Literal
from urllib.parse import urlsplit

import httpx

from clinicpress.checks.linkcheck_html import (
    Page,
    analyse_page,
    bot_wall_marker,
    checkable_fragment,
)
from clinicpress.checks.links.bodies import LOCATION, Body, read_body, stash_location
from clinicpress.checks.links.classify import (
    REDIRECTS,
    WALL_CODES,
    Reply,
    Verdict,
    anchor_verdict,
    classify,
    head_unreliable,
    loop_reason,
    retry_after,
    retryable,
    went_home,
)
from clinicpress.checks.links.politeness import Politeness, backoff_delay
from clinicpress.checks.links.report import Outcome, internal_error, short
from clinicpress.checks.links.targets import Target, TargetReader
from clinicpress.checks.model import LinkStatus
from clinicpress.network import NetFailure, VettedResolver, host_of
from clinicpress.network.aiohttp_transport import aiohttp_transport
from clinicpress.settings.links import HostPolicy, LinkCheckSettings

__all__ = ["CONNECTIONS_PER_CLIENT", "RETRY_AFTER_CAP", "LinkRun"]

RETRY_AFTER_CAP = 5.0  # seconds; a server asking for longer is not waited for
CONNECTIONS_PER_CLIENT = 128  # one client holds the run's connections (aiohttp's pool: no square law)


class LinkRun:
    """Shared state of one check run: the clients, politeness, the vetted resolver, evidence."""

    def __init__(self, settings: LinkCheckSettings, backoff: float) -> None:
        self.settings = settings
        self.backoff = backoff
        self.targets = TargetReader(settings)
        self.polite = Politeness(settings)
        self.resolver = VettedResolver(
            allowed_hosts=settings.allow_private_hosts,
            allowed_networks=settings.allow_private_networks,
            timeout=settings.timeout,
        )
        self.fetches: dict[str, asyncio.Task[Outcome]] = {}
        self.want_anchors: set[str] = set()  # fetch keys some input URL has a #fragment for
        self.http_seen = False  # some HTTP response (or TLS handshake) came back
        # httpx times each socket operation; this bounds a whole response's headers (slow drip).
        self.deadline = 2 * settings.timeout
        self._clients: list[httpx.AsyncClient] = []
        self._transport_of: dict[httpx.AsyncClient, httpx.AsyncBaseTransport] = {}
        self._turn = itertools.count()

    @property
    def network_seen(self) -> bool:
        """Evidence that the network works: any HTTP response, or a name resolved to a public address."""
        return self.http_seen or self.resolver.public_seen

    def policy(self, host: str) -> HostPolicy:
        return self.polite.policy(host)

    def _kind_of(self, url: httpx.URL) -> tuple[Literal["doi", "pmid"] | None, str]:
        ident = self.targets.identifier(str(url))
        return (ident.kind, ident.value) if ident is not None else (None, "")

    # -- clients ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def clients(self, transport: httpx.AsyncBaseTransport | None = None) -> AsyncIterator[None]:
        """The run's clients, open. ``transport`` replaces the pinned network transport (tests:
        ``httpx.MockTransport``); hosts are vetted before every request either way."""
        total = self.settings.concurrency
        count = 1 if transport is not None else max(1, math.ceil(total / CONNECTIONS_PER_CLIENT))
        async with contextlib.AsyncExitStack() as stack:
            self._clients = [
                await stack.enter_async_context(self._client(math.ceil(total / count), transport))
                for _ in range(count)
            ]
            try:
                yield
            finally:
                self._clients = []
                self._transport_of = {}

    def _client(self, connections: int, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        transport = transport or aiohttp_transport(self.resolver.pinned, limits=limits)
        client = httpx.AsyncClient(
            follow_redirects=False,  # by hand: every hop is recorded and vetted
            timeout=httpx.Timeout(self.settings.timeout),
            transport=transport,
            headers={
                "User-Agent": self.settings.user_agent,
                "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                # Only what decode_content can decompress with a bound (no br/zstd).
                "Accept-Encoding": "gzip, deflate",
            },
            trust_env=False,  # no env proxies: they would resolve and connect where we did not vet
            event_hooks={"response": [stash_location]},
        )
        client._cookies = _LeanCookies()  # httpx ≥ 0.23 keeps the store there; the setter would wrap it
        self._transport_of[client] = transport
        return client

    async def _send(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        """``client.send(request, stream=True)`` for a request built by ``client``, minus the
        client's per-request layers that a check does not use (auth and redirect generators,
        mounts, an elapsed-time stream wrapper): ~15 % of a run's CPU on the mixed bench farm.
        What the check relies on is kept: the client's transport, its Location hook, its cookies.
        """
        response = await self._transport_of[client].handle_async_request(request)
        try:
            response.request = request
            await stash_location(response)
            client.cookies.extract_cookies(response)
        except BaseException:
            await response.aclose()
            raise
        return response

    # -- the input URLs -----------------------------------------------------------------
    def start(self, urls: Sequence[str]) -> list[asyncio.Future[Outcome]]:
        """Read every URL first (so shared fetches know which need anchors), then check them."""
        targets = [self._read_safely(url) for url in urls]
        for target in targets:
            if (
                isinstance(target, Target)
                and target.fragment
                and checkable_fragment(target.fragment)
                and self.policy(host_of(target.fetch)).check_fragments
            ):
                self.want_anchors.add(str(target.fetch))
        return [asyncio.ensure_future(self.check(t)) for t in targets]

    def _read_safely(self, url: str) -> Target | Outcome:
        try:
            return self.targets.read(url)
        except Exception as exc:  # a check returns a result for every URL, whatever happens
            return internal_error(url, exc)

    async def check(self, target: Target | Outcome) -> Outcome:
        if isinstance(target, Outcome):
            return target
        try:
            key = str(target.fetch)
            # Two cited URLs differing only by #fragment share one fetch.
            task = self.fetches.get(key)
            if task is None:
                task = asyncio.ensure_future(self._follow(target))
                self.fetches[key] = task
            outcome = replace(await asyncio.shield(task), url=target.url)
            return self._check_fragment(target, outcome)
        except Exception as exc:  # a check returns a result for every URL, whatever happens
            return internal_error(target.url, exc)

    def _check_fragment(self, target: Target, outcome: Outcome) -> Outcome:
        fragment = target.fragment
        if not fragment or not checkable_fragment(fragment):
            return outcome
        if outcome.status not in (LinkStatus.OK, LinkStatus.REDIRECTED):
            return outcome
        hosts = [host_of(target.fetch)]
        if outcome.final_url:
            with contextlib.suppress(httpx.InvalidURL, ValueError):
                hosts.append(host_of(httpx.URL(outcome.final_url)))
        if not all(self.policy(h).check_fragments for h in hosts):
            return outcome
        verdict = anchor_verdict(
            fragment, outcome.page, outcome.final_url, Verdict(outcome.status, outcome.reason)
        )
        return replace(outcome, status=verdict.status, reason=verdict.reason)

    # -- a redirect chain ---------------------------------------------------------------
    def _wants_body(self, url: httpx.URL, key: str) -> bool:
        return key in self.want_anchors or self.policy(host_of(url)).soft_404

    async def _follow(self, target: Target) -> Outcome:
        """Walk the redirect chain from ``target``; classify where it ends."""
        client = self._clients[next(self._turn) % len(self._clients)]
        key = str(target.fetch)
        anchors = key in self.want_anchors
        url = target.fetch
        first_status: int | None = None  # of the first redirect: decides ok vs redirected
        last_status: int | None = None  # of the redirect that led to ``url``
        hops = 0
        # The same URL with the same cookies again can only loop; with a changed cookie it may not
        # (sites that set a cookie and redirect back), and max_redirects bounds that case.
        seen = {(key, _cookies_for(client, url))}
        path = [key]  # the chain so far, as text (httpx builds str(url) anew on each call)
        use_get = self._wants_body(url, key)
        while True:
            final_url = path[-1] if hops else None
            got = await self._fetch(client, url, use_get, anchors)
            if isinstance(got, Outcome):
                if hops and got.status is LinkStatus.REFUSED:
                    got = replace(got, reason=f"redirect to {short(path[-1])} refused: {got.reason}")
                elif hops:
                    got = replace(got, reason=f"after redirect to {short(path[-1])}: {got.reason}")
                return replace(got, http_status=got.http_status or last_status, final_url=final_url)
            if got.status not in REDIRECTS or not got.location:
                home = bool(final_url) and self.policy(host_of(target.fetch)).soft_404
                verdict = classify(
                    got,
                    final_url=final_url,
                    first_status=first_status,
                    hops=hops,
                    kind=target.kind,
                    ident=target.ident,
                    went_home=home and went_home(target.fetch.path, final_url or ""),
                )
                return Outcome("", verdict.status, verdict.reason, got.status, final_url, page=got.page)

            location = got.location.strip()
            scheme = urlsplit(location).scheme.lower()
            if scheme and scheme not in ("http", "https"):
                reason = f"redirect to a disallowed scheme ({scheme}:)"
                return Outcome("", LinkStatus.REFUSED, reason, got.status, location)
            try:
                nxt = url.join(location).copy_with(fragment=None)
            except (httpx.InvalidURL, ValueError) as exc:
                # Browsers are more lenient than httpx: we cannot tell, so we do not block.
                reason = f"redirects to a URL the checker cannot read ({exc})"
                return Outcome("", LinkStatus.UNVERIFIED, reason, got.status, final_url)
            nxt_text = str(nxt)
            visit = (nxt_text, _cookies_for(client, nxt))
            if visit in seen:
                return Outcome("", LinkStatus.BROKEN, loop_reason(path, nxt_text), got.status, nxt_text)
            if hops == self.settings.max_redirects:
                reason = f"more than {self.settings.max_redirects} redirects"
                return Outcome("", LinkStatus.BROKEN, reason, got.status, nxt_text)
            seen.add(visit)
            path.append(nxt_text)
            if first_status is None:
                first_status = got.status
            last_status = got.status
            hops += 1
            url = nxt
            # A server that mishandled HEAD once gets GET for the chain.
            use_get = got.method == "GET" or self._wants_body(url, key)

    # -- one hop, with retries, the HEAD → GET fallback and the browser retry -----------
    async def _fetch(
        self, client: httpx.AsyncClient, url: httpx.URL, use_get: bool, anchors: bool
    ) -> Reply | Outcome:
        method = "GET" if use_get else "HEAD"
        retries = self.settings.retries
        attempt = 0  # retries spent
        browser_tried = False
        while True:
            got = await self._request(client, method, url, attempt + 1, anchors=anchors)
            if isinstance(got, Reply):
                code = got.status
                if got.wall:
                    return got  # asking a bot wall again does not get past it
                if method == "HEAD" and head_unreliable(code):
                    method = "GET"  # not a retry: HEAD was the wrong question
                    continue
                if code == 403 and not browser_tried:
                    # Once, with a browser's User-Agent: does the page exist behind a UA filter?
                    browser_tried = True
                    other = await self._request(
                        client, "GET", url, attempt + 1, anchors=anchors, browser=True
                    )
                    if isinstance(other, Reply):
                        return other if other.wall else replace(got, browser=other.status)
                    return got
                if not retryable(code):
                    return got
                wait = got.retry_after
                if wait is not None and wait > RETRY_AFTER_CAP:
                    return replace(got, reason_phrase=f"{got.reason_phrase}; asked to wait {wait:.0f} s")
                if attempt >= retries:
                    if method == "HEAD" and code >= 500:
                        method = "GET"  # last chance: some servers fail only on HEAD
                        attempt = retries + 1  # no further retries after this one
                        continue
                    return got
            else:
                if not got.transient or attempt >= retries:
                    return got
                wait = None
            attempt += 1
            await asyncio.sleep(backoff_delay(self.backoff, attempt) if wait is None else wait)

    async def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        tries: int,
        *,
        anchors: bool = False,
        browser: bool = False,
    ) -> Reply | Outcome:
        """One request: headers within the deadline, at most MAX_BODY_BYTES of body read."""
        vetted = await self._vet_host(url)  # every attempt: a transient DNS failure is asked again
        if vetted is not None:
            return vetted
        host = host_of(url)
        policy = self.policy(host)
        headers = {"User-Agent": self.settings.browser_user_agent} if browser else None
        request = client.build_request(method, url, headers=headers)
        body: Body | None = None
        try:
            async with self.polite.slot(host):
                async with asyncio.timeout(self.deadline):
                    response = await self._send(client, request)
                self.http_seen = True
                try:
                    body = await read_body(response, method, policy, anchors, self.settings.timeout)
                finally:
                    await response.aclose()
        except httpx.ConnectTimeout:
            return _unverified(f"connection to {host} timed out", tries, net="connect")
        except httpx.ConnectError as exc:
            if _tls_failure(exc):
                self.http_seen = True  # TCP worked; retrying will not fix a certificate
                return Outcome("", LinkStatus.UNVERIFIED, f"TLS/certificate error ({exc})")
            return _unverified(
                f"could not connect to {host} ({exc or type(exc).__name__})", tries, net="connect"
            )
        except (httpx.TimeoutException, TimeoutError):
            self.http_seen = True  # connect has its own, shorter timeout: this one got past it
            return _unverified(f"no answer within {self.settings.timeout:g} s", tries)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            self.http_seen = True
            return _unverified(f"connection dropped ({type(exc).__name__}: {exc})", tries)
        except httpx.HTTPError as exc:
            return Outcome("", LinkStatus.UNVERIFIED, f"request failed ({type(exc).__name__}: {exc})")
        page: Page | None = None
        wall: str | None = None
        if body is not None:  # parsing outside the semaphores: it needs no connection
            if body.kind == "page":
                page = analyse_page(body.data, body.content_type, soft_404=policy.soft_404, anchors=anchors)
                page = replace(page, complete=body.complete)
            else:
                wall = bot_wall_marker(response.headers, body.data)
        elif response.status_code in WALL_CODES:
            wall = bot_wall_marker(response.headers, None)
        return Reply(
            status=response.status_code,
            reason_phrase=response.reason_phrase,
            location=response.extensions.get(LOCATION),
            retry_after=retry_after(response.headers.get("retry-after"), time.time()),
            method=method,
            tries=tries,
            page=page,
            wall=wall,
        )

    # -- SSRF ---------------------------------------------------------------------------
    async def _vet_host(self, url: httpx.URL) -> Outcome | None:
        """None if we may connect to ``url``'s host; else refused, or a DNS failure."""
        host = host_of(url)
        vetting = await self.resolver.vet(host)
        if vetting.why is not None:
            if vetting.literal:
                return Outcome("", LinkStatus.REFUSED, f"{vetting.why} is not allowed")
            return Outcome("", LinkStatus.REFUSED, f"{host} resolves to {vetting.why}, which is not allowed")
        if vetting.failure is not None:
            transient = vetting.failure == "dns-error"
            return Outcome(
                "", LinkStatus.UNVERIFIED, vetting.detail, net=vetting.failure, transient=transient
            )
        return None


class _LeanCookies(httpx.Cookies):
    """httpx's cookie store, minus the work for the responses that set none (most of them):
    httpx builds two urllib compatibility objects per response to look (~4 % of a run's CPU)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


def _cookies_for(client: httpx.AsyncClient, url: httpx.URL) -> frozenset[tuple[str, str, str]]:
    host = host_of(url)
    return frozenset(
        (c.domain, c.name, c.value or "")
        for c in client.cookies.jar
        if host == c.domain.lstrip(".") or host.endswith("." + c.domain.lstrip("."))
    )


def _tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLError | ssl.CertificateError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _unverified(reason: str, tries: int, net: NetFailure | None = None) -> Outcome:
    """A transient failure: retried by _fetch, unverified when retries run out."""
    reason = f"{reason} ({tries} tries)" if tries > 1 else reason
    return Outcome("", LinkStatus.UNVERIFIED, reason, net=net, transient=True)
