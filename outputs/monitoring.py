"""One monitor evaluation: re-checked sources, licenses and reviews → new states and alerts.

Pure: the flow feeds it what the registry holds and what the checks found,
and stores what it returns. It sits in ``outputs/`` because it works on the
registry's records and builds the alerts (docs/architecture.md, "Layers").

``plan_outbox`` decides what happens to alerts still pending from earlier runs
(no destination accepted them): each is sent again until one does, unless the
state it announced is over, and an all-clear about a problem nobody was told
of is not sent at all. So at most one alert per key is ever pending.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from clinicpress.checks.integrity.quotes import QuoteResult
from clinicpress.checks.integrity.verdict import IntegrityVerdict
from clinicpress.checks.model import Archived, LinkResult, LinkStatus
from clinicpress.checks.transitions import (
    ALL_CLEAR,
    State,
    integrity_transition,
    license_transition,
    quote_transition,
    review_transition,
    source_transition,
)
from clinicpress.outputs.alerts import (
    Alert,
    integrity_alert,
    license_alert,
    quote_alert,
    review_alert,
    source_alert,
)
from clinicpress.outputs.registry import AlertRecord, PendingAlert, PublishedArticle
from clinicpress.site import SiteConfig, format_date


@dataclass(frozen=True)
class Evaluation:
    states: dict[str, State]  # every key evaluated, with its new state
    alerts: list[Alert]
    not_ok: list[tuple[LinkResult, tuple[str, ...]]]  # sources not ok, with the slugs citing them


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
    previous: Mapping[str, State],
    archives: Mapping[str, Archived],
    site: SiteConfig,
    *,
    today: date,
    now: datetime,
    integrity: Mapping[str, IntegrityVerdict] | None = None,
    quotes: Mapping[str, QuoteResult] | None = None,
) -> Evaluation:
    """``integrity``: the verdict per source URL of every DOI/PMID source (None: not looked up);
    ``quotes``: each recorded quote read again, by ``quote_key`` (None: not read)."""
    states: dict[str, State] = {}
    alerts: list[Alert] = []
    not_ok: list[tuple[LinkResult, tuple[str, ...]]] = []

    for url, articles in cited_by(catalog).items():
        result = results.get(url)
        if result is None:
            continue
        if result.status is not LinkStatus.OK:
            not_ok.append((result, tuple(a.slug for a in articles)))
        key = f"source:{url}"
        state, kind = source_transition(previous.get(key), result, now, site.monitor.failures_before_alert)
        states[key] = state
        if kind is not None:
            alerts.append(source_alert(kind, result, state.since, articles, archives.get(url)))

    # Integrity: keyed apart from the link state, so a retracted source that still answers alerts.
    for url, articles in cited_by(catalog).items():
        verdict = (integrity or {}).get(url)
        if verdict is None:
            continue
        key = f"integrity:{url}"
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
        state, kind = quote_transition(previous.get(f"quote:{key}"), reading.found, now)
        states[f"quote:{key}"] = state
        if kind is not None:
            alerts.append(
                quote_alert(
                    key, reading.url, reading.quote, reading.reason, quoting, archives.get(reading.url)
                )
            )

    for lic in site.licenses:
        key = f"license:{lic.program_id}"
        state, kind = license_transition(
            previous.get(key), lic.expires, today, site.checks.license_warn_days, now
        )
        states[key] = state
        if kind is not None:
            alerts.append(
                license_alert(
                    kind, lic.program_id, lic.issuer, format_date(lic.expires), state.state, catalog
                )
            )

    for article in catalog:
        key = f"review:{article.slug}"
        state, kind = review_transition(previous.get(key), article.next_review, today, now)
        states[key] = state
        if kind is not None:
            alerts.append(review_alert(article))

    return Evaluation(states=states, alerts=alerts, not_ok=not_ok)


@dataclass(frozen=True)
class Outbox:
    raised: list[AlertRecord]  # this run's alerts: pending until a destination accepts one
    kept: list[int]  # ids of earlier runs' pending alerts to send again
    superseded: list[int]  # ids of pending alerts whose news is over: never sent now


def plan_outbox(
    alerts: Sequence[Alert], states: Mapping[str, State], pending: Sequence[PendingAlert]
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
