"""Check cited-source links: one status per distinct URL, never an exception.

Vocabulary and rules: docs/architecture.md ("Words", "Where each rule lives"); the SSRF rules
in clinicpress/network/; docs/writing/verified.md, "How sources are verified". A false ``broken`` blocks a
good article and a false ``ok`` prints a dead citation on a patient handout, so anything we
cannot establish is ``unverified``, never guessed.

The package, one job per module:

* :mod:`.targets`: read a cited URL (DOIs and PMIDs, however spelled, go to the resolver);
* :mod:`.fetch`: one run's questions, asked through ``clinicpress.network``'s one fetch;
* :mod:`.bodies`: how much of a response is read, with a bound;
* :mod:`.classify`: pure decisions, reply facts → status and reason;
* :mod:`.politeness`: per-host concurrency and pacing, backoff;
* :mod:`.report`: outcomes, batches, merge (network down) and batch planning;
* :mod:`.checker`: the entry points.

Address rules, the vetted resolver, the pinned transport and the redirect walk are in
:mod:`clinicpress.network` (every request of the tool goes through it).
"""

from __future__ import annotations

from clinicpress.checks.links.checker import (
    DEFAULT_BACKOFF,
    check_batch,
    check_batch_async,
    check_urls,
    check_urls_async,
)
from clinicpress.checks.links.report import (
    REASON_LIMIT,
    BatchItem,
    LinkBatch,
    LinkReport,
    merge_batches,
    plan_batches,
)

__all__ = [
    "DEFAULT_BACKOFF",
    "REASON_LIMIT",
    "BatchItem",
    "LinkBatch",
    "LinkReport",
    "check_batch",
    "check_batch_async",
    "check_urls",
    "check_urls_async",
    "merge_batches",
    "plan_batches",
]
