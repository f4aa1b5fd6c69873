"""The site configuration (``content/site.toml``): what every article shares.

Values come from the TOML file and may be overridden by environment
variables named ``CLINICPRESS_<SECTION>__<KEY>`` (for example
``CLINICPRESS_NEWSLETTER__FROM_ADDRESS``); the environment wins.

Secrets (clinicpress/settings/secrets.py): the SMTP password comes from the environment or from an
owner-only ``password_file``, never from a key in this file; every alert URL is checked with apprise
at load, and a problem with one names its index, never its text.

A little over 400 lines: the models of site.toml's tables and ``load_site``, which validates them
once (the TOML read, the secrets refused or read from their files), are the one place a key is
defined; the larger settings live in clinicpress/settings/.
"""

from __future__ import annotations

import tomllib
import unicodedata
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from clinicpress.addresses import address_problem, unsubscribe_url_problem
from clinicpress.errors import SiteConfigError
from clinicpress.settings.crisis import CrisisSettings
from clinicpress.settings.editions import EditionsSettings
from clinicpress.settings.integrity import IntegritySettings
from clinicpress.settings.language import LanguageCheckSettings
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.settings.newsletter_loop import (
    UNSUBSCRIBE_SECRET_ENV,
    NewsletterLoop,
    secret_keys_in,
    with_loop_secrets,
)
from clinicpress.settings.registries import LicenseRegistrySettings, Npi, ReviewerRegistrySettings
from clinicpress.settings.secrets import (
    PASSWORD_ENV,
    PASSWORD_KEY,
    alert_url_problem,
    has_password_key,
    read_secret_file,
    secret_error,
)
from clinicpress.validation import input_error_from, single_line, toml_error

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

    def issued_by_dhcs(self) -> bool:
        """Whether California's Department of Health Care Services issued it."""
        issuer = " ".join(self.issuer.casefold().replace(".", " ").split())
        return "department of health care services" in issuer or "dhcs" in issuer.split()

    def statement(self) -> str:
        """Who licensed the program, in the statute's words for DHCS (HSC §11831.12):
        "Licensed by the State Department of Health Care Services." (or "Certified by …")."""
        verb = "Licensed" if self.kind == "licensed" else "Certified"
        issuer = "State Department of Health Care Services" if self.issued_by_dhcs() else self.issuer
        return f"{verb} by the {issuer.rstrip('.')}."

    def particulars(self) -> str:
        """The number and the expiry, printed after :meth:`statement`."""
        return f"Program ID {self.program_id} · valid through {format_date(self.expires)}"

    def line(self) -> str:
        """The sentence every channel prints, e.g. for the footer (the web links its statement)."""
        return f"{self.statement()} {self.particulars()}"


class Smtp(_Strict):
    """The SMTP server newsletters are sent through (none configured: only the .eml outbox)."""

    host: str = Field(min_length=1, description="The SMTP server's host name")
    port: int = Field(default=587, ge=1, le=65535, description="The SMTP server's port")
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (port 587), tls (465) or none (a local relay only)"
    )
    username: str | None = Field(
        default=None, description="Login name, if the server asks for one (needs starttls or tls)"
    )
    # Never a key in site.toml (load_site refuses one): set from the environment by pydantic-settings,
    # or by load_site from password_file.
    password: SecretStr | None = Field(
        default=None,
        description=f"Never in site.toml: the environment variable {PASSWORD_ENV}, or password_file",
    )
    password_file: Path | None = Field(
        default=None,
        description="A file holding the password, that only its owner can read (chmod 600); relative "
        f"to site.toml. {PASSWORD_ENV}, when set, wins",
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds per SMTP command")

    @model_validator(mode="after")
    def _no_login_in_clear(self) -> Smtp:
        # As a server without STARTTLS is refused at send time (outputs/delivery/smtp.py).
        if self.username and self.security == "none":
            raise ValueError(
                'a login (username) with security = "none" would send the password in clear text; '
                'expected security = "starttls" or "tls", or no username (a local relay)'
            )
        return self


class Newsletter(_Strict, NewsletterLoop):
    """``[newsletter]``; the loop's fields (unsubscribe secret, DKIM, domain check) are
    ``NewsletterLoop``'s (clinicpress/settings/newsletter_loop.py)."""

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
        default=8.0,
        gt=0,
        description="US school grade above which to warn (Flesch-Kincaid; Fernández-Huerta for Spanish)",
    )
    readability_max_grade_by_language: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="Per language, e.g. {es = 9.0}; a language not named here uses readability_max_grade",
    )
    links: LinkCheckSettings = Field(default_factory=LinkCheckSettings, description="The link checker")
    integrity: IntegritySettings = Field(default_factory=IntegritySettings)
    language: LanguageCheckSettings = Field(
        default_factory=LanguageCheckSettings, description="The stigma-free language check"
    )
    license_registry: LicenseRegistrySettings = Field(
        default_factory=LicenseRegistrySettings,
        description="Each DHCS license against the state's list of licensed and certified facilities",
    )
    reviewer_registry: ReviewerRegistrySettings = Field(
        default_factory=ReviewerRegistrySettings,
        description="Each reviewer's NPI against the NPPES NPI Registry",
    )

    def max_grade_for(self, language: str) -> float:
        """The readability limit of an edition in ``language`` (``es-MX`` falls back to ``es``)."""
        by = {key.lower(): grade for key, grade in self.readability_max_grade_by_language.items()}
        code = language.lower()
        return by.get(code, by.get(code.split("-", 1)[0], self.readability_max_grade))


class Publishing(_Strict):
    keep_releases: int = Field(default=5, ge=2, le=100, description="Releases kept for rollback")


class Handout(_Strict):
    page_size: Literal["letter", "a4"] = Field(default="letter", description="The handout's paper size")
    large_print: bool = Field(
        default=True,
        description="Also make handouts/<slug>-large-print.pdf: the same handout with its body at 20 pt "
        "in Liberation Sans (bundled), one column; the web page links both",
    )


def _apprise_url(value: str) -> str:
    if problem := alert_url_problem(value):
        raise ValueError(problem)
    return value


AlertUrl = Annotated[str, AfterValidator(_apprise_url)]


class Alerts(_Strict):
    urls: list[AlertUrl] = Field(
        default_factory=list,
        description="apprise URLs, each checked with apprise at load (they carry tokens)",
    )
    retries: int = Field(default=2, ge=0, le=5, description="Extra tries per alert destination")


class RegistrySettings(_Strict):
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


class ReviewerEntry(_Strict):
    """One of the clinic's reviewers (``[[review.reviewers]]``), with their NPI."""

    name: str = Field(min_length=1, description="As printed in the review line, e.g. Jane Doe")
    credentials: str | None = Field(default=None, description="e.g. MD")
    npi: Npi = Field(description="Their 10-digit NPI (the check digit is verified at load)")

    _one_line = field_validator("name")(single_line)


class Review(_Strict):
    """Clinical sign-off bound to the exact text (docs/reviewing/sign-off.md)."""

    required: bool = Field(
        default=False,
        description="Block publish and check of an article whose current text has no approving review "
        "(clinicpress review SLUG --approve)",
    )
    publish_on_approve: bool = Field(
        default=False,
        description="The review/review deployment (clinicpress serve) publishes what its form approved",
    )
    reviewers: list[ReviewerEntry] = Field(
        default_factory=list,
        description="The clinic's reviewers with their NPI: a review naming one is looked up in the NPI "
        "registry ([checks.reviewer_registry])",
    )

    def npi_of(self, name: str) -> str | None:
        """The NPI listed for the reviewer named ``name`` (case and spacing aside), if any."""
        wanted = " ".join(name.casefold().split())
        for entry in self.reviewers:
            if " ".join(entry.name.casefold().split()) == wanted:
                return entry.npi
        return None


class SiteConfig(BaseSettings):
    """Everything shared by every article of one site."""

    model_config = SettingsConfigDict(
        env_prefix="CLINICPRESS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,  # a traceback (-v) must not print a secret's value
    )

    organization: Organization
    licenses: list[License] = Field(min_length=1)
    newsletter: Newsletter
    checks: Checks = Field(default_factory=Checks)
    handout: Handout = Field(default_factory=Handout)
    publishing: Publishing = Field(default_factory=Publishing)
    alerts: Alerts = Field(default_factory=Alerts)
    monitor: Monitor = Field(default_factory=Monitor)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    archive: Archive = Field(default_factory=Archive)
    review: Review = Field(default_factory=Review)
    crisis: CrisisSettings = Field(default_factory=CrisisSettings, description="The crisis box per language")
    editions: EditionsSettings = Field(default_factory=EditionsSettings, description="Translated editions")

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
        text = raw.decode("utf-8")
        data: dict[str, Any] = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise SiteConfigError(site_path, None, f"not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:  # names the key, not only the line and column
        raise toml_error(exc, site_path, text, SiteConfigError) from exc
    if has_password_key(data):
        raise SiteConfigError(
            site_path,
            PASSWORD_KEY,
            "a password does not belong in site.toml (it is copied and shared with the content)",
            f"{PASSWORD_ENV} in the environment, or password_file naming a file only its owner can read; "
            "remove the key, and change the password if the file was shared",
        )
    for key in secret_keys_in(data):
        raise SiteConfigError(
            site_path,
            key,
            "a secret does not belong in site.toml (it is copied and shared with the content)",
            f"{UNSUBSCRIBE_SECRET_ENV} in the environment, or unsubscribe_secret_file / [newsletter.dkim] "
            "key_file naming a file only its owner can read (chmod 600); remove the key, and make a new "
            "secret if the file was shared",
        )
    try:
        config = SiteConfig(**data)
    except ValidationError as exc:
        raise (
            secret_error(exc, site_path)
            or input_error_from(exc, site_path, SiteConfigError, model=SiteConfig)
        ) from exc
    except SettingsError as exc:  # a CLINICPRESS_… variable that is not valid JSON where a list is expected
        raise SiteConfigError(None, "environment", str(exc), "a JSON value for a list or table") from exc
    config = _with_smtp_password(config, site_path)
    # The unsubscribe secret and the DKIM key, read once from their owner-only files.
    return config.model_copy(update={"newsletter": with_loop_secrets(config.newsletter, site_path)})


def _with_smtp_password(config: SiteConfig, site_path: Path) -> SiteConfig:
    """The config with the SMTP password read from ``password_file`` (the environment's wins; an
    empty variable counts as not set)."""
    smtp = config.newsletter.smtp
    if smtp is None or smtp.password_file is None:
        return config
    if smtp.password is not None and smtp.password.get_secret_value():
        return config
    secret = read_secret_file(smtp.password_file, config=site_path, field=f"{PASSWORD_KEY}_file")
    smtp = smtp.model_copy(update={"password": SecretStr(secret)})
    return config.model_copy(update={"newsletter": config.newsletter.model_copy(update={"smtp": smtp})})
