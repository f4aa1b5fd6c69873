"""Settings of the authority lookups (issue 25): the ``[checks.license_registry]`` and
``[checks.reviewer_registry]`` tables of site.toml, and the NPI check digit.

The keys are fixed (tools outside the project rely on them; docs/architecture.md, "Contracts")::

    [checks.license_registry]            # the state's list of licensed and certified programs
    enabled = true
    url = "https://services7.arcgis.com/…/SUD_Recovery_Treatment_Facilities/FeatureServer/0/query"
    cache_max_age_hours = 24

    [checks.reviewer_registry]           # the NPPES NPI Registry API, v2.1
    enabled = true
    url = "https://npiregistry.cms.hhs.gov/api/"
    cache_max_age_hours = 24

Both are on by default: the license line and the "Reviewed by" line are regulated claims printed
on every channel, and a check that is off by default is a check nobody runs. Off the network a
lookup is ``unverified`` (a warning, never ok), so the sample site still checks, with one line
saying so; ``--strict`` blocks on it.

The NPI check digit lives here, in the core, because both places an NPI is typed validate it at
load, below every pipeline stage: an article's ``reviewed_by.npi`` (sources) and the site's
``[review] reviewers`` (this config). A typo is exit 2 before any request.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "DHCS_LAYER_QUERY_URL",
    "NPPES_API_URL",
    "LicenseRegistrySettings",
    "Npi",
    "ReviewerRegistrySettings",
    "npi_check_digit",
    "npi_problem",
]

# DHCS's "SUD Recovery Treatment Facilities" layer (public; overwritten in place, no history).
DHCS_LAYER_QUERY_URL = (
    "https://services7.arcgis.com/7MUwsS9z05YumJRZ/arcgis/rest/services/"
    "SUD_Recovery_Treatment_Facilities/FeatureServer/0/query"
)
NPPES_API_URL = "https://npiregistry.cms.hhs.gov/api/"

# CMS, "Requirements for the NPI check digit": the Luhn formula over the NPI prefixed with 80840
# (the ISO 7812 card-issuer prefix for US health applications).
_NPI_PREFIX = "80840"


def npi_check_digit(first_nine: str) -> int:
    """The check digit of an NPI whose first nine digits are ``first_nine`` (Luhn over 80840 + them)."""
    if len(first_nine) != 9 or not first_nine.isascii() or not first_nine.isdigit():
        raise ValueError(f"{first_nine!r} is not nine digits")
    total = 0
    # From the right of the 14 digits, every other digit (starting with the rightmost) is doubled.
    for position, char in enumerate(reversed(_NPI_PREFIX + first_nine)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return (10 - total % 10) % 10


def npi_problem(value: str) -> str | None:
    """Why ``value`` is not an NPI (a sentence fragment), or None when it is one."""
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return "is not 10 digits"
    expected = npi_check_digit(value[:9])
    if int(value[9]) != expected:
        return f"fails the NPI check digit (a typo? the 10th digit would be {expected})"
    return None


def _npi(value: str) -> str:
    value = value.strip()
    problem = npi_problem(value)
    if problem is not None:
        raise ValueError(f"{value[:20]!r} {problem}; expected a 10-digit NPI like 1234567893")
    return value


# An NPI field: ``npi: Npi | None = None`` on a pydantic model validates the check digit at load.
Npi = Annotated[str, AfterValidator(_npi)]


def _endpoint(value: str) -> str:
    # urlsplit() silently drops CR, LF and tabs: refuse them (and any space) first.
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in value):
        raise ValueError(f"{value[:80]!r} contains spaces or control characters; expected a URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value[:80]!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{value[:80]!r} carries a query or a fragment; the lookup adds its own query")
    return value


class LicenseRegistrySettings(BaseModel):
    """Where each DHCS license is looked up: the state's list of licensed and certified facilities."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="Look up every license issued by DHCS in the state's list (check, publish, monitor)",
    )
    url: str = Field(
        default=DHCS_LAYER_QUERY_URL,
        description="The query endpoint of DHCS's ArcGIS feature layer of licensed and certified "
        "SUD recovery and treatment facilities (…/FeatureServer/0/query)",
    )
    cache_max_age_hours: float = Field(
        default=24,
        ge=0,
        description="Keep the state's answers this long for check and publish (monitor always asks again)",
    )

    @field_validator("url")
    @classmethod
    def _query_endpoint(cls, value: str) -> str:
        value = _endpoint(value)
        if not urlsplit(value).path.rstrip("/").endswith("/query"):
            raise ValueError(
                f"{value[:80]!r} is not a layer's query endpoint; expected a URL ending in "
                "/FeatureServer/0/query"
            )
        return value.rstrip("/")


class ReviewerRegistrySettings(BaseModel):
    """Where each reviewer's NPI is looked up: the NPPES NPI Registry API, version 2.1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="Look up every reviewer's NPI in the NPI registry (check, publish, monitor)",
    )
    url: str = Field(
        default=NPPES_API_URL,
        description="The NPPES NPI Registry API; ?version=2.1&number=NPI is added",
    )
    cache_max_age_hours: float = Field(
        default=24,
        ge=0,
        description="Keep the registry's answers this long for check and publish (monitor always asks again)",
    )

    @field_validator("url")
    @classmethod
    def _api(cls, value: str) -> str:
        return _endpoint(value)
