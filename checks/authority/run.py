"""The one lookup of both authorities that check, publish and monitor all run (issue 27: they
verify through the same code), and what it means for one article.

:func:`lookup_authorities` asks DHCS about every license it issued and the NPI registry about
every reviewer's NPI, through one vetted client (``http.vetted_get``), each skipped when its
``enabled`` is false; check and publish pass the caches beside the link cache, monitor passes
none (it always asks again). :func:`authority_verdict` is pure: an article's problems and the
two JSON entries of ``check --format json`` (``"license_registry"``, ``"reviewer_registry"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clinicpress.checks.authority.cache import authority_cache_beside
from clinicpress.checks.authority.http import JsonGet, vetted_get
from clinicpress.checks.authority.license import (
    LicenseAnswer,
    LicenseCheck,
    judge_license,
    license_problems,
    lookup_licenses,
)
from clinicpress.checks.authority.npi import (
    NpiAnswer,
    ReviewerCheck,
    judge_reviewer,
    lookup_npis,
    reviewer_problems,
)
from clinicpress.checks.model import Problem
from clinicpress.site import License, SiteConfig
from clinicpress.sources.article import Article

__all__ = [
    "AuthorityReport",
    "AuthorityVerdict",
    "article_npi",
    "authority_verdict",
    "clinic_state",
    "lookup_authorities",
]


@dataclass(frozen=True)
class AuthorityReport:
    """What the authorities answered in one run. ``licenses`` None / ``npis`` None: that lookup is off."""

    licenses: list[tuple[License, LicenseAnswer]] | None = None  # DHCS-issued only
    npis: dict[str, NpiAnswer] | None = None

    def license_checks(self) -> list[LicenseCheck]:
        return [judge_license(lic, answer) for lic, answer in self.licenses or []]


@dataclass(frozen=True)
class AuthorityVerdict:
    """What the authorities say about one article: its problems and its two JSON entries."""

    problems: list[Problem] = field(default_factory=list)
    license_registry: list[dict[str, Any]] = field(default_factory=list)
    reviewer_registry: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # what the state lists, for the text report (ok)


def article_npi(article: Article, site: SiteConfig) -> str | None:
    """The NPI of the reviewer the article prints: its own, or the one ``[review] reviewers`` lists."""
    reviewer = article.reviewed_by
    if reviewer is None:
        return None
    return reviewer.npi or site.review.npi_of(reviewer.name)


def clinic_state(site: SiteConfig) -> str | None:
    """California when DHCS licensed the clinic (a reviewer's taxonomy must carry a CA license)."""
    return "CA" if any(lic.issued_by_dhcs() for lic in site.licenses) else None


async def lookup_authorities(
    site: SiteConfig,
    npis: Sequence[str],
    *,
    link_cache_path: Path | None,
    transport: httpx.AsyncBaseTransport | None = None,
    get: JsonGet | None = None,
) -> AuthorityReport:
    """Every DHCS license of the site and every NPI in ``npis``, looked up at once.

    ``link_cache_path`` None: no cache (monitor, ``--no-cache``); else the answers are kept
    beside the link cache for each registry's ``cache_max_age_hours``.
    """
    license_settings = site.checks.license_registry
    reviewer_settings = site.checks.reviewer_registry
    wanted = list(dict.fromkeys(npis)) if reviewer_settings.enabled else []
    if not license_settings.enabled and not reviewer_settings.enabled:
        return AuthorityReport()

    async def run(get: JsonGet) -> AuthorityReport:
        licenses = None
        answers = None
        if license_settings.enabled:
            cache = authority_cache_beside(link_cache_path, "dhcs", license_settings.cache_max_age_hours)
            licenses = list(await lookup_licenses(site.licenses, license_settings, get, cache=cache))
        if reviewer_settings.enabled:
            cache = authority_cache_beside(link_cache_path, "npi", reviewer_settings.cache_max_age_hours)
            answers = await lookup_npis(wanted, reviewer_settings, get, cache=cache) if wanted else {}
        return AuthorityReport(licenses=licenses, npis=answers)

    if get is not None:
        return await run(get)
    async with vetted_get(site.checks.links, transport=transport) as vetted:
        return await run(vetted)


def reviewer_check(article: Article, site: SiteConfig, report: AuthorityReport) -> ReviewerCheck | None:
    """The verdict on the article's reviewer at the NPI registry; None: no NPI, or not looked up."""
    npi = article_npi(article, site)
    if npi is None or report.npis is None or npi not in report.npis:
        return None
    reviewer = article.reviewed_by
    assert reviewer is not None  # article_npi found an NPI
    return judge_reviewer(
        reviewer.name, reviewer.credentials, npi, report.npis[npi], state=clinic_state(site)
    )


def authority_verdict(article: Article, site: SiteConfig, report: AuthorityReport) -> AuthorityVerdict:
    """The article's problems at the authorities: the site's licenses (on every article, as every
    channel prints them) and its reviewer's NPI. Pure."""
    checks = report.license_checks()
    problems = license_problems(checks)
    reviewer = reviewer_check(article, site, report)
    if reviewer is not None:
        problems += reviewer_problems([reviewer])
    return AuthorityVerdict(
        problems=problems,
        license_registry=[c.as_json() for c in checks],
        reviewer_registry=reviewer.as_json() if reviewer is not None else None,
        notes=[c.message for c in checks if c.status == "ok"],
    )
