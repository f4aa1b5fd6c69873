"""Check cited-source links: one status per distinct URL, never an exception.

Vocabulary and rules: DESIGN.md, "Link statuses", "Rules the checks enforce"
and "Reliability rules" (SSRF). A false ``broken`` blocks a good article and
a false ``ok`` prints a dead citation on a patient handout, so anything we
cannot establish is ``unverified``, never guessed.

Decisions worth knowing:

* HEAD first, then GET when HEAD gets any 4xx but 408/429, or 501 or 999:
  HEAD is only a cheaper way to ask, and many servers, CDNs and bot walls
  answer HEAD wrongly (405, 403, 404, 400) while GET works. Trusting a HEAD
  failure would block good articles; the price is one extra GET for links
  that really are gone. 5xx on HEAD is retried as HEAD (a server error is
  rarely method specific), with one last GET once retries are spent.
* Redirects are followed by hand so that every hop is recorded and every
  hop's host is vetted against SSRF before we connect to it.
* Network down: the checker keeps evidence that the network works (any HTTP
  response, or a host name that resolved to a public address). If a run has
  no such evidence and links failed with DNS or connect errors, every such
  link is ``unverified`` ("network down: ...") and the report carries one
  summary line. Only with evidence does a name that does not resolve
  (EAI_NONAME/EAI_NODATA) become ``broken`` ("host does not exist"). Edge
  case: a run with one link whose name fails DNS has no evidence, so it is
  network down and ``unverified``, never ``broken``.
* SSRF: literal IPs (including the inet_aton forms ``2130706433``,
  ``0x7f.1``, ``127.1`` that httpx passes through as host names and the C
  resolver turns into addresses) and every resolved address are vetted;
  one disallowed address refuses the host. Not done yet (later issue): the
  connection is not pinned to the vetted address, httpx resolves again when
  it connects, so a DNS answer that changes in between (rebinding) is not
  caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import ipaddress
import random
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import unquote, urlsplit

import httpx

from clinicpress.checks.model import LinkResult, LinkStatus
from clinicpress.site import LinkCheckSettings

__all__ = ["LinkReport", "check_urls", "check_urls_async"]

MAX_BODY_BYTES = 1024 * 1024  # read at most this much of any body (connection reuse, not content)
RETRY_AFTER_CAP = 5.0  # seconds; a server asking for longer is not waited for
DEFAULT_BACKOFF = 0.5  # seconds; first retry waits ~this, doubling, with jitter
REASON_LIMIT = 300

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_BOT_WALL = frozenset({401, 403, 999})
_GONE = frozenset({404, 410})
# gaierror codes meaning "the resolver answered: no such name / no address".
_DNS_MISSING = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)
_MAILTO = re.compile(r"^[^@\s,;<>()\[\]\\\"]+@[^@\s,;<>()\[\]\\\"]+\.[^@\s,;<>()\[\]\\\".]+$")
_TEL = re.compile(r"^\+?[0-9().\- ]+$")
_C0_AND_SPACE = "".join(map(chr, range(0x21)))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Network-level outcome of a link, used to decide "network down" for the run.
NetFailure = Literal["dns-missing", "dns-error", "connect"]


@dataclass(frozen=True)
class LinkReport:
    results: dict[str, LinkResult]  # by URL, one per distinct input URL, input order
    network_down: bool
    summary: str | None  # one line when the network is down


def check_urls(urls: Sequence[str], settings: LinkCheckSettings) -> LinkReport:
    """Synchronous wrapper; from async code call :func:`check_urls_async`."""
    return asyncio.run(check_urls_async(urls, settings))


async def check_urls_async(
    urls: Sequence[str], settings: LinkCheckSettings, *, backoff: float = DEFAULT_BACKOFF
) -> LinkReport:
    """Check every distinct URL; ``backoff`` is the first retry delay (tests shrink it)."""
    unique = list(dict.fromkeys(urls))
    run = _Run(settings, backoff)
    async with run.client():
        done = await asyncio.gather(*(run.check(url) for url in unique), return_exceptions=True)
    outcomes = [
        item if isinstance(item, _Outcome) else _internal_error(url, item)
        for url, item in zip(unique, done, strict=True)
    ]
    return _finish(outcomes, network_seen=run.network_seen)


# --------------------------------------------------------------------------------------------
# internals


@dataclass(frozen=True)
class _Outcome:
    url: str
    status: LinkStatus
    reason: str
    http_status: int | None = None
    final_url: str | None = None
    net: NetFailure | None = None  # set when the link failed at DNS or connect level
    transient: bool = False  # worth another try (timeouts, dropped connections, DNS hiccups)

    def result(self) -> LinkResult:
        return LinkResult(
            url=self.url,
            status=self.status,
            reason=_one_line(self.reason),
            http_status=self.http_status,
            final_url=self.final_url,
        )


@dataclass(frozen=True)
class _Reply:
    """A response's status line and the headers we act on (the body is already drained)."""

    status: int
    reason_phrase: str
    location: str | None
    retry_after: float | None
    method: str
    tries: int


@dataclass(frozen=True)
class _Resolution:
    addresses: tuple[IPAddress, ...] = ()
    failure: NetFailure | None = None
    detail: str = ""


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def _short(url: str, limit: int = 120) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def _internal_error(url: str, exc: BaseException) -> _Outcome:
    return _Outcome(url, LinkStatus.UNVERIFIED, f"check failed unexpectedly ({type(exc).__name__})")


def _finish(outcomes: list[_Outcome], *, network_seen: bool) -> LinkReport:
    failed = [o for o in outcomes if o.net is not None]
    network_down = bool(failed) and not network_seen
    final: dict[str, LinkResult] = {}
    for o in outcomes:
        if o.net is not None and network_down:
            o = replace(o, status=LinkStatus.UNVERIFIED, reason=f"network down: {o.reason}")
        elif o.net == "dns-missing":
            # The resolver answers for other hosts in this run, so this name really does not exist.
            o = replace(o, status=LinkStatus.BROKEN, reason=f"host does not exist: {o.reason}")
        final[o.url] = o.result()
    summary = None
    if network_down:
        summary = (
            f"network down: none of {len(failed)} sources could be reached (DNS/connect failed); "
            f"all left unverified"
        )
    return LinkReport(results=final, network_down=network_down, summary=summary)


def _host_of(url: httpx.URL) -> str:
    # raw_host is what httpcore connects to (IDNA-encoded, IPv6 without brackets).
    return url.raw_host.decode("ascii", "replace").lower()


def _literal_ip(host: str) -> IPAddress | None:
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


def _disallowed(addr: IPAddress) -> str | None:
    """Why connecting to ``addr`` is refused, or None for a public address."""
    if isinstance(addr, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = addr.ipv4_mapped or addr.sixtofour
        if embedded is None and addr.teredo is not None:
            embedded = addr.teredo[1]
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        elif embedded is None and int(addr) >> 32 == 0 and int(addr) > 1:
            embedded = ipaddress.IPv4Address(int(addr))  # deprecated IPv4-compatible ::a.b.c.d
        if embedded is not None:
            why = _disallowed(embedded)
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


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLError | ssl.CertificateError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _vet_non_http(url: str, scheme: str, rest: str) -> _Outcome:
    if scheme == "mailto":
        addresses = [a.strip() for a in unquote(rest.split("?", 1)[0]).split(",")]
        if addresses and all(_MAILTO.match(a) for a in addresses):
            return _Outcome(url, LinkStatus.SKIPPED, "email address: not checked")
        return _Outcome(url, LinkStatus.REFUSED, "malformed mailto: link (expected mailto:name@example.org)")
    number = unquote(rest).split(";", 1)[0]
    if _TEL.match(number) and sum(c.isdigit() for c in number) >= 3:
        return _Outcome(url, LinkStatus.SKIPPED, "phone number: not checked")
    return _Outcome(url, LinkStatus.REFUSED, "malformed tel: link (expected tel:+1-555-0100)")


class _Run:
    """Shared state of one check run: the client, semaphores, DNS cache, network evidence."""

    def __init__(self, settings: LinkCheckSettings, backoff: float) -> None:
        self.settings = settings
        self.backoff = backoff
        self.excludes = [re.compile(p) for p in settings.exclude]
        self.allowed = {h.strip().strip("[]").lower().rstrip(".") for h in settings.allow_private_hosts}
        self.global_sem = asyncio.Semaphore(settings.concurrency)
        self.host_sems: dict[str, asyncio.Semaphore] = {}
        self.dns: dict[str, _Resolution] = {}
        self.dns_locks: dict[str, asyncio.Lock] = {}
        self.fetches: dict[str, asyncio.Task[_Outcome]] = {}
        # Evidence that the network works: any HTTP response, or a name resolved to a public address.
        self.network_seen = False
        # httpx times each socket operation; this bounds a whole response's headers (slow drip).
        self.deadline = 2 * settings.timeout
        self._client: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        n = self.settings.concurrency
        async with httpx.AsyncClient(
            follow_redirects=False,  # by hand: every hop is recorded and vetted
            timeout=httpx.Timeout(self.settings.timeout),
            # A small pool: httpcore's pool work grows with the square of open connections.
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            headers={
                "User-Agent": self.settings.user_agent,
                "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            },
            trust_env=False,  # no env proxies: they would resolve and connect where we did not vet
            event_hooks={"response": [_stash_location]},
            verify=_tls_context(),
        ) as client:
            self._client = client
            try:
                yield client
            finally:
                self._client = None

    # -- one link --------------------------------------------------------
    async def check(self, url: str) -> _Outcome:
        try:
            return await self._check(url)
        except Exception as exc:  # a check returns a result for every URL, whatever happens
            return _internal_error(url, exc)

    async def _check(self, url: str) -> _Outcome:
        # Browsers drop tabs/newlines and outer control characters; read the scheme as they would.
        cleaned = re.sub(r"[\t\n\r]", "", url).strip(_C0_AND_SPACE)
        scheme, sep, rest = cleaned.partition(":")
        scheme = scheme.lower() if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme) else ""
        if scheme not in ("http", "https", "mailto", "tel"):
            return _Outcome(url, LinkStatus.REFUSED, _scheme_reason(scheme, rest))
        for pattern in self.excludes:
            if pattern.search(url):
                return _Outcome(url, LinkStatus.SKIPPED, f"excluded by config ({pattern.pattern})")
        if scheme in ("mailto", "tel"):
            return _vet_non_http(url, scheme, rest)
        try:
            target = httpx.URL(cleaned)
        except (httpx.InvalidURL, ValueError) as exc:
            # httpx rejects some spellings browsers accept (0177.0.0.1): still name an address we refuse.
            try:
                literal = _literal_ip(urlsplit(cleaned).hostname or "")
            except ValueError:
                literal = None
            why = _disallowed(literal) if literal is not None else None
            if why:
                return _Outcome(url, LinkStatus.REFUSED, f"{why} is not allowed")
            return _Outcome(url, LinkStatus.BROKEN, f"not a valid URL ({exc})")
        if not target.raw_host:
            return _Outcome(url, LinkStatus.BROKEN, "not a valid URL (no host)")
        target = target.copy_with(fragment=None)
        # Two cited URLs differing only by #fragment share one fetch.
        key = str(target)
        task = self.fetches.get(key)
        if task is None:
            task = asyncio.ensure_future(self._follow(target))
            self.fetches[key] = task
        outcome = await asyncio.shield(task)
        return replace(outcome, url=url)

    async def _follow(self, start: httpx.URL) -> _Outcome:
        """Walk the redirect chain from ``start``; classify where it ends."""
        url = start
        first_status: int | None = None  # of the first redirect: decides ok vs redirected
        last_status: int | None = None  # of the redirect that led to ``url``
        hops = 0
        # The same URL with the same cookies again can only loop; with a changed cookie it may not
        # (sites that set a cookie and redirect back), and max_redirects bounds that case.
        seen = {(str(url), self._cookies_for(url))}
        path = [str(url)]
        use_get = False
        while True:
            final_url = str(url) if hops else None
            got = await self._fetch(url, use_get)
            if isinstance(got, _Outcome):
                if hops and got.status is LinkStatus.REFUSED:
                    got = replace(got, reason=f"redirect to {_short(str(url))} refused: {got.reason}")
                elif hops:
                    got = replace(got, reason=f"after redirect to {_short(str(url))}: {got.reason}")
                return replace(got, http_status=got.http_status or last_status, final_url=final_url)
            use_get = got.method == "GET"  # a server that mishandled HEAD once gets GET for the chain
            if got.status not in _REDIRECTS or not got.location:
                return self._classify(got, final_url, first_status)

            location = got.location.strip()
            scheme = urlsplit(location).scheme.lower()
            if scheme and scheme not in ("http", "https"):
                reason = f"redirect to a disallowed scheme ({scheme}:)"
                return _Outcome("", LinkStatus.REFUSED, reason, got.status, location)
            try:
                nxt = url.join(location).copy_with(fragment=None)
            except (httpx.InvalidURL, ValueError) as exc:
                # Browsers are more lenient than httpx: we cannot tell, so we do not block.
                reason = f"redirects to a URL the checker cannot read ({exc})"
                return _Outcome("", LinkStatus.UNVERIFIED, reason, got.status, final_url)
            visit = (str(nxt), self._cookies_for(nxt))
            if visit in seen:
                loop = " → ".join(_short(p, 60) for p in [*path, str(nxt)])
                return _Outcome("", LinkStatus.BROKEN, f"redirect loop: {loop}", got.status, str(nxt))
            if hops == self.settings.max_redirects:
                reason = f"more than {self.settings.max_redirects} redirects"
                return _Outcome("", LinkStatus.BROKEN, reason, got.status, str(nxt))
            seen.add(visit)
            path.append(str(nxt))
            if first_status is None:
                first_status = got.status
            last_status = got.status
            hops += 1
            url = nxt

    def _classify(self, got: _Reply, final_url: str | None, first_status: int | None) -> _Outcome:
        code = got.status
        phrase = f"{code} {got.reason_phrase}".strip()
        tries = f" after {got.tries} tries" if got.tries > 1 else ""
        via = f" (redirected to {_short(final_url)})" if final_url else ""
        if 200 <= code < 300:
            if final_url and first_status in _PERMANENT:
                return _Outcome(
                    "",
                    LinkStatus.REDIRECTED,
                    f"moved permanently ({first_status}): cite {_short(final_url)} instead",
                    code,
                    final_url,
                )
            reason = f"{phrase} via temporary redirect ({first_status})" if final_url else phrase
            return _Outcome("", LinkStatus.OK, reason, code, final_url)
        if code in _GONE:
            return _Outcome("", LinkStatus.BROKEN, f"{phrase}{via}", code, final_url)
        if code in _BOT_WALL:
            return _Outcome(
                "",
                LinkStatus.BOT_BLOCKED,
                f"{phrase}{via}: likely a bot wall; open it in a browser to confirm",
                code,
                final_url,
            )
        if code == 429:
            return _Outcome(
                "", LinkStatus.UNVERIFIED, f"rate limited ({phrase}){tries}{via}", code, final_url
            )
        if _retryable(code):
            return _Outcome("", LinkStatus.UNVERIFIED, f"server error {phrase}{tries}{via}", code, final_url)
        if code in _REDIRECTS:
            return _Outcome(
                "", LinkStatus.UNVERIFIED, f"{phrase} without a Location header{via}", code, final_url
            )
        if 400 <= code < 500:
            return _Outcome("", LinkStatus.BROKEN, f"HTTP {phrase}{via}", code, final_url)
        return _Outcome("", LinkStatus.UNVERIFIED, f"unexpected HTTP status {phrase}{via}", code, final_url)

    # -- one hop, with retries and the HEAD → GET fallback ---------------
    async def _fetch(self, url: httpx.URL, use_get: bool) -> _Reply | _Outcome:
        method = "GET" if use_get else "HEAD"
        retries = self.settings.retries
        attempt = 0  # retries spent
        while True:
            got = await self._request(method, url, attempt + 1)
            if isinstance(got, _Reply):
                code = got.status
                if method == "HEAD" and _head_unreliable(code):
                    method = "GET"  # not a retry: HEAD was the wrong question
                    continue
                if not _retryable(code):
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
            await asyncio.sleep(self._backoff(attempt) if wait is None else wait)

    def _backoff(self, attempt: int) -> float:
        # Jitter spreads retries of many links to one host; not security relevant.
        return float(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))  # noqa: S311

    async def _request(self, method: str, url: httpx.URL, tries: int) -> _Reply | _Outcome:
        """One request: headers within the deadline, at most MAX_BODY_BYTES of body drained."""
        assert self._client is not None
        vetted = await self._vet_host(url)  # every attempt: a transient DNS failure is asked again
        if vetted is not None:
            return vetted
        host = _host_of(url)
        host_sem = self.host_sems.setdefault(host, asyncio.Semaphore(self.settings.per_host))
        request = self._client.build_request(method, url)
        try:
            async with self.global_sem, host_sem:
                async with asyncio.timeout(self.deadline):
                    response = await self._client.send(request, stream=True)
                self.network_seen = True
                try:
                    if method == "GET":
                        await self._drain(response)
                finally:
                    await response.aclose()
        except httpx.ConnectTimeout:
            return _unverified(f"connection to {host} timed out", tries, net="connect")
        except httpx.ConnectError as exc:
            if _tls_failure(exc):
                self.network_seen = True  # TCP worked; retrying will not fix a certificate
                return _Outcome("", LinkStatus.UNVERIFIED, f"TLS/certificate error ({exc})")
            return _unverified(
                f"could not connect to {host} ({exc or type(exc).__name__})", tries, net="connect"
            )
        except (httpx.TimeoutException, TimeoutError):
            self.network_seen = True  # connect has its own, shorter timeout: this one got past it
            return _unverified(f"no answer within {self.settings.timeout:g} s", tries)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            self.network_seen = True
            return _unverified(f"connection dropped ({type(exc).__name__}: {exc})", tries)
        except httpx.HTTPError as exc:
            return _Outcome("", LinkStatus.UNVERIFIED, f"request failed ({type(exc).__name__}: {exc})")
        return _Reply(
            status=response.status_code,
            reason_phrase=response.reason_phrase,
            location=response.extensions.get(_LOCATION),
            retry_after=_retry_after(response.headers.get("retry-after")),
            method=method,
            tries=tries,
        )

    async def _drain(self, response: httpx.Response) -> None:
        # The status is known; the body only matters for reusing the connection. Raw bytes: no
        # decompression (a small gzip can expand enormously). Errors here do not change the result.
        read = 0
        with contextlib.suppress(TimeoutError, httpx.HTTPError):
            async with asyncio.timeout(self.settings.timeout):
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= MAX_BODY_BYTES:
                        break

    # -- SSRF and DNS ----------------------------------------------------
    async def _vet_host(self, url: httpx.URL) -> _Outcome | None:
        """None if we may connect to ``url``'s host; else refused, or a DNS failure."""
        host = _host_of(url)
        allowed = host.rstrip(".") in self.allowed
        literal = _literal_ip(host)
        if literal is not None:
            why = None if allowed else _disallowed(literal)
            return _Outcome("", LinkStatus.REFUSED, f"{why} is not allowed") if why else None
        resolution = await self._resolve(host)
        if resolution.failure is not None:
            transient = resolution.failure == "dns-error"
            return _Outcome(
                "", LinkStatus.UNVERIFIED, resolution.detail, net=resolution.failure, transient=transient
            )
        if allowed:
            return None
        for addr in resolution.addresses:
            why = _disallowed(addr)
            if why:
                return _Outcome("", LinkStatus.REFUSED, f"{host} resolves to {why}, which is not allowed")
        return None

    async def _resolve(self, host: str) -> _Resolution:
        # Cached per host per run (a lock so concurrent links to one host ask once); transient
        # failures are not cached, so a retry asks again.
        async with self.dns_locks.setdefault(host, asyncio.Lock()):
            cached = self.dns.get(host)
            if cached is not None:
                return cached
            resolution = await self._lookup(host)
            if resolution.failure != "dns-error":
                self.dns[host] = resolution
            return resolution

    async def _lookup(self, host: str) -> _Resolution:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.settings.timeout):
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in _DNS_MISSING:
                return _Resolution(failure="dns-missing", detail=f"{host} did not resolve ({exc.strerror})")
            return _Resolution(failure="dns-error", detail=f"DNS lookup of {host} failed ({exc.strerror})")
        except TimeoutError:
            return _Resolution(failure="dns-error", detail=f"DNS lookup of {host} timed out")
        except (UnicodeError, ValueError) as exc:
            return _Resolution(failure="dns-missing", detail=f"{host} is not a valid host name ({exc})")
        except OSError as exc:
            return _Resolution(failure="dns-error", detail=f"DNS lookup of {host} failed ({exc})")
        addresses = tuple(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if any(_disallowed(a) is None for a in addresses):
            self.network_seen = True  # a public answer: the resolver works
        return _Resolution(addresses=addresses)

    def _cookies_for(self, url: httpx.URL) -> frozenset[tuple[str, str, str]]:
        assert self._client is not None
        host = _host_of(url)
        return frozenset(
            (c.domain, c.name, c.value or "")
            for c in self._client.cookies.jar
            if host == c.domain.lstrip(".") or host.endswith("." + c.domain.lstrip("."))
        )


_LOCATION = "clinicpress.location"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~50 ms: once per process, not once per run. httpx's own
    # defaults (certifi, or SSL_CERT_FILE/SSL_CERT_DIR when set).
    return httpx.create_ssl_context()


async def _stash_location(response: httpx.Response) -> None:
    """Move Location out of httpx's way: we follow redirects by hand.

    Even with follow_redirects=False, httpx builds the next request from Location and raises
    on one it cannot parse (``javascript:…``, ``http://0177.0.0.1/``), losing the response.
    """
    location = response.headers.get("location")
    if location is not None:
        del response.headers["location"]
        response.extensions[_LOCATION] = location


def _retryable(code: int) -> bool:
    """Transient answers: request timeout, rate limit, any server error."""
    return code in (408, 429) or 500 <= code <= 599


def _head_unreliable(code: int) -> bool:
    """HEAD answers that GET may contradict (see the module docstring)."""
    return (400 <= code < 500 and code != 429 and code != 408) or code in (501, 999)


def _unverified(reason: str, tries: int, net: NetFailure | None = None) -> _Outcome:
    """A transient failure: retried by _fetch, unverified when retries run out."""
    reason = f"{reason} ({tries} tries)" if tries > 1 else reason
    return _Outcome("", LinkStatus.UNVERIFIED, reason, net=net, transient=True)


def _scheme_reason(scheme: str, rest: str) -> str:
    if not scheme:
        return "not an absolute http(s) URL (write https://…)"
    if scheme == "doi":
        return f"doi: links do not open in a browser (cite https://doi.org/{rest.lstrip('/')})"
    return f"{scheme}: links are not allowed in sources (only http, https, mailto, tel)"
