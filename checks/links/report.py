"""What a link check returns: one outcome per URL, batches, and the run-wide report.

A batch (one Prefect task) returns raw outcomes plus its evidence that the network works;
:func:`merge_batches` decides "network down" over the whole run, and :func:`plan_batches`
splits a run so that a host's URLs share one batch (its politeness limits hold).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from clinicpress.checks.linkcheck_html import HtmlFindings
from clinicpress.checks.model import LinkResult, LinkStatus
from clinicpress.network import NetFailure
from clinicpress.sources.identifiers import identifier_of

__all__ = [
    "REASON_LIMIT",
    "BatchItem",
    "LinkBatch",
    "LinkOutcome",
    "LinkReport",
    "internal_error",
    "merge_batches",
    "one_line",
    "plan_batches",
    "short",
]

REASON_LIMIT = 300


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


@dataclass(frozen=True)
class LinkOutcome:
    """One link's result inside a run (what a batch item is made from)."""

    url: str
    status: LinkStatus
    reason: str
    http_status: int | None = None
    final_url: str | None = None
    net: NetFailure | None = None  # set when the link failed at DNS or connect level
    transient: bool = False  # worth another try (timeouts, dropped connections, DNS hiccups)
    page: HtmlFindings | None = field(default=None, compare=False)  # what the final page's body told us

    def result(self) -> LinkResult:
        return LinkResult(
            url=self.url,
            status=self.status,
            reason=one_line(self.reason),
            http_status=self.http_status,
            final_url=self.final_url,
        )

    def item(self) -> BatchItem:
        return BatchItem(**self.result().model_dump(), net=self.net)


def one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def short(url: str, limit: int = 120) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def internal_error(url: str, exc: BaseException) -> LinkOutcome:
    return LinkOutcome(url, LinkStatus.UNVERIFIED, f"check failed unexpectedly ({type(exc).__name__})")


def merge_batches(batches: Iterable[LinkBatch], urls: Sequence[str] | None = None) -> LinkReport:
    """One report for the whole run; network down is decided over every batch together.

    ``urls`` (optional) gives the order of the results; by default, batch order.
    """
    batches = list(batches)
    seen = any(b.network_seen for b in batches)
    by_url = {item.url: item for batch in batches for item in batch.items}
    order = list(dict.fromkeys(urls)) if urls is not None else list(by_url)
    return finish([by_url[u] for u in order if u in by_url], network_seen=seen)


def finish(items: list[BatchItem], *, network_seen: bool) -> LinkReport:
    """The run-wide decision: without evidence of a working network, DNS/connect failures are
    "network down" (unverified); with it, a name that does not resolve is ``broken``."""
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
            reason=one_line(reason),
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
    # DOIs and PMIDs however spelled are fetched at one resolver each: one group each.
    ident = identifier_of(url)
    if ident is not None and ident.at_resolver:
        return "doi.org" if ident.kind == "doi" else "pubmed.ncbi.nlm.nih.gov"
    try:
        return (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return ""
