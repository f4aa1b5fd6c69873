"""Alerts: one message per transition, delivered through apprise to every configured URL.

apprise delivers but keeps no state: which transitions deserve an alert is
decided in ``checks/transitions.py`` and remembered in the registry, where an
alert stays pending until a destination accepts it. Each destination is tried
on its own, with retries, so a dead or unparseable one never stops the others.

A destination URL carries tokens and passwords. It is shown (CLI, logs, the
registry, Prefect) only as ``destination_label`` makes it: its place in
``[alerts] urls`` and apprise's own privacy form of it.

Over 400 lines: one builder per alert kind, then delivery; a kind's wording and its
delivery are read together with the privacy rule they share.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from clinicpress.checks.model import Archived, LinkResult
from clinicpress.checks.transitions import Kind
from clinicpress.outputs.registry import PendingAlert, PublishedArticle
from clinicpress.site import format_date

if TYPE_CHECKING:  # the delivery package (SQLAlchemy tables, the SMTP wire) only for its type
    from clinicpress.outputs.delivery.loop import SendRates

_LOG = logging.getLogger(__name__)


class _Withheld(logging.Filter):
    """Drops every record of the logger it is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


# apprise's own log records carry what its privacy form hides (at DEBUG the Pushover payload with
# its app token, the Telegram bot URL): none leaves its logger, whatever handlers -v, a served
# flow run or PREFECT_LOGGING_EXTRA_LOGGERS attach. A logger's filter runs before any handler.
# What a delivery did is told by deliver() instead, with the destination's label.
logging.getLogger("apprise").addFilter(_Withheld())


class LoopKind(enum.StrEnum):
    """The newsletter's own alert kinds (issue 28): a send whose readers complain or whose
    addresses bounce too often. Beside ``Kind`` (the transitions of what an article cites): also
    Prefect event names (``clinicpress.<kind>``)."""

    NEWSLETTER_COMPLAINTS = "newsletter.complaints"
    NEWSLETTER_BOUNCES = "newsletter.bounces"


AlertKind = Kind | LoopKind


def alert_kind(name: str) -> AlertKind:
    """The kind a stored alert names (``ValueError`` for a name neither enum knows)."""
    try:
        return Kind(name)
    except ValueError:
        return LoopKind(name)


class AlertKey:
    """The key of each thing the monitor watches, built here only: the ``alert_state`` row and the
    alert that announces its transition must name the same key (``source:<url>``, …)."""

    @staticmethod
    def source(url: str) -> str:
        return f"source:{url}"

    @staticmethod
    def is_source(key: str) -> bool:
        return key.startswith("source:")

    @staticmethod
    def integrity(url: str) -> str:
        return f"integrity:{url}"

    @staticmethod
    def quote(quote_key: str) -> str:
        return f"quote:{quote_key}"

    @staticmethod
    def license(program_id: str) -> str:
        return f"license:{program_id}"

    @staticmethod
    def review(slug: str) -> str:
        return f"review:{slug}"

    @staticmethod
    def license_registry(program_id: str) -> str:
        return f"license-registry:{program_id}"

    @staticmethod
    def reviewer_registry(npi: str) -> str:
        return f"reviewer-registry:{npi}"

    @staticmethod
    def send_rate(slug: str, version: str, rate: LoopKind) -> str:
        """One send's complaint or bounce rate: ``send:<slug>:<version>:complaints``."""
        return f"send:{slug}:{version}:{rate.value.removeprefix('newsletter.')}"


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    key: str
    title: str
    body: str
    articles: tuple[str, ...]
    reprint_needed: bool
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertDelivery:
    destination: str  # destination_label(): apprise URLs carry tokens
    ok: bool
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "ok": self.ok, "error": self.error}


def _when(moment: datetime) -> str:
    return f"{format_date(moment.date())} {moment:%H:%M} UTC"


def _articles_lines(articles: Sequence[PublishedArticle]) -> list[str]:
    return [f"- {a.title} ({a.slug}){' — handout' if a.has_handout else ''}" for a in articles]


def _reprint(articles: Sequence[PublishedArticle]) -> bool:
    return any(a.has_handout for a in articles)


def source_alert(
    kind: Kind,
    result: LinkResult,
    since: datetime,
    articles: Sequence[PublishedArticle],
    archived: Archived | None,
) -> Alert:
    """A cited source broke, recovered or moved."""
    url = result.url
    headline = {
        Kind.SOURCE_BROKEN: "A cited source is broken",
        Kind.SOURCE_RECOVERED: "A cited source works again",
        Kind.SOURCE_MOVED: "A cited source has moved",
    }[kind]
    lines = [f"{headline}: {url}", f"Status: {result.status.value} — {result.reason}"]
    if kind is Kind.SOURCE_BROKEN:
        lines.append(f"Failing since: {_when(since)}")
    lines += ["Cited by:", *_articles_lines(articles)]
    fix: list[str] = []
    if kind is Kind.SOURCE_MOVED and result.final_url:
        fix.append(f"Cite the new address: {result.final_url}")
    if kind is Kind.SOURCE_BROKEN:
        if archived is not None:
            fix.append(f"Archived copy: {archived.url}")
        fix.append("Replace the source or cite the archived copy, then publish again.")
    if fix:
        lines += ["Suggested fix:", *fix]
    reprint = kind is not Kind.SOURCE_RECOVERED and _reprint(articles)
    if reprint:
        lines.append("Reprint needed: printed handouts cite this source.")
    return Alert(
        kind=kind,
        key=AlertKey.source(url),
        title=f"[clinicpress] {headline}",
        body="\n".join(lines),
        articles=tuple(a.slug for a in articles),
        reprint_needed=reprint,
        payload={
            "url": url,
            "status": result.status.value,
            "reason": result.reason,
            "final_url": result.final_url,
            "archive_url": archived.url if archived else None,
            "articles": [a.slug for a in articles],
            "since": since.isoformat(),
        },
    )


def integrity_alert(
    kind: Kind,
    url: str,
    notice: str | None,
    detail: str,
    articles: Sequence[PublishedArticle],
    archived: Archived | None,
) -> Alert:
    """Crossref/PubMed list a new retraction, expression of concern or correction of a cited work."""
    headline = {
        Kind.SOURCE_RETRACTED: "A cited source was retracted",
        Kind.SOURCE_CONCERN: "A cited source is under an expression of concern",
        Kind.SOURCE_CORRECTED: "A cited source was corrected",
    }[kind]
    lines = [f"{headline}: {url}", detail]
    if notice:
        lines.append(f"Notice: {notice}")
    lines += ["Cited by:", *_articles_lines(articles)]
    if kind is Kind.SOURCE_RETRACTED:
        lines += [
            "Suggested fix:",
            "Remove or replace the source and check the claims it supported, then publish.",
        ]
    else:
        lines += [
            "Suggested fix:",
            "Read the notice; if a claim the article makes changed, update it and publish.",
        ]
    if archived is not None:
        lines.append(f"Archived copy (as it was cited): {archived.url}")
    handouts = _reprint(articles)
    reprint = handouts and kind is Kind.SOURCE_RETRACTED
    if reprint:
        lines.append("Reprint needed: printed handouts cite this retracted source.")
    elif handouts:
        lines.append("Printed handouts cite this source: reprint them if the article changes.")
    return Alert(
        kind=kind,
        key=AlertKey.integrity(url),
        title=f"[clinicpress] {headline}",
        body="\n".join(lines),
        articles=tuple(a.slug for a in articles),
        reprint_needed=reprint,
        payload={
            "url": url,
            "notice": notice,
            "detail": detail,
            "archive_url": archived.url if archived else None,
            "articles": [a.slug for a in articles],
            "handouts": handouts,
        },
    )


def quote_alert(
    key: str,
    url: str,
    quote: str,
    reason: str,
    articles: Sequence[PublishedArticle],
    archived: Archived | None,
) -> Alert:
    """A passage an article quotes is no longer in its source's text (``key``: the quote's
    ``quote_key``, so the alert's key is its state's: one pending alert per quote)."""
    headline = "A quoted passage is gone from its source"
    lines = [
        f"{headline}: {url}",
        f'Quote: "{quote}"',
        f"Read: {reason}",
        "Cited by:",
        *_articles_lines(articles),
    ]
    lines += [
        "Suggested fix:",
        "Check what the source says now; update the quote or the claim, then publish.",
    ]
    if archived is not None:
        lines.append(f"Archived copy (as it was cited): {archived.url}")
    reprint = _reprint(articles)
    if reprint:
        lines.append("Reprint needed if the claim changes: printed handouts carry this quote's claim.")
    return Alert(
        kind=Kind.SOURCE_QUOTE_MISSING,
        key=AlertKey.quote(key),
        title=f"[clinicpress] {headline}",
        body="\n".join(lines),
        articles=tuple(a.slug for a in articles),
        reprint_needed=reprint,
        payload={
            "url": url,
            "quote": quote,
            "archive_url": archived.url if archived else None,
            "articles": [a.slug for a in articles],
        },
    )


def license_alert(
    kind: Kind,
    program_id: str,
    issuer: str,
    expires: str,
    bucket: str,
    articles: Sequence[PublishedArticle],
    warn_days: Sequence[int] = (150, 90, 30),
) -> Alert:
    """A license crossed a threshold, expired, or was renewed."""
    if kind is Kind.LICENSE_EXPIRED:
        headline = f"License {program_id} has expired"
        action = "Nothing can be published until site.toml carries the renewed license."
    elif kind is Kind.LICENSE_RENEWED:
        headline = f"License {program_id} was renewed"
        action = "Publish again so every channel prints the new date."
    else:
        headline = f"License {program_id} expires within {bucket} days"
        days = ", ".join(str(d) for d in sorted(warn_days, reverse=True))
        action = (
            f"Start the renewal if it is not under way (alerts at {days} days before expiry: "
            "[checks] license_warn_days)."
        )
    lines = [
        f"{headline} ({issuer}; valid through {expires}).",
        action,
        "Published articles:",
        *_articles_lines(articles),
    ]
    reprint = _reprint(articles) and kind is not Kind.LICENSE_EXPIRING
    if reprint:
        lines.append("Reprint needed: printed handouts carry the license line.")
    return Alert(
        kind=kind,
        key=AlertKey.license(program_id),
        title=f"[clinicpress] {headline}",
        body="\n".join(lines),
        articles=tuple(a.slug for a in articles),
        reprint_needed=reprint,
        payload={"program_id": program_id, "issuer": issuer, "expires": expires, "within_days": bucket},
    )


def review_alert(article: PublishedArticle) -> Alert:
    """An article's review fell due."""
    headline = f"Review due: {article.title}"
    lines = [
        f"{headline} ({article.slug}); next review was {format_date(article.next_review)}.",
        "Review the article, update last_reviewed, and publish again.",
    ]
    if article.has_handout:
        lines.append("Reprint needed: printed handouts show the old review date; new handouts are blocked.")
    return Alert(
        kind=Kind.REVIEW_DUE,
        key=AlertKey.review(article.slug),
        title=f"[clinicpress] {headline}",
        body="\n".join(lines),
        articles=(article.slug,),
        reprint_needed=article.has_handout,
        payload={"slug": article.slug, "next_review": article.next_review.isoformat()},
    )


def authority_alert(
    kind: Kind, key: str, subject: str, message: str, articles: Sequence[PublishedArticle]
) -> Alert:
    """DHCS's record of a license changed or dropped it, or a reviewer's NPI is no longer active."""
    if kind is Kind.REVIEWER_INACTIVE:
        headline = f"Reviewer NPI {subject} is no longer active"
        action = "Have another clinician review the articles that print this reviewer, and publish again."
    elif kind is Kind.LICENSE_DELISTED:
        headline = f"License {subject} is no longer listed by DHCS"
        action = "Nothing can be published until the state lists the program again; ask DHCS why."
    else:
        headline = f"DHCS changed its record of license {subject}"
        action = "Make site.toml say what the state lists, and publish again."
    lines = [message + ".", action, "Published articles:", *_articles_lines(articles)]
    reprint = _reprint(articles)
    if reprint:
        lines.append("Reprint needed: printed handouts carry the license and review lines.")
    return Alert(
        kind=kind,
        key=key,
        title=f"[clinicpress] {headline}",
        body="\n".join(lines),
        articles=tuple(a.slug for a in articles),
        reprint_needed=reprint,
        payload={"subject": subject, "message": message},
    )


def send_rate_alert(kind: LoopKind, rates: SendRates, threshold: float) -> Alert:
    """A send's complaints or hard bounces passed ``threshold`` percent of its accepted messages."""
    complaints = kind is LoopKind.NEWSLETTER_COMPLAINTS
    count = rates.complained if complaints else rates.bounced
    what = "complaints" if complaints else "hard bounces"
    setting = "complaint_alert_rate" if complaints else "bounce_alert_rate"
    percent = rates.percent(count)
    headline = f"Newsletter {what} at {percent:.2f} %: {rates.title}"
    lines = [
        f"The newsletter {rates.slug} (version {rates.version[:12]}): {count} {what} of "
        f"{rates.accepted} accepted messages ({percent:.2f} %), over [newsletter] {setting} "
        f"({threshold:g} %).",
        f"Those addresses are suppressed already: `clinicpress newsletter stats {rates.slug}` shows "
        "the numbers, `clinicpress subscribers suppressed` the list.",
    ]
    if complaints:
        lines.append(
            "Gmail and Yahoo filter a sender whose spam complaints reach 0.3 %: check that every "
            "subscriber asked for the newsletter and how often it goes out before the next send."
        )
    else:
        lines.append(
            "Many addresses that no longer exist: check where the subscribers list came from and "
            "remove old imports before the next send (providers throttle senders that bounce a lot)."
        )
    return Alert(
        kind=kind,
        key=AlertKey.send_rate(rates.slug, rates.version, kind),
        title=f"[clinicpress] {headline}",
        body="\n".join(lines),
        articles=(rates.slug,),
        reprint_needed=False,
        payload={
            "slug": rates.slug,
            "version": rates.version,
            "accepted": rates.accepted,
            "count": count,
            "percent": round(percent, 4),
            "threshold": threshold,
        },
    )


# How alarming each transition is, in the receiving tool's own terms (colours, icons).
_NOTIFY_TYPE: dict[AlertKind, str] = {  # apprise.NotifyType's values
    LoopKind.NEWSLETTER_COMPLAINTS: "failure",
    LoopKind.NEWSLETTER_BOUNCES: "warning",
    Kind.SOURCE_BROKEN: "failure",
    Kind.SOURCE_RETRACTED: "failure",
    Kind.SOURCE_CONCERN: "warning",
    Kind.SOURCE_CORRECTED: "warning",
    Kind.SOURCE_QUOTE_MISSING: "warning",
    Kind.LICENSE_EXPIRED: "failure",
    Kind.SOURCE_MOVED: "warning",
    Kind.LICENSE_EXPIRING: "warning",
    Kind.REVIEW_DUE: "warning",
    Kind.SOURCE_RECOVERED: "success",
    Kind.LICENSE_RENEWED: "success",
    Kind.LICENSE_CHANGED: "warning",
    Kind.LICENSE_DELISTED: "failure",
    Kind.REVIEWER_INACTIVE: "failure",
}


def destination_label(index: int, url: str) -> str:
    """How the destination ``[alerts] urls[index]`` is shown: its place, then apprise's privacy form.

    The privacy form is what the plugin itself masks (``pover://u...G@a...i``, ``mailtos://me:****@…``),
    cut at its query: apprise shows query parameters in clear (a ``json://`` URL's ``+Header=token``).
    A URL apprise cannot parse is shown by its place alone, never in clear.
    """
    import apprise  # ~0.1 s: loaded when an alert is shown or sent, not by every publish

    place = f"alerts.urls[{index}]"
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        # apprise types url() loosely (no annotations): its result is the URL text.
        private = str(plugin.url(privacy=True)) if plugin is not None else None  # type: ignore[no-untyped-call]
        shown = private.partition("?")[0] if private else None
    except Exception:  # a broken plugin: shown as unparseable, and delivery says why
        shown = None
    return f"{place} {shown}" if shown else f"{place} (unparseable)"


def _waited(delta: timedelta) -> str:
    """``3 days``, ``5 hours``, ``12 minutes``: how long an alert has waited, roughly."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    for unit, size in (("day", 1440), ("hour", 60)):
        if minutes >= size:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def pending_note(alert: PendingAlert, now: datetime) -> str | None:
    """The line a late alert starts with (None on the run that raised it)."""
    if alert.created_at >= now:
        return None
    return (
        f"Pending since {_when(alert.created_at)} ({_waited(now - alert.created_at)}): "
        "no alert destination accepted it until now."
    )


def outgoing_message(alert: PendingAlert, now: datetime) -> str:
    """What is delivered: how long it waited (if it did), the body, then the kind (the Prefect
    event's name without ``clinicpress.``), so a receiver can route on it as automations do."""
    note = pending_note(alert, now)
    return "\n".join([*([note] if note else []), alert.body, f"Alert kind: {alert.kind}"])


def deliver(
    alert: PendingAlert,
    urls: Sequence[str],
    *,
    now: datetime,
    retries: int,
    backoff: float = 1.0,
    failed: set[int] | None = None,
) -> list[AlertDelivery]:
    """Send one alert to every destination; each is tried alone, ``retries`` more times on failure.

    Nothing a destination does (an unparseable URL, a plugin that raises) stops the others. An
    error is apprise's verdict or the exception's type: its text could quote the URL.
    ``failed``: the indexes of destinations that already failed this run, tried once without
    retries (a run with many pending alerts and a dead webhook would otherwise wait out the
    backoff for each); the ones failing now are added to it.
    """
    import apprise  # ~0.1 s: loaded when an alert is sent, not by every publish

    failed = set() if failed is None else failed
    kind = alert_kind(alert.kind)
    message = outgoing_message(alert, now)
    deliveries: list[AlertDelivery] = []
    for index, url in enumerate(urls):
        name = destination_label(index, url)
        sender = apprise.Apprise()
        try:
            problem = None if sender.add(url) else "apprise cannot parse this URL"
        except Exception as exc:
            problem = f"apprise failed on it ({type(exc).__name__})"
        if problem is not None:
            deliveries.append(AlertDelivery(name, ok=False, error=problem))
            continue
        error = "the service did not accept the alert"
        tries = 1 if index in failed else retries + 1
        for attempt in range(tries):
            try:
                if sender.notify(
                    title=alert.title, body=message, notify_type=apprise.NotifyType(_NOTIFY_TYPE[kind])
                ):
                    deliveries.append(AlertDelivery(name, ok=True))
                    break
            except Exception as exc:  # a broken plugin must not stop the other destinations
                error = f"the apprise plugin raised {type(exc).__name__}"
            if attempt < tries - 1:
                time.sleep(backoff * 2**attempt)
        else:
            failed.add(index)
            _LOG.warning("alert %s not delivered to %s: %s", alert.kind, name, error)
            deliveries.append(AlertDelivery(name, ok=False, error=error))
    return deliveries
