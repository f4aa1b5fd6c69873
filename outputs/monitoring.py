"""One monitor evaluation: re-checked sources, licenses, reviews and newsletter sends → new states
and alerts.

Pure: the flow feeds it what the registry holds and what the checks found,
and stores what it returns. It sits in ``outputs/`` because it works on the
registry's records and builds the alerts (docs/architecture.md, "Layers").

``plan_outbox`` decides what happens to alerts still pending from earlier runs
(no destination accepted them): each is sent again until one does, unless the
state it announced is over, and an all-clear about a problem nobody was told
of is not sent at all. So at most one alert per key is ever pending.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, get_args

from clinicpress.checks.authority.license import LicenseAnswer
from clinicpress.checks.authority.npi import NpiAnswer, ReviewerStatus, judge_reviewer
from clinicpress.checks.authority.run import clinic_state
from clinicpress.checks.authority.transitions import license_transition as registry_transition
from clinicpress.checks.authority.transitions import reviewer_transition
from clinicpress.checks.integrity.quotes import QuoteResult
from clinicpress.checks.integrity.verdict import IntegrityVerdict
from clinicpress.checks.model import Archived, LinkResult, LinkStatus
from clinicpress.checks.transitions import (
    ALL_CLEAR,
    KeptState,
    Kind,
    integrity_transition,
    license_transition,
    quote_transition,
    review_transition,
    source_transition,
)
from clinicpress.outputs.alerts import (
    Alert,
    AlertKey,
    LoopKind,
    authority_alert,
    integrity_alert,
    license_alert,
    quote_alert,
    review_alert,
    send_rate_alert,
    source_alert,
)
from clinicpress.outputs.registry import AlertRecord, PendingAlert, PublishedArticle, Snapshot
from clinicpress.site import License, SiteConfig, format_date

if TYPE_CHECKING:  # the delivery loop imports DKIM and DNS: a publish that sends nothing skips them
    from clinicpress.outputs.delivery.loop import SendRates


@dataclass(frozen=True)
class Evaluation:
    states: dict[str, KeptState]  # every key evaluated, with its new state
    alerts: list[Alert]
    not_ok: list[tuple[LinkResult, tuple[str, ...]]]  # sources not ok, with the slugs citing them
    snapshots: list[Snapshot] = field(default_factory=list)  # authority answers that changed: kept


@dataclass(frozen=True)
class PrintedReviewer:
    """A reviewer a live article prints with an NPI (from its published report)."""

    name: str
    credentials: str | None
    slugs: tuple[str, ...]


@dataclass(frozen=True)
class AuthorityFindings:
    """What the monitor read again at DHCS and the NPI registry (no cache), and what it kept before."""

    licenses: list[tuple[License, LicenseAnswer]] | None  # None: the lookup is off
    npis: dict[str, NpiAnswer] | None
    reviewers: dict[str, PrintedReviewer]  # by NPI
    previous: dict[tuple[str, str], Snapshot]  # (registry, key) → the latest kept answer


def cited_by(catalog: Sequence[PublishedArticle]) -> dict[str, list[PublishedArticle]]:
    """Each distinct source URL and the articles citing it (the monitor checks each once)."""
    citing: dict[str, dict[str, PublishedArticle]] = defaultdict(dict)
    for article in catalog:
        for source in article.sources:
            citing[source.url][article.slug] = article  # by slug: one entry per article
    return {url: list(articles.values()) for url, articles in citing.items()}


def evaluate(
    catalog: Sequence[PublishedArticle],
    results: Mapping[str, LinkResult],
    previous: Mapping[str, KeptState],
    archives: Mapping[str, Archived],
    site: SiteConfig,
    *,
    today: date,
    now: datetime,
    integrity: Mapping[str, IntegrityVerdict] | None = None,
    quotes: Mapping[str, QuoteResult] | None = None,
    authority: AuthorityFindings | None = None,
    sends: Sequence[SendRates] | None = None,
) -> Evaluation:
    """``integrity``: the verdict per source URL of every DOI/PMID source (None: not looked up);
    ``quotes``: each recorded quote read again, by ``quote_key`` (None: not read);
    ``authority``: DHCS's and the NPI registry's answers, read again (None: not asked);
    ``sends``: every newsletter send's complaint and bounce counts (None: not read)."""
    states: dict[str, KeptState] = {}
    alerts: list[Alert] = []
    not_ok: list[tuple[LinkResult, tuple[str, ...]]] = []

    for url, articles in cited_by(catalog).items():
        result = results.get(url)
        if result is None:
            continue
        if result.status is not LinkStatus.OK:
            not_ok.append((result, tuple(a.slug for a in articles)))
        key = AlertKey.source(url)
        state, kind = source_transition(previous.get(key), result, now, site.monitor.failures_before_alert)
        states[key] = state
        if kind is not None:
            alerts.append(source_alert(kind, result, state.since, articles, archives.get(url)))

    # Integrity: keyed apart from the link state, so a retracted source that still answers alerts.
    for url, articles in cited_by(catalog).items():
        verdict = (integrity or {}).get(url)
        if verdict is None:
            continue
        key = AlertKey.integrity(url)
        state, kind = integrity_transition(previous.get(key), verdict.status, verdict.notice, now)
        states[key] = state
        if kind is not None:
            detail = verdict.problems[0].message if verdict.problems else verdict.status
            alerts.append(integrity_alert(kind, url, verdict.notice, detail, articles, archives.get(url)))

    citing = cited_by(catalog)
    for key, reading in (quotes or {}).items():
        quoting = citing.get(reading.url)
        if not quoting:
            continue  # no live article cites it any more
        state, kind = quote_transition(previous.get(AlertKey.quote(key)), reading.found, now)
        states[AlertKey.quote(key)] = state
        if kind is not None:
            alerts.append(
                quote_alert(
                    key, reading.url, reading.quote, reading.reason, quoting, archives.get(reading.url)
                )
            )

    for lic in site.licenses:
        key = AlertKey.license(lic.program_id)
        state, kind = license_transition(
            previous.get(key), lic.expires, today, site.checks.license_warn_days, now
        )
        states[key] = state
        if kind is not None:
            alerts.append(
                license_alert(
                    kind,
                    lic.program_id,
                    lic.issuer,
                    format_date(lic.expires),
                    state.state,
                    catalog,
                    site.checks.license_warn_days,
                )
            )

    for article in catalog:
        key = AlertKey.review(article.slug)
        state, kind = review_transition(previous.get(key), article.next_review, today, now)
        states[key] = state
        if kind is not None:
            alerts.append(review_alert(article))

    for rates in sends or ():
        _send_rates(rates, previous, site, now, states, alerts)

    snapshots: list[Snapshot] = []
    if authority is not None:
        snapshots = _authority(catalog, authority, previous, site, now, states, alerts)
    return Evaluation(states=states, alerts=alerts, not_ok=not_ok, snapshots=snapshots)


# A send's rate states: "ok", then "over" once it passed its threshold. "over" stays: a rate that
# dips (an uncertain recipient resolved as sent) and passes again is the same news, told once.
RATE_OK, RATE_OVER = "ok", "over"


def rate_transition(
    previous: KeptState | None, percent: float, threshold: float, now: datetime
) -> tuple[KeptState, bool]:
    """The next state of one send's rate, and whether it passed ``threshold`` just now (alert)."""
    if previous is not None and previous.state == RATE_OVER:
        return previous, False
    if percent > threshold:
        return KeptState(RATE_OVER, now), True
    return previous or KeptState(RATE_OK, now), False


def _send_rates(
    rates: SendRates,
    previous: Mapping[str, KeptState],
    site: SiteConfig,
    now: datetime,
    states: dict[str, KeptState],
    alerts: list[Alert],
) -> None:
    """newsletter.complaints / newsletter.bounces, once per send each."""
    news = site.newsletter
    for kind, count, threshold in (
        (LoopKind.NEWSLETTER_COMPLAINTS, rates.complained, news.complaint_alert_rate),
        (LoopKind.NEWSLETTER_BOUNCES, rates.bounced, news.bounce_alert_rate),
    ):
        key = AlertKey.send_rate(rates.slug, rates.version, kind)
        states[key], passed = rate_transition(previous.get(key), rates.percent(count), threshold, now)
        if passed:
            alerts.append(send_rate_alert(kind, rates, threshold))


def _same_answer(before: Snapshot | None, answer: LicenseAnswer | NpiAnswer) -> bool:
    """Whether ``answer`` says what the kept snapshot said (when it was read aside)."""
    if before is None:
        return False
    kept = type(answer).model_validate_json(before.answer)
    return kept.model_copy(update={"read_at": None}) == answer.model_copy(update={"read_at": None})


def _status(before: Snapshot | None) -> ReviewerStatus | None:
    """The reviewer status a kept snapshot recorded (None: never seen, or a word we do not know)."""
    statuses: tuple[ReviewerStatus, ...] = get_args(ReviewerStatus)
    return next((status for status in statuses if before is not None and before.status == status), None)


def _kept_state(previous: Mapping[str, KeptState], key: str, state: str, now: datetime) -> KeptState:
    prev = previous.get(key)
    return prev if prev is not None and prev.state == state else KeptState(state, now)


def _authority(
    catalog: Sequence[PublishedArticle],
    found: AuthorityFindings,
    previous: Mapping[str, KeptState],
    site: SiteConfig,
    now: datetime,
    states: dict[str, KeptState],
    alerts: list[Alert],
) -> list[Snapshot]:
    """license.changed / license.delisted / reviewer.inactive, once each (checks/authority/
    transitions.py against the last kept snapshot); the answers that changed, to keep. An answer
    that did not come (unverified) changes nothing: no state, no snapshot, no alert."""
    snapshots: list[Snapshot] = []
    for lic, answer in found.licenses or []:
        if not answer.answered or answer.read_at is None:
            continue
        pid = lic.program_id
        before = found.previous.get(("dhcs", pid))
        kept = LicenseAnswer.model_validate_json(before.answer) if before is not None else None
        transition = registry_transition(kept, answer)
        key = AlertKey.license_registry(pid)
        listed = "listed" if answer.listed else "not-listed"
        mark = hashlib.sha256(answer.model_dump_json(include={"listed"}).encode()).hexdigest()[:8]
        states[key] = _kept_state(previous, key, f"{listed}:{mark}" if answer.listed else listed, now)
        if transition is not None:
            alerts.append(authority_alert(Kind(transition.kind), key, pid, transition.message, catalog))
        if not _same_answer(before, answer):
            snapshots.append(Snapshot("dhcs", pid, answer.read_at, listed, answer.model_dump_json()))
    state = clinic_state(site)
    for npi, npi_answer in (found.npis or {}).items():
        printed = found.reviewers.get(npi)
        if printed is None or not npi_answer.answered or npi_answer.read_at is None:
            continue
        check = judge_reviewer(printed.name, printed.credentials, npi, npi_answer, state=state)
        before = found.previous.get(("npi", npi))
        transition = reviewer_transition(_status(before), check, printed.slugs)
        key = AlertKey.reviewer_registry(npi)
        states[key] = _kept_state(previous, key, check.status, now)
        if transition is not None:
            articles = [a for a in catalog if a.slug in printed.slugs]
            alerts.append(authority_alert(Kind(transition.kind), key, npi, transition.message, articles))
        if not _same_answer(before, npi_answer) or (before is not None and before.status != check.status):
            snapshots.append(
                Snapshot("npi", npi, npi_answer.read_at, check.status, npi_answer.model_dump_json())
            )
    return snapshots


@dataclass(frozen=True)
class Outbox:
    raised: list[AlertRecord]  # this run's alerts: pending until a destination accepts one
    kept: list[int]  # ids of earlier runs' pending alerts to send again
    superseded: list[int]  # ids of pending alerts whose news is over: never sent now


def plan_outbox(
    alerts: Sequence[Alert], states: Mapping[str, KeptState], pending: Sequence[PendingAlert]
) -> Outbox:
    """What this run does with alerts, given its new ``states`` and the alerts still ``pending``.

    A pending alert is over when its key was evaluated and is no longer in the state it
    announced (a broken source that works again, a review done, a license past another
    threshold): the newer state speaks for itself. An all-clear (``ALL_CLEAR``) whose problem's
    alert was over before anyone was told is stored, never sent. A key not evaluated this run
    (its integrity lookup failed, say) keeps its pending alert.
    """
    over = [p for p in pending if p.key in states and states[p.key].state != p.state]
    unheard = {p.key for p in over}
    raised = [
        AlertRecord(
            key=alert.key,
            kind=alert.kind.value,
            title=alert.title,
            body=alert.body,
            state=states[alert.key].state,
            pending=not (alert.kind in ALL_CLEAR and alert.key in unheard),
        )
        for alert in alerts
    ]
    return Outbox(
        raised=raised, kept=[p.id for p in pending if p not in over], superseded=[p.id for p in over]
    )
