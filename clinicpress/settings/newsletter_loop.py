"""Settings of the newsletter's loop (issue 28): the unsubscribe secret, DKIM and the domain check.

The keys are fixed (tools outside the project rely on them; /work/shared/DESIGN.md, "Newsletter
loop")::

    [newsletter]
    unsubscribe_url = "https://clinic.example/newsletter/unsubscribe"   # ?t=<signed token> is added
    unsubscribe_secret_file = "secrets/unsubscribe.key"   # or CLINICPRESS_NEWSLETTER__UNSUBSCRIBE_SECRET
    unsubscribe_max_age_days = 730

    [newsletter.dkim]
    selector = "news2025"
    domain = "clinic.example"
    key_file = "secrets/dkim-news2025.pem"   # an RSA private key (PEM), chmod 600

    [newsletter.domain_check]
    nameservers = ["127.0.0.1:5353"]   # default []: the system's (/etc/resolv.conf)

Not fixed by the contract, with their defaults (issue 28, parts 3 and 4)::

    [newsletter]
    complaint_alert_rate = 0.1   # percent of a send's accepted messages: the monitor alerts once
    bounce_alert_rate = 2.0

    [newsletter.bounces]        # the served bounce-reading deployment; none: read by hand only
    maildir = "/var/mail/bounces"      # or imap = "imaps://USER@HOST/MAILBOX" (password: environment)
    schedule = "15 * * * *"

The unsubscribe secret and the DKIM key are secrets, kept as ssh keeps a private key: never a key
in site.toml (copied, shared and committed with the content), the environment or a file only its
owner may read or write. ``NewsletterLoop`` holds the fields that belong in ``[newsletter]``; the
site's ``Newsletter`` model inherits them. ``with_loop_secrets`` reads the files once, at load.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from clinicpress.errors import SiteConfigError
from clinicpress.settings.secrets import read_owner_only, read_secret_file

__all__ = [
    "DEFAULT_MAX_AGE_DAYS",
    "DKIM_KEY_KEY",
    "MIN_SECRET_CHARS",
    "UNSUBSCRIBE_SECRET_ENV",
    "UNSUBSCRIBE_SECRET_KEY",
    "BounceMailbox",
    "DkimSettings",
    "DomainCheckSettings",
    "NewsletterLoop",
    "nameserver_address",
    "read_private_key_file",
    "secret_keys_in",
    "with_loop_secrets",
]

# Names of where a secret goes, not secrets.
UNSUBSCRIBE_SECRET_ENV = "CLINICPRESS_NEWSLETTER__UNSUBSCRIBE_SECRET"  # noqa: S105
UNSUBSCRIBE_SECRET_KEY = "newsletter.unsubscribe_secret"  # noqa: S105
DKIM_KEY_KEY = "newsletter.dkim.private_key"
# Old newsletters stay in mailboxes for years and their link must still work: two years by default.
# At least 30 days: CAN-SPAM wants the opt-out to work for 30 days after the send.
DEFAULT_MAX_AGE_DAYS = 730
MIN_SECRET_CHARS = 32  # e.g. `openssl rand -hex 32` (64 characters)
MAX_KEY_BYTES = 16 * 1024  # an RSA 4096 PEM is ~3.3 KB
_PEM_KEY = ("-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----")


def nameserver_address(entry: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:53"`` for IPv6; the port may be left out: 53) as (address, port).

    The host is an IP address: the servers that answer names cannot be found by name.
    """
    text = entry.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r} is not HOST:PORT; expected e.g. [::1]:53")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"{entry!r} is not an IP address and port; expected e.g. 127.0.0.1:5353") from exc
    if port_text and not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise ValueError(f"{entry!r} has no port from 1 to 65535; expected e.g. 127.0.0.1:5353")
    return str(address), int(port_text) if port_text else 53


class DkimSettings(BaseModel):
    """``[newsletter.dkim]``: how every message is DKIM-signed (rsa-sha256, relaxed/relaxed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    selector: str = Field(
        min_length=1,
        max_length=63,
        description="The DKIM selector: the public key is published at <selector>._domainkey.<domain>",
    )
    domain: str = Field(
        min_length=1,
        max_length=253,
        description="The signing domain (d=); the From domain or a parent of it, for DMARC alignment",
    )
    key_file: Path = Field(
        description="The RSA private key (PEM) that only its owner can read (chmod 600); relative to "
        "site.toml. Never the key itself in site.toml"
    )
    # Filled by with_loop_secrets() from key_file at load; never a key in site.toml.
    private_key: SecretStr | None = Field(
        default=None, exclude=True, description="Read from key_file at load (never set it in site.toml)"
    )

    @field_validator("selector", "domain")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        value = value.strip().rstrip(".").lower()
        labels = value.split(".")
        if not value.isascii() or not all(
            label and len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum()
            for label in labels
        ):
            raise ValueError("is not a DNS name (letters, digits, - and _, dot-separated)")
        return value


class DomainCheckSettings(BaseModel):
    """``[newsletter.domain_check]``: where SPF, DKIM and DMARC records are looked up before a send."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Check the From domain before a send to subscribers")
    nameservers: list[str] = Field(
        default_factory=list,
        description='DNS servers to ask, as "HOST:PORT" (IP addresses); empty: the system\'s',
    )
    timeout: float = Field(default=5.0, gt=0, le=60, description="Seconds for each DNS lookup, all tries")

    @field_validator("nameservers")
    @classmethod
    def _nameservers(cls, value: list[str]) -> list[str]:
        for entry in value:
            nameserver_address(entry)
        return [entry.strip() for entry in value]


class BounceMailbox(BaseModel):
    """``[newsletter.bounces]``: the mailbox the served ``bounces`` deployment reads on a schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    maildir: Path | None = Field(
        default=None,
        description="A Maildir folder the bounces and complaints arrive in (only read); relative to "
        "site.toml",
    )
    imap: str | None = Field(
        default=None,
        description="imaps://USER@HOST[:PORT]/MAILBOX instead of a Maildir; the password in the "
        "environment variable CLINICPRESS_BOUNCES__IMAP_PASSWORD, never in the URL",
    )
    schedule: str = Field(
        default="15 * * * *", min_length=9, description="Cron schedule of the served bounces deployment"
    )

    @field_validator("imap")
    @classmethod
    def _imap_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("imaps", "imap") or not parts.hostname or not parts.username:
            raise ValueError("is not imaps://USER@HOST[:PORT]/MAILBOX")
        if parts.password is not None:
            raise ValueError("carries a password: give it in CLINICPRESS_BOUNCES__IMAP_PASSWORD instead")
        return value.strip()

    @model_validator(mode="after")
    def _one_mailbox(self) -> BounceMailbox:
        if (self.maildir is None) == (self.imap is None):
            raise ValueError("give exactly one of maildir or imap")
        return self


class NewsletterLoop(BaseModel):
    """The ``[newsletter]`` fields of the loop; the site's ``Newsletter`` model inherits them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Never a key in site.toml (secret_keys_in): the environment, or the file below.
    unsubscribe_secret: SecretStr | None = Field(
        default=None,
        description=f"Never in site.toml: the environment variable {UNSUBSCRIBE_SECRET_ENV}, or "
        "unsubscribe_secret_file. Signs each recipient's unsubscribe link (HMAC-SHA256)",
    )
    unsubscribe_secret_file: Path | None = Field(
        default=None,
        description="A file holding the unsubscribe secret (one line, at least "
        f"{MIN_SECRET_CHARS} characters), that only its owner can read (chmod 600); relative to "
        f"site.toml. {UNSUBSCRIBE_SECRET_ENV}, when set, wins",
    )
    unsubscribe_max_age_days: int = Field(
        default=DEFAULT_MAX_AGE_DAYS,
        ge=30,
        le=3650,
        description="Days an unsubscribe link keeps working after its message was made",
    )
    dkim: DkimSettings | None = Field(default=None, description="DKIM signing; none: messages go unsigned")
    domain_check: DomainCheckSettings = Field(
        default_factory=DomainCheckSettings, description="The From domain's SPF, DKIM and DMARC check"
    )
    bounces: BounceMailbox | None = Field(
        default=None,
        description="The mailbox `clinicpress serve` reads bounces and complaints from on a schedule; "
        "none: only `clinicpress newsletter bounces` reads them",
    )
    # Percent, as the mailbox providers state theirs (Gmail and Yahoo: spam complaints under 0.3 %).
    complaint_alert_rate: float = Field(
        default=0.1,
        gt=0,
        le=100,
        description="The monitor alerts once when a send's complaints pass this percentage of its "
        "accepted messages (0.1 means 0.1 %; Gmail and Yahoo require under 0.3 %)",
    )
    bounce_alert_rate: float = Field(
        default=2.0,
        gt=0,
        le=100,
        description="The monitor alerts once when a send's hard bounces pass this percentage of its "
        "accepted messages (2 means 2 %: the list holds addresses that no longer exist)",
    )

    # A field validator, so the error's place is newsletter.unsubscribe_secret: the site loader shows
    # a secret's place and never its value there (settings/secrets.py, secret_error).
    @field_validator("unsubscribe_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # an empty variable counts as not set
        if len(value.get_secret_value().strip()) < MIN_SECRET_CHARS:
            # Never the value, nor its length, in the message.
            raise ValueError(f"is too short: at least {MIN_SECRET_CHARS} characters (openssl rand -hex 32)")
        return value


def secret_keys_in(data: Mapping[str, Any]) -> list[str]:
    """The secrets the TOML itself holds (asked before the environment merges in): each is refused."""
    found: list[str] = []
    newsletter = data.get("newsletter")
    if not isinstance(newsletter, Mapping):
        return found
    if "unsubscribe_secret" in newsletter:
        found.append(UNSUBSCRIBE_SECRET_KEY)
    dkim = newsletter.get("dkim")
    if isinstance(dkim, Mapping) and "private_key" in dkim:
        found.append(DKIM_KEY_KEY)
    return found


def read_private_key_file(path: Path, *, config: Path, field: str) -> str:
    """The PEM private key in ``path`` (relative to the config's folder), refused unless owner-only
    (``read_owner_only``, as for one-line secrets); the key never appears in a message."""
    what = "a PEM private key file"
    where, raw = read_owner_only(path, config=config, field=field, what=what, limit=MAX_KEY_BYTES)
    expected = f"{what} only its owner can read (chmod 600 {where})"
    if len(raw) > MAX_KEY_BYTES:
        raise SiteConfigError(config, field, f"{where} is larger than {MAX_KEY_BYTES} bytes", expected)
    text = raw.decode("ascii", "replace")
    if not text.lstrip().startswith(_PEM_KEY):
        raise SiteConfigError(
            config, field, f"{where} is not a PEM private key", "an RSA key, e.g. openssl genrsa 2048"
        )
    return text


_Loop = TypeVar("_Loop", bound=NewsletterLoop)


def with_loop_secrets(newsletter: _Loop, site_path: Path) -> _Loop:
    """``newsletter`` with the unsubscribe secret read from its file (the environment's wins) and the
    DKIM private key read from ``key_file``; exit 2 (``SiteConfigError``) naming the file."""
    update: dict[str, Any] = {}
    if newsletter.unsubscribe_secret is None and newsletter.unsubscribe_secret_file is not None:
        secret = read_secret_file(
            newsletter.unsubscribe_secret_file, config=site_path, field=f"{UNSUBSCRIBE_SECRET_KEY}_file"
        )
        if len(secret.strip()) < MIN_SECRET_CHARS:
            raise SiteConfigError(
                site_path,
                f"{UNSUBSCRIBE_SECRET_KEY}_file",
                "the secret is too short",
                f"at least {MIN_SECRET_CHARS} characters (openssl rand -hex 32)",
            )
        update["unsubscribe_secret"] = SecretStr(secret)
    dkim = newsletter.dkim
    if dkim is not None and dkim.private_key is None:
        key = read_private_key_file(dkim.key_file, config=site_path, field="newsletter.dkim.key_file")
        update["dkim"] = dkim.model_copy(update={"private_key": SecretStr(key)})
    return newsletter.model_copy(update=update) if update else newsletter
