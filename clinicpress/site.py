"""The site configuration (``content/site.toml``): what every article shares.

Values come from the TOML file and may be overridden by environment
variables named ``CLINICPRESS_<SECTION>__<KEY>`` (for example
``CLINICPRESS_NEWSLETTER__FROM_ADDRESS``); the environment wins.
"""

from __future__ import annotations

import tomllib
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from clinicpress.addresses import address_problem, unsubscribe_url_problem
from clinicpress.errors import SiteConfigError
from clinicpress.settings.integrity import IntegritySettings
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.validation import input_error_from, single_line

DEFAULT_SITE_PATH = Path("content/site.toml")
MAX_SITE_BYTES = 256 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _https_url(value: str) -> str:
    # urlsplit() silently drops CR, LF and tabs: refuse them (and any space) first.
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in value):
        raise ValueError(f"{value!r} contains spaces or control characters; expected a URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class Organization(_Strict):
    name: str = Field(min_length=1, description="The clinic's name, printed on every channel")
    base_url: str = Field(description="Where the web channel is served, e.g. https://example.org")
    postal_address: str = Field(min_length=1, description="Printed in every newsletter (CAN-SPAM)")
    phone: str | None = Field(
        default=None, description="Printed in the handout's and the email's contact line"
    )
    language: str = Field(default="en", description="The pages' language (the html lang attribute)")

    _one_line = field_validator("name", "postal_address", "phone")(
        lambda v: single_line(v) if v is not None else v
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _https_url(value).rstrip("/")


class License(_Strict):
    """A state license or certification printed on every channel."""

    kind: Literal["licensed", "certified"] = Field(default="licensed", description="Licensed or certified by")
    issuer: str = Field(
        min_length=1, description="The state body, e.g. California Department of Health Care Services"
    )
    program_id: str = Field(
        min_length=1, description="The program or license number printed on every channel"
    )
    expires: date = Field(
        description="Expiry date (YYYY-MM-DD): expired blocks, inside license_warn_days warns"
    )
    lookup_url: str | None = Field(default=None, description="Where a reader can verify the license")

    _one_line = field_validator("issuer", "program_id")(single_line)

    def line(self) -> str:
        """The sentence every channel prints, e.g. for the footer."""
        verb = "Licensed" if self.kind == "licensed" else "Certified"
        return (
            f"{verb} by the {self.issuer} · Program ID {self.program_id} · "
            f"valid through {format_date(self.expires)}"
        )


class Smtp(_Strict):
    """The SMTP server newsletters are sent through (none configured: only the .eml outbox)."""

    host: str = Field(min_length=1, description="The SMTP server's host name")
    port: int = Field(default=587, ge=1, le=65535, description="The SMTP server's port")
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (port 587), tls (465) or none (a local relay only)"
    )
    username: str | None = Field(default=None, description="Login name, if the server asks for one")
    # From the environment only, never the file: CLINICPRESS_NEWSLETTER__SMTP__PASSWORD.
    password: SecretStr | None = Field(
        default=None, description="From the environment only: CLINICPRESS_NEWSLETTER__SMTP__PASSWORD"
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds per SMTP command")


class Newsletter(_Strict):
    from_name: str = Field(min_length=1, description="The sender's name in the From header")
    from_address: str = Field(description="The sending address (From)")
    reply_to: str | None = Field(default=None, description="Where replies go (Reply-To)")
    unsubscribe_url: str = Field(
        description="https:// one-click unsubscribe page (List-Unsubscribe, RFC 8058)"
    )
    unsubscribe_mailto: str | None = Field(
        default=None, description="An unsubscribe address, also in List-Unsubscribe"
    )
    smtp: Smtp | None = Field(
        default=None, description="The SMTP server; none: only the .eml outbox is written"
    )
    subscribers: Path | None = Field(
        default=None, description="Subscribers CSV (email[,unsubscribe_url]), relative to the working folder"
    )
    max_send_attempts: int = Field(default=3, ge=1, le=10, description="Tries per recipient before giving up")
    approval_required: bool = Field(
        default=False,
        description="A new version's send waits for an approval by someone other than the person who "
        "published it (clinicpress approve-send SLUG --by NAME, or the form in the Prefect UI)",
    )

    _one_line = field_validator("from_name")(single_line)

    # The renderer's and the subscribers list's rules (clinicpress/addresses.py), checked here at load:
    # a value `check` accepts can never block `publish` at render time.
    @field_validator("from_address", "reply_to", "unsubscribe_mailto")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and (problem := address_problem(value)):
            raise ValueError(
                f"{value[:80]!r} is not an email address: it {problem}; expected e.g. news@example.org"
            )
        return value

    @field_validator("unsubscribe_url")
    @classmethod
    def _unsubscribe(cls, value: str) -> str:
        if problem := unsubscribe_url_problem(value):
            raise ValueError(f"{value[:80]!r} is not a usable unsubscribe URL: it {problem}")
        return value


__all__ = ["LinkCheckSettings", "SiteConfig", "format_date", "load_site"]


class Checks(_Strict):
    license_warn_days: list[int] = Field(
        default_factory=lambda: [150, 90, 30],
        description="Warn (and alert) when a license expires within these days",
    )
    readability_max_grade: float = Field(
        default=8.0, gt=0, description="Flesch-Kincaid grade above which to warn"
    )
    links: LinkCheckSettings = Field(default_factory=LinkCheckSettings, description="The link checker")
    integrity: IntegritySettings = Field(default_factory=IntegritySettings)


class Publishing(_Strict):
    keep_releases: int = Field(default=5, ge=2, le=100, description="Releases kept for rollback")


class Handout(_Strict):
    page_size: Literal["letter", "a4"] = Field(default="letter", description="The handout's paper size")


class Alerts(_Strict):
    urls: list[str] = Field(default_factory=list, description="apprise URLs")
    retries: int = Field(default=2, ge=0, le=5, description="Extra tries per alert destination")


class Registry(_Strict):
    """Where the record of what was published lives (SQLAlchemy URL)."""

    url: str | None = Field(
        default=None, description="Any SQLAlchemy URL; default sqlite:///<out>/registry.sqlite"
    )


class Archive(_Strict):
    """Archived snapshots of sources (the Wayback Machine's availability API)."""

    enabled: bool = Field(default=True, description="Look up an archived snapshot of each source at publish")
    endpoint: str = Field(
        default="https://archive.org/wayback/available", description="The Wayback Machine's availability API"
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds per lookup")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _https_url(value)


class Monitor(_Strict):
    failures_before_alert: int = Field(
        default=2,
        ge=1,
        description="Failed runs in a row before a source alert (a retraction alerts at once)",
    )
    schedule: str = Field(default="0 7 * * *", description="Cron schedule of the served monitor deployment")


class Review(_Strict):
    """Clinical sign-off bound to the exact text (README, "Reviewing and publishing")."""

    required: bool = Field(
        default=False,
        description="Block publish and check of an article whose current text has no approving review "
        "(clinicpress review SLUG --approve)",
    )
    publish_on_approve: bool = Field(
        default=False,
        description="The review/review deployment (clinicpress serve) publishes what its form approved",
    )


class SiteConfig(BaseSettings):
    """Everything shared by every article of one site."""

    model_config = SettingsConfigDict(
        env_prefix="CLINICPRESS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    organization: Organization
    licenses: list[License] = Field(min_length=1)
    newsletter: Newsletter
    checks: Checks = Field(default_factory=Checks)
    handout: Handout = Field(default_factory=Handout)
    publishing: Publishing = Field(default_factory=Publishing)
    alerts: Alerts = Field(default_factory=Alerts)
    monitor: Monitor = Field(default_factory=Monitor)
    registry: Registry = Field(default_factory=Registry)
    archive: Archive = Field(default_factory=Archive)
    review: Review = Field(default_factory=Review)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment overrides it.
        return (env_settings, init_settings)


def format_date(value: date) -> str:
    """One date style for every channel: ``April 30, 2027``."""
    return f"{value:%B} {value.day}, {value.year}"


def load_site(path: Path | str = DEFAULT_SITE_PATH) -> SiteConfig:
    """Read and validate the site config; every error names file and field."""
    site_path = Path(path)
    try:
        raw = site_path.read_bytes()
    except FileNotFoundError as exc:
        raise SiteConfigError(site_path, None, "file not found", "a site config (see README)") from exc
    except OSError as exc:
        raise SiteConfigError(site_path, None, f"cannot read ({exc.strerror})") from exc
    if len(raw) > MAX_SITE_BYTES:
        raise SiteConfigError(site_path, None, f"file is {len(raw)} bytes", f"at most {MAX_SITE_BYTES}")
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SiteConfigError(site_path, None, f"not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SiteConfigError(site_path, None, f"invalid TOML: {exc}") from exc
    try:
        return SiteConfig(**data)
    except ValidationError as exc:
        raise input_error_from(exc, site_path, SiteConfigError, model=SiteConfig) from exc
