"""Settings of the link checker: the ``[checks.links]`` table of site.toml."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


class LinkCheckSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_private_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts that may resolve to private/loopback addresses (tests use 127.0.0.1)",
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds per request")
    concurrency: int = Field(default=8, ge=1, le=256)
    per_host: int = Field(default=2, ge=1, le=64)
    retries: int = Field(default=1, ge=0, le=5, description="Extra tries for transient failures")
    max_redirects: int = Field(default=10, ge=0, le=30)
    exclude: list[str] = Field(default_factory=list, description="Regexes of URLs to skip")
    user_agent: str = "clinicpress/0.1 (source checker; +https://github.com/clinicpress)"

    @field_validator("exclude")
    @classmethod
    def _regexes(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a valid regular expression ({exc})") from exc
        return values
