"""Check cited-source links: one status per distinct URL, never an exception.

Vocabulary and rules: DESIGN.md, "Link statuses", "Rules the checks enforce"
and "Reliability rules" (SSRF). A false ``broken`` blocks a good article and
a false ``ok`` prints a dead citation on a patient handout, so anything we
cannot establish is ``unverified``, never guessed.

Decisions worth knowing:

* GET when the body is needed (soft-404 titles, ``#fragment`` ids: on by
  default, so GET is the normal case), HEAD otherwise. Bodies are read up to
  ``MAX_BODY_BYTES`` (gzip/deflate decompressed with the same bound; other
  encodings are not asked for). A HEAD that gets any 4xx but 408/429, or 501
  or 999, is asked again with GET: many servers and CDNs answer HEAD wrongly.
  5xx on HEAD is retried as HEAD, with one last GET once retries are spent.
* Redirects are followed by hand so that every hop is recorded and every
  hop's host is vetted against SSRF before we connect to it.
* Soft-404: a 2xx whose <title> or first <h1> says "page not found" (whole
  phrases only: "Outcomes in 404 patients" is a real title), or a deep URL
  that redirects to a site's home page → ``broken``. The check parses only
  pages whose bytes contain a hint word (see linkcheck_html).
* ``#fragment``: checked against every id and name of the final page (opt-out
  per host, ``check_fragments``). Fragments a browser resolves without ids
  (``#top``, ``#:~:text=``, ``#/route``, ``#page=3``) are not checked; on a
  page that is not HTML the fragment is noted as not checked, never guessed.
* Bot walls: a 401/403/429/503/999 whose headers or body carry a bot-wall
  marker (Cloudflare ``cf-mitigated``, "Just a moment...", captchas, Akamai,
  DataDome, Imperva, …) → ``bot-blocked`` without retries; a 403 without
  markers is asked once more with a browser User-Agent: if that works it is
  ``bot-blocked`` (the page exists, it blocks checkers). A 403 that a browser
  User-Agent gets too, with no markers, is ``unverified``: not gone (no
  404/410) and not shown to be a bot wall; a human must look. 999 is only
  ever sent by bot walls: ``bot-blocked``. 401 (needs a login): ``unverified``.
* DOIs and PubMed IDs (``doi:10.…``, ``pmid:…``, doi.org and pubmed URLs) are
  checked at their resolver: a 404 there is ``broken`` ("DOI not found"); the
  resolver's redirect to the publisher is the normal case, ``ok`` (never
  ``redirected``: the DOI is the stable citation).
* Politeness: at most ``per_host`` requests in flight per host and at least
  ``min_interval`` seconds between request starts to one host (both with
  per-host overrides). For large runs the requests are spread over several
  ``httpx.AsyncClient``s of at most ``CONNECTIONS_PER_CLIENT`` connections:
  httpcore's pool work grows with the square of a client's connections.
* Network down: the checker keeps evidence that the network works (any HTTP
  response, or a host name that resolved to a public address). If a run has
  no such evidence and links failed with DNS or connect errors, every such
  link is ``unverified`` ("network down: ...") and the report carries one
  summary line. Only with evidence does a name that does not resolve
  (EAI_NONAME/EAI_NODATA) become ``broken`` ("host does not exist"). Edge
  case: a run with one link whose name fails DNS has no evidence, so it is
  network down and ``unverified``, never ``broken``. Batches (one Prefect
  task each) return raw outcomes plus their evidence; :func:`merge_batches`
  decides over the whole run. Cached results are not evidence.
* SSRF: literal IPs (including the inet_aton forms ``2130706433``,
  ``0x7f.1``, ``127.1`` that httpx passes through as host names and the C
  resolver turns into addresses) and every resolved address are vetted;
  one disallowed address refuses the host. ``allow_private_hosts`` (by name) and
  ``allow_private_networks`` (by address) make exceptions for tests and intranets.
* Connection pinning (DNS rebinding): a run resolves a name once (cached per run,
  transient failures excepted) and its clients connect only to the addresses that
  answer vetted (:class:`_PinnedBackend`), never resolving again: a second DNS answer
  that is private is never connected to, on any hop or retry. TLS still checks the
  certificate against the name. Several addresses: tried in the resolver's order, a new
  attempt every 250 ms until one connects (Happy Eyeballs, as httpx does for a name).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import ipaddress
import itertools
import math
import random
import re
import socket
import ssl
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit

import httpcore
import httpx
from pydantic import BaseModel, ConfigDict

from clinicpress.checks.linkcheck_html import (
    Page,
    analyse_page,
    bot_wall_marker,
    checkable_fragment,
    decode_content,
    fragment_present,
    is_html,
)
from clinicpress.checks.model import LinkResult, LinkStatus
from clinicpress.checks.settings import HostPolicy, LinkCheckSettings

if TYPE_CHECKING:
    from clinicpress.checks.cache import LinkCache

__all__ = [
    "BatchItem",
    "IPAddress",
    "IPNetwork",
    "LinkBatch",
    "LinkReport",
    "allowed_hosts",
    "check_batch",
    "check_batch_async",
    "check_urls",
    "check_urls_async",
    "disallowed_reason",
    "host_of",
    "literal_ip",
    "merge_batches",
    "plan_batches",
]

MAX_BODY_BYTES = 1024 * 1024  # read at most this much of any body
WALL_BODY_BYTES = 64 * 1024  # enough of an error page to find bot-wall markers
RETRY_AFTER_CAP = 5.0  # seconds; a server asking for longer is not waited for
DEFAULT_BACKOFF = 0.5  # seconds; first retry waits ~this, doubling, with jitter
REASON_LIMIT = 300
CONNECTIONS_PER_CLIENT = 4  # measured on the bench farm (2 cores): 4 beat 8 and 16; see bench/linkcheck
HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next vetted address is tried too (anyio's, RFC 8305)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_WALL_CODES = frozenset({401, 403, 429, 503, 999})
_GONE = frozenset({404, 410})
_DOI_HOSTS = frozenset({"doi.org", "dx.doi.org", "www.doi.org"})
_DOI_PATH = re.compile(r"^(10\.\d{4,9}/.+)$")
_PMID_PATH = re.compile(r"^(\d{1,12})/?$")
# A one-segment path that is only a language or a home alias: redirecting it home is normal.
_HOME_ALIAS = re.compile(r"^(?:[a-z]{2}(?:[-_][a-z]{2,4})?|home|index(?:\.\w+)?|default(?:\.\w+)?)$", re.I)
# gaierror codes meaning "the resolver answered: no such name / no address".
_DNS_MISSING = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)
_MAILTO = re.compile(r"^[^@\s,;<>()\[\]\\\"]+@[^@\s,;<>()\[\]\\\"]+\.[^@\s,;<>()\[\]\\\".]+$")
_TEL = re.compile(r"^\+?[0-9().\- ]+$")
_C0_AND_SPACE = "".join(map(chr, range(0x21)))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Network-level outcome of a link, used to decide "network down" for the run.
NetFailure = Literal["dns-missing", "dns-error", "connect"]


@dataclass(frozen=True)
class LinkReport:
    results: dict[str, LinkResult]  # by URL, one per distinct input URL, input order
    network_down: bool
    summary: str | None  # one line when the network is down


class BatchItem(BaseModel):
    """One URL's outcome before the run-wide network-down decision (see :func:`merge_batches`)."""

    model_config = ConfigDict(frozen=True)

    url: str
    status: LinkStatus
    reason: str
    http_status: int | None = None
    final_url: str | None = None
    net: NetFailure | None = None  # failed at DNS or connect level
    cached: bool = False


class LinkBatch(BaseModel):
    """What one batch returns: raw outcomes and whether it saw the network working."""

    model_config = ConfigDict(frozen=True)

    items: list[BatchItem]
    network_seen: bool


def check_urls(
    urls: Sequence[str], settings: LinkCheckSettings, cache: LinkCache | None = None
) -> LinkReport:
    """Synchronous wrapper; from async code call :func:`check_urls_async`."""
    return asyncio.run(check_urls_async(urls, settings, cache=cache))


async def check_urls_async(
    urls: Sequence[str],
    settings: LinkCheckSettings,
    *,
    cache: LinkCache | None = None,
    backoff: float = DEFAULT_BACKOFF,
) -> LinkReport:
    """Check every distinct URL; ``backoff`` is the first retry delay (tests shrink it)."""
    batch = await check_batch_async(urls, settings, cache=cache, backoff=backoff)
    return merge_batches([batch])


def check_batch(
    urls: Sequence[str], settings: LinkCheckSettings, cache: LinkCache | None = None
) -> LinkBatch:
    """One batch (e.g. one Prefect task): raw outcomes; merge all batches with :func:`merge_batches`."""
    return asyncio.run(check_batch_async(urls, settings, cache=cache))


async def check_batch_async(
    urls: Sequence[str],
    settings: LinkCheckSettings,
    *,
    cache: LinkCache | None = None,
    backoff: float = DEFAULT_BACKOFF,
) -> LinkBatch:
    unique = list(dict.fromkeys(urls))
    hits = cache.get_many(unique, settings) if cache is not None else {}
    todo = [url for url in unique if url not in hits]
    run = _Run(settings, backoff)
    fresh: dict[str, _Outcome] = {}
    if todo:
        async with run.clients():
            done = await asyncio.gather(*run.start(todo), return_exceptions=True)
        fresh = {
            url: item if isinstance(item, _Outcome) else _internal_error(url, item)
            for url, item in zip(todo, done, strict=True)
        }
    items = [
        BatchItem(**hits[url].model_dump(), cached=True) if url in hits else fresh[url].item()
        for url in unique
    ]
    if cache is not None:
        cache.put_many((fresh[url].result() for url in todo), settings)
    return LinkBatch(items=items, network_seen=run.network_seen)


def merge_batches(batches: Iterable[LinkBatch], urls: Sequence[str] | None = None) -> LinkReport:
    """One report for the whole run; network down is decided over every batch together.

    ``urls`` (optional) gives the order of the results; by default, batch order.
    """
    batches = list(batches)
    seen = any(b.network_seen for b in batches)
    by_url = {item.url: item for batch in batches for item in batch.items}
    order = list(dict.fromkeys(urls)) if urls is not None else list(by_url)
    return _finish([by_url[u] for u in order if u in by_url], network_seen=seen)


def plan_batches(urls: Sequence[str], *, size: int = 200) -> list[list[str]]:
    """Split URLs into batches for one task each: a host's URLs always share one batch.

    Per-host limits and intervals hold within a batch, so a host is never split (a batch
    may then exceed ``size``); hosts are packed largest first. URLs without a host (mailto:,
    malformed) go with the first batch. Redirect targets on other hosts are not planned for.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    groups: dict[str, list[str]] = defaultdict(list)
    for url in dict.fromkeys(urls):
        groups[_batch_host(url)].append(url)
    batches: list[list[str]] = []
    for _, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        for batch in batches:
            if len(batch) + len(members) <= size:
                batch.extend(members)
                break
        else:
            batches.append(list(members))
    return batches


def _batch_host(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return ""
    if parts.scheme.lower() == "doi":
        return "doi.org"
    return host


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
    page: Page | None = field(default=None, compare=False)  # what the final page's body told us

    def result(self) -> LinkResult:
        return LinkResult(
            url=self.url,
            status=self.status,
            reason=_one_line(self.reason),
            http_status=self.http_status,
            final_url=self.final_url,
        )

    def item(self) -> BatchItem:
        return BatchItem(**self.result().model_dump(), net=self.net)


@dataclass(frozen=True)
class _Reply:
    """A response's status line, the headers we act on and what its body told us."""

    status: int
    reason_phrase: str
    location: str | None
    retry_after: float | None
    method: str
    tries: int
    page: Page | None = None  # 2xx HTML, when read
    wall: str | None = None  # bot-wall marker found in headers or body
    browser: int | None = None  # status a browser User-Agent got (after a plain 403)


@dataclass(frozen=True)
class _Body:
    kind: Literal["page", "wall"]
    data: bytes
    content_type: str | None
    complete: bool


@dataclass(frozen=True)
class _Resolution:
    addresses: tuple[IPAddress, ...] = ()
    failure: NetFailure | None = None
    detail: str = ""


@dataclass(frozen=True)
class _Target:
    """One input URL, read: what to fetch, and what to check on the page."""

    url: str
    fetch: httpx.URL  # without fragment
    fragment: str | None
    kind: Literal["doi", "pmid"] | None = None
    ident: str = ""  # the DOI or PMID


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def _short(url: str, limit: int = 120) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def _internal_error(url: str, exc: BaseException) -> _Outcome:
    return _Outcome(url, LinkStatus.UNVERIFIED, f"check failed unexpectedly ({type(exc).__name__})")


def _finish(items: list[BatchItem], *, network_seen: bool) -> LinkReport:
    failed = [o for o in items if o.net is not None]
    network_down = bool(failed) and not network_seen
    final: dict[str, LinkResult] = {}
    for o in items:
        status, reason = o.status, o.reason
        if o.net is not None and network_down:
            status, reason = LinkStatus.UNVERIFIED, f"network down: {o.reason}"
        elif o.net == "dns-missing":
            # The resolver answers for other hosts in this run, so this name really does not exist.
            status, reason = LinkStatus.BROKEN, f"host does not exist: {o.reason}"
        final[o.url] = LinkResult(
            url=o.url,
            status=status,
            reason=_one_line(reason),
            http_status=o.http_status,
            final_url=o.final_url,
        )
    summary = None
    if network_down:
        summary = (
            f"network down: none of {len(failed)} sources could be reached (DNS/connect failed); "
            f"all left unverified"
        )
    return LinkReport(results=final, network_down=network_down, summary=summary)


def allowed_hosts(settings: LinkCheckSettings) -> frozenset[str]:
    """``allow_private_hosts`` normalised the way hosts are compared (case, brackets, final dot)."""
    return frozenset(h.strip().strip("[]").lower().rstrip(".") for h in settings.allow_private_hosts)


def host_of(url: httpx.URL) -> str:
    # raw_host is what httpcore connects to (IDNA-encoded, IPv6 without brackets).
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

    ``allowed_networks`` (``[checks.links] allow_private_networks``): addresses in them are
    allowed, also when embedded in an IPv6 address (``::ffff:10.0.0.1`` is 10.0.0.1).
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
    """Shared state of one check run: the clients, semaphores, DNS cache, network evidence."""

    def __init__(self, settings: LinkCheckSettings, backoff: float) -> None:
        self.settings = settings
        self.backoff = backoff
        self.excludes = [re.compile(p) for p in settings.exclude]
        self.allowed = allowed_hosts(settings)
        self.networks: tuple[IPNetwork, ...] = tuple(settings.allow_private_networks)
        self.global_sem = asyncio.Semaphore(settings.concurrency)
        self.host_sems: dict[str, asyncio.Semaphore] = {}
        self.policies: dict[str, HostPolicy] = {}
        self.next_start: dict[str, float] = {}  # per host: earliest monotonic time of the next request
        self.dns: dict[str, _Resolution] = {}
        self.dns_locks: dict[str, asyncio.Lock] = {}
        self.fetches: dict[str, asyncio.Task[_Outcome]] = {}
        self.want_anchors: set[str] = set()  # fetch keys some input URL has a #fragment for
        # Evidence that the network works: any HTTP response, or a name resolved to a public address.
        self.network_seen = False
        # httpx times each socket operation; this bounds a whole response's headers (slow drip).
        self.deadline = 2 * settings.timeout
        self._clients: list[httpx.AsyncClient] = []
        self._turn = itertools.count()
        doi = httpx.URL(settings.doi_resolver)
        self.doi_host, self.doi_prefix = host_of(doi), doi.path
        pubmed = httpx.URL(settings.pubmed_resolver)
        self.pubmed_host, self.pubmed_prefix = host_of(pubmed), pubmed.path

    def policy(self, host: str) -> HostPolicy:
        found = self.policies.get(host)
        if found is None:
            found = self.policies[host] = self.settings.policy(host)
        return found

    @contextlib.asynccontextmanager
    async def clients(self) -> AsyncIterator[None]:
        total = self.settings.concurrency
        count = max(1, math.ceil(total / CONNECTIONS_PER_CLIENT))
        async with contextlib.AsyncExitStack() as stack:
            self._clients = [
                await stack.enter_async_context(self._client(math.ceil(total / count))) for _ in range(count)
            ]
            try:
                yield
            finally:
                self._clients = []

    def _client(self, connections: int) -> httpx.AsyncClient:
        # A small pool: httpcore's pool work grows with the square of open connections.
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        transport = httpx.AsyncHTTPTransport(verify=_tls_context(), limits=limits, trust_env=False)
        # httpx 0.28 has no network_backend argument: its own pool, rebuilt with our backend
        # (connect only to vetted addresses). tests/test_rebinding.py fails if this stops working.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=_tls_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(self.pinned),
        )
        return httpx.AsyncClient(
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
            event_hooks={"response": [_stash_location]},
        )

    # -- reading the input URLs --------------------------------------------
    def start(self, urls: Sequence[str]) -> list[asyncio.Future[_Outcome]]:
        """Read every URL first (so shared fetches know which need anchors), then check them."""
        targets = [self._read_safely(url) for url in urls]
        for target in targets:
            if (
                isinstance(target, _Target)
                and target.fragment
                and checkable_fragment(target.fragment)
                and self.policy(host_of(target.fetch)).check_fragments
            ):
                self.want_anchors.add(str(target.fetch))
        return [asyncio.ensure_future(self.check(t)) for t in targets]

    def _read_safely(self, url: str) -> _Target | _Outcome:
        try:
            return self._read(url)
        except Exception as exc:  # a check returns a result for every URL, whatever happens
            return _internal_error(url, exc)

    def _read(self, url: str) -> _Target | _Outcome:
        # Browsers drop tabs/newlines and outer control characters; read the scheme as they would.
        cleaned = re.sub(r"[\t\n\r]", "", url).strip(_C0_AND_SPACE)
        scheme, sep, rest = cleaned.partition(":")
        scheme = scheme.lower() if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme) else ""
        if scheme not in ("http", "https", "mailto", "tel", "doi", "pmid"):
            return _Outcome(url, LinkStatus.REFUSED, _scheme_reason(scheme, rest))
        for pattern in self.excludes:
            if pattern.search(url):
                return _Outcome(url, LinkStatus.SKIPPED, f"excluded by config ({pattern.pattern})")
        if scheme in ("mailto", "tel"):
            return _vet_non_http(url, scheme, rest)
        if scheme in ("doi", "pmid"):
            return self._identifier(url, scheme, rest)
        try:
            target = httpx.URL(cleaned)
        except (httpx.InvalidURL, ValueError) as exc:
            # httpx rejects some spellings browsers accept (0177.0.0.1): still name an address we refuse.
            try:
                literal = literal_ip(urlsplit(cleaned).hostname or "")
            except ValueError:
                literal = None
            why = disallowed_reason(literal) if literal is not None else None
            if why:
                return _Outcome(url, LinkStatus.REFUSED, f"{why} is not allowed")
            return _Outcome(url, LinkStatus.BROKEN, f"not a valid URL ({exc})")
        if not target.raw_host:
            return _Outcome(url, LinkStatus.BROKEN, "not a valid URL (no host)")
        fetch = target.copy_with(fragment=None)
        kind, ident = self._kind_of(fetch)
        return _Target(url, fetch, target.fragment or None, kind, ident)

    def _identifier(self, url: str, scheme: str, rest: str) -> _Target | _Outcome:
        """``doi:10.…`` and ``pmid:123``: checked at their resolver."""
        value = unquote(rest).strip().lstrip("/")
        if scheme == "doi" and _DOI_PATH.match(value) and not any(c.isspace() for c in value):
            fetch = httpx.URL(self.settings.doi_resolver + value)
            return _Target(url, fetch.copy_with(fragment=None), None, "doi", value)
        if scheme == "pmid" and _PMID_PATH.match(value):
            fetch = httpx.URL(f"{self.settings.pubmed_resolver}{value.rstrip('/')}/")
            return _Target(url, fetch, None, "pmid", value.rstrip("/"))
        example = "doi:10.1000/xyz123" if scheme == "doi" else "pmid:12345678"
        return _Outcome(url, LinkStatus.BROKEN, f"malformed {scheme}: link (expected {example})")

    def _kind_of(self, url: httpx.URL) -> tuple[Literal["doi", "pmid"] | None, str]:
        host, path = host_of(url), unquote(url.path)
        rest: str | None = None
        if host == self.doi_host and path.startswith(self.doi_prefix):
            rest = path[len(self.doi_prefix) :]
        elif host in _DOI_HOSTS:
            rest = path[1:]
        if rest is not None and (doi := _DOI_PATH.match(rest)):
            return "doi", doi.group(1)
        pmid = _PMID_PATH.match(path[len(self.pubmed_prefix) :])
        if host == self.pubmed_host and path.startswith(self.pubmed_prefix) and pmid:
            return "pmid", pmid.group(1)
        return None, ""

    # -- one link --------------------------------------------------------
    async def check(self, target: _Target | _Outcome) -> _Outcome:
        if isinstance(target, _Outcome):
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
            return _internal_error(target.url, exc)

    def _check_fragment(self, target: _Target, outcome: _Outcome) -> _Outcome:
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
        page = outcome.page
        if page is None or page.anchors is None:
            return replace(outcome, reason=f"{outcome.reason}; #{fragment} not checked (not an HTML page)")
        if fragment_present(fragment, page.anchors):
            return replace(outcome, reason=f"{outcome.reason}; anchor #{fragment} found")
        where = f" on {_short(outcome.final_url)}" if outcome.final_url else ""
        if not page.complete:
            return replace(
                outcome,
                status=LinkStatus.UNVERIFIED,
                reason=f"anchor #{fragment} not in the part of the page read{where} (page cut short)",
            )
        return replace(
            outcome,
            status=LinkStatus.BROKEN,
            reason=f"missing anchor #{fragment}: no element with that id or name{where}",
        )

    def _wants_body(self, url: httpx.URL, key: str) -> bool:
        return key in self.want_anchors or self.policy(host_of(url)).soft_404

    async def _follow(self, target: _Target) -> _Outcome:
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
        seen = {(str(url), self._cookies_for(client, url))}
        path = [str(url)]
        use_get = self._wants_body(url, key)
        while True:
            final_url = str(url) if hops else None
            got = await self._fetch(client, url, use_get, anchors)
            if isinstance(got, _Outcome):
                if hops and got.status is LinkStatus.REFUSED:
                    got = replace(got, reason=f"redirect to {_short(str(url))} refused: {got.reason}")
                elif hops:
                    got = replace(got, reason=f"after redirect to {_short(str(url))}: {got.reason}")
                return replace(got, http_status=got.http_status or last_status, final_url=final_url)
            if got.status not in _REDIRECTS or not got.location:
                return self._classify(target, got, final_url, first_status, hops)

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
            visit = (str(nxt), self._cookies_for(client, nxt))
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
            # A server that mishandled HEAD once gets GET for the chain.
            use_get = got.method == "GET" or self._wants_body(url, key)

    def _classify(
        self, target: _Target, got: _Reply, final_url: str | None, first_status: int | None, hops: int
    ) -> _Outcome:
        code = got.status
        phrase = f"{code} {got.reason_phrase}".strip()
        tries = f" after {got.tries} tries" if got.tries > 1 else ""
        via = f" (redirected to {_short(final_url)})" if final_url else ""
        label = "DOI" if target.kind == "doi" else "PubMed ID"

        def out(status: LinkStatus, reason: str) -> _Outcome:
            return _Outcome("", status, reason, code, final_url, page=got.page)

        if 200 <= code < 300:
            if got.page is not None and got.page.soft_404:
                return out(LinkStatus.BROKEN, f"soft 404: the page says “{got.page.soft_404}”{via}")
            if final_url and self._went_home(target.fetch, final_url):
                return out(
                    LinkStatus.BROKEN,
                    f"soft 404: redirects to the site's home page ({_short(final_url)}), not to the page",
                )
            if target.kind is not None:
                resolves = f" to {_short(final_url)}" if final_url else ""
                return out(LinkStatus.OK, f"{label} {target.ident} resolves{resolves} ({phrase})")
            if final_url and first_status in _PERMANENT:
                return out(
                    LinkStatus.REDIRECTED,
                    f"moved permanently ({first_status}): cite {_short(final_url)} instead",
                )
            reason = f"{phrase} via temporary redirect ({first_status})" if final_url else phrase
            return out(LinkStatus.OK, reason)
        if code in _GONE and target.kind is not None and hops == 0:
            return out(
                LinkStatus.BROKEN, f"{label} not found: {target.ident} (the resolver answered {phrase})"
            )
        if code in _GONE:
            return out(LinkStatus.BROKEN, f"{phrase}{via}")
        if got.wall:
            return out(
                LinkStatus.BOT_BLOCKED,
                f"{phrase}{via}: bot wall ({got.wall}); open it in a browser to confirm",
            )
        if code == 999:
            return out(LinkStatus.BOT_BLOCKED, f"{phrase}{via}: bot wall (999 is only sent to bots)")
        if code == 403 and got.browser is not None and 200 <= got.browser < 300:
            return out(
                LinkStatus.BOT_BLOCKED,
                f"403 to the checker but {got.browser} to a browser User-Agent{via}: "
                "bot wall; the page exists",
            )
        if code == 403:
            also = f" (a browser User-Agent got {got.browser})" if got.browser is not None else ""
            return out(
                LinkStatus.UNVERIFIED,
                f"{phrase}{via}{also}, no bot-wall markers: access denied, not gone; "
                f"open it in a browser to confirm",
            )
        if code == 401:
            return out(
                LinkStatus.UNVERIFIED, f"{phrase}{via}: needs a login; open it in a browser to confirm"
            )
        if code == 429:
            return out(LinkStatus.UNVERIFIED, f"rate limited ({phrase}){tries}{via}")
        if _retryable(code):
            return out(LinkStatus.UNVERIFIED, f"server error {phrase}{tries}{via}")
        if code in _REDIRECTS:
            return out(LinkStatus.UNVERIFIED, f"{phrase} without a Location header{via}")
        if 400 <= code < 500:
            return out(LinkStatus.BROKEN, f"HTTP {phrase}{via}")
        return out(LinkStatus.UNVERIFIED, f"unexpected HTTP status {phrase}{via}")

    def _went_home(self, start: httpx.URL, final_url: str) -> bool:
        """A deep URL that ends on a site's home page: the page is gone (soft-404)."""
        if not self.policy(host_of(start)).soft_404:
            return False
        segments = [s for s in start.path.split("/") if s]
        if not segments or (len(segments) == 1 and _HOME_ALIAS.match(segments[0])):
            return False
        try:
            final = httpx.URL(final_url)
        except (httpx.InvalidURL, ValueError):
            return False
        return final.path in ("", "/") and not final.query

    # -- one hop, with retries, the HEAD → GET fallback and the browser retry --
    async def _fetch(
        self, client: httpx.AsyncClient, url: httpx.URL, use_get: bool, anchors: bool
    ) -> _Reply | _Outcome:
        method = "GET" if use_get else "HEAD"
        retries = self.settings.retries
        attempt = 0  # retries spent
        browser_tried = False
        while True:
            got = await self._request(client, method, url, attempt + 1, anchors=anchors)
            if isinstance(got, _Reply):
                code = got.status
                if got.wall:
                    return got  # asking a bot wall again does not get past it
                if method == "HEAD" and _head_unreliable(code):
                    method = "GET"  # not a retry: HEAD was the wrong question
                    continue
                if code == 403 and not browser_tried:
                    # Once, with a browser's User-Agent: does the page exist behind a UA filter?
                    browser_tried = True
                    other = await self._request(
                        client, "GET", url, attempt + 1, anchors=anchors, browser=True
                    )
                    if isinstance(other, _Reply):
                        return other if other.wall else replace(got, browser=other.status)
                    return got
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

    async def _pace(self, host: str, interval: float) -> None:
        """Keep ``interval`` seconds between request starts to one host (slots reserved in order)."""
        if interval <= 0:
            return
        now = time.monotonic()
        start = max(now, self.next_start.get(host, 0.0))
        self.next_start[host] = start + interval
        if start > now:
            await asyncio.sleep(start - now)

    async def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        tries: int,
        *,
        anchors: bool = False,
        browser: bool = False,
    ) -> _Reply | _Outcome:
        """One request: headers within the deadline, at most MAX_BODY_BYTES of body read."""
        vetted = await self._vet_host(url)  # every attempt: a transient DNS failure is asked again
        if vetted is not None:
            return vetted
        host = host_of(url)
        policy = self.policy(host)
        host_sem = self.host_sems.get(host)
        if host_sem is None:
            host_sem = self.host_sems[host] = asyncio.Semaphore(policy.per_host)
        headers = {"User-Agent": self.settings.browser_user_agent} if browser else None
        request = client.build_request(method, url, headers=headers)
        body: _Body | None = None
        try:
            async with host_sem:
                await self._pace(host, policy.min_interval)
                async with self.global_sem:
                    async with asyncio.timeout(self.deadline):
                        response = await client.send(request, stream=True)
                    self.network_seen = True
                    try:
                        body = await self._read_body(response, method, policy, anchors)
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
        page: Page | None = None
        wall: str | None = None
        if body is not None:  # parsing outside the semaphores: it needs no connection
            if body.kind == "page":
                page = analyse_page(body.data, body.content_type, soft_404=policy.soft_404, anchors=anchors)
                page = replace(page, complete=body.complete)
            else:
                wall = bot_wall_marker(response.headers, body.data)
        elif response.status_code in _WALL_CODES:
            wall = bot_wall_marker(response.headers, None)
        return _Reply(
            status=response.status_code,
            reason_phrase=response.reason_phrase,
            location=response.extensions.get(_LOCATION),
            retry_after=_retry_after(response.headers.get("retry-after")),
            method=method,
            tries=tries,
            page=page,
            wall=wall,
        )

    async def _read_body(
        self, response: httpx.Response, method: str, policy: HostPolicy, anchors: bool
    ) -> _Body | None:
        """Read what classification needs: an HTML page, or the start of an error page."""
        if method != "GET":
            return None
        code = response.status_code
        content_type = response.headers.get("content-type")
        encoding = response.headers.get("content-encoding")
        if 200 <= code < 300 and (policy.soft_404 or anchors) and is_html(content_type):
            raw, complete = await self._read_raw(response, MAX_BODY_BYTES)
            data = decode_content(raw, encoding, MAX_BODY_BYTES)
            return None if data is None else _Body("page", data, content_type, complete)
        if code in _WALL_CODES:
            if bot_wall_marker(response.headers, None):
                return _Body("wall", b"", content_type, True)
            raw, complete = await self._read_raw(response, WALL_BODY_BYTES)
            data = decode_content(raw, encoding, WALL_BODY_BYTES)
            return _Body("wall", data or b"", content_type, complete)
        await self._read_raw(response, MAX_BODY_BYTES)  # drained for connection reuse only
        return None

    async def _read_raw(self, response: httpx.Response, limit: int) -> tuple[bytes, bool]:
        # Raw bytes: decompression is ours, with a bound (decode_content). Errors here do not
        # change the status; an incomplete body is marked so nothing is concluded from its absence.
        chunks: list[bytes] = []
        read = 0
        complete = False
        with contextlib.suppress(TimeoutError, httpx.HTTPError):
            async with asyncio.timeout(self.settings.timeout):
                async for chunk in response.aiter_raw():
                    chunks.append(chunk)
                    read += len(chunk)
                    if read >= limit:
                        break
                else:
                    complete = True
        return b"".join(chunks), complete

    # -- SSRF and DNS ----------------------------------------------------
    async def _vet_host(self, url: httpx.URL) -> _Outcome | None:
        """None if we may connect to ``url``'s host; else refused, or a DNS failure."""
        host = host_of(url)
        allowed = host.rstrip(".") in self.allowed
        literal = literal_ip(host)
        if literal is not None:
            why = None if allowed else disallowed_reason(literal, self.networks)
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
            why = disallowed_reason(addr, self.networks)
            if why:
                return _Outcome("", LinkStatus.REFUSED, f"{host} resolves to {why}, which is not allowed")
        return None

    def pinned(self, host: str) -> tuple[IPAddress, ...]:
        """The addresses the clients may connect to for ``host``: what _vet_host let through.

        The same rules on the same cached resolution, so vetting and connecting cannot disagree;
        () when this run has no vetted answer for the name (the backend then fails closed).
        """
        host = host.lower()
        allowed = host.rstrip(".") in self.allowed
        literal = literal_ip(host)
        if literal is not None:
            return (literal,) if allowed or disallowed_reason(literal, self.networks) is None else ()
        resolution = self.dns.get(host)
        if resolution is None or resolution.failure is not None:
            return ()
        if allowed or all(disallowed_reason(a, self.networks) is None for a in resolution.addresses):
            return resolution.addresses
        return ()

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
        if any(disallowed_reason(a) is None for a in addresses):
            self.network_seen = True  # a public answer: the resolver works
        return _Resolution(addresses=addresses)

    def _cookies_for(self, client: httpx.AsyncClient, url: httpx.URL) -> frozenset[tuple[str, str, str]]:
        host = host_of(url)
        return frozenset(
            (c.domain, c.name, c.value or "")
            for c in client.cookies.jar
            if host == c.domain.lstrip(".") or host.endswith("." + c.domain.lstrip("."))
        )


_LOCATION = "clinicpress.location"


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to the addresses a run vetted (no rebinding).

    httpcore hands over the URL's host; it is never resolved here: ``vetted`` gives the run's
    addresses for it, and none means no connection (fail closed). TLS is untouched: httpcore
    passes the host name to ``start_tls``, so SNI and the certificate check use the name.
    """

    def __init__(self, vetted: Callable[[str], tuple[IPAddress, ...]]) -> None:
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
            raise httpcore.ConnectError(f"no vetted address for {host} in this run (not resolving it again)")

        def connect(address: IPAddress, limit: float | None) -> Awaitable[httpcore.AsyncNetworkStream]:
            return self._inner.connect_tcp(
                str(address), port, timeout=limit, local_address=local_address, socket_options=socket_options
            )

        if len(addresses) == 1:
            return await connect(addresses[0], timeout)  # what httpx does with a one-address name
        try:
            async with asyncio.timeout(timeout):  # one connect timeout for all the attempts
                return await _first_to_connect([functools.partial(connect, a, None) for a in addresses])
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no vetted address of {host} connected in time") from None

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the link checker connects over TCP only")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _first_to_connect(
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
    raise httpcore.ConnectError("All connection attempts failed") from (errors[0] if errors else None)


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
    return f"{scheme}: links are not allowed in sources (only http, https, mailto, tel)"
