"""What changed at the authority since the last monitor run: ``license.changed``,
``license.delisted``, ``reviewer.inactive``. Pure, like checks/transitions.py.

DHCS's layer is overwritten in place, so the previous state is the snapshot the registry kept
of the last answer (a :class:`LicenseAnswer`). An alert is one transition, never a state that
persists; no answer (``unverified``) is never a transition and keeps the previous snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from clinicpress.checks.authority.license import AUTHORITY, LicenseAnswer, StateRecord, read_day
from clinicpress.checks.authority.npi import ReviewerCheck, ReviewerStatus
from clinicpress.site import format_date

__all__ = ["AuthorityTransition", "license_transition", "reviewer_transition"]

AuthorityKind = Literal["license.changed", "license.delisted", "reviewer.inactive"]
_GONE: frozenset[ReviewerStatus] = frozenset({"inactive", "not-found"})


@dataclass(frozen=True)
class AuthorityTransition:
    kind: AuthorityKind
    subject: str  # the program id or the NPI
    message: str


def _changes(before: StateRecord, now: StateRecord) -> list[str]:
    changes: list[str] = []
    if before.expires != now.expires:
        changes.append(f"expiry {format_date(before.expires)} → {format_date(now.expires)}")
    if before.name != now.name:
        changes.append(f"name {before.name or '(none)'} → {now.name or '(none)'}")
    if before.address_line() != now.address_line():
        changes.append(f"address {before.address_line() or '(none)'} → {now.address_line() or '(none)'}")
    return changes


def license_transition(previous: LicenseAnswer | None, current: LicenseAnswer) -> AuthorityTransition | None:
    """The transition from the last kept snapshot (``previous``; None: never seen) to ``current``.

    Delisted: listed before (or never seen) and not listed now. Changed: listed both times and
    the expiry, the name or the address differ. Listed again after a delisting is a change.
    """
    if not current.answered or current.read_at is None:
        return None
    pid = current.program_id
    read = read_day(current.read_at)
    if not current.listed:
        if previous is not None and previous.answered and not previous.listed:
            return None  # still not listed: alerted already
        return AuthorityTransition(
            "license.delisted",
            pid,
            f"{pid} is no longer in {AUTHORITY}'s list of licensed and certified facilities (read {read})",
        )
    if previous is None or not previous.answered:
        return None  # first snapshot: nothing to compare with
    if not previous.listed:
        now = "; ".join(row.describe() for row in current.listed)
        return AuthorityTransition(
            "license.changed", pid, f"{AUTHORITY} lists {pid} again: {now} (read {read})"
        )
    changes = [c for before, now in _pairs(previous.listed, current.listed) for c in _changes(before, now)]
    if not changes:
        return None
    return AuthorityTransition(
        "license.changed", pid, f"{AUTHORITY} changed its record of {pid}: {'; '.join(changes)} (read {read})"
    )


def _pairs(
    before: Sequence[StateRecord], now: Sequence[StateRecord]
) -> list[tuple[StateRecord, StateRecord]]:
    # Rows in the order listed; a row added or removed compares against the last one.
    length = max(len(before), len(now))
    return [(before[min(i, len(before) - 1)], now[min(i, len(now) - 1)]) for i in range(length)]


def reviewer_transition(
    previous: ReviewerStatus | None, current: ReviewerCheck, articles: Sequence[str]
) -> AuthorityTransition | None:
    """``reviewer.inactive`` once, when a published reviewer's NPI is deactivated or disappears.

    ``previous`` None: never seen by monitor (a published review was verified, or unverified,
    at publish). ``articles``: the slugs that print the reviewer's name.
    """
    if current.status not in _GONE or previous in _GONE:
        return None
    what = "is deactivated" if current.status == "inactive" else "is no longer in the NPI registry"
    named = current.record.person() if current.record is not None else ""
    printed = ", ".join(articles) or "no published article"
    read = f" (read {read_day(current.read_at)})" if current.read_at is not None else ""
    who = f" ({named})" if named else ""
    return AuthorityTransition(
        "reviewer.inactive", current.npi, f"NPI {current.npi}{who} {what}{read}; printed in: {printed}"
    )
