"""What checks return: a status per source, problems and a verdict per article.

One vocabulary everywhere (text, JSON, artifacts, alerts); see DESIGN.md.
A check never raises for a broken link: it returns a :class:`LinkResult`.
"""

from __future__ import annotations

import enum
from typing import Any

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


class LinkResult(BaseModel):
    """The outcome of checking one URL."""

    model_config = ConfigDict(frozen=True)

    url: str
    status: LinkStatus
    reason: str = Field(description="One line a human can act on")
    http_status: int | None = None
    final_url: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": self.status.value,
            "reason": self.reason,
            "http_status": self.http_status,
            "final_url": self.final_url,
        }


class Verdict(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    BLOCKED = "blocked"


class Severity(enum.StrEnum):
    WARNING = "warning"
    BLOCKED = "blocked"


class Problem(BaseModel):
    """One reason for a verdict: which check, how bad, what to do."""

    model_config = ConfigDict(frozen=True)

    check: str  # "license", "review", "links", "network"
    severity: Severity
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "severity": self.severity.value, "message": self.message}


def verdict_of(problems: list[Problem], *, strict: bool = False) -> Verdict:
    """Blocked if any problem blocks (or any warning under --strict), else warning, else ok."""
    if any(p.severity is Severity.BLOCKED for p in problems):
        return Verdict.BLOCKED
    if problems:
        return Verdict.BLOCKED if strict else Verdict.WARNING
    return Verdict.OK


class ArticleReport(BaseModel):
    """The verification report of one article: written as JSON and as text."""

    path: str
    slug: str
    verdict: Verdict
    problems: list[Problem] = Field(default_factory=list)
    links: list[LinkResult] = Field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "slug": self.slug,
            "verdict": self.verdict.value,
            "problems": [p.as_json() for p in self.problems],
            "links": [link.as_json() for link in self.links],
        }
