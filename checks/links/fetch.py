"""One check run's questions, asked through the one fetch (:mod:`clinicpress.network.fetch`).

The network layer vets every hop, connects only to vetted addresses, walks the redirects
(:meth:`Fetcher.walk`: every hop recorded; a loop, a disallowed scheme or too many hops stop
it), bounds headers and bodies and reads ``Retry-After``. This module gives it what only a
link check needs:

* the hop (:meth:`LinkRun._hop`): GET when the body is needed (soft-404 titles, ``#fragment``
  ids: :mod:`.bodies`), else HEAD. A HEAD that gets any 4xx but 408/429, or 501 or 999, is
  asked again with GET; 5xx on HEAD is retried as HEAD, with one last GET once retries are
  spent. A 403 without bot-wall markers is asked once more with a browser User-Agent; a bot
  wall is never asked again. Transient failures are retried with backoff, honouring
  ``Retry-After`` up to ``RETRY_AFTER_CAP``;
* what to read of each answer (:func:`.bodies.plan`), and the per-host slot (:mod:`.politeness`);
* what the walk's end, or its failure, means (:mod:`.classify`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace

import httpx

from clinicpress.checks.linkcheck_html import HtmlFindings, analyse_page, bot_wall_marker, checkable_fragment
from clinicpress.checks.links.bodies import plan, wants_page
from clinicpress.checks.links.classify import (
    WALL_CODES,
    Classified,
    Reply,
    anchor_verdict,
    classify,
    head_unreliable,
    went_home,
)
from clinicpress.checks.links.politeness import Politeness
from clinicpress.checks.links.report import LinkOutcome, internal_error, short
from clinicpress.checks.links.targets import Target, TargetReader
from clinicpress.checks.model import LinkStatus
from clinicpress.network import Fetcher, FetchError, Policy, RedirectFailed, Refused, host_of, retryable
from clinicpress.network.replies import backoff_delay
from clinicpress.settings.links import HostPolicy, LinkCheckSettings

__all__ = ["RETRY_AFTER_CAP", "LinkRun"]

RETRY_AFTER_CAP = 5.0  # seconds; a server asking for longer is not waited for
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class LinkRun:
    """Shared state of one check run: the fetcher (resolver, transport, cookies), politeness.

    Close ``run.fetcher`` when done (``async with run.fetcher``). ``transport`` replaces the pinned
    network transport (tests: ``httpx.MockTransport``); hosts are vetted before every request.
    """

    def __init__(
        self, settings: LinkCheckSettings, backoff: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.backoff = backoff
        self.targets = TargetReader(settings)
        self.polite = Politeness(settings)
        # One transport holds the run's connections (aiohttp's pool has no per-connection cost).
        policy = replace(Policy.of(settings), backoff=backoff, connections=settings.concurrency)
        self.fetcher = Fetcher(policy, transport=transport, slot=self.polite.slot)
        self.fetches: dict[str, asyncio.Task[LinkOutcome]] = {}
        self.want_anchors: set[str] = set()  # fetch keys some input URL has a #fragment for

    @property
    def network_seen(self) -> bool:
        """Evidence that the network works: any HTTP response, or a name resolved to a public address."""
        return self.fetcher.network_seen

    def policy(self, host: str) -> HostPolicy:
        return self.polite.policy(host)

    # -- the input URLs -----------------------------------------------------------------
    def start(self, urls: Sequence[str]) -> list[asyncio.Future[LinkOutcome]]:
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

    def _read_safely(self, url: str) -> Target | LinkOutcome:
        try:
            return self.targets.read(url)
        except Exception as exc:  # a check returns a result for every URL, whatever happens
            return internal_error(url, exc)

    async def check(self, target: Target | LinkOutcome) -> LinkOutcome:
        if isinstance(target, LinkOutcome):
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

    def _check_fragment(self, target: Target, outcome: LinkOutcome) -> LinkOutcome:
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
            fragment, outcome.page, outcome.final_url, Classified(outcome.status, outcome.reason)
        )
        return replace(outcome, status=verdict.status, reason=verdict.reason)

    # -- a redirect chain, walked by the network layer ----------------------------------
    def _wants_body(self, url: httpx.URL, key: str) -> bool:
        return key in self.want_anchors or self.policy(host_of(url)).soft_404

    async def _follow(self, target: Target) -> LinkOutcome:
        """Walk the redirect chain from ``target``; classify where it ends, or why it stopped."""
        key = str(target.fetch)
        anchors = key in self.want_anchors
        asked_get = False  # a server that mishandled HEAD once gets GET for the chain

        async def hop(url: httpx.URL) -> Reply:
            nonlocal asked_get
            got = await self._hop(url, asked_get or self._wants_body(url, key), anchors)
            asked_get = got.method == "GET"
            return got

        try:
            walked = await self.fetcher.walk(target.fetch, hop)
        except RedirectFailed as stop:
            return _stopped(stop)
        except FetchError as exc:
            return _failed(exc)
        got, final_url = walked.answer, walked.final_url
        home = bool(final_url) and self.policy(host_of(target.fetch)).soft_404
        verdict = classify(
            got,
            final_url=final_url,
            first_status=walked.hops[0].status if walked.hops else None,  # ok vs redirected
            hops=len(walked.hops),
            kind=target.kind,
            ident=target.ident,
            went_home=home and went_home(target.fetch.path, final_url or ""),
        )
        return LinkOutcome("", verdict.status, verdict.reason, got.status, final_url, page=got.page)

    # -- one hop, with retries, the HEAD → GET fallback and the browser retry -----------
    async def _hop(self, url: httpx.URL, use_get: bool, anchors: bool) -> Reply:
        """The answer at ``url``; raises the hop's FetchError (``tries`` set) when none came."""
        method = "GET" if use_get else "HEAD"
        retries = self.settings.retries
        attempt = 0  # retries spent
        browser_tried = False
        while True:
            wait: float | None = None
            try:
                got = await self._request(method, url, attempt + 1, anchors=anchors)
            except FetchError as exc:
                exc.tries = attempt + 1
                if not exc.transient or attempt >= retries:
                    raise
            else:
                code = got.status
                if got.wall:
                    return got  # asking a bot wall again does not get past it
                if method == "HEAD" and head_unreliable(code):
                    method = "GET"  # not a retry: HEAD was the wrong question
                    continue
                if code == 403 and not browser_tried:
                    # Once, with a browser's User-Agent: does the page exist behind a UA filter?
                    browser_tried = True
                    try:
                        other = await self._request("GET", url, attempt + 1, anchors=anchors, browser=True)
                    except FetchError:
                        return got
                    return other if other.wall else replace(got, browser=other.status)
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
            attempt += 1
            await asyncio.sleep(backoff_delay(self.backoff, attempt) if wait is None else wait)

    async def _request(
        self, method: str, url: httpx.URL, tries: int, *, anchors: bool = False, browser: bool = False
    ) -> Reply:
        """One request through the fetcher, and what its answer's body told us."""
        policy = self.policy(host_of(url))
        headers = {"User-Agent": self.settings.browser_user_agent} if browser else None
        got = await self.fetcher.exchange(
            method, url, accept=ACCEPT, read=plan(method, policy, anchors), headers=headers
        )
        page: HtmlFindings | None = None
        wall: str | None = None
        # Parsing happens outside the host's slot: it needs no connection.
        if wants_page(method, got.status, got.headers, policy, anchors):
            if got.cut != "encoding":  # a coding we do not decode: nothing read, nothing concluded
                content_type = got.headers.get("content-type")
                page = analyse_page(got.body, content_type, soft_404=policy.soft_404, anchors=anchors)
                page = replace(page, complete=got.cut is None)
        elif got.status in WALL_CODES:
            wall = bot_wall_marker(got.headers, got.body if method == "GET" else None)
        return Reply(
            status=got.status,
            reason_phrase=got.reason_phrase,
            location=got.location,
            retry_after=got.retry_after,
            method=method,
            tries=tries,
            page=page,
            wall=wall,
        )


def _failed(exc: FetchError) -> LinkOutcome:
    """A hop that got no answer: refused (never contacted), or unverified (retries spent)."""
    status = LinkStatus.REFUSED if isinstance(exc, Refused) else LinkStatus.UNVERIFIED
    reason = f"{exc.reason} ({exc.tries} tries)" if exc.tries > 1 else exc.reason
    last = exc.hops[-1] if exc.hops else None
    if last is not None and status is LinkStatus.REFUSED:
        reason = f"redirect to {short(last.url)} refused: {reason}"
    elif last is not None:
        reason = f"after redirect to {short(last.url)}: {reason}"
    return LinkOutcome(
        "",
        status,
        reason,
        last.status if last else None,
        last.url if last else None,
        net=exc.net,
        transient=exc.transient,
    )


def _stopped(stop: RedirectFailed) -> LinkOutcome:
    """A walk the network layer stopped: a disallowed scheme, an unreadable Location, a loop, too many."""
    if stop.kind == "scheme":
        return LinkOutcome("", LinkStatus.REFUSED, stop.reason, stop.status, stop.target)
    if stop.kind == "unreadable":
        # Browsers are more lenient than httpx: we cannot tell, so we do not block.
        final_url = stop.hops[-1].url if stop.hops else None
        return LinkOutcome("", LinkStatus.UNVERIFIED, stop.reason, stop.status, final_url)
    return LinkOutcome("", LinkStatus.BROKEN, stop.reason, stop.status, stop.target)
