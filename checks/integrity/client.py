"""Ask Crossref and PubMed about every DOI and PMID source: one request per work per run.

I/O at the edge, decisions elsewhere: replies are parsed by ``crossref.py``/``pubmed.py`` and
judged by ``verdict.py``. Rules:

* Polite: the User-Agent carries ``mailto:`` (Crossref's polite pool); at most
  ``CROSSREF_CONCURRENCY`` requests in flight to Crossref; DOIs are asked ``CROSSREF_BATCH``
  at a time (``works?filter=doi:A,doi:B``, the way Crossref's maintainers suggest), and a DOI
  the list leaves out is asked alone (``works/{doi}``: its 404 is the answer); PMIDs in batches of
  ``PUBMED_BATCH`` (one esummary per batch) at most ``PUBMED_RATE`` per second, NCBI's limit
  without an API key.
* A 429, a 5xx or a timeout is asked again (``MAX_TRIES`` in all), after ``Retry-After``
  (seconds or an HTTP date; at most ``RETRY_AFTER_CAP`` seconds) or a backoff; then the work
  is ``unknown``, never clean.
* 404 from Crossref: the DOI is not registered there (a mistyped DOI, or another agency's).
* Network down (nothing connects): every record says so, and the report carries one line.
* Every request goes through the one fetch (``clinicpress.network.Fetcher``): the API hosts
  vetted (literal and resolved private addresses refused unless in ``[checks.links]
  allow_private_hosts`` / ``allow_private_networks``), connections pinned to the addresses
  vetted, replies capped at ``MAX_REPLY_BYTES``, no redirects followed (an API that redirects
  is not the API we vetted). Only DOIs, PMIDs and the contact address are sent, never a URL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import quote

from clinicpress.checks.integrity.cache import IntegrityCache
from clinicpress.checks.integrity.crossref import parse_work
from clinicpress.checks.integrity.pubmed import parse_summary
from clinicpress.checks.integrity.quotes import QuoteResult, check_quotes
from clinicpress.checks.integrity.record import Record
from clinicpress.network import Fetcher, FetchError, Policy, RedirectFailed, Unreadable
from clinicpress.settings.integrity import IntegritySettings
from clinicpress.settings.links import DEFAULT_USER_AGENT, LinkCheckSettings
from clinicpress.sources.identifiers import Identifier

T = TypeVar("T")

__all__ = [
    "IntegrityReport",
    "lookup",
    "lookup_async",
    "policy",
    "run_quietly",
    "user_agent",
]

CROSSREF_CONCURRENCY = 3  # Crossref's polite pool allows a few concurrent requests per client
CROSSREF_BATCH = 50  # DOIs per works?filter=doi:…,doi:… request (a URL of a few KB)
PUBMED_BATCH = 200  # PMIDs per esummary request
PUBMED_RATE = 3.0  # requests per second: NCBI's limit without an API key
MAX_TRIES = 3
RETRY_AFTER_CAP = 5.0
DEFAULT_BACKOFF = 0.5
MAX_REPLY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class IntegrityReport:
    records: dict[str, Record]  # by Identifier.key
    network_down: bool = False
    summary: str | None = None  # one line when the registries could not be reached at all
    quotes: dict[str, QuoteResult] = field(default_factory=dict)  # by quotes.quote_key(url, quote)


def user_agent(base: str, contact: str) -> str:
    """``clinicpress/0.1 (…; mailto:web@example.org)``: Crossref routes this to its polite pool."""
    base = base or DEFAULT_USER_AGENT
    return f"{base} (mailto:{contact})" if contact else base


@dataclass(frozen=True)
class _Reply:
    status: int | None  # None: no HTTP answer
    data: Any = None
    error: str | None = None
    network: bool = False  # DNS or connect failed


def policy(links: LinkCheckSettings, agent: str, backoff: float) -> Policy:
    """How the lookups fetch: ``[checks.links]``'s address rules and timeout, their own retries,
    no redirects."""
    return replace(
        Policy.of(links),
        max_redirects=0,
        retries=MAX_TRIES - 1,
        retry_after_cap=RETRY_AFTER_CAP,
        backoff=backoff,
        user_agent=agent,
        connections=CROSSREF_CONCURRENCY + 1,
    )


async def _get(fetcher: Fetcher, url: str, params: Mapping[str, str]) -> _Reply:
    """One GET of a JSON API, retried as the module docstring says; never raises."""
    try:
        got = await fetcher.fetch(url, params=params, accept="application/json", max_bytes=MAX_REPLY_BYTES)
        data = got.json() if got.status == 200 else None
    except RedirectFailed as exc:
        return _Reply(exc.status, error=f"HTTP {exc.status}, a redirect (not followed)")
    except Unreadable as exc:
        return _Reply(200, error=exc.reason)
    except FetchError as exc:
        return _Reply(None, error=exc.reason, network=exc.net is not None)
    if got.status == 200:
        return _Reply(200, data=data)
    if got.status == 429:
        asked = f", Retry-After {got.retry_after:.0f} s" if got.retry_after is not None else ""
        return _Reply(429, error=f"rate limited (HTTP 429{asked})")
    return _Reply(got.status, error=f"HTTP {got.status}")


def _failed(ident: Identifier, registry: str, reply: _Reply) -> Record:
    shown = f"{ident.kind}:{ident.value}"
    name = "Crossref" if registry == "crossref" else "PubMed"
    if reply.status == 404 and registry == "crossref":
        return Record(key=ident.key, shown=shown, registry="crossref", error="HTTP 404", not_found=True)
    return Record(
        key=ident.key,
        shown=shown,
        registry="crossref" if registry == "crossref" else "pubmed",
        error=f"{name} gave no answer: {reply.error}",
        network=reply.network,
    )


class _Lookup:
    def __init__(
        self,
        settings: IntegritySettings,
        links: LinkCheckSettings,
        agent: str,
        backoff: float,
        contact: str = "",
    ) -> None:
        self.contact = contact
        self.settings = settings
        self.links = links
        self.agent = agent
        self.backoff = backoff
        self.crossref_sem = asyncio.Semaphore(CROSSREF_CONCURRENCY)
        self.pubmed_lock = asyncio.Lock()
        self.pubmed_next = 0.0

    async def doi(self, client: Fetcher, ident: Identifier) -> Record:
        url = f"{self.settings.crossref_api}works/{quote(ident.value, safe='/:;()[]')}"
        async with self.crossref_sem:
            reply = await _get(client, url, {})
        if reply.status == 200 and reply.error is None:
            return parse_work(reply.data, key=ident.key, shown=f"doi:{ident.value}")
        return _failed(ident, "crossref", reply)

    async def dois(self, client: Fetcher, idents: Sequence[Identifier]) -> list[Record]:
        """A batch of DOIs in one list request; those it leaves out (or all, if it fails) one by one."""
        found: dict[str, Record] = {}
        listed = [i for i in idents if "," not in i.value]  # a comma would split the filter
        if len(listed) > 1:
            params = {"filter": ",".join(f"doi:{i.value}" for i in listed), "rows": str(len(listed))}
            async with self.crossref_sem:
                reply = await _get(client, f"{self.settings.crossref_api}works", params)
            if reply.network:  # unreachable: asking each again would only time out again
                return [_failed(i, "crossref", reply) for i in idents]
            wanted = {i.key: i for i in listed}
            for item in _items(reply.data) if reply.status == 200 and reply.error is None else []:
                ident = wanted.get(f"doi:{str(item.get('DOI', '')).casefold()}")
                if ident is not None:
                    found[ident.key] = parse_work(
                        {"status": "ok", "message": item}, key=ident.key, shown=f"doi:{ident.value}"
                    )
        rest = [i for i in idents if i.key not in found]
        for ident, record in zip(
            rest, await asyncio.gather(*(self.doi(client, i) for i in rest)), strict=True
        ):
            found[ident.key] = record
        return [found[i.key] for i in idents]

    async def pmids(self, client: Fetcher, idents: Sequence[Identifier]) -> list[Record]:
        url = f"{self.settings.pubmed_api}esummary.fcgi"
        params = {"db": "pubmed", "retmode": "json", "id": ",".join(i.value for i in idents)}
        if self.contact:
            params["email"] = self.contact  # NCBI asks for a contact address with E-utilities
        async with self.pubmed_lock:  # one at a time, PUBMED_RATE per second
            delay = self.pubmed_next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.pubmed_next = time.monotonic() + 1.0 / PUBMED_RATE
            reply = await _get(client, url, params)
        if reply.status == 200 and reply.error is None:
            parsed = parse_summary(
                reply.data, [i.value for i in idents], pubmed_resolver=self.links.pubmed_resolver
            )
            return [parsed[i.value] for i in idents]
        return [_failed(i, "pubmed", reply) for i in idents]


def _items(data: object) -> list[Mapping[str, Any]]:
    """The works of a Crossref list reply (``message.items``); [] for anything else."""
    message = data.get("message") if isinstance(data, Mapping) else None
    items = message.get("items") if isinstance(message, Mapping) else None
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def _summary(records: Sequence[Record]) -> tuple[bool, str | None]:
    """Network down: every record asked this run failed to connect (cached ones are no evidence)."""
    failed = [r for r in records if r.network]
    if not records or len(failed) != len(records):
        return False, None
    return True, (
        f"network down: Crossref/PubMed could not be reached; "
        f"{len(failed)} DOI/PMID source{'s' if len(failed) != 1 else ''} left integrity unknown"
    )


async def lookup_async(
    idents: Iterable[Identifier],
    settings: IntegritySettings,
    links: LinkCheckSettings,
    *,
    contact: str = "",
    cache: IntegrityCache | None = None,
    backoff: float = DEFAULT_BACKOFF,
    quotes: Sequence[tuple[str, str]] = (),
    fetch_at: Mapping[str, str] | None = None,
) -> IntegrityReport:
    """Records for every distinct identifier (by ``Identifier.key``), from the cache or the APIs.

    ``quotes``: (url, quote) pairs looked for in their sources' text at the same time (never
    cached); ``fetch_at`` maps a cited URL to where it is fetched (a DOI at its resolver).
    """
    agent = user_agent(links.user_agent, settings.mailto or contact)
    quoting = asyncio.ensure_future(check_quotes(quotes, links, agent=agent, resolve=dict(fetch_at or {})))
    report = await _records(
        idents, settings, links, agent=agent, contact=settings.mailto or contact, cache=cache, backoff=backoff
    )
    found = await quoting
    return IntegrityReport(report.records, report.network_down, report.summary, found)


async def _records(
    idents: Iterable[Identifier],
    settings: IntegritySettings,
    links: LinkCheckSettings,
    *,
    agent: str,
    contact: str,
    cache: IntegrityCache | None,
    backoff: float,
) -> IntegrityReport:
    first: dict[str, Identifier] = {}
    for ident in idents:
        first.setdefault(ident.key, ident)  # one request per work, as first cited
    unique = list(first.values())
    if not unique:
        return IntegrityReport(records={})
    hits = cache.get_many([i.key for i in unique], settings) if cache is not None else {}
    todo = [i for i in unique if i.key not in hits]
    fresh: list[Record] = []
    if todo:
        run = _Lookup(settings, links, agent, backoff, contact)
        dois = [i for i in todo if i.kind == "doi"]
        pmids = [i for i in todo if i.kind == "pmid"]
        batches: list[tuple[str, list[Identifier]]] = [
            ("crossref", dois[s : s + CROSSREF_BATCH]) for s in range(0, len(dois), CROSSREF_BATCH)
        ]
        batches += [("pubmed", pmids[s : s + PUBMED_BATCH]) for s in range(0, len(pmids), PUBMED_BATCH)]
        async with Fetcher(policy(links, run.agent, backoff)) as client:
            done = await asyncio.gather(
                *(run.dois(client, b) if kind == "crossref" else run.pmids(client, b) for kind, b in batches),
                return_exceptions=True,
            )
        for (kind, batch), item in zip(batches, done, strict=True):
            if isinstance(item, list):
                fresh.extend(item)
            else:  # a bug, not an answer: unknown, never clean
                fresh.extend(_failed(i, kind, _internal(item)) for i in batch)
        if cache is not None:
            cache.put_many(fresh, settings)
    records = {**hits, **{r.key: r for r in fresh}}
    down, summary = _summary(fresh)
    return IntegrityReport(
        records={i.key: records[i.key] for i in unique}, network_down=down, summary=summary
    )


def _internal(exc: object) -> _Reply:
    return _Reply(None, error=f"lookup failed unexpectedly ({type(exc).__name__})")


def lookup(
    idents: Iterable[Identifier],
    settings: IntegritySettings,
    links: LinkCheckSettings,
    *,
    contact: str = "",
    cache: IntegrityCache | None = None,
    quotes: Sequence[tuple[str, str]] = (),
    fetch_at: Mapping[str, str] | None = None,
) -> IntegrityReport:
    """Synchronous wrapper (one event loop for the run); from async code call :func:`lookup_async`."""
    return run_quietly(
        lookup_async(idents, settings, links, contact=contact, cache=cache, quotes=quotes, fetch_at=fetch_at)
    )


def run_quietly(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, without Python 3.11's repr of the result.

    On the main thread, asyncio.run restores the SIGINT handler at the end and ``signal``
    builds an error message from the old handler's repr, which holds the finished task and so
    the repr of its result: ~0.15 s for a catalog's records. The task returns None here.
    """
    box: list[T] = []

    async def run() -> None:
        box.append(await main)

    asyncio.run(run())
    return box[0]
