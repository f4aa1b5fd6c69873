"""License and review dates: the facts printed on every channel must be true on the day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from clinicpress.checks.model import Check, Problem, Severity
from clinicpress.site import License, format_date
from clinicpress.sources.article import Article, Channel


def _license_name(lic: License) -> str:
    return f"license {lic.program_id} ({lic.issuer})"


def check_licenses(licenses: Sequence[License], on: date, warn_days: Sequence[int]) -> list[Problem]:
    """Expired on ``on`` → blocked (every channel prints it); expiring soon → warning."""
    problems: list[Problem] = []
    window = max(warn_days, default=0)
    for lic in licenses:
        if lic.expires < on:
            problems.append(
                Problem(
                    check=Check.LICENSE,
                    severity=Severity.BLOCKED,
                    message=(
                        f"{_license_name(lic)} expired on {format_date(lic.expires)}: every channel "
                        "prints it, so nothing can be published until site.toml carries the renewed license"
                    ),
                )
            )
            continue
        days_left = (lic.expires - on).days
        if days_left <= window:
            problems.append(
                Problem(
                    check=Check.LICENSE,
                    severity=Severity.WARNING,
                    message=(
                        f"{_license_name(lic)} expires on {format_date(lic.expires)}, in {days_left} "
                        f"day{'s' if days_left != 1 else ''}: start the renewal"
                    ),
                )
            )
    return problems


def check_review(article: Article, on: date) -> list[Problem]:
    """``next_review`` passed → blocked when a handout is made (it is printed), else a warning."""
    due = article.review_due
    if due >= on:
        return []
    handout = Channel.HANDOUT in article.channels
    consequence = (
        "the handout cannot be printed until the article is reviewed (update last_reviewed)"
        if handout
        else "review the article and update last_reviewed"
    )
    return [
        Problem(
            check=Check.REVIEW,
            severity=Severity.BLOCKED if handout else Severity.WARNING,
            message=f"review overdue since {format_date(due)}: {consequence}",
        )
    ]
