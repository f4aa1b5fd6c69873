"""Check cited-source links: one status per distinct URL, never an exception.

Vocabulary and rules: docs/architecture.md ("Words", "Where each rule lives"); the SSRF rules
in clinicpress/network/; README "How sources are verified". A false ``broken`` blocks a
good article and a false ``ok`` prints a dead citation on a patient handout, so anything we
cannot establish is ``unverified``, never guessed.

The package, one job per module:

* :mod:`.targets`: read a cited URL (DOIs and PMIDs, however spelled, go to the resolver);
* :mod:`.fetch`: one run's I/O (pinned clients, redirects by hand, retries);
* :mod:`.bodies`: how much of a response is read, with a bound;
* :mod:`.classify`: pure decisions, reply facts → status and reason;
* :mod:`.politeness`: per-host concurrency and pacing, backoff;
* :mod:`.report`: outcomes, batches, merge (network down) and batch planning;
* :mod:`.checker`: the entry points.

Address rules, the vetted resolver and the pinned transports are in :mod:`clinicpress.network`
(shared with ``clinicpress import``); the names below are re-exported for existing callers.
"""

from __future__ import annotations

from clinicpress.checks.links.checker import (
    DEFAULT_BACKOFF,
    check_batch,
    check_batch_async,
    check_urls,
    check_urls_async,
)
from clinicpress.checks.links.fetch import LinkRun
from clinicpress.checks.links.report import (
    REASON_LIMIT,
    BatchItem,
    LinkBatch,
    LinkReport,
    merge_batches,
    plan_batches,
)
from clinicpress.network import IPAddress, IPNetwork, disallowed_reason, host_of, literal_ip, normalise_hosts
from clinicpress.settings.links import LinkCheckSettings

__all__ = [
    "DEFAULT_BACKOFF",
    "REASON_LIMIT",
    "BatchItem",
    "IPAddress",
    "IPNetwork",
    "LinkBatch",
    "LinkReport",
    "LinkRun",
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

_Run = LinkRun  # the name tests/checks/test_links.py and tests/checks/test_rebinding.py reach in for


def allowed_hosts(settings: LinkCheckSettings) -> frozenset[str]:
    """``allow_private_hosts`` normalised the way hosts are compared (case, brackets, final dot)."""
    return normalise_hosts(settings.allow_private_hosts)
