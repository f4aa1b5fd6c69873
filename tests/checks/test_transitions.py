"""Alert transitions step by step, with the whole stored state checked at every step: the tests that
kill the mutants test_monitor's sequences (which look only at the kinds) let live (docs/mutation.md).

One alert per transition, never per persisting state; the stored ``since`` and ``failures`` are what the
next run decides from, so they are pinned too.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest

from clinicpress.checks.model import LinkResult, LinkStatus
from clinicpress.checks.transitions import (
    KeptState,
    Kind,
    integrity_state,
    integrity_transition,
    license_bucket,
    license_transition,
    quote_transition,
    review_transition,
    source_transition,
)

T0 = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
DAY = date(2026, 3, 1)


def t(n: int) -> datetime:
    return T0 + timedelta(days=n)


def _link(status: LinkStatus) -> LinkResult:
    return LinkResult(url="https://example.org/a", status=status, reason=status.value)


def test_source_states_step_by_step() -> None:
    steps = [
        (LinkStatus.BROKEN, KeptState("ok", t(0), 1), None),  # one failure: counted, no alert
        (LinkStatus.BROKEN, KeptState("broken", t(0), 2), Kind.SOURCE_BROKEN),  # since: the first failure
        (LinkStatus.REFUSED, KeptState("broken", t(0), 3), None),  # still broken: no second alert
        (LinkStatus.UNVERIFIED, KeptState("broken", t(0), 3), None),  # says nothing: kept
        (LinkStatus.OK, KeptState("ok", t(4), 0), Kind.SOURCE_RECOVERED),
        (LinkStatus.OK, KeptState("ok", t(4), 0), None),
        (LinkStatus.REDIRECTED, KeptState("redirected", t(6), 0), Kind.SOURCE_MOVED),
        (LinkStatus.REDIRECTED, KeptState("redirected", t(6), 0), None),
        (LinkStatus.OK, KeptState("ok", t(8), 0), None),  # back from a redirect: no alert, a new since
        (LinkStatus.REFUSED, KeptState("ok", t(9), 1), None),
        (LinkStatus.SKIPPED, KeptState("ok", t(9), 1), None),
        (LinkStatus.BOT_BLOCKED, KeptState("ok", t(9), 1), None),
        (LinkStatus.OK, KeptState("ok", t(9), 0), None),  # the count resets
        (LinkStatus.BROKEN, KeptState("ok", t(13), 1), None),  # a new streak starts at one
        (LinkStatus.BROKEN, KeptState("broken", t(13), 2), Kind.SOURCE_BROKEN),
        (LinkStatus.REDIRECTED, KeptState("redirected", t(15), 0), Kind.SOURCE_MOVED),
        (LinkStatus.BROKEN, KeptState("redirected", t(16), 1), None),
    ]
    state: KeptState | None = None
    for day, (status, want_state, want_kind) in enumerate(steps):
        state, kind = source_transition(state, _link(status), t(day), threshold=2)
        assert (state, kind) == (want_state, want_kind), f"step {day}: {status}"


def test_a_threshold_of_one_alerts_on_the_first_failure() -> None:
    assert source_transition(None, _link(LinkStatus.BROKEN), t(0), 1) == (
        KeptState("broken", t(0), 1),
        Kind.SOURCE_BROKEN,
    )
    state, kind = source_transition(None, _link(LinkStatus.BROKEN), t(0), 3)
    state, kind = source_transition(state, _link(LinkStatus.BROKEN), t(1), 3)
    assert (state, kind) == (KeptState("ok", t(0), 2), None)
    assert source_transition(state, _link(LinkStatus.BROKEN), t(2), 3) == (
        KeptState("broken", t(0), 3),
        Kind.SOURCE_BROKEN,
    )
    first = source_transition(None, _link(LinkStatus.OK), t(0), 2)
    assert first == (KeptState("ok", t(0), 0), None)
    unverified = source_transition(None, _link(LinkStatus.UNVERIFIED), t(0), 2)
    assert unverified == (KeptState("ok", t(0), 0), None)


def _mark(notice: str) -> str:
    return hashlib.sha256(notice.casefold().encode()).hexdigest()[:8]


def test_integrity_states_step_by_step() -> None:
    assert integrity_state("clean", "doi:10.1/x") == "clean"
    assert integrity_state("unknown", None) == "unknown"
    assert integrity_state("retracted", "DOI:10.1/X") == f"retracted:{_mark('doi:10.1/x')}"
    assert len(integrity_state("retracted", None)) == len("retracted:") + 8
    assert integrity_state("corrected", None) == f"corrected:{_mark('')}"
    steps = [
        (None, None, KeptState("clean", t(0)), None),  # not looked up: kept
        ("clean", None, KeptState("clean", t(0)), None),
        ("unknown", "doi:10.1/a", KeptState("clean", t(0)), None),
        (
            "retracted",
            "doi:10.1/a",
            KeptState(f"retracted:{_mark('doi:10.1/a')}", t(3)),
            Kind.SOURCE_RETRACTED,
        ),
        ("retracted", "DOI:10.1/A", KeptState(f"retracted:{_mark('doi:10.1/a')}", t(3)), None),
        ("unknown", None, KeptState(f"retracted:{_mark('doi:10.1/a')}", t(3)), None),
        ("clean", None, KeptState("clean", t(6)), None),  # reversed: no alert
        (
            "corrected",
            "doi:10.1/c1",
            KeptState(f"corrected:{_mark('doi:10.1/c1')}", t(7)),
            Kind.SOURCE_CORRECTED,
        ),
        (
            "corrected",
            "doi:10.1/c2",
            KeptState(f"corrected:{_mark('doi:10.1/c2')}", t(8)),
            Kind.SOURCE_CORRECTED,
        ),
        ("concern", "doi:10.1/e", KeptState(f"concern:{_mark('doi:10.1/e')}", t(9)), Kind.SOURCE_CONCERN),
    ]
    state: KeptState | None = None
    for day, (status, notice, want_state, want_kind) in enumerate(steps):
        state, kind = integrity_transition(state, status, notice, t(day))  # type: ignore[arg-type]
        assert (state, kind) == (want_state, want_kind), f"step {day}: {status}"


def test_quote_states_step_by_step() -> None:
    steps = [
        (None, KeptState("found", t(0)), None),
        (True, KeptState("found", t(0)), None),
        (False, KeptState("missing", t(2)), Kind.SOURCE_QUOTE_MISSING),
        (None, KeptState("missing", t(2)), None),  # the source could not be read: kept
        (False, KeptState("missing", t(2)), None),
        (True, KeptState("found", t(5)), None),
        (False, KeptState("missing", t(6)), Kind.SOURCE_QUOTE_MISSING),
    ]
    state: KeptState | None = None
    for day, (found, want_state, want_kind) in enumerate(steps):
        state, kind = quote_transition(state, found, t(day))
        assert (state, kind) == (want_state, want_kind), f"step {day}: {found}"
    assert quote_transition(None, False, t(0)) == (KeptState("missing", t(0)), Kind.SOURCE_QUOTE_MISSING)


@pytest.mark.parametrize(
    ("days_left", "bucket"),
    [(-1, "expired"), (0, "30"), (30, "30"), (31, "90"), (90, "90"), (91, "150"), (150, "150"), (151, "ok")],
)
def test_license_buckets_at_their_edges(days_left: int, bucket: str) -> None:
    assert license_bucket(DAY + timedelta(days=days_left), DAY, [150, 30, 90]) == bucket


def test_license_states_step_by_step() -> None:
    thresholds = (150, 90, 30)
    steps = [
        (200, KeptState("ok", t(0)), None),
        (150, KeptState("150", t(1)), Kind.LICENSE_EXPIRING),
        (100, KeptState("150", t(1)), None),
        (90, KeptState("90", t(3)), Kind.LICENSE_EXPIRING),
        (30, KeptState("30", t(4)), Kind.LICENSE_EXPIRING),
        (-1, KeptState("expired", t(5)), Kind.LICENSE_EXPIRED),
        (-2, KeptState("expired", t(5)), None),
        (10, KeptState("30", t(7)), None),  # renewed to a close date: less severe, no alert
        (120, KeptState("150", t(8)), None),
        (400, KeptState("ok", t(9)), Kind.LICENSE_RENEWED),
        (-5, KeptState("expired", t(10)), Kind.LICENSE_EXPIRED),
        (400, KeptState("ok", t(11)), Kind.LICENSE_RENEWED),
    ]
    state: KeptState | None = None
    for day, (days_left, want_state, want_kind) in enumerate(steps):
        expires = DAY + timedelta(days=day + days_left)
        state, kind = license_transition(state, expires, DAY + timedelta(days=day), thresholds, t(day))
        assert (state, kind) == (want_state, want_kind), f"step {day}: {days_left} days left"


def test_a_zero_day_threshold_is_the_most_severe_window() -> None:
    first, kind = license_transition(None, DAY + timedelta(days=5), DAY, (0, 30), t(0))
    assert (first, kind) == (KeptState("30", t(0)), Kind.LICENSE_EXPIRING)
    assert license_transition(first, DAY, DAY, (0, 30), t(1)) == (KeptState("0", t(1)), Kind.LICENSE_EXPIRING)


def test_review_states_step_by_step() -> None:
    due_on = DAY + timedelta(days=2)
    steps = [
        (due_on, DAY, KeptState("ok", t(0)), None),
        (due_on, due_on, KeptState("ok", t(0)), None),  # due the day after next_review, not on it
        (due_on, due_on + timedelta(days=1), KeptState("due", t(2)), Kind.REVIEW_DUE),
        (due_on, due_on + timedelta(days=2), KeptState("due", t(2)), None),
        (
            due_on + timedelta(days=365),
            due_on + timedelta(days=3),
            KeptState("ok", t(4)),
            None,
        ),  # re-published
        (due_on + timedelta(days=365), due_on + timedelta(days=4), KeptState("ok", t(4)), None),
    ]
    state: KeptState | None = None
    for day, (next_review, today, want_state, want_kind) in enumerate(steps):
        state, kind = review_transition(state, next_review, today, t(day))
        assert (state, kind) == (want_state, want_kind), f"step {day}"


def test_a_stored_state_cannot_be_changed_in_place() -> None:
    """The registry compares the state it read with the one a transition returns: never the same object
    edited."""
    state = KeptState("ok", t(0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.failures = 3  # type: ignore[misc]
