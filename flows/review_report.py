"""The review flow's form and texts (issue 15, part 3): pure, tested without Prefect's API.

- :class:`ReviewForm`: what the clinician fills in on the paused run in the Prefect UI.
- :func:`read_form`: a submitted form → the reviewer, the decision and the comment, or what is
  wrong with it (the flow then asks again; nothing is recorded).
- :func:`review_record`: the record, built exactly as ``clinicpress review`` builds it.
- :func:`live_baseline`: which text the diff compares against (the live version, or none).
- :func:`review_markdown` / :func:`result_markdown`: the run's artifacts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import BaseModel, Field, ValidationError

from clinicpress.checks.model import ArticleReport, Problem, Severity
from clinicpress.checks.signoff import CHECK as SIGNOFF_CHECK
from clinicpress.checks.signoff import Decision, ReviewRecord, new_review, text_diff
from clinicpress.outputs.delivery.people import name_problem
from clinicpress.site import format_date
from clinicpress.sources.article import Article, Reviewer
from clinicpress.sources.versioning import content_hash, reviewed_text

MAX_DIFF_LINES = 200  # the artifact shows the whole change of an ordinary edit; a rewrite is cut

# Two values, on purpose: Prefect's form shows a one-value Literal or Enum (JSON schema "const")
# as a raw JSON box; two or more render as a drop-down (tests/flows/test_review_flow.py checks).
FormDecision = Literal["approve", "request changes"]
DECISIONS: dict[str, Decision] = {
    "approve": Decision.APPROVED,
    "request changes": Decision.CHANGES_REQUESTED,
}


class ReviewForm(RunInput):
    """The form on the paused ``review`` run (the UI's "Resume" button).

    The length limits are in the JSON schema, so the server refuses an empty name before the
    flow sees it; :func:`read_form` refuses the rest (blank, more than one line).
    """

    name: str = Field(
        min_length=1,
        max_length=120,
        title="Your name",
        description="As printed on every channel: Reviewed by NAME, CREDENTIALS on …",
    )
    credentials: str = Field(min_length=1, max_length=60, title="Credentials", description="e.g. MD, PhD")
    decision: FormDecision = Field(
        title="Decision", description="Approve this exact text, or request changes (both are recorded)"
    )
    comment: str = Field(
        default="", max_length=2000, title="Comment", description="Kept with the review (what to change)"
    )


@dataclass(frozen=True)
class Submitted:
    """A form that passed :func:`read_form`."""

    reviewer: Reviewer
    decision: Decision
    comment: str


def read_form(form: ReviewForm) -> Submitted | str:
    """The reviewer, decision and comment, or one line saying what is wrong (nothing recorded)."""
    name, credentials = form.name.strip(), form.credentials.strip()
    if not name:
        return "name: is empty; expected the reviewing clinician's name"
    if not credentials:
        return "credentials: is empty; expected the reviewer's credentials, e.g. MD"
    # One person: the reviewer is who published, for the two-person rule of the newsletter send.
    if problem := name_problem(name):
        return f"name: {problem}; expected one clinician's name (credentials in their own field)"
    try:
        reviewer = Reviewer(name=name, credentials=credentials)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "name"
        return f"{field}: {error['msg']}; expected one line of text"
    if form.decision not in DECISIONS:  # the schema's enum refuses it first; kept for direct callers
        return f"decision: {form.decision!r}; expected one of {', '.join(DECISIONS)}"
    return Submitted(reviewer, DECISIONS[form.decision], " ".join(form.comment.split()))


def review_record(article: Article, submitted: Submitted, today: date, now: datetime) -> ReviewRecord:
    """The record ``clinicpress review SLUG --by … --credentials … --approve|--request-changes`` makes:
    bound to the hash of the text (and sources) the clinician was shown."""
    return new_review(
        article, submitted.reviewer, submitted.decision, submitted.comment, today=today, now=now
    )


@dataclass(frozen=True)
class Baseline:
    """What the reviewed text is compared with."""

    label: str
    text: str | None  # None: nothing to diff against
    live: bool  # False: nothing of the article is live (first publication)


def live_baseline(report: Mapping[str, Any] | None, records: Sequence[ReviewRecord]) -> Baseline:
    """The live version's text, from its report in the live release (``live_report``).

    ``records``: this article's reviews, newest first (``load_reviews``).

    The report keeps the text from the publish that wrote it (``text``; its hash ``content_hash``).
    A report written before it did: the text of a review record of that hash, else the latest
    approved text, said so; else no diff.
    """
    if report is None:
        return Baseline("first publication: nothing of this article is live", None, live=False)
    published = str(report.get("published_at", "?"))[:10]
    version = str(report.get("version", "?"))[:12]
    live = f"the live version ({version}, published {published})"
    text = report.get("text")
    if isinstance(text, str):
        return Baseline(live, text, live=True)
    known = next((r for r in records if r.content_hash == report.get("content_hash")), None)
    if known is not None:
        return Baseline(live, known.text, live=True)
    approved = next((r for r in records if r.approves), None)
    if approved is not None:
        return Baseline(
            f"the last approved text ({approved.who()}, {format_date(approved.reviewed_on)}); "
            f"{live} was published without its text",
            approved.text,
            live=True,
        )
    return Baseline(f"{live}: published without its text, so no diff", None, live=True)


def _fenced(lines: Sequence[str], info: str = "") -> list[str]:
    """A code block whose fence no line of it can close."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", *lines, fence]


def _problem_lines(problem: Problem) -> list[str]:
    first, *rest = problem.message.splitlines() or [""]
    item = [f"- **{problem.severity.value}** {problem.check}: {first}"]
    return [*item, "", *("    " + line for line in _fenced(rest))] if rest else item


def review_markdown(
    article: Article,
    report: ArticleReport,
    render_problems: Sequence[Problem],
    files: Mapping[str, Path],
    baseline: Baseline,
    publish_on_approve: bool,
) -> str:
    """The artifact a clinician reads before the form: checks, the rendered channels, the diff."""
    problems = [*report.problems, *render_problems]
    others = [p for p in problems if p.severity is Severity.BLOCKED and p.check != SIGNOFF_CHECK]
    lines = [
        f"# Review: {article.title}",
        "",
        f"`{article.key}` · text `{content_hash(article)[:12]}` · `{article.path}`",
        "",
        f"## Checks: {report.verdict.value}" + (" (render problems below)" if render_problems else ""),
        "",
        *(line for p in problems for line in _problem_lines(p)),
    ]
    if not problems:
        lines.append("No problems.")
    if others:
        lines += ["", "Approving records the review; publishing stays blocked by the problems above."]
    elif publish_on_approve:
        lines += ["", "Approving records the review and publishes this text (`[review] publish_on_approve`)."]
    else:
        lines += ["", "Approving records the review; it is published by the next publish."]
    lines += ["", "## The channels, rendered for this review (not published)", ""]
    lines += [f"- {name}: [{path.name}]({path.as_uri()}) `{path}`" for name, path in files.items()]
    if not files:
        lines.append("Nothing rendered (see the problems above).")
    lines += ["", "## What changed", ""]
    if baseline.text is None:
        lines.append(f"No diff: {baseline.label}.")
    else:
        diff = text_diff(baseline.text, reviewed_text(article), limit=MAX_DIFF_LINES)
        lines.append(f"Against {baseline.label}:" if diff else f"The text is the same as {baseline.label}.")
        lines += ["", *_fenced(diff, "diff")] if diff else []
    return "\n".join(lines) + "\n"


def form_description(article: Article, verdict: str, refused: str | None) -> str:
    """Shown above the form: which text is being signed, and why a previous form was refused."""
    lines = [f"**Not recorded:** {refused}. Fill in the form again.", ""] if refused else []
    lines += [
        f"Review of **{article.title}** (`{article.key}`), text `{content_hash(article)[:12]}`; "
        f"checks: {verdict}.",
        "",
        f"The checks, the rendered channels and the diff are in this run's artifact `review-{article.key}`. "
        "Your decision is recorded for exactly this text.",
    ]
    return "\n".join(lines)


class ArticleReviewed(BaseModel):
    """One article's review in a run of the flow."""

    slug: str
    path: str
    content_hash: str
    verdict: str  # the check's verdict before the review
    folder: str  # where its channels were rendered for the review
    decision: Decision | None = None
    reviewer: str | None = None  # as printed: "Ann Lee, MD"
    reviewer_name: str | None = None  # who published it, when publish_on_approve does: "Ann Lee"
    review_id: int | None = None
    published: bool = False
    note: str = ""  # why not published, when approved


class ReviewResult(BaseModel):
    out_dir: str
    reviews: list[ArticleReviewed]
    publish_on_approve: bool
    release_id: str | None = None  # the release the approved articles went into
    published: list[str] = []  # slugs now live with their new review line

    def approved(self) -> list[ArticleReviewed]:
        return [r for r in self.reviews if r.decision is Decision.APPROVED]

    def next_step(self) -> str:
        """What the artifact and the log end with: what was published, or how to publish."""
        approved = self.approved()
        if not approved:
            return "Nothing approved, nothing published."
        if self.publish_on_approve:
            if self.published:
                return (
                    f"Published {', '.join(self.published)} in release {self.release_id or '(live already)'}."
                )
            return "Nothing published: see the notes above."
        paths = " ".join(r.path for r in approved)
        return (
            "Not published ([review] publish_on_approve = false): run `clinicpress publish "
            f"{paths}` or the publish/publish deployment with these paths."
        )


def result_markdown(result: ReviewResult) -> str:
    """The run's summary artifact: each article's decision, and what was published."""
    lines = [
        "# clinicpress review",
        "",
        "| article | checks | decision | reviewer | review | published | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result.reviews:
        decision = r.decision.value if r.decision is not None else "not recorded"
        cells = [
            r.slug,
            r.verdict,
            decision,
            r.reviewer or "—",
            f"#{r.review_id}" if r.review_id is not None else "—",
            "yes" if r.published else "no",
            r.note or "—",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join([*lines, "", result.next_step()]) + "\n"
