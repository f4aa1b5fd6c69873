"""Prefect tasks shared by the flows: thin wrappers where the I/O is."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from clinicpress.checks.archive import lookup_archives
from clinicpress.checks.authority.run import AuthorityReport, lookup_authorities
from clinicpress.checks.cache import LinkCache
from clinicpress.checks.integrity.apply import (
    identifiers,
    integrity_cache_beside,
    resolver_targets,
    verdicts_by_url,
)
from clinicpress.checks.integrity.client import IntegrityReport, lookup, run_quietly
from clinicpress.checks.integrity.quotes import QuoteResult, quote_key
from clinicpress.checks.integrity.verdict import IntegrityVerdict
from clinicpress.checks.links import LinkBatch, LinkReport, check_batch, merge_batches, plan_batches
from clinicpress.checks.transitions import KeptState, integrity_state
from clinicpress.checks.verify import all_urls, check_authorities, check_integrity, site_contact
from clinicpress.faults import fault_point
from clinicpress.outputs.alerts import AlertKey
from clinicpress.outputs.monitoring import AuthorityFindings, PrintedReviewer
from clinicpress.outputs.publish import PublishedRelease, ReadyArticle
from clinicpress.outputs.registry import PublishRecord, QuoteReading, Registry
from clinicpress.outputs.release import live_release, live_report
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article

_Value = TypeVar("_Value")


def quoted(value: _Value) -> _Value:
    """``prefect``'s ``quote(value)``, typed as the value it wraps.

    Prefect walks every task argument looking for futures (~1.3 s per walk over 1,000 articles);
    ``quote()`` stops the walk and the task still receives the plain value. Prefect's Task typing
    does not know ``quote``: this one cast stands for a ``type: ignore`` at every call.
    """
    return cast(_Value, quote(value))


# Link batches run in parallel threads (each an asyncio loop with its own clients); bounded, as
# Prefect asks of every ThreadPoolTaskRunner. (Typed Any: the flow decorator types task_runner more
# narrowly than ThreadPoolTaskRunner declares itself.)
LINK_BATCH_RUNNER: Any = ThreadPoolTaskRunner(max_workers=4)


# Inputs are pydantic models and large texts: hashing them for a cache key is
# wasted work, and a link check must never be cached by its inputs (docs/architecture.md;
# the link checker keeps its own cache of successes, with a max age).
@task(name="check-links-batch", retries=2, retry_delay_seconds=[2, 8], cache_policy=NO_CACHE)
def check_links_batch(urls: list[str], settings: LinkCheckSettings, cache: LinkCache | None) -> LinkBatch:
    return check_batch(urls, settings, cache)


def check_sources(urls: list[str], settings: LinkCheckSettings, cache: LinkCache | None = None) -> LinkReport:
    """Check every URL, one task per batch (a host's URLs share a batch: per-host limits hold).

    "Network down" is decided over all batches together, not per batch.
    """
    fault_point("check.links")
    futures = [check_links_batch.submit(batch, settings, cache) for batch in plan_batches(urls)]
    return merge_batches([future.result() for future in futures], urls=urls)


@task(name="check-integrity", retries=1, retry_delay_seconds=[2], cache_policy=NO_CACHE)
def check_integrity_task(
    articles: list[Article], site: SiteConfig, cache: LinkCache | None
) -> IntegrityReport | None:
    """Crossref/PubMed lookups of every DOI/PMID source (checks/integrity); None when disabled.

    Submitted before the link check so both run at once; its cache sits beside the link cache.
    """
    path = cache.path if cache is not None else None
    return check_integrity(articles, site, integrity_cache_beside(path, site.checks.integrity))


@task(name="check-authorities", retries=1, retry_delay_seconds=[2], cache_policy=NO_CACHE)
def check_authority_task(
    articles: list[Article], site: SiteConfig, cache: LinkCache | None
) -> AuthorityReport:
    """The licenses at DHCS and the reviewers' NPIs at the NPI registry (checks/authority/run.py),
    the same lookup ``clinicpress check`` makes; submitted beside the link check."""
    return check_authorities(articles, site, cache)


def printed_reviewers(out_dir: Path, slugs: Iterable[str]) -> dict[str, PrintedReviewer]:
    """Each reviewer's NPI the live articles print, from their published reports (the JSON of
    ``check``: ``reviewer_registry`` and ``review_line``), with the slugs that print it."""
    found: dict[str, tuple[str, str | None, list[str]]] = {}
    for slug in slugs:
        report = live_report(out_dir, slug) or {}
        at_registry, line = report.get("reviewer_registry"), report.get("review_line")
        if not isinstance(at_registry, dict) or not isinstance(line, dict):
            continue
        npi, shown = at_registry.get("npi"), line.get("reviewed_by")
        if not isinstance(npi, str) or not isinstance(shown, str):
            continue
        name, _, credentials = shown.partition(", ")  # Reviewer.display(): "Name, Credentials"
        found.setdefault(npi, (name, credentials or None, []))[2].append(slug)
    return {npi: PrintedReviewer(name, cred, tuple(s)) for npi, (name, cred, s) in found.items()}


@task(name="monitor-authorities", retries=1, retry_delay_seconds=[2], cache_policy=NO_CACHE)
def monitor_authority_task(site: SiteConfig, out_dir: Path, slugs: list[str]) -> AuthorityFindings:
    """DHCS and the NPI registry read again (no cache), through the lookup check and publish make,
    with the answers the registry kept from earlier runs."""
    reviewers = printed_reviewers(out_dir, slugs)
    report = run_quietly(lookup_authorities(site, list(reviewers), link_cache_path=None))
    with Registry.for_site(site, out_dir) as registry:
        previous = {
            (name, key): snap
            for name in ("dhcs", "npi")
            for key, snap in registry.latest_snapshots(name).items()
        }
    return AuthorityFindings(report.licenses, report.npis, reviewers, previous)


@dataclass(frozen=True)
class MonitorIntegrity:
    verdicts: dict[str, IntegrityVerdict]  # by source URL, DOI/PMID sources only
    quotes: dict[str, QuoteResult]  # every recorded quote read again, by quote_key


@task(name="monitor-integrity", retries=1, retry_delay_seconds=[2], cache_policy=NO_CACHE)
def monitor_integrity_task(
    urls: list[str], slugs: list[str], site: SiteConfig, out_dir: Path, now: datetime
) -> MonitorIntegrity | None:
    """The monitor's Crossref/PubMed lookups and quote readings (never cached); None when disabled.

    ``slugs``: the live articles, whose recorded quotes are read again. The readings are
    recorded here (found, text fingerprint); their states with the others.
    """
    if not site.checks.integrity.enabled:
        return None
    links = site.checks.links
    with Registry.for_site(site, out_dir) as registry:
        recorded = registry.quotes(slugs)
    pairs = list(dict.fromkeys((r.url, r.quote) for r in recorded))
    fetch_at = resolver_targets((url for url, _ in pairs), links)
    report = lookup(
        identifiers(urls, links),
        site.checks.integrity,
        links,
        contact=site_contact(site),
        quotes=pairs,
        fetch_at=fetch_at,
    )
    with Registry.for_site(site, out_dir) as registry:
        registry.update_quotes(_readings(report.quotes.values()), now)
    return MonitorIntegrity(verdicts_by_url(urls, report, links), report.quotes)


def _readings(results: Iterable[QuoteResult]) -> list[QuoteReading]:
    return [
        QuoteReading(r.url, quote_key(r.url, r.quote).rsplit("#", 1)[1], r.quote, r.found, r.fingerprint)
        for r in results
    ]


def _integrity_baseline(ready: list[ReadyArticle], now: datetime) -> dict[str, KeptState]:
    """What publishing saw of each DOI/PMID source: the monitor alerts only on what changes after."""
    states: dict[str, KeptState] = {}
    for item in ready:
        for link in item.report.links:
            if link.integrity is not None and link.integrity != "unknown":
                states[AlertKey.integrity(link.url)] = KeptState(
                    integrity_state(link.integrity, link.integrity_notice), now
                )
    return states


def _channels(item: ReadyArticle) -> dict[str, list[str]]:
    channels: dict[str, list[str]] = {}
    for artifact in item.artifacts:
        channels.setdefault(artifact.channel.value, []).append(artifact.relpath)
    return channels


def _publish_record(
    site: SiteConfig,
    article: Article,
    version: str,
    release_id: str | None,
    channels: dict[str, list[str]],
    published_at: datetime,
) -> PublishRecord:
    """One live article version, as the registry records it."""
    return PublishRecord(
        slug=article.key,
        version=version,
        title=article.title,
        published_at=published_at,
        release_id=release_id,
        channels=channels,
        licenses=site.licenses,
        last_reviewed=article.last_reviewed,
        next_review=article.review_due,
        cited=[(s.title, s.url) for s in article.sources],
    )


@task(name="record-publish", retries=2, retry_delay_seconds=[1, 4], cache_policy=NO_CACHE)
def record_publish(
    site: SiteConfig,
    out_dir: Path,
    release: PublishedRelease,
    ready: list[ReadyArticle],
    links: LinkReport,
    published_at: datetime,
    integrity: IntegrityReport | None = None,
) -> list[str]:
    """Record what went live, its sources' check results and archived snapshots.

    With ``integrity``: each quote's reading (found, text fingerprint) and the integrity and
    quote states publishing saw (the monitor alerts on what changes after).

    Returns the slugs recorded as new versions (re-publishing a version is a no-op).
    """
    fault_point("record")
    with Registry.for_site(site, out_dir) as registry:
        recorded = registry.record_publishes(
            [
                _publish_record(
                    site, item.article, item.version, release.release_id, _channels(item), published_at
                )
                for item in ready
            ]
        )
        urls = all_urls([item.article for item in ready])
        registry.record_checks([links.results[u] for u in urls if u in links.results], published_at)
        baseline = _integrity_baseline(ready, published_at)
        if integrity is not None:
            quoted = {
                quote_key(s.url, s.quote)
                for item in ready
                for s in item.article.sources
                if s.quote is not None
            }
            readings = [r for key, r in integrity.quotes.items() if key in quoted]
            for item in ready:
                mine = {quote_key(s.url, s.quote) for s in item.article.sources if s.quote is not None}
                quotes_of = [integrity.quotes[key] for key in mine if key in integrity.quotes]
                registry.replace_quotes(item.article.key, _readings(quotes_of), published_at)
            for reading in readings:
                if reading.found is not None:
                    key = AlertKey.quote(quote_key(reading.url, reading.quote))
                    baseline[key] = KeptState("found" if reading.found else "missing", published_at)
        registry.save_states(baseline)
        # No archive lookups when the network is down: they would only time out.
        if not links.network_down:
            already = registry.archive_checked(urls)
            pending = [u for u in urls if u not in already]
            for url, archived in lookup_archives(pending, site.archive, site.checks.links).items():
                registry.record_archive(url, archived, published_at)
    return recorded


@task(name="record-live", retries=2, retry_delay_seconds=[1, 4], cache_policy=NO_CACHE)
def record_unrecorded_live(
    site: SiteConfig, out: Path, live: list[tuple[Article, str]], now: datetime
) -> list[str]:
    """Record live versions the registry lacks; returns their slugs.

    A run killed between the switch and ``record-publish`` leaves its versions
    live but unrecorded; the next run finds them unchanged, and without this
    the monitor (which reads the registry) would never check them.
    """
    if not live:
        return []
    with Registry.for_site(site, out) as registry:
        missing = registry.unrecorded({article.key: version for article, version in live})
        release = live_release(out)
        records: list[PublishRecord] = []
        for article, version in live:
            report = live_report(out, article.key) if article.key in missing else None
            if report is None or release is None:
                continue
            channels = report.get("channels")
            went_live = report.get("published_at")
            records.append(
                _publish_record(
                    site,
                    article,
                    version,
                    release.name,
                    channels if isinstance(channels, dict) else {},
                    datetime.fromisoformat(went_live) if isinstance(went_live, str) else now,
                )
            )
        return registry.record_publishes(records)
