"""The ``monitor`` flow: re-check what is published and alert once per transition.

It also reads every newsletter send's complaint and hard-bounce counts (from ``clinicpress
newsletter bounces`` or the ``bounces`` deployment) and alerts once per send that passes
``[newsletter] complaint_alert_rate`` or ``bounce_alert_rate``.

Thin: the registry (outputs/) says what is live, the link checker re-checks
every distinct source once, ``outputs/monitoring.py`` turns results and
stored states into transitions and alerts, ``outputs/alerts.py`` delivers.

Alerts at least once, never twice:

- One run at a time: a run holds the registry's ``monitor`` lease from before
  it reads the states until after its last delivery; a second run exits at
  once, naming the holder. The registry may be a PostgreSQL database several
  machines share, so the lock lives there; a killed run's lease lets go when
  its process is gone (same host) or when it expires (``LOCK_SECONDS``).
- A transition's new state and its alert are recorded in one transaction,
  before any delivery, and only while the run still holds the lease. The alert
  stays pending until a destination accepts it: every later run sends it
  again, saying how long it waited (``plan_outbox`` drops one whose news is
  over).
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from pydantic import BaseModel, Field

from clinicpress import clock
from clinicpress.checks.model import LinkResult
from clinicpress.checks.transitions import KeptState
from clinicpress.faults import fault_point
from clinicpress.flows.json_flow import flow
from clinicpress.flows.tasks import (
    LINK_BATCH_RUNNER,
    MonitorIntegrity,
    check_sources,
    monitor_authority_task,
    monitor_integrity_task,
    quoted,
)
from clinicpress.outputs.alerts import Alert, AlertDelivery, AlertKey, deliver
from clinicpress.outputs.delivery.lease import owner_name
from clinicpress.outputs.delivery.loop import SendRates, sends_heard
from clinicpress.outputs.monitoring import (
    AuthorityFindings,
    Evaluation,
    Outbox,
    cited_by,
    evaluate,
    plan_outbox,
)
from clinicpress.outputs.registry import PendingAlert, PublishedArticle, Registry, registry_url
from clinicpress.outputs.release import live_versions
from clinicpress.site import DEFAULT_SITE_PATH, SiteConfig, format_date, load_site

DEFAULT_OUT_DIR = Path("published")

MONITOR_LOCK = "monitor"
# How long a run's lease lasts without renewal. It is renewed when the run records what it found
# and before it delivers: the longest gap is the re-check of every source, well under an hour.
LOCK_SECONDS = 3600.0

Lock = tuple[str, str, float]  # (lease name, owner, seconds): what Registry.record_monitor renews


class AlertOutcome(BaseModel):
    kind: str
    title: str
    body: str
    delivered: int  # destinations that accepted it
    failed: list[str]  # "<destination label>: <why>"
    pending_since: datetime | None = None  # raised by an earlier run, tried again by this one


class MonitorResult(BaseModel):
    articles: int = 0
    sources: int = 0
    statuses: dict[str, int] = Field(default_factory=dict)
    network_down: bool = False
    alerts: list[AlertOutcome] = Field(default_factory=list)  # this run's transitions
    retried: list[AlertOutcome] = Field(default_factory=list)  # pending from earlier runs, tried again
    not_sent: list[str] = Field(default_factory=list)  # titles of all-clears nobody needed
    destinations: int = 0  # [alerts] urls configured
    busy: str | None = None  # another run held the lock (who, until when): this run did nothing
    failing: int = 0  # sources failing, not yet for failures_before_alert runs in a row: no alert yet
    failures_before_alert: int = 2
    sends: int = 0  # newsletter sends whose complaint and bounce rates were looked at

    def lines(self) -> list[str]:
        """What ``clinicpress monitor`` prints (after its own line when nothing is published)."""
        if self.busy is not None:
            # The run that holds the lock checks and alerts: this one would only alert a second time.
            busy = f"monitor: another monitor run is running ({self.busy})"
            return [f"{busy}; this run checked nothing and sent no alert"]
        lines: list[str] = []
        if self.articles:
            statuses = ", ".join(f"{count} {status}" for status, count in sorted(self.statuses.items()))
            counts = f"{self.articles} article(s), {self.sources} distinct source(s)"
            lines.append(f"monitor: {counts}: {statuses or 'none'}")
            if self.network_down:
                lines[0] += " (network down: sources could not be verified)"
            if self.failing:
                lines.append(
                    f"  {self.failing} broken, not alerted yet (alerts after "
                    f"{self.failures_before_alert} failures in a row)"
                )
            elif not (self.alerts or self.retried or self.not_sent):
                lines.append("  no changes since the last run: no alerts")
        for alert in [*self.alerts, *self.retried]:
            since = alert.pending_since
            late = f" (pending since {format_date(since.date())} {since:%H:%M} UTC)" if since else ""
            lines.append(f"  alert {alert.kind}{late}: {alert.title} — {self._outcome(alert)}")
        for title in self.not_sent:
            lines.append(f"  not sent: {title} (nobody was told of the problem it ends)")
        return lines

    def _outcome(self, alert: AlertOutcome) -> str:
        if not self.destinations:
            return (
                "delivered to 0 destination(s): no [alerts] urls configured in site.toml; "
                "kept pending for the next run"
            )
        said = f"delivered to {alert.delivered} of {self.destinations} destination(s)"
        if alert.failed:
            said += f"; failed: {'; '.join(alert.failed)}"
        if not alert.delivered:
            said += "; kept pending: the next run sends it again"
        return said


@task(name="take-monitor-lock", cache_policy=NO_CACHE)
def take_lock(site: SiteConfig, out_dir: Path, lock: Lock) -> str | None:
    """None when this run holds the monitor lock, else who holds it."""
    name, owner, ttl = lock
    with Registry.for_site(site, out_dir) as registry:
        return registry.take_lease(name, owner, ttl, clock.now())


def _drop_lock(site: SiteConfig, out_dir: Path, lock: Lock) -> None:
    name, owner, _ = lock
    with Registry.for_site(site, out_dir) as registry:
        registry.drop_lease(name, owner)


@task(name="load-catalog", cache_policy=NO_CACHE)
def load_catalog(site: SiteConfig, out_dir: Path) -> list[PublishedArticle]:
    with Registry.for_site(site, out_dir) as registry:
        # What is live (after a rollback, not the newest recorded version).
        return registry.latest_publishes(live_versions(out_dir) or None)


@task(name="load-sends", cache_policy=NO_CACHE)
def load_sends(site: SiteConfig, out_dir: Path) -> list[SendRates]:
    """Every newsletter send's accepted messages, hard bounces and complaints (as ``newsletter
    stats`` counts them)."""
    return sends_heard(registry_url(site, out_dir))


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_catalog(
    site: SiteConfig,
    out_dir: Path,
    catalog: list[PublishedArticle],
    results: dict[str, LinkResult],
    today: date,
    now: datetime,
    integrity: MonitorIntegrity | None = None,
    authority: AuthorityFindings | None = None,
    sends: list[SendRates] | None = None,
) -> tuple[Evaluation, Outbox]:
    with Registry.for_site(site, out_dir) as registry:
        previous = registry.states()
        pending = registry.pending_alerts()
        archives = registry.archives(cited_by(catalog))
    verdicts, quotes = (integrity.verdicts, integrity.quotes) if integrity is not None else (None, None)
    evaluation = evaluate(
        catalog,
        results,
        previous,
        archives,
        site,
        today=today,
        now=now,
        integrity=verdicts,
        quotes=quotes,
        authority=authority,
        sends=sends,
    )
    return evaluation, plan_outbox(evaluation.alerts, evaluation.states, pending)


@task(name="record-monitor", retries=2, retry_delay_seconds=[1, 4], cache_policy=NO_CACHE)
def record_monitor(
    site: SiteConfig,
    out_dir: Path,
    lock: Lock,
    evaluation: Evaluation,
    outbox: Outbox,
    results: list[LinkResult],
    now: datetime,
) -> list[PendingAlert]:
    """States and alerts in one transaction, under the lock; returns every alert to send now."""
    with Registry.for_site(site, out_dir) as registry:
        return registry.record_monitor(
            lock=lock,
            renewed_at=clock.now(),
            results=results,
            checked_at=now,
            states=evaluation.states,
            superseded=outbox.superseded,
            raised=outbox.raised,
            snapshots=evaluation.snapshots,
        )


@task(name="deliver-alerts", cache_policy=NO_CACHE)
def deliver_alerts(
    site: SiteConfig, out_dir: Path, lock: Lock, pending: list[PendingAlert], now: datetime
) -> dict[int, list[AlertDelivery]]:
    """Each pending alert to every destination, its attempt recorded at once: delivered when one
    destination accepted it, else still pending. No task retries: retries happen per destination
    inside deliver(), so one dead channel never resends to the others."""
    name, owner, ttl = lock
    sent: dict[int, list[AlertDelivery]] = {}
    failed: set[int] = set()  # destinations that failed this run: one try each for the next alerts
    with Registry.for_site(site, out_dir) as registry:
        for alert in pending:
            registry.renew_lease(name, owner, ttl, clock.now())  # a run that lost the lock stops here
            deliveries = deliver(alert, site.alerts.urls, now=now, retries=site.alerts.retries, failed=failed)
            accepted = any(d.ok for d in deliveries)
            registry.record_attempt(
                alert.id, [d.as_json() for d in deliveries], clock.now(), accepted=accepted
            )
            sent[alert.id] = deliveries
    return sent


def _emit(alert: Alert) -> None:
    """One Prefect event per transition (delivered or not), so Prefect automations can react."""
    emit_event(
        event=f"clinicpress.{alert.kind.value}",
        resource={"prefect.resource.id": f"clinicpress.{alert.key}", "prefect.resource.name": alert.key},
        payload={**alert.payload, "reprint_needed": alert.reprint_needed, "title": alert.title},
    )


def _outcome(alert: PendingAlert, sent: list[AlertDelivery], late: bool) -> AlertOutcome:
    return AlertOutcome(
        kind=alert.kind,
        title=alert.title,
        body=alert.body,
        delivered=sum(d.ok for d in sent),
        failed=[f"{d.destination}: {d.error}" for d in sent if not d.ok],
        pending_since=alert.created_at if late else None,
    )


@flow(name="monitor", validate_parameters=True, task_runner=LINK_BATCH_RUNNER)
def monitor_flow(
    site_path: str = str(DEFAULT_SITE_PATH),
    out_dir: str = str(DEFAULT_OUT_DIR),
    today: date | None = None,
) -> MonitorResult:
    """Re-check every source of every published article; alert on transitions, one run at a time."""
    site, out = load_site(site_path), Path(out_dir)
    lock: Lock = (MONITOR_LOCK, owner_name(uuid.uuid4().hex), LOCK_SECONDS)
    busy = take_lock(site, out, lock)
    if busy is not None:
        return MonitorResult(busy=busy, destinations=len(site.alerts.urls))
    try:
        return _monitor(site, out, lock, today)
    finally:
        _drop_lock(site, out, lock)


def _monitor(site: SiteConfig, out_dir: Path, lock: Lock, today: date | None) -> MonitorResult:
    catalog = load_catalog(site, out_dir)
    now = clock.now()
    day = today or clock.today()
    urls = list(cited_by(catalog))
    slugs = [article.slug for article in catalog]
    integrity = monitor_integrity_task.submit(urls, slugs, site, out_dir, now)  # while the links are checked
    # DHCS and the NPI registry, read again (no cache): the lookup check and publish make.
    authority = monitor_authority_task.submit(site, out_dir, slugs) if slugs else None
    links = check_sources(urls, site.checks.links)  # no cache: the monitor re-checks everything
    # quoted(): Prefect would otherwise walk these large structures looking for futures.
    verdicts = quoted(integrity.result())
    found = quoted(authority.result()) if authority is not None else None
    sends = load_sends(site, out_dir)  # after the link checks: the freshest bounce counts
    evaluation, outbox = evaluate_catalog(
        site, out_dir, quoted(catalog), quoted(links.results), day, now, verdicts, found, quoted(sends)
    )
    results = list(links.results.values())
    # Where a test lines up two runs: both have read the states; only the lock keeps a second one out.
    fault_point("monitor.record")
    pending = record_monitor(site, out_dir, lock, quoted(evaluation), quoted(outbox), quoted(results), now)
    sent = deliver_alerts(site, out_dir, lock, quoted(pending), now)
    for alert in evaluation.alerts:
        _emit(alert)
    if evaluation.not_ok:
        create_table_artifact(
            [
                {
                    "source": r.url,
                    "status": r.status.value,
                    "reason": r.reason,
                    "http_status": r.http_status or "",
                    "final_url": r.final_url or "",
                    "articles": ", ".join(slugs),
                }
                for r, slugs in evaluation.not_ok
            ],
            key="monitor-sources-not-ok",
            description="clinicpress monitor: every source not ok",
        )
    earlier = set(outbox.kept)
    return MonitorResult(
        articles=len(catalog),
        sources=len(urls),
        statuses=dict(Counter(r.status.value for r in links.results.values())),
        network_down=links.network_down,
        alerts=[_outcome(a, sent[a.id], late=False) for a in pending if a.id not in earlier],
        retried=[_outcome(a, sent[a.id], late=True) for a in pending if a.id in earlier],
        not_sent=[r.title for r in outbox.raised if not r.pending],
        destinations=len(site.alerts.urls),
        failing=sum(1 for key, state in evaluation.states.items() if _failing_unalerted(key, state)),
        failures_before_alert=site.monitor.failures_before_alert,
        sends=len(sends),
    )


def _failing_unalerted(key: str, state: KeptState) -> bool:
    """A source that failed this run but has not failed ``failures_before_alert`` runs in a row."""
    return AlertKey.is_source(key) and state.failures > 0 and state.state != "broken"
