"""The ``monitor`` flow: re-check what is published and alert once per transition.

Thin: the registry (outputs/) says what is live, the link checker re-checks
every distinct source once, ``outputs/monitoring.py`` turns results and
stored states into transitions and alerts, ``outputs/alerts.py`` delivers.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from pydantic import BaseModel

from clinicpress import clock
from clinicpress.checks.model import LinkResult
from clinicpress.flows.json_flow import flow
from clinicpress.flows.tasks import (
    LINK_BATCH_RUNNER,
    MonitorIntegrity,
    check_sources,
    monitor_integrity_task,
    quoted,
)
from clinicpress.outputs.alerts import Alert, Delivery, deliver
from clinicpress.outputs.monitoring import Evaluation, cited_by, evaluate
from clinicpress.outputs.registry import PublishedArticle, Registry
from clinicpress.outputs.release import live_versions
from clinicpress.site import DEFAULT_SITE_PATH, SiteConfig, load_site

DEFAULT_OUT_DIR = Path("published")


class AlertOutcome(BaseModel):
    kind: str
    title: str
    body: str
    delivered: int
    failed: list[str]


class MonitorResult(BaseModel):
    articles: int
    sources: int
    statuses: dict[str, int]
    network_down: bool
    alerts: list[AlertOutcome]


@task(name="load-catalog", cache_policy=NO_CACHE)
def load_catalog(site_path: str, out_dir: str) -> tuple[SiteConfig, list[PublishedArticle]]:
    site = load_site(site_path)
    with Registry.for_site(site, Path(out_dir)) as registry:
        # What is live (after a rollback, not the newest recorded version).
        return site, registry.latest_publishes(live_versions(Path(out_dir)) or None)


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_catalog(
    site: SiteConfig,
    out_dir: str,
    catalog: list[PublishedArticle],
    results: dict[str, LinkResult],
    today: date,
    now: datetime,
    integrity: MonitorIntegrity | None = None,
) -> Evaluation:
    with Registry.for_site(site, Path(out_dir)) as registry:
        previous = registry.states()
        archives = registry.archives(cited_by(catalog))
    verdicts, quotes = (integrity.verdicts, integrity.quotes) if integrity is not None else (None, None)
    return evaluate(
        catalog, results, previous, archives, site, today=today, now=now, integrity=verdicts, quotes=quotes
    )


@task(name="deliver-alert", cache_policy=NO_CACHE)
def deliver_alert(alert: Alert, urls: list[str], retries: int) -> list[Delivery]:
    # Retries happen per destination inside deliver(): one dead channel must not resend to the others.
    return deliver(alert, urls, retries=retries)


@task(name="record-monitor", retries=2, retry_delay_seconds=[1, 4], cache_policy=NO_CACHE)
def record_monitor(
    site: SiteConfig,
    out_dir: str,
    evaluation: Evaluation,
    results: list[LinkResult],
    deliveries: list[list[Delivery]],
    now: datetime,
) -> None:
    with Registry.for_site(site, Path(out_dir)) as registry:
        registry.record_checks(results, now)
        registry.save_states(evaluation.states)
        for alert, sent in zip(evaluation.alerts, deliveries, strict=True):
            registry.record_alert(
                key=alert.key,
                kind=alert.kind.value,
                title=alert.title,
                body=alert.body,
                created_at=now,
                deliveries=[d.as_json() for d in sent],
            )


def _emit(alert: Alert) -> None:
    """One Prefect event per transition, so Prefect automations can react."""
    emit_event(
        event=f"clinicpress.{alert.kind.value}",
        resource={"prefect.resource.id": f"clinicpress.{alert.key}", "prefect.resource.name": alert.key},
        payload={**alert.payload, "reprint_needed": alert.reprint_needed, "title": alert.title},
    )


@flow(name="monitor", validate_parameters=True, task_runner=LINK_BATCH_RUNNER)
def monitor_flow(
    site_path: str = str(DEFAULT_SITE_PATH),
    out_dir: str = str(DEFAULT_OUT_DIR),
    today: date | None = None,
) -> MonitorResult:
    """Re-check every source of every published article; alert on transitions."""
    site, catalog = load_catalog(site_path, out_dir)
    now = clock.now()
    day = today or clock.today()
    urls = list(cited_by(catalog))
    slugs = [article.slug for article in catalog]
    integrity = monitor_integrity_task.submit(urls, slugs, site, out_dir, now)  # while the links are checked
    links = check_sources(urls, site.checks.links)  # no cache: the monitor re-checks everything
    # quoted(): Prefect would otherwise walk these large structures looking for futures.
    verdicts = quoted(integrity.result())
    evaluation = evaluate_catalog(site, out_dir, quoted(catalog), quoted(links.results), day, now, verdicts)
    deliveries = [deliver_alert(alert, site.alerts.urls, site.alerts.retries) for alert in evaluation.alerts]
    results = list(links.results.values())
    record_monitor(site, out_dir, quoted(evaluation), quoted(results), deliveries, now)
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
    return MonitorResult(
        articles=len(catalog),
        sources=len(urls),
        statuses=dict(Counter(r.status.value for r in links.results.values())),
        network_down=links.network_down,
        alerts=[
            AlertOutcome(
                kind=alert.kind.value,
                title=alert.title,
                body=alert.body,
                delivered=sum(d.ok for d in sent),
                failed=[f"{d.destination}: {d.error}" for d in sent if not d.ok],
            )
            for alert, sent in zip(evaluation.alerts, deliveries, strict=True)
        ],
    )
