"""The newsletter's loop, as a send and the commands use it: who signs, whether the domain is
checked, each recipient's link, the endpoint, the bounce mailbox, a send's numbers and every send's
rates (issue 28).

The mechanisms are their own modules (``unsubscribe``, ``unsubscribe_server``, ``suppression``,
``dkim_sign``, ``domain_check``, ``bounces``); this one only reads the site's settings into them,
so that ``send.py`` and the CLI decide the same way.

Defaults, so that a site that configured none of the loop sends as before:

- No ``[newsletter.dkim]``: messages go unsigned.
- The domain check runs before a send to subscribers when ``[newsletter.dkim]`` or
  ``[newsletter.domain_check]`` is configured (and ``enabled``). Without DKIM the check can only
  say "DKIM missing", which would stop every send of a site that has not set DKIM up yet; a site
  that sets up DKIM, or asks for the check, gets it.
- A send to subscribers needs the unsubscribe secret unless every recipient brings its own link
  (the CSV's ``unsubscribe_url``): RFC 8058's one-click POST must say who unsubscribes, which the
  site's bare ``unsubscribe_url`` cannot. Like a missing postal address, it stops the send
  (recorded, pending) and the next publish after the secret is set sends it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clinicpress.errors import InputError
from clinicpress.outputs.delivery.bounces import (
    IMAP_PASSWORD_ENV,
    BounceSummary,
    parse_imap_url,
    read_imap,
    read_maildir,
    record_findings,
)
from clinicpress.outputs.delivery.dkim_sign import DkimSigner
from clinicpress.outputs.delivery.domain_check import DomainReport, check_domain, txt_lookup
from clinicpress.outputs.delivery.store import DeliveryStore
from clinicpress.outputs.delivery.suppression import LoopCounts, SuppressionStore
from clinicpress.outputs.delivery.unsubscribe import unsubscribe_link
from clinicpress.outputs.delivery.unsubscribe_server import Endpoint, Suppress
from clinicpress.settings.newsletter_loop import UNSUBSCRIBE_SECRET_ENV, NewsletterLoop
from clinicpress.site import SiteConfig

__all__ = [
    "NO_SECRET",
    "LinkMaker",
    "SendRates",
    "Stats",
    "configured_mailbox",
    "domain_check_wanted",
    "domain_report",
    "endpoint_for",
    "missing_secret",
    "read_mailbox",
    "send_stats",
    "sends_heard",
    "signer_for",
]

NO_SECRET = (
    "no unsubscribe secret: each message's one-click link must be signed "
    f"({UNSUBSCRIBE_SECRET_ENV}, or [newsletter] unsubscribe_secret_file; openssl rand -hex 32)"
)


def signer_for(news: NewsletterLoop) -> DkimSigner | None:
    """The DKIM signer of ``[newsletter.dkim]`` (its key read at load), or None: unsigned."""
    dkim = news.dkim
    if dkim is None or dkim.private_key is None:
        return None
    return DkimSigner(dkim.selector, dkim.domain, dkim.private_key.get_secret_value(), key_file=dkim.key_file)


def domain_check_wanted(news: NewsletterLoop) -> bool:
    """Check the From domain before a send to subscribers? (See the module's docstring.)"""
    configured = news.dkim is not None or "domain_check" in news.model_fields_set
    return configured and news.domain_check.enabled


def domain_report(from_address: str, news: NewsletterLoop, signer: DkimSigner | None) -> DomainReport:
    """SPF, DKIM and DMARC of the From domain, asked of ``[newsletter.domain_check] nameservers``."""
    settings = news.domain_check
    return check_domain(from_address, signer, txt_lookup(settings.nameservers, settings.timeout))


def missing_secret(news: NewsletterLoop, own_links: Sequence[str | None]) -> str | None:
    """Why a send to recipients with ``own_links`` (the CSV's, None for none) cannot go: no secret to
    sign the link of a recipient without one. None: it can."""
    if news.unsubscribe_secret is not None or all(own_links):
        return None
    return NO_SECRET


@dataclass(frozen=True)
class LinkMaker:
    """Each recipient's one-click link: the CSV's own, else ``unsubscribe_url?t=<signed token>``."""

    base_url: str
    secret: str | None
    slug: str | None

    @classmethod
    def of(cls, base_url: str, news: NewsletterLoop, slug: str | None) -> LinkMaker:
        secret = news.unsubscribe_secret.get_secret_value() if news.unsubscribe_secret else None
        return cls(base_url, secret, slug)

    def link(self, address: str, own: str | None = None) -> str | None:
        """The link for ``address``; None: the site's bare URL (no secret, e.g. a test send)."""
        if own:
            return own
        if self.secret is None:
            return None
        return unsubscribe_link(self.base_url, address, self.secret, slug=self.slug)


@dataclass(frozen=True)
class Stats:
    """``clinicpress newsletter stats SLUG``: one send's delivery and what was heard back."""

    slug: str
    version: str
    candidates: int
    accepted: int
    failed: int
    uncertain: int
    excluded: int
    heard: LoopCounts

    def lines(self) -> list[str]:
        h = self.heard

        def rate(n: int) -> str:
            return f" ({100 * n / self.accepted:.2f} % of accepted)" if self.accepted else ""

        return [
            f"newsletter {self.slug} (version {self.version[:12]}): {self.candidates} recipient(s)",
            f"  accepted {self.accepted}, failed {self.failed}, uncertain {self.uncertain}, "
            f"excluded {self.excluded}",
            f"  bounced {h.bounced}{rate(h.bounced)}, complained {h.complained}{rate(h.complained)}, "
            f"unsubscribed {h.unsubscribed}, soft-bounced {h.soft_bounced}, blocked {h.blocked}",
        ]


def send_stats(url: str, slug: str, max_attempts: int, version_prefix: str = "") -> Stats:
    """The numbers of the newest send of ``slug`` (whose version starts so); exit 2 when none."""
    with DeliveryStore(url) as store:
        found = store.latest_send(slug, version_prefix)
        if found is None:
            which = f"{slug!r}" + (f" version {version_prefix}…" if version_prefix else "")
            raise InputError(None, "SLUG", f"no newsletter of {which} was sent", "the slug of a sent article")
        send_id, version = found
        report = store.report(send_id, max_attempts, sent=0)
    with SuppressionStore(url) as suppression:
        heard = suppression.counts(slug, version)
    return Stats(
        slug=slug,
        version=version,
        candidates=report.candidates,
        accepted=report.accepted,
        failed=report.failed,
        uncertain=report.uncertain,
        excluded=report.excluded,
        heard=heard,
    )


@dataclass(frozen=True)
class SendRates:
    """One send's hard bounces and complaints against its accepted messages: what the monitor
    alerts on (``[newsletter] complaint_alert_rate``, ``bounce_alert_rate``, in percent)."""

    slug: str
    version: str
    title: str
    accepted: int
    bounced: int
    complained: int

    def percent(self, count: int) -> float:
        return 100 * count / self.accepted if self.accepted else 0.0


def sends_heard(url: str) -> list[SendRates]:
    """The rates of every send with accepted messages (a registry read: two queries per send)."""
    with DeliveryStore(url) as store:
        sent = store.accepted_by_send()
    if not sent:
        return []
    with SuppressionStore(url) as suppression:
        return [
            SendRates(slug, version, title, accepted, heard.bounced, heard.complained)
            for slug, version, title, accepted in sent
            for heard in [suppression.counts(slug, version)]
        ]


def read_mailbox(url: str, *, maildir: Path | None = None, imap: str | None = None) -> BounceSummary:
    """Read bounces and complaints from one mailbox (a Maildir folder, or ``imap``'s URL with the
    password from ``CLINICPRESS_BOUNCES__IMAP_PASSWORD``) into the suppression list at ``url``: what
    ``clinicpress newsletter bounces`` and the ``bounces`` deployment both do."""
    if (maildir is None) == (imap is None):
        raise InputError(None, "mailbox", "needs exactly one of a Maildir folder or an IMAP URL", "one")
    if imap is not None:
        source = parse_imap_url(imap)
        password = os.environ.get(IMAP_PASSWORD_ENV, "")
        if not password:
            raise InputError(None, IMAP_PASSWORD_ENV, "is not set", "the mailbox's password")
        messages = read_imap(source, password)
    else:
        assert maildir is not None
        messages = read_maildir(maildir)
    with SuppressionStore(url) as store:
        return record_findings(messages, store)


def configured_mailbox(news: NewsletterLoop, site_path: Path) -> tuple[Path | None, str | None]:
    """``[newsletter.bounces]``'s (maildir, imap), the Maildir relative to site.toml's folder;
    exit 2 (``InputError``) when the site names none."""
    mailbox = news.bounces
    if mailbox is None:
        raise InputError(
            site_path,
            "newsletter.bounces",
            "is not set",
            "maildir = DIR or imap = URL under [newsletter.bounces]",
        )
    maildir = site_path.parent / mailbox.maildir if mailbox.maildir is not None else None
    return maildir, mailbox.imap


def endpoint_for(site: SiteConfig, suppress: Suppress) -> Endpoint:
    """The one-click endpoint of ``[newsletter]``; exit 2 (``InputError``) without a secret."""
    news = site.newsletter
    if news.unsubscribe_secret is None:
        raise InputError(
            None,
            "newsletter.unsubscribe_secret",
            "is not set: the endpoint cannot check a link",
            f"{UNSUBSCRIBE_SECRET_ENV}, or [newsletter] unsubscribe_secret_file (the one the sends use)",
        )
    return Endpoint.at(
        news.unsubscribe_url,
        secret=news.unsubscribe_secret.get_secret_value(),
        max_age_days=news.unsubscribe_max_age_days,
        suppress=suppress,
        organization=site.organization.name,
        contact=news.unsubscribe_mailto,
    )
