"""What checks return: a status per source, problems and a verdict per article.

One vocabulary everywhere (text, JSON, artifacts, alerts); see docs/architecture.md, "Words".
A check never raises for a broken link: it returns a :class:`LinkResult`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class LinkStatus(enum.StrEnum):
    OK = "ok"
    REDIRECTED = "redirected"  # works, but the cited URL moved: suggest final_url
    BROKEN = "broken"  # 404/410, redirect loop, host does not exist: blocks
    UNVERIFIED = "unverified"  # timeout, 5xx, 429, network down: warns
    BOT_BLOCKED = "bot-blocked"  # 403/999 from a bot wall: warns
    REFUSED = "refused"  # disallowed scheme or private address: blocks
    SKIPPED = "skipped"  # mailto:, tel:, excluded by config

    @property
    def blocks(self) -> bool:
        return self in (LinkStatus.BROKEN, LinkStatus.REFUSED)

    @property
    def warns(self) -> bool:
        return self in (LinkStatus.UNVERIFIED, LinkStatus.BOT_BLOCKED, LinkStatus.REDIRECTED)


@dataclass(frozen=True)
class Archived:
    """An archived snapshot of a source (a reader's fallback when it breaks)."""

    url: str
    timestamp: str  # YYYYMMDDhhmmss, as the Wayback Machine gives it


# What Crossref/PubMed say about a DOI or PMID source (checks/integrity); None: not a DOI or PMID.
Integrity = Literal["clean", "retracted", "corrected", "concern", "unknown"]


class LinkResult(BaseModel):
    """The outcome of checking one URL."""

    model_config = ConfigDict(frozen=True)

    url: str
    status: LinkStatus
    reason: str = Field(description="One line a human can act on")
    http_status: int | None = None
    final_url: str | None = None
    integrity: Integrity | None = None
    integrity_notice: str | None = Field(default=None, description="The notice's DOI (doi:10.…) or URL")

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": self.status.value,
            "reason": self.reason,
            "http_status": self.http_status,
            "final_url": self.final_url,
            "integrity": self.integrity,
            "integrity_notice": self.integrity_notice,
        }


class Verdict(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    BLOCKED = "blocked"


class Severity(enum.StrEnum):
    WARNING = "warning"
    BLOCKED = "blocked"


class Check(enum.StrEnum):
    """The kinds of problem: which check found it (the ``check`` of the JSON report, as written)."""

    LINKS = "links"
    NETWORK = "network"
    LICENSE = "license"
    REVIEW = "review"
    REVIEW_SIGNOFF = "review-signoff"
    READABILITY = "readability"
    LANGUAGE = "language"
    IMAGES = "images"
    EDITIONS = "editions"
    QUOTE = "quote"
    INTEGRITY = "integrity"
    LICENSE_REGISTRY = "license_registry"
    REVIEWER_REGISTRY = "reviewer_registry"
    CONSISTENCY = "consistency"
    RENDER = "render"


class Problem(BaseModel):
    """One reason for a verdict: which check, how bad, what to do."""

    model_config = ConfigDict(frozen=True)

    check: Check
    severity: Severity
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check.value, "severity": self.severity.value, "message": self.message}


def verdict_of(problems: list[Problem], *, strict: bool = False) -> Verdict:
    """Blocked if any problem blocks (or any warning under --strict), else warning, else ok."""
    if any(p.severity is Severity.BLOCKED for p in problems):
        return Verdict.BLOCKED
    if problems:
        return Verdict.BLOCKED if strict else Verdict.WARNING
    return Verdict.OK


class ReviewLine(BaseModel):
    """The "Reviewed by … on …" line every channel prints, and where it came from (issue 15)."""

    model_config = ConfigDict(frozen=True)

    reviewed_by: str | None
    last_reviewed: str  # ISO date
    source: Literal["sign-off record", "front matter"]

    def as_json(self) -> dict[str, Any]:
        return {"reviewed_by": self.reviewed_by, "last_reviewed": self.last_reviewed, "source": self.source}


class ArticleReport(BaseModel):
    """The verification report of one article: written as JSON and as text."""

    path: str
    slug: str
    verdict: Verdict
    problems: list[Problem] = Field(default_factory=list)
    links: list[LinkResult] = Field(default_factory=list)
    review_line: ReviewLine | None = None  # None: not judged (the preview reads no review records)
    # At the authorities (checks/authority): one entry per DHCS license ([] when the lookup is
    # off), the reviewer's NPI and status (None: no NPI, or the lookup is off), and what the state
    # lists for each license found ok (the text report prints it).
    license_registry: list[dict[str, Any]] = Field(default_factory=list)
    reviewer_registry: dict[str, Any] | None = None
    authority_notes: list[str] = Field(default_factory=list)
    # The hash of the article's text alone (sources/versioning.content_hash): what a translation's
    # translated_from names (issue 26). None only in reports made before it existed.
    content_hash: str | None = None
    language: str | None = None  # the edition's language (its own, or the site's)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "slug": self.slug,
            "content_hash": self.content_hash,
            "language": self.language,
            "verdict": self.verdict.value,
            "problems": [p.as_json() for p in self.problems],
            "links": [link.as_json() for link in self.links],
            "review_line": self.review_line.as_json() if self.review_line is not None else None,
            "license_registry": self.license_registry,
            "reviewer_registry": self.reviewer_registry,
        }
