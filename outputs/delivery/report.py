"""What a send did: the counts per state, the recipients a person may need to look at, and why it stopped.

``tally`` is pure: it turns the rows the store read into a ``SendReport``,
applying the accounting rule (complete only when candidates = accepted +
failed + uncertain + excluded) and the cap (failed at ``max_send_attempts``
counts as excluded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from clinicpress.hints import Placeholder, command
from clinicpress.outputs.delivery.errors import DeliveryIncomplete
from clinicpress.outputs.delivery.schema import Approval, State


@dataclass(frozen=True)
class RecipientIssue:
    """A recipient a person may need to look at (uncertain, or failed for good)."""

    email: str
    state: str
    attempts: int
    message_id: str | None
    last_error: str | None
    claimed_at: datetime | None


@dataclass(frozen=True)
class SendReport:
    slug: str
    version: str
    test: bool
    candidates: int
    pending: int
    claimed: int
    accepted: int
    failed: int  # refused, will be retried by the next run
    uncertain: int
    excluded: int  # unsubscribed, or failed max_send_attempts times
    sent: int  # accepted during this run
    uncertain_recipients: tuple[RecipientIssue, ...] = ()
    failed_recipients: tuple[RecipientIssue, ...] = ()  # failed and failed-for-good
    busy: str | None = None  # another run holds this send: who
    stopped: str | None = None  # why this run ended before the list did
    problem: str | None = None  # the accounting did not balance
    approval: Approval = Approval.NOT_REQUIRED  # AWAITING: nobody was sent anything (approval.py)
    triggered_by: str | None = None  # who published it (None: before the registry recorded it)
    approved_by: str | None = None
    approved_at: datetime | None = None
    continued_from: str | None = None  # a new version of the same text: the version it continues

    @property
    def awaiting(self) -> bool:
        """The send waits for a second person's approval: nothing was sent."""
        return self.approval is Approval.AWAITING

    @property
    def stalled(self) -> bool:
        """Incomplete for a reason the next publish resumes (not while it awaits an approval)."""
        return not self.complete and not self.awaiting

    @property
    def accounted(self) -> int:
        return self.accepted + self.failed + self.uncertain + self.excluded

    @property
    def complete(self) -> bool:
        """Every candidate is accepted, failed, uncertain or excluded."""
        return self.problem is None and self.pending == 0 and self.claimed == 0

    def counts(self) -> dict[str, int]:
        return {
            "pending": self.pending,
            "claimed": self.claimed,
            "accepted": self.accepted,
            "failed": self.failed,
            "uncertain": self.uncertain,
            "excluded": self.excluded,
        }

    def summary(self) -> str:
        what = "test send" if self.test else "newsletter"
        if self.awaiting:
            who = self.triggered_by or "unknown"
            return (
                f"{what} {self.slug} (version {self.version[:12]}): {self.candidates} recipient(s): "
                f"waiting for approval; nothing sent\n"
                f"  published by {who}; someone else approves it: "
                f"{command('approve-send', self.slug, '--by', 'NAME')}"
            )
        line = (
            f"{what} {self.slug} (version {self.version[:12]}): {self.candidates} recipient(s): "
            f"{self.accepted} accepted, {self.failed} failed, {self.uncertain} uncertain, "
            f"{self.excluded} excluded, {self.pending} pending, {self.claimed} claimed; "
            f"{self.sent} sent by this run; {'complete' if self.complete else 'NOT complete'}"
        )
        extra = [f"  {text}" for text in (self.busy, self.stopped, self.problem) if text]
        if self.continued_from:
            extra.insert(
                0,
                f"  the same text as version {self.continued_from[:12]}: its send goes on under this "
                "version; nobody is sent the text twice",
            )
        if self.approval is Approval.APPROVED:
            when = f" at {self.approved_at:%Y-%m-%d %H:%M} UTC" if self.approved_at else ""
            who = self.triggered_by or "unknown"
            extra.insert(0, f"  approved by {self.approved_by}{when}; published by {who}")
        for issue in self.uncertain_recipients:
            extra.append(
                f"  uncertain: {issue.email} (Message-ID {issue.message_id}): {issue.last_error}; "
                "not resent: check the mail server's log, then "
                + command("newsletter", "resolve", self.slug, issue.email, Placeholder("--sent|--not-sent"))
            )
        for issue in self.failed_recipients:
            extra.append(
                f"  {issue.state}: {issue.email} after {issue.attempts} attempt(s): {issue.last_error}"
            )
        return "\n".join([line, *extra])

    def raise_if_incomplete(self) -> None:
        if not self.complete:
            raise DeliveryIncomplete(self)


def tally(
    *,
    slug: str,
    version: str,
    candidates: int,
    counts: Mapping[str, int],
    at_cap: int,
    issues: Iterable[RecipientIssue],
    max_attempts: int,
    sent: int,
    busy: str | None = None,
    stopped: str | None = None,
    approval: Approval = Approval.NOT_REQUIRED,
    triggered_by: str | None = None,
    approved_by: str | None = None,
    approved_at: datetime | None = None,
) -> SendReport:
    """The report of a send from its rows: ``counts`` per state, ``at_cap`` failed ones out of attempts.

    ``issues`` are the uncertain and failed recipients, in send order.
    """
    rows = sum(counts.values())
    known = sum(counts.get(s, 0) for s in State)
    problem = None
    if rows != candidates or known != rows:
        problem = (
            f"accounting: {candidates} candidate(s) enqueued but {rows} recorded "
            f"({known} in known states): {dict(counts)}"
        )
    issues = list(issues)
    return SendReport(
        slug=slug,
        version=version,
        test=False,
        candidates=candidates,
        pending=counts.get(State.PENDING, 0),
        claimed=counts.get(State.CLAIMED, 0),
        accepted=counts.get(State.ACCEPTED, 0),
        failed=counts.get(State.FAILED, 0) - at_cap,
        uncertain=counts.get(State.UNCERTAIN, 0),
        excluded=counts.get(State.EXCLUDED, 0) + at_cap,
        sent=sent,
        uncertain_recipients=tuple(i for i in issues if i.state == State.UNCERTAIN),
        failed_recipients=tuple(
            RecipientIssue(
                i.email,
                "failed" if i.attempts < max_attempts else "excluded",
                i.attempts,
                i.message_id,
                i.last_error,
                i.claimed_at,
            )
            for i in issues
            if i.state == State.FAILED
        ),
        busy=busy,
        stopped=stopped,
        problem=problem,
        approval=approval,
        triggered_by=triggered_by,
        approved_by=approved_by,
        approved_at=approved_at,
    )
