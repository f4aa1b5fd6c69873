"""From states to transitions: what changed since the last monitor run.

Pure functions: given the stored state of a thing (a source, a license, an
article's review) and what a check found now, return the new state and the
transition, if any. An alert is sent per transition, never for a state that
merely persists, so a source broken for ten days is one alert, not ten.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from clinicpress.checks.model import Integrity, LinkResult, LinkStatus


class Kind(enum.StrEnum):
    """Transition kinds; also the Prefect event names (``clinicpress.<kind>``)."""

    SOURCE_BROKEN = "source.broken"
    SOURCE_RECOVERED = "source.recovered"
    SOURCE_MOVED = "source.moved"
    SOURCE_RETRACTED = "source.retracted"
    SOURCE_CORRECTED = "source.corrected"
    SOURCE_CONCERN = "source.concern"
    SOURCE_QUOTE_MISSING = "source.quote-missing"
    LICENSE_EXPIRING = "license.expiring"
    LICENSE_EXPIRED = "license.expired"
    LICENSE_RENEWED = "license.renewed"
    REVIEW_DUE = "review.due"
    # At the authorities (checks/authority/transitions.py): DHCS's record, the NPI registry's.
    LICENSE_CHANGED = "license.changed"
    LICENSE_DELISTED = "license.delisted"
    REVIEWER_INACTIVE = "reviewer.inactive"


# Transitions that say a problem is over: news only to someone who was told of the problem
# (outputs/monitoring.py drops one whose problem's alert never reached anybody).
ALL_CLEAR = frozenset({Kind.SOURCE_RECOVERED, Kind.LICENSE_RENEWED})


@dataclass(frozen=True)
class KeptState:
    """What the registry keeps per key between runs."""

    state: str
    since: datetime
    failures: int = 0


# -- sources ---------------------------------------------------------------------------------
# States: "ok" (works, as at publish), "broken" (alerted), "redirected" (alerted as moved).
# A source enters the registry only once publishing verified it, so an unknown one is "ok".


def source_transition(
    previous: KeptState | None, result: LinkResult, now: datetime, threshold: int
) -> tuple[KeptState, Kind | None]:
    """The next state of one source and the transition, if any.

    ``broken``/``refused`` count as failures; only ``threshold`` consecutive
    failed runs make a "broken" transition, so a flapping server pages no one.
    ``unverified``, ``bot-blocked`` and ``skipped`` say nothing about the
    source: they neither count as a failure nor reset the count.
    """
    prev = previous or KeptState("ok", now, 0)
    status = result.status
    if status.blocks:
        failures = prev.failures + 1
        # "since" is the first failed run of this streak: the alert says how long it has been down.
        since = prev.since if prev.failures else now
        if prev.state != "broken" and failures >= threshold:
            return KeptState("broken", since, failures), Kind.SOURCE_BROKEN
        return KeptState(prev.state, since if prev.state != "broken" else prev.since, failures), None
    if status is LinkStatus.OK:
        if prev.state == "broken":
            return KeptState("ok", now, 0), Kind.SOURCE_RECOVERED
        return KeptState("ok", prev.since if prev.state == "ok" else now, 0), None
    if status is LinkStatus.REDIRECTED:
        if prev.state != "redirected":
            return KeptState("redirected", now, 0), Kind.SOURCE_MOVED
        return KeptState("redirected", prev.since, 0), None
    return prev, None


# -- integrity of a DOI/PMID source -----------------------------------------------------------------
# States: the integrity status with a short fingerprint of the notice ("retracted:1a2b3c4d"; the
# registry's state column holds 32 characters), or "clean". The baseline is what publishing saw.
# "unknown" says nothing about the work (like "unverified" for a link): the state is kept.
# No failures_before_alert here: a retraction is an answer from the registry, not a flaky server,
# so the first run that sees it alerts.

_INTEGRITY_KINDS: dict[str, Kind] = {
    "retracted": Kind.SOURCE_RETRACTED,
    "concern": Kind.SOURCE_CONCERN,
    "corrected": Kind.SOURCE_CORRECTED,
}


def integrity_state(status: Integrity, notice: str | None) -> str:
    """The stored state: ``clean``, or ``<status>:<8 hex of the notice>``."""
    if status == "clean" or status == "unknown":
        return status
    mark = hashlib.sha256((notice or "").casefold().encode()).hexdigest()[:8]
    return f"{status}:{mark}"


def integrity_transition(
    previous: KeptState | None, status: Integrity | None, notice: str | None, now: datetime
) -> tuple[KeptState, Kind | None]:
    """Alert once per new notice: retracted, concern or corrected, the first run that sees it.

    A new notice of the same status (a second correction) alerts again; a notice that goes
    away (a retraction reversed) changes the state without an alert; ``unknown`` (no answer)
    and None (not looked up) keep the previous state.
    """
    prev = previous or KeptState("clean", now)
    if status is None or status == "unknown":
        return prev, None
    state = integrity_state(status, notice)
    if state == prev.state:
        return prev, None
    kind = _INTEGRITY_KINDS.get(status)
    return KeptState(state, now), kind


# -- quotes ---------------------------------------------------------------------------------------
# States: "found", "missing". The baseline is what publishing saw; a quote never found is no news.


def quote_transition(
    previous: KeptState | None, found: bool | None, now: datetime
) -> tuple[KeptState, Kind | None]:
    """Alert once when a quote that was found is no longer in its source.

    None (the source could not be read) keeps the state: an outage is not a changed text.
    """
    if found is None:
        return previous or KeptState("found", now), None
    state = "found" if found else "missing"
    prev = previous or KeptState("found", now)
    if state == prev.state:
        return prev, None
    return KeptState(state, now), Kind.SOURCE_QUOTE_MISSING if state == "missing" else None


# -- licenses --------------------------------------------------------------------------------
# States: "ok", "<N>" for "within N days" (N from the thresholds), "expired".


def license_bucket(expires: date, today: date, thresholds: Sequence[int]) -> str:
    days_left = (expires - today).days
    if days_left < 0:
        return "expired"
    within = [t for t in sorted(thresholds) if days_left <= t]
    return str(within[0]) if within else "ok"


def _severity(bucket: str) -> float:
    if bucket == "expired":
        return float("inf")
    if bucket == "ok":
        return 0.0
    return 1.0 / (int(bucket) + 1)  # fewer days left is more severe


def license_transition(
    previous: KeptState | None, expires: date, today: date, thresholds: Sequence[int], now: datetime
) -> tuple[KeptState, Kind | None]:
    """Alert when a license crosses a threshold toward expiry, expires, or is renewed."""
    bucket = license_bucket(expires, today, thresholds)
    prev = previous or KeptState("ok", now)
    if bucket == prev.state:
        return prev, None
    state = KeptState(bucket, now)
    if _severity(bucket) > _severity(prev.state):
        return state, Kind.LICENSE_EXPIRED if bucket == "expired" else Kind.LICENSE_EXPIRING
    if bucket == "ok":
        return state, Kind.LICENSE_RENEWED
    # Less severe but still within a window (renewed to a date that is also close): no alert.
    return state, None


# -- reviews ---------------------------------------------------------------------------------


def review_transition(
    previous: KeptState | None, next_review: date, today: date, now: datetime
) -> tuple[KeptState, Kind | None]:
    """Alert once when an article's review falls due; a re-publish with a new date resets it."""
    due = next_review < today
    prev = previous or KeptState("ok", now)
    if due and prev.state != "due":
        return KeptState("due", now), Kind.REVIEW_DUE
    if not due and prev.state == "due":
        return KeptState("ok", now), None
    return prev, None
