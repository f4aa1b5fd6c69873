"""Settings of the link checker: the ``[checks.links]`` table of site.toml.

Every key has a default, so a site.toml written for an older version stays valid.
Per-host overrides live in sub-tables::

    [checks.links.hosts."example.org"]      # also matches www.example.org, a.b.example.org
    per_host = 1
    min_interval = 1.0
    check_fragments = false
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_USER_AGENT = "clinicpress/0.1 (source checker; +https://github.com/clinicpress/clinicpress)"
# Sent once, only to retry a 403 without bot-wall markers: does a browser get through?
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


class HostSettings(BaseModel):
    """Overrides for one host (and its subdomains); unset keys fall back to the table's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_host: int | None = Field(default=None, ge=1, le=256, description="Requests in flight to this host")
    min_interval: float | None = Field(
        default=None, ge=0, le=60, description="Seconds between the starts of two requests to this host"
    )
    check_fragments: bool | None = Field(default=None, description="Verify #fragments on this host's pages")
    soft_404: bool | None = Field(default=None, description="Read this host's titles for 'not found' pages")


class HostPolicy(BaseModel):
    """The effective settings for one host, after overrides."""

    model_config = ConfigDict(frozen=True)

    per_host: int
    min_interval: float
    check_fragments: bool
    soft_404: bool


class LinkCheckSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_private_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts that may resolve to private/loopback addresses (tests use 127.0.0.1)",
    )
    allow_private_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        default_factory=list,
        description=(
            "Addresses in these networks are allowed, like allow_private_hosts but by address "
            '(for an intranet: ["10.20.0.0/16"]); the checker still connects only to the address it vetted'
        ),
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds per request")
    concurrency: int = Field(default=8, ge=1, le=512, description="Requests in flight at once")
    per_host: int = Field(default=2, ge=1, le=256, description="Requests in flight per host")
    min_interval: float = Field(
        default=0.05, ge=0, le=60, description="Seconds between the starts of two requests to one host"
    )
    retries: int = Field(default=1, ge=0, le=5, description="Extra tries for transient failures")
    max_redirects: int = Field(
        default=10, ge=0, le=30, description="Redirect hops followed (each one vetted)"
    )
    exclude: list[str] = Field(default_factory=list, description="Regexes of URLs to skip")
    user_agent: str = Field(default=DEFAULT_USER_AGENT, description="The checker's User-Agent")
    browser_user_agent: str = Field(
        default=BROWSER_USER_AGENT, description="Sent once, to retry a 403 without bot-wall markers"
    )
    check_fragments: bool = Field(default=True, description="Verify #fragments against the page's ids")
    soft_404: bool = Field(default=True, description="Read titles/headings: a 200 'not found' page is broken")
    cache_max_age_hours: float = Field(default=24.0, ge=0, description="Keep ok/redirected results this long")
    hosts: dict[str, HostSettings] = Field(default_factory=dict, description="Per-host overrides")
    # Where doi:10.… and pmid:… are checked; doi.org/dx.doi.org URLs are recognised as DOIs too.
    doi_resolver: str = Field(
        default="https://doi.org/", description="Where every DOI source is checked, however it is written"
    )
    pubmed_resolver: str = Field(
        default="https://pubmed.ncbi.nlm.nih.gov/", description="Where every PMID source is checked"
    )

    @field_validator("exclude")
    @classmethod
    def _regexes(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a valid regular expression ({exc})") from exc
        return values

    @field_validator("allow_private_networks", mode="before")
    @classmethod
    def _networks(cls, values: object) -> object:
        # Parsed here for a readable error (pydantic's union error names its internals) and strictly:
        # "10.0.0.1/8" is a typo for an address or for 10.0.0.0/8; guessing either widens the hole.
        if not isinstance(values, list | tuple):
            return values  # pydantic reports "not a list"
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for value in values:
            if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
                networks.append(value)
                continue
            try:
                networks.append(ipaddress.ip_network(str(value).strip()))
            except ValueError as exc:
                raise ValueError(
                    f"{value!r} is not a network like 10.20.0.0/16 or fd00:1::/64 ({exc})"
                ) from exc
        return networks

    @field_validator("hosts")
    @classmethod
    def _host_keys(cls, values: dict[str, HostSettings]) -> dict[str, HostSettings]:
        return {k.strip().strip("[]").lower().rstrip("."): v for k, v in values.items()}

    @field_validator("doi_resolver", "pubmed_resolver")
    @classmethod
    def _resolver(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/", value):
            raise ValueError(f"{value!r} is not a base URL like https://doi.org/")
        return value if value.endswith("/") else value + "/"

    @field_validator("user_agent", "browser_user_agent")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip() or "\r" in value or "\n" in value:
            raise ValueError("must be one non-empty line")
        return value.strip()

    def policy(self, host: str) -> HostPolicy:
        """Effective settings for ``host``: the longest matching ``hosts`` key wins."""
        host = host.lower().rstrip(".")
        settings = self
        override = HostSettings()
        best = -1
        for key, value in settings.hosts.items():
            if (host == key or host.endswith("." + key)) and len(key) > best:
                override, best = value, len(key)
        return HostPolicy(
            per_host=override.per_host if override.per_host is not None else settings.per_host,
            min_interval=(
                override.min_interval if override.min_interval is not None else settings.min_interval
            ),
            check_fragments=(
                override.check_fragments if override.check_fragments is not None else settings.check_fragments
            ),
            soft_404=override.soft_404 if override.soft_404 is not None else settings.soft_404,
        )
