"""Settings of the integrity lookups: the ``[checks.integrity]`` table of site.toml.

The keys are fixed (tools outside the project rely on them; docs/architecture.md, "Contracts")::

    [checks.integrity]
    enabled = true
    crossref_api = "https://api.crossref.org/"
    pubmed_api = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
    mailto = ""              # empty: the site's contact address
    cache_max_age_hours = 24
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clinicpress.addresses import address_problem

__all__ = ["IntegritySettings"]

_BASE_URL = re.compile(r"^https?://[^/\s?#]+/(?:[^\s?#]*/)?$")


class IntegritySettings(BaseModel):
    """Where retractions, corrections and registered titles are looked up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Look up every DOI and PMID source")
    crossref_api: str = Field(
        default="https://api.crossref.org/", description="Crossref REST API base; works/<doi> is appended"
    )
    pubmed_api: str = Field(
        default="https://eutils.ncbi.nlm.nih.gov/entrez/eutils/",
        description="NCBI E-utilities base; esummary.fcgi is appended",
    )
    mailto: str = Field(
        default="",
        description="Contact address sent to Crossref (its polite pool); empty: the site's contact address",
    )
    cache_max_age_hours: float = Field(default=24, ge=0, description="Keep answers this long")

    @field_validator("crossref_api", "pubmed_api")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not _BASE_URL.match(value):
            raise ValueError(f"{value!r} is not a base URL ending in '/', like https://api.crossref.org/")
        return value

    @field_validator("mailto")
    @classmethod
    def _mailto(cls, value: str) -> str:
        value = value.strip()
        if value and (problem := address_problem(value)):
            raise ValueError(f"{value!r} is not an email address: it {problem}; expected one, or empty")
        return value
