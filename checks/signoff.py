"""Clinical sign-off bound to the exact text (issue 15): pure, records in, problems out.

A review record says who reviewed which text (its ``content_hash``, sources/versioning.py), on
which day, and what they decided. This module never reads the registry (checks must not import
outputs): the flow and the CLI read the records (outputs/reviews.py) and pass them in.

- :func:`signoff_problems`: with ``[review] required = true``, an article whose current text has
  no approving review is blocked (check ``review-signoff``), naming who approved which earlier
  text, when, and a short diff of what changed since.
- :func:`with_signoff`: the article with its reviewer and review date taken from the latest
  approving review of this exact text, so every channel, the version hash and the consistency
  check print the same line; the front matter stays the fallback (imported content).
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from clinicpress.checks.model import Check, Problem, Severity
from clinicpress.hints import command
from clinicpress.site import format_date
from clinicpress.sources.article import DEFAULT_REVIEW_MONTHS, Article, Reviewer, add_months
from clinicpress.sources.versioning import content_hash, reviewed_text

CHECK = Check.REVIEW_SIGNOFF
MAX_DIFF_LINES = 12  # a message, not a patch: enough to see what changed


class Decision(enum.StrEnum):
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes-requested"


@dataclass(frozen=True)
class ReviewRecord:
    """One review of one exact text of one article, as the registry keeps it."""

    slug: str
    content_hash: str
    reviewer: Reviewer
    reviewed_on: date  # the product clock's day (clinicpress.clock)
    recorded_at: datetime
    decision: Decision
    comment: str
    text: str  # reviewed_text() of the version reviewed: what a later diff compares against
    id: int | None = None  # the registry row, once recorded

    @property
    def approves(self) -> bool:
        return self.decision is Decision.APPROVED

    def who(self) -> str:
        return self.reviewer.display()


def new_review(
    article: Article, reviewer: Reviewer, decision: Decision, comment: str, *, today: date, now: datetime
) -> ReviewRecord:
    """The record of a review of ``article``'s current text, bound to its hash: the one builder of
    both ``clinicpress review`` and the Prefect UI's form (flows/review.py). The comment is kept on
    one line."""
    return ReviewRecord(
        slug=article.key,
        content_hash=content_hash(article),
        reviewer=reviewer,
        reviewed_on=today,
        recorded_at=now,
        decision=decision,
        comment=" ".join(comment.split()),
        text=reviewed_text(article),
    )


class ReviewSource(enum.StrEnum):
    """Where the printed review line came from: the report says which."""

    RECORD = "sign-off record"
    FRONT_MATTER = "front matter"


def _newest_first(records: Sequence[ReviewRecord]) -> list[ReviewRecord]:
    return sorted(records, key=lambda r: (r.recorded_at, r.id or 0), reverse=True)


def approval_of(article: Article, records: Sequence[ReviewRecord]) -> ReviewRecord | None:
    """The latest review of the article's current text, if that review approved it.

    A request for changes after an approval of the same text withdraws the approval.
    """
    current = content_hash(article)
    for record in _newest_first(records):
        if record.slug == article.key and record.content_hash == current:
            return record if record.approves else None
    return None


def text_diff(before: str, after: str, limit: int = MAX_DIFF_LINES) -> list[str]:
    """A short unified diff (no file headers), cut to ``limit`` lines with a count of the rest."""
    lines = [
        line.rstrip("\n")
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1)
        if not line.startswith(("---", "+++"))
    ]
    if len(lines) > limit:
        lines = [*lines[:limit], f"… {len(lines) - limit} more diff line(s)"]
    return lines


def signoff_problems(article: Article, records: Sequence[ReviewRecord], *, required: bool) -> list[Problem]:
    """No problem unless review is required and the current text has no approving review."""
    if not required or approval_of(article, records) is not None:
        return []
    current = content_hash(article)
    mine = _newest_first([r for r in records if r.slug == article.key])
    same = next((r for r in mine if r.content_hash == current), None)
    approved = next((r for r in mine if r.approves), None)
    parts: list[str] = []
    if same is not None:  # the latest word on this very text asked for changes
        parts.append(
            f"{same.who()} requested changes to this text on {format_date(same.reviewed_on)}"
            + (f": {same.comment}" if same.comment else "")
        )
    if approved is not None and approved.content_hash != current:
        diff = text_diff(approved.text, reviewed_text(article))
        parts.append(
            f"{approved.who()} approved an earlier version ({approved.content_hash[:12]}) on "
            f"{format_date(approved.reviewed_on)}; changed since:\n" + "\n".join(f"    {d}" for d in diff)
        )
    if not parts:
        parts.append("no review recorded")
    review = command("review", article.key, "--by", "NAME", "--credentials", "CRED", "--approve")
    message = f"not signed off: {'; '.join(parts)}\n    → {review} (after reviewing this text)"
    return [Problem(check=CHECK, severity=Severity.BLOCKED, message=message)]


def _same_name(a: Reviewer, b: Reviewer) -> bool:
    return " ".join(a.name.split()).casefold() == " ".join(b.name.split()).casefold()


def with_signoff(article: Article, records: Sequence[ReviewRecord]) -> tuple[Article, ReviewSource]:
    """The article as it is printed: reviewer and date from its approving record, if any.

    ``next_review`` follows the record's date when the front matter left it to the default
    (last_reviewed + 12 months); an explicit ``next_review`` is kept.
    """
    record = approval_of(article, records)
    if record is None:
        return article, ReviewSource.FRONT_MATTER
    reviewer = record.reviewer
    typed = article.reviewed_by
    if reviewer.npi is None and typed is not None and typed.npi is not None and _same_name(typed, reviewer):
        # The record keeps no NPI: the front matter's, for the same person, is still the reviewer's.
        reviewer = reviewer.model_copy(update={"npi": typed.npi})
    update: dict[str, object] = {"reviewed_by": reviewer, "last_reviewed": record.reviewed_on}
    if article.next_review == add_months(article.last_reviewed, DEFAULT_REVIEW_MONTHS):
        update["next_review"] = add_months(record.reviewed_on, DEFAULT_REVIEW_MONTHS)
    return article.model_copy(update=update), ReviewSource.RECORD
