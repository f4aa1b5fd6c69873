"""The registry: what was published, the check history of its sources, and alert state.

Any SQLAlchemy URL (``[registry] url`` or ``CLINICPRESS_REGISTRY__URL``; default SQLite in
``<out>/registry.sqlite``). The tables, the schema version and ``migrate()`` are in
``outputs/registry_schema.py``; this module reads and writes them.

Over 400 lines on purpose: it is one class over one database, its methods grouped by the
tables they touch (publishing, sources, quotes, alert state, leases, holds, addresses), each one
transaction. Split across modules, a reader would lose which writes share a transaction.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    func,
    select,
    tuple_,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from clinicpress.checks.model import Archived, LinkResult, LinkStatus
from clinicpress.checks.transitions import KeptState
from clinicpress.errors import RegistryError
from clinicpress.outputs.holds import Hold
from clinicpress.outputs.registry_location import REGISTRY_FILE, registry_exists, registry_url, shown_url
from clinicpress.outputs.registry_schema import (
    SCHEMA_VERSION,
    UTCDateTime,
    alert_state,
    alerts,
    article_addresses,
    authority_snapshots,
    held_versions,
    leases,
    metadata,
    migrate,
    new_id,
    open_engine,
    publish_sources,
    publishes,
    release_events,
    schema_info,
    source_checks,
    source_quotes,
    sources,
    transaction,
)
from clinicpress.site import License, SiteConfig
from clinicpress.sources.addresses import Moves, with_addresses
from clinicpress.sources.loader import Loaded


@dataclass(frozen=True)
class QuoteReading:
    """One reading of a quote in its source, as publish or the monitor made it."""

    url: str
    quote_hash: str  # the quote's part of checks.integrity.quotes.quote_key
    quote: str
    found: bool | None  # None: the source could not be read
    fingerprint: str | None  # of the source's text, when it was read


@dataclass(frozen=True)
class RecordedQuote:
    """A quote a live article relies on, with its last reading."""

    slug: str
    url: str
    quote: str
    found: bool | None
    fingerprint: str | None


@dataclass(frozen=True)
class PublishedSource:
    position: int
    title: str
    url: str


@dataclass(frozen=True)
class PublishedArticle:
    """The latest published version of one article, as the monitor needs it."""

    slug: str
    version: str
    title: str
    published_at: datetime
    channels: dict[str, list[str]]
    licenses: list[dict[str, str]]
    last_reviewed: date
    next_review: date
    sources: list[PublishedSource]

    @property
    def has_handout(self) -> bool:
        return bool(self.channels.get("handout"))


# Values per IN (...) query: well under SQLite's and PostgreSQL's bound-parameter limits.
_IN_CHUNK = 400


@dataclass(frozen=True)
class Snapshot:
    """One answer of an authority as the monitor kept it (DHCS's layer keeps no history)."""

    registry: str  # "dhcs" | "npi"
    key: str  # the program id, or the NPI
    read_at: datetime
    status: str
    answer: str  # the answer's model_dump_json()


class LockLost(RegistryError):
    """Another run took this run's lease over (ours looked dead): nothing more was recorded."""


@dataclass(frozen=True)
class AlertRecord:
    """One alert a monitor run raised, as ``Registry.record_monitor`` stores it."""

    key: str
    kind: str
    title: str
    body: str
    state: str  # the alert_state it announces
    pending: bool  # False: stored as superseded, never sent (an all-clear nobody needs)


@dataclass(frozen=True)
class PendingAlert:
    """An alert no destination has accepted yet: tried again by every monitor run."""

    id: int
    key: str
    kind: str
    title: str
    body: str
    state: str
    created_at: datetime
    attempts: int


PENDING, DELIVERED, SUPERSEDED = "pending", "delivered", "superseded"


# An article version as a hold knows it: (version, the content hash of its text, None if unknown).
Versioned = tuple[str, str | None]


class _RecordedMeanwhile(Exception):
    """A unique key refused an insert: another run recorded the same row first."""


@dataclass(frozen=True)
class PublishRecord:
    """One published article version, as ``Registry.record_publishes`` takes it."""

    slug: str
    version: str
    title: str
    published_at: datetime
    release_id: str | None
    channels: dict[str, list[str]]
    licenses: Sequence[License]
    last_reviewed: date
    next_review: date
    cited: Sequence[tuple[str, str]]  # (title, url) in citation order


class Registry:
    """One open registry. Use as a context manager, or call close()."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = open_engine(url)
            self._migrate()
        except (SQLAlchemyError, OSError, ModuleNotFoundError) as exc:
            raise RegistryError(f"registry {self._shown_url()}: cannot open ({exc})") from exc

    @classmethod
    def for_site(cls, site: SiteConfig, out_dir: Path) -> Registry:
        return cls(registry_url(site, out_dir))

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    def _shown_url(self) -> str:
        return shown_url(self.url)

    def _tx(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine, f"registry {self._shown_url()}", RegistryError)

    def _migrate(self) -> None:
        migrate(self.engine, f"registry {self._shown_url()}", RegistryError)

    # -- publishing ------------------------------------------------------
    def _source_ids(self, conn: Connection, urls: Iterable[str]) -> dict[str, int]:
        """Every URL's source row id, inserting the missing rows (a few statements, not one per URL)."""
        wanted = list(dict.fromkeys(urls))
        found: dict[str, int] = {}

        def select_known(chunk: list[str]) -> None:
            rows = conn.execute(select(sources.c.url, sources.c.id).where(sources.c.url.in_(chunk)))
            found.update((url, int(source_id)) for url, source_id in rows)

        for start in range(0, len(wanted), _IN_CHUNK):
            select_known(wanted[start : start + _IN_CHUNK])
        missing = [url for url in wanted if url not in found]
        if missing:
            conn.execute(sources.insert(), [{"url": url} for url in missing])
            for start in range(0, len(missing), _IN_CHUNK):
                select_known(missing[start : start + _IN_CHUNK])
        return found

    def record_publish(
        self,
        *,
        slug: str,
        version: str,
        title: str,
        published_at: datetime,
        release_id: str | None,
        channels: dict[str, list[str]],
        licenses: Sequence[License],
        last_reviewed: date,
        next_review: date,
        cited: Sequence[tuple[str, str]],
    ) -> bool:
        """Record one published article version; False (and no change) if it was recorded before."""
        record = PublishRecord(
            slug=slug,
            version=version,
            title=title,
            published_at=published_at,
            release_id=release_id,
            channels=channels,
            licenses=licenses,
            last_reviewed=last_reviewed,
            next_review=next_review,
            cited=cited,
        )
        return bool(self.record_publishes([record]))

    def record_publishes(self, records: Sequence[PublishRecord]) -> list[str]:
        """Record published article versions in one transaction; returns the slugs that were new.

        A version recorded before is skipped. If a concurrent publish records one of
        them first (a unique key refuses the insert), each is recorded on its own.
        """
        try:
            with self._tx() as conn:
                try:
                    return self._insert_publishes(conn, records)
                except IntegrityError as exc:
                    raise _RecordedMeanwhile from exc  # out of the block: the transaction rolls back
        except _RecordedMeanwhile as conflict:
            if len(records) > 1:
                return [slug for record in records for slug in self.record_publishes([record])]
            [record] = records
            if self.unrecorded({record.slug: record.version}):  # the conflict was not this version
                raise RegistryError(f"registry {self._shown_url()}: {conflict.__cause__}") from conflict
            return []  # a concurrent publish of the same version won the race

    def _insert_publishes(self, conn: Connection, records: Sequence[PublishRecord]) -> list[str]:
        pairs = [(r.slug, r.version) for r in records]
        known: set[tuple[str, str]] = set()
        for start in range(0, len(pairs), _IN_CHUNK):
            chunk = pairs[start : start + _IN_CHUNK]
            rows = conn.execute(
                select(publishes.c.slug, publishes.c.version).where(
                    tuple_(publishes.c.slug, publishes.c.version).in_(chunk)
                )
            )
            known.update((slug, version) for slug, version in rows)
        todo = [r for r in records if (r.slug, r.version) not in known]
        source_ids = self._source_ids(conn, (url for r in todo for _, url in r.cited))
        cited_rows: list[dict[str, Any]] = []
        for record in todo:
            publish_id = new_id(
                conn.execute(
                    publishes.insert().values(
                        slug=record.slug,
                        version=record.version,
                        title=record.title,
                        published_at=record.published_at,
                        release_id=record.release_id,
                        channels=record.channels,
                        licenses=[
                            {
                                "program_id": lic.program_id,
                                "issuer": lic.issuer,
                                "expires": lic.expires.isoformat(),
                            }
                            for lic in record.licenses
                        ],
                        last_reviewed=record.last_reviewed,
                        next_review=record.next_review,
                    )
                ).inserted_primary_key
            )
            cited_rows += [
                {"publish_id": publish_id, "position": position, "source_id": source_ids[url], "title": title}
                for position, (title, url) in enumerate(record.cited, start=1)
            ]
        if cited_rows:
            conn.execute(publish_sources.insert(), cited_rows)
        return [record.slug for record in todo]

    def unrecorded(self, live: Mapping[str, str]) -> set[str]:
        """The slugs of ``live`` (slug → version) whose version was never recorded."""
        if not live:
            return set()
        pairs = tuple_(publishes.c.slug, publishes.c.version)
        with self._tx() as conn:
            found = conn.execute(select(publishes.c.slug).where(pairs.in_(list(live.items()))))
            return set(live) - set(found.scalars())

    def latest_publishes(self, live: Mapping[str, str] | None = None) -> list[PublishedArticle]:
        """The live version of every article (``live``: slug → version), else the newest recorded."""
        newest = (
            select(publishes.c.slug, func.max(publishes.c.id).label("id"))
            .group_by(publishes.c.slug)
            .subquery()
        )
        query = select(publishes).join(newest, publishes.c.id == newest.c.id)
        if live:
            # After a rollback the live version is not the newest one recorded.
            pairs = tuple_(publishes.c.slug, publishes.c.version)
            query = select(publishes).where(pairs.in_(list(live.items())))
        with self._tx() as conn:
            rows = list(conn.execute(query.order_by(publishes.c.slug)).mappings())
            # The citations of every selected publish in one query per chunk, not one per article
            # (a monitor run over 1,000 articles made 1,001 queries).
            cited: dict[int, list[PublishedSource]] = {row["id"]: [] for row in rows}
            ids = list(cited)
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                for publish_id, position, title, url in conn.execute(
                    select(
                        publish_sources.c.publish_id,
                        publish_sources.c.position,
                        publish_sources.c.title,
                        sources.c.url,
                    )
                    .join(sources, sources.c.id == publish_sources.c.source_id)
                    .where(publish_sources.c.publish_id.in_(chunk))
                    .order_by(publish_sources.c.publish_id, publish_sources.c.position)
                ):
                    cited[publish_id].append(PublishedSource(position, title, url))
        return [
            PublishedArticle(
                slug=row["slug"],
                version=row["version"],
                title=row["title"],
                published_at=row["published_at"],
                channels=dict(row["channels"]),
                licenses=list(row["licenses"]),
                last_reviewed=row["last_reviewed"],
                next_review=row["next_review"],
                sources=cited[row["id"]],
            )
            for row in rows
        ]

    # -- sources ---------------------------------------------------------
    def record_checks(self, results: Iterable[LinkResult], checked_at: datetime) -> None:
        """Append one check result per source to its history."""
        with self._tx() as conn:
            self._record_checks(conn, results, checked_at)

    def _record_checks(self, conn: Connection, results: Iterable[LinkResult], checked_at: datetime) -> None:
        results = list(results)
        if not results:
            return
        ids = self._source_ids(conn, (result.url for result in results))
        conn.execute(
            source_checks.insert(),
            [
                {
                    "source_id": ids[result.url],
                    "checked_at": checked_at,
                    "status": result.status.value,
                    "reason": result.reason,
                    "http_status": result.http_status,
                    "final_url": result.final_url,
                }
                for result in results
            ],
        )

    def history(self, url: str) -> list[tuple[datetime, LinkStatus]]:
        """A source's check history, oldest first."""
        with self._tx() as conn:
            rows = conn.execute(
                select(source_checks.c.checked_at, source_checks.c.status)
                .join(sources, sources.c.id == source_checks.c.source_id)
                .where(sources.c.url == url)
                .order_by(source_checks.c.id)
            )
            return [(when, LinkStatus(status)) for when, status in rows]

    def record_archive(self, url: str, archived: Archived | None, checked_at: datetime) -> None:
        with self._tx() as conn:
            source_id = self._source_ids(conn, [url])[url]
            values: dict[str, Any] = {"archive_checked_at": checked_at}
            if archived is not None:
                values |= {"archive_url": archived.url, "archive_timestamp": archived.timestamp}
            conn.execute(sources.update().where(sources.c.id == source_id).values(**values))

    def archives(self, urls: Iterable[str]) -> dict[str, Archived]:
        wanted = list(urls)
        if not wanted:
            return {}
        with self._tx() as conn:
            rows = conn.execute(
                select(sources.c.url, sources.c.archive_url, sources.c.archive_timestamp).where(
                    sources.c.url.in_(wanted), sources.c.archive_url.is_not(None)
                )
            )
            return {url: Archived(archive_url, stamp or "") for url, archive_url, stamp in rows}

    def archive_checked(self, urls: Iterable[str]) -> set[str]:
        """URLs whose archive was already looked up (found or not)."""
        wanted = list(urls)
        if not wanted:
            return set()
        with self._tx() as conn:
            rows = conn.execute(
                select(sources.c.url).where(
                    sources.c.url.in_(wanted), sources.c.archive_checked_at.is_not(None)
                )
            )
            return {url for (url,) in rows}

    # -- quotes (checks/integrity/quotes.py) ----------------------------------
    # A reading: (url, quote hash, quote, found or None when unread, text fingerprint or None).
    def replace_quotes(
        self,
        slug: str,
        readings: Iterable[QuoteReading],
        checked_at: datetime,
    ) -> None:
        """The quotes of ``slug``'s newly published version, replacing its earlier version's."""
        readings = list(readings)
        with self._tx() as conn:
            conn.execute(source_quotes.delete().where(source_quotes.c.slug == slug))
            if not readings:
                return
            ids = self._source_ids(conn, (r.url for r in readings))
            conn.execute(
                source_quotes.insert(),
                [
                    {
                        "slug": slug,
                        "source_id": ids[r.url],
                        "quote_hash": r.quote_hash,
                        "quote": r.quote,
                        "found": None if r.found is None else int(r.found),
                        "text_fingerprint": r.fingerprint,
                        "checked_at": checked_at,
                    }
                    for r in dict.fromkeys(readings)
                ],
            )

    def update_quotes(self, readings: Iterable[QuoteReading], checked_at: datetime) -> None:
        """A monitor's readings: every article's row for that source and quote gets them."""
        readings = list(readings)
        if not readings:
            return
        with self._tx() as conn:
            ids = self._source_ids(conn, (r.url for r in readings))
            for r in readings:
                same = source_quotes.c.quote_hash == r.quote_hash
                where = (source_quotes.c.source_id == ids[r.url]) & same
                conn.execute(
                    source_quotes.update()
                    .where(where)
                    .values(
                        found=None if r.found is None else int(r.found),
                        text_fingerprint=r.fingerprint,
                        checked_at=checked_at,
                    )
                )

    def quotes(self, slugs: Iterable[str]) -> list[RecordedQuote]:
        """The quotes of these articles, with their last readings."""
        wanted = list(slugs)
        found: list[RecordedQuote] = []
        with self._tx() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                rows = conn.execute(
                    select(
                        source_quotes.c.slug,
                        sources.c.url,
                        source_quotes.c.quote,
                        source_quotes.c.found,
                        source_quotes.c.text_fingerprint,
                    )
                    .join(sources, sources.c.id == source_quotes.c.source_id)
                    .where(source_quotes.c.slug.in_(wanted[start : start + _IN_CHUNK]))
                    .order_by(source_quotes.c.id)
                )
                found += [
                    RecordedQuote(slug, url, quote, None if hit is None else bool(hit), mark)
                    for slug, url, quote, hit, mark in rows
                ]
        return found

    # -- alert state -----------------------------------------------------
    def states(self) -> dict[str, KeptState]:
        with self._tx() as conn:
            rows = conn.execute(select(alert_state))
            return {key: KeptState(state, since, failures) for key, state, since, failures in rows}

    def save_states(self, changed: Mapping[str, KeptState]) -> None:
        with self._tx() as conn:
            _save_states(conn, changed)

    def pending_alerts(self) -> list[PendingAlert]:
        """Every alert no destination has accepted yet, oldest first."""
        with self._tx() as conn:
            return _pending(conn)

    def record_monitor(
        self,
        *,
        lock: tuple[str, str, float],
        renewed_at: datetime,
        results: Iterable[LinkResult],
        checked_at: datetime,
        states: Mapping[str, KeptState],
        superseded: Sequence[int],
        raised: Sequence[AlertRecord],
        snapshots: Sequence[Snapshot] = (),
    ) -> list[PendingAlert]:
        """What one monitor run found, in one transaction: its check results, the new states, the
        pending alerts whose news is over (``superseded``) and the alerts it ``raised`` (pending
        until a destination accepts one). Returns every pending alert, oldest first.

        Only while the run holds ``lock`` (name, owner, seconds to renew it for from
        ``renewed_at``): the transaction renews it first, and a run whose lease was taken over
        raises LockLost having recorded nothing, so two runs never both turn one transition
        into an alert. ``snapshots``: the authorities' answers that differ from the last kept
        ones, kept with the states they led to.
        """
        name, owner, ttl = lock
        with self._tx() as conn:
            self._renew(conn, name, owner, ttl, renewed_at)
            self._record_checks(conn, results, checked_at)
            _save_states(conn, states)
            _save_snapshots(conn, snapshots)
            ids = list(superseded)
            for start in range(0, len(ids), _IN_CHUNK):
                conn.execute(
                    alerts.update()
                    .where(alerts.c.id.in_(ids[start : start + _IN_CHUNK]), alerts.c.status == PENDING)
                    .values(status=SUPERSEDED)
                )
            if raised:
                conn.execute(
                    alerts.insert(),
                    [
                        {
                            "key": alert.key,
                            "kind": alert.kind,
                            "title": alert.title,
                            "body": alert.body,
                            "created_at": checked_at,
                            "deliveries": [],
                            "status": PENDING if alert.pending else SUPERSEDED,
                            "state": alert.state,
                            "attempts": 0,
                        }
                        for alert in raised
                    ],
                )
            return _pending(conn)

    def record_attempt(
        self, alert_id: int, deliveries: list[dict[str, Any]], at: datetime, *, accepted: bool
    ) -> None:
        """One delivery attempt of a pending alert: delivered when a destination ``accepted`` it."""
        values: dict[str, Any] = {
            "deliveries": deliveries,
            "last_attempt_at": at,
            "attempts": func.coalesce(alerts.c.attempts, 0) + 1,
        }
        if accepted:
            values |= {"status": DELIVERED, "delivered_at": at}
        with self._tx() as conn:
            conn.execute(
                alerts.update().where(alerts.c.id == alert_id, alerts.c.status == PENDING).values(**values)
            )

    # -- leases: one run at a time ------------------------------------------
    def take_lease(self, name: str, owner: str, ttl: float, at: datetime) -> str | None:
        """Hold the lease ``name`` for ``ttl`` seconds: None when this run has it, else who holds it.

        Each step is one statement (no read-then-write in one SQLite transaction, which two
        processes would deadlock on): insert the lease, or take over a dead one only if it is
        still exactly as read (a holder that renewed it meanwhile keeps it).
        """
        # Imported here: the delivery package imports this module (the send's lease is the model).
        from clinicpress.outputs.delivery.lease import lease_dead

        until = at + timedelta(seconds=ttl)
        for _ in range(3):  # a lease released between two steps: start again
            try:
                with self._tx() as conn:
                    try:
                        conn.execute(leases.insert().values(name=name, owner=owner, until=until))
                    except IntegrityError as exc:
                        raise _RecordedMeanwhile from exc
                return None
            except _RecordedMeanwhile:
                pass
            with self._tx() as conn:
                row = conn.execute(
                    select(leases.c.owner, leases.c.until).where(leases.c.name == name)
                ).one_or_none()
            if row is None:
                continue
            if not lease_dead(row.owner, row.until, at, host=socket.gethostname(), pid=os.getpid()):
                return f"{row.owner}, until {row.until:%Y-%m-%d %H:%M} UTC"
            with self._tx() as conn:
                taken = conn.execute(
                    leases.update()
                    .where(leases.c.name == name, leases.c.owner == row.owner, leases.c.until == row.until)
                    .values(owner=owner, until=until)
                ).rowcount
            return None if taken == 1 else "another run, which took it at the same moment"
        return "another run (it was taken and let go while this run asked)"

    def renew_lease(self, name: str, owner: str, ttl: float, at: datetime) -> None:
        """Hold the lease ``ttl`` seconds more; LockLost if another run took it over."""
        with self._tx() as conn:
            self._renew(conn, name, owner, ttl, at)

    def _renew(self, conn: Connection, name: str, owner: str, ttl: float, at: datetime) -> None:
        renewed = conn.execute(
            leases.update()
            .where(leases.c.name == name, leases.c.owner == owner)
            .values(until=at + timedelta(seconds=ttl))
        ).rowcount
        if renewed != 1:
            raise LockLost(
                f"registry {self._shown_url()}: another run took the {name} lock over (this run's "
                "looked dead); this run stopped and recorded nothing more"
            )

    def drop_lease(self, name: str, owner: str) -> None:
        with self._tx() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.owner == owner))

    def record_event(
        self, *, action: str, release_id: str, slug: str | None, detail: str, at: datetime
    ) -> None:
        values = {"at": at, "action": action, "release_id": release_id, "slug": slug, "detail": detail}
        with self._tx() as conn:
            conn.execute(release_events.insert().values(**values))

    # -- holds: a rolled-back version stays out (outputs/holds.py) ------------------------------
    def record_rollback(
        self,
        *,
        release_id: str,
        slug: str | None,
        detail: str,
        at: datetime,
        by: str,
        held: Mapping[str, Versioned],
        restored: Mapping[str, Versioned],
    ) -> None:
        """A rollback, in one transaction: its ``release_events`` row, a hold on each version it took
        out of live (``held``: slug → (version, content hash)) and none on what it made live
        (``restored``: the operator chose it)."""
        values = {"at": at, "action": "rollback", "release_id": release_id, "slug": slug, "detail": detail}
        with self._tx() as conn:
            conn.execute(release_events.insert().values(**values))
            for restored_slug, versioned in restored.items():
                conn.execute(_holds_of(restored_slug, versioned))
            for held_slug, (version, text) in held.items():
                conn.execute(_holds_of(held_slug, (version, None)))  # held again: the latest rollback's name
                conn.execute(
                    held_versions.insert().values(
                        slug=held_slug,
                        version=version,
                        held_by=by,
                        held_at=at,
                        release_id=release_id,
                        content_hash=text,
                    )
                )

    def holds(self) -> list[Hold]:
        """Every held version, oldest first."""
        query = select(held_versions).order_by(held_versions.c.held_at, held_versions.c.slug)
        with self._tx() as conn:
            return [
                Hold(
                    row["slug"],
                    row["version"],
                    row["held_by"],
                    row["held_at"],
                    row["release_id"],
                    row["content_hash"],
                )
                for row in conn.execute(query).mappings()
            ]

    def lift_holds(
        self, published: Mapping[str, Versioned], *, release_id: str, by: str, at: datetime
    ) -> list[str]:
        """``publish --force`` made these live (slug → (version, content hash)): the holds on that
        version or text go, each slug's with a ``hold-lifted`` event naming who. Returns those slugs."""
        lifted: list[str] = []
        with self._tx() as conn:
            for slug, (version, text) in published.items():
                if conn.execute(_holds_of(slug, (version, text))).rowcount:
                    lifted.append(slug)
                    detail = f"hold on {slug} lifted by {by}: version {version[:12]} published with --force"
                    conn.execute(
                        release_events.insert().values(
                            at=at, action="hold-lifted", release_id=release_id, slug=slug, detail=detail
                        )
                    )
        return lifted

    # -- addresses: which file published which slug (sources/addresses.py) -------------------------
    def record_addresses(self, published: Mapping[str, str], at: datetime) -> None:
        """``published``: slug → the content file (relative to the content folder) live at it now.

        Each becomes its file's current address (its newest row), unless it is already; a slug
        another file held is this file's now. Rows are replaced, never updated, so the newest id
        is the current address whatever the clock says.
        """
        if not published:
            return
        with self._tx() as conn:
            newest = (
                select(article_addresses.c.source_path, func.max(article_addresses.c.id).label("id"))
                .group_by(article_addresses.c.source_path)
                .subquery()
            )
            current = {
                path: slug
                for path, slug in conn.execute(
                    select(article_addresses.c.source_path, article_addresses.c.slug).join(
                        newest, article_addresses.c.id == newest.c.id
                    )
                )
            }
            for slug, path in published.items():
                if current.get(path) == slug:
                    continue
                conn.execute(article_addresses.delete().where(article_addresses.c.slug == slug))
                conn.execute(article_addresses.insert().values(slug=slug, source_path=path, published_at=at))

    def addresses(self) -> dict[str, list[str]]:
        """Content file → the slugs it published and still owns, oldest first (the last is its
        current address)."""
        query = select(article_addresses.c.source_path, article_addresses.c.slug).order_by(
            article_addresses.c.id
        )
        found: dict[str, list[str]] = {}
        with self._tx() as conn:
            for path, slug in conn.execute(query):
                found.setdefault(path, []).append(slug)
        return found

    def events(self) -> list[dict[str, Any]]:
        query = select(release_events).order_by(release_events.c.id)
        with self._tx() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def latest_snapshots(self, registry: str) -> dict[str, Snapshot]:
        """The latest kept answer per key of ``registry`` ("dhcs" or "npi")."""
        t = authority_snapshots.c
        latest = (
            select(t.key, func.max(t.read_at).label("read_at")).where(t.registry == registry).group_by(t.key)
        ).subquery()
        query = (
            select(authority_snapshots)
            .join(latest, (t.key == latest.c.key) & (t.read_at == latest.c.read_at))
            .where(t.registry == registry)
        )
        with self._tx() as conn:
            return {
                row["key"]: Snapshot(
                    row["registry"], row["key"], row["read_at"], row["status"], row["answer"]
                )
                for row in conn.execute(query).mappings()
            }

    def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        with self._tx() as conn:
            _save_snapshots(conn, snapshots)

    def alert_log(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            return [dict(row) for row in conn.execute(select(alerts).order_by(alerts.c.id)).mappings()]


def read_addresses(site: SiteConfig, out_dir: Path) -> dict[str, list[str]]:
    """Content file → the slugs it published (``Registry.addresses``); none when no registry exists
    yet (reading must not create one)."""
    url = registry_url(site, out_dir)
    if not registry_exists(url):
        return {}
    with Registry(url) as registry:
        return registry.addresses()


def at_addresses(site: SiteConfig, site_path: Path, out_dir: Path, loaded: Loaded) -> tuple[Loaded, Moves]:
    """The loaded articles at their permanent addresses (sources/addresses.py), by what the
    registry says each file published; files are named relative to the site config's folder."""
    return with_addresses(loaded, read_addresses(site, out_dir), site_path.parent)


def _holds_of(slug: str, versioned: Versioned) -> Any:
    """Delete the holds of ``slug`` on this version, or on this text (content hash) when given."""
    version, text = versioned
    match = held_versions.c.version == version
    if text is not None:
        match = match | (held_versions.c.content_hash == text)
    return held_versions.delete().where(held_versions.c.slug == slug, match)


def _save_states(conn: Connection, changed: Mapping[str, KeptState]) -> None:
    for key, row in changed.items():
        conn.execute(alert_state.delete().where(alert_state.c.key == key))
        conn.execute(
            alert_state.insert().values(key=key, state=row.state, since=row.since, failures=row.failures)
        )


def _save_snapshots(conn: Connection, snapshots: Sequence[Snapshot]) -> None:
    for snap in snapshots:
        conn.execute(
            authority_snapshots.insert().values(
                registry=snap.registry,
                key=snap.key,
                read_at=snap.read_at,
                status=snap.status,
                answer=snap.answer,
            )
        )


def _pending(conn: Connection) -> list[PendingAlert]:
    rows = conn.execute(select(alerts).where(alerts.c.status == PENDING).order_by(alerts.c.id)).mappings()
    return [
        PendingAlert(
            id=row["id"],
            key=row["key"],
            kind=row["kind"],
            title=row["title"],
            body=row["body"],
            state=row["state"] or "",
            created_at=row["created_at"],
            attempts=row["attempts"] or 0,
        )
        for row in rows
    ]


__all__ = [
    "DELIVERED",
    "PENDING",
    "REGISTRY_FILE",
    "SCHEMA_VERSION",
    "SUPERSEDED",
    "AlertRecord",
    "LockLost",
    "PendingAlert",
    "PublishRecord",
    "PublishedArticle",
    "PublishedSource",
    "Registry",
    "Snapshot",
    "UTCDateTime",
    "alert_state",
    "alerts",
    "article_addresses",
    "authority_snapshots",
    "held_versions",
    "leases",
    "metadata",
    "migrate",
    "new_id",
    "open_engine",
    "publish_sources",
    "publishes",
    "registry_url",
    "release_events",
    "schema_info",
    "shown_url",
    "source_checks",
    "source_quotes",
    "sources",
    "transaction",
]
