"""The registry's database schema: its tables, one schema version, and opening the database.

SQLAlchemy 2 Core, so one schema serves SQLite (default: ``<out>/registry.sqlite``) and
PostgreSQL. ``migrate()`` creates what is missing and brings ``schema_info`` to
``SCHEMA_VERSION``, for the registry's tables and the newsletter's delivery tables alike
(``outputs/delivery/schema.py``); whichever opens a database first does it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateColumn

from clinicpress.errors import ClinicpressError, RegistryError
from clinicpress.outputs.registry_location import shown_url
from clinicpress.private import private_sqlite

# 2: release_events; 3: the newsletter_* tables counted in; 4: source_quotes; 5: reviews; 6: a
# newsletter send's trigger and approval; 7: pending alerts and the monitor's lease; 8: the
# authority snapshots and the newsletter's suppression tables; 9: a review's NPI; 10: held versions
# and article addresses (see migrate()).
SCHEMA_VERSION = 11


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("registry times must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

schema_info = Table("schema_info", metadata, Column("version", Integer, nullable=False))

publishes = Table(
    "publishes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False, index=True),
    Column("version", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("published_at", UTCDateTime, nullable=False),
    Column("release_id", String(64)),
    Column("channels", JSON, nullable=False),  # {"web": ["web/<slug>/index.html", …], …}
    Column("licenses", JSON, nullable=False),  # [{"program_id", "issuer", "expires"}]
    Column("last_reviewed", Date, nullable=False),
    Column("next_review", Date, nullable=False),
    UniqueConstraint("slug", "version", name="uq_publish_slug_version"),
)

sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", Text, nullable=False, unique=True),
    Column("archive_url", Text),
    Column("archive_timestamp", String(14)),
    Column("archive_checked_at", UTCDateTime),
)

publish_sources = Table(
    "publish_sources",
    metadata,
    Column("publish_id", ForeignKey("publishes.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("source_id", ForeignKey("sources.id"), nullable=False),
    Column("title", Text, nullable=False),
)

source_checks = Table(
    "source_checks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", ForeignKey("sources.id"), nullable=False, index=True),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("http_status", Integer),
    Column("final_url", Text),
)

# Quotes an article relies on (issue 14), per article (its live version's quotes) and source: the
# latest reading and a fingerprint of the source's main text then. found: 1, 0, or NULL (unread).
source_quotes = Table(
    "source_quotes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False, index=True),
    Column("source_id", ForeignKey("sources.id"), nullable=False),
    Column("quote_hash", String(64), nullable=False),
    Column("quote", Text, nullable=False),
    Column("found", Integer),
    Column("text_fingerprint", String(64)),
    Column("checked_at", UTCDateTime, nullable=False),
    UniqueConstraint("slug", "source_id", "quote_hash", name="uq_source_quote"),
)

alert_state = Table(
    "alert_state",
    metadata,
    Column("key", String(200), primary_key=True),  # "source:<id>", "license:<program>", "review:<slug>"
    Column("state", String(32), nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("failures", Integer, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(200), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The last attempt: one {"destination", "ok", "error"} per alert URL.
    Column("deliveries", JSON, nullable=False),
    # Since 7 (NULL in older rows: recorded as seen whatever the delivery did). "pending" until a
    # destination accepts it (tried again every run), then "delivered"; "superseded" when the state
    # it announced is over before anyone was told (outputs/monitoring.py, plan_outbox).
    Column("status", String(16)),
    Column("state", String(32)),  # the alert_state it announced
    Column("attempts", Integer),
    Column("last_attempt_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
)

# Named locks with an expiry (since 7): "monitor" is held by the one monitor run at a time
# (flows/monitor.py). Like a newsletter send's lease (outputs/delivery/lease.py), a killed holder's
# lease may be taken over once it expired or, on its own host, once its process is gone.
leases = Table(
    "leases",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),  # "<host>:<pid>:<run id>"
    Column("until", UTCDateTime, nullable=False),
)


release_events = Table(
    "release_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("action", String(16), nullable=False),  # "rollback" (publishes are rows of `publishes`)
    Column("release_id", String(64), nullable=False),  # the release live after the action
    Column("slug", String(80)),  # None: the whole site
    Column("detail", Text, nullable=False),
)

# Clinical sign-offs (issue 15): one row per review of one exact text (content_hash, not the
# article version: a license renewal must not void a review). The reviewed text is kept whole so
# a later block can show what changed since. Written and read by outputs/reviews.py.
reviews = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False, index=True),
    Column("content_hash", String(64), nullable=False),
    Column("reviewer_name", Text, nullable=False),
    Column("reviewer_credentials", Text),
    Column("reviewer_npi", String(10)),  # checked at input (its check digit); looked up at check
    Column("reviewed_on", Date, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("decision", String(20), nullable=False),  # "approved" | "changes-requested"
    Column("comment", Text, nullable=False),
    Column("text", Text, nullable=False),  # sources/versioning.reviewed_text of the reviewed version
)


# Versions a rollback took out of live (issue 24): a plain publish skips them (outputs/holds.py,
# pure) until the article changes (a new version) or ``publish --force`` lifts the hold (the row
# goes, a release_events row "hold-lifted" says who lifted it). A rollback to a held version lifts
# its hold too: the operator chose it.
held_versions = Table(
    "held_versions",
    metadata,
    Column("slug", String(80), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("held_by", Text, nullable=False),  # who rolled it back (rollback --by, else the OS user)
    Column("held_at", UTCDateTime, nullable=False),
    Column("release_id", String(64), nullable=False),  # the release live after the rollback
    Column("content_hash", String(64)),  # its text's: the same text under a new version is held too
)

# Which content file published which slug (issue 24): an article keeps its address when its title
# changes, and an old address redirects to the new one (sources/addresses.py decides, pure). One row
# per slug, owned by the file that published it last; a file's current slug is its newest row
# (highest id: a publish deletes and inserts, so no clock decides the order).
article_addresses = Table(
    "article_addresses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False, unique=True),
    Column("source_path", Text, nullable=False, index=True),  # relative to the content folder, posix
    Column("published_at", UTCDateTime, nullable=False),
)


# What the state's license list and the NPI registry answered (issue 25): the DHCS layer is
# overwritten in place and keeps no history, so the monitor keeps its own. A row is added only when
# an answer differs from the latest one for its key; the latest is the "previous" state of the
# next run. Written and read by outputs/registry.py (Registry.authority_snapshot/save_authority).
authority_snapshots = Table(
    "authority_snapshots",
    metadata,
    Column("registry", String(8), primary_key=True),  # "dhcs" | "npi"
    Column("key", String(200), primary_key=True),  # the program id, or the NPI
    Column("read_at", UTCDateTime, primary_key=True),
    Column("status", String(20), nullable=False),  # listed | not-listed | ok | inactive | not-found …
    Column("answer", Text, nullable=False),  # the answer's model_dump_json()
    CheckConstraint("registry IN ('dhcs', 'npi')", name="authority_snapshots_registry"),
)


def new_id(primary_key: Any) -> int:
    """The id of a row just inserted (SQLAlchemy types the key as optional)."""
    assert primary_key is not None
    return int(primary_key[0])


def open_engine(url: str) -> Engine:
    """An engine for the registry database (SQLite: its folder created, writers wait for the lock)."""
    if url.startswith("sqlite:///"):
        # Owner-only before SQLite opens it, and so its -wal/-shm/-journal (clinicpress/private.py).
        private_sqlite(Path(url.removeprefix("sqlite:///")))
        # Two runs (a publish and a monitor) may write at once: wait for the lock instead of failing.
        return create_engine(url, connect_args={"timeout": 30})
    return create_engine(url)


@contextmanager
def transaction(engine: Engine, what: str, error: type[ClinicpressError]) -> Iterator[Connection]:
    """``engine.begin()``, with a database error raised as ``error`` naming ``what`` (one line)."""
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise error(f"{what}: {type(exc).__name__}: {exc}") from exc


# -- one schema version for the whole database ------------------------------------------------
# The newsletter's delivery tables (clinicpress.outputs.delivery.schema) live in this database
# under this SCHEMA_VERSION. Registry and DeliveryStore both open it through migrate(), so
# whichever opens a database first creates, or upgrades, all of it.


def _schema_parts() -> tuple[MetaData, ...]:
    # Imported here, not at the top: the delivery package imports this module.
    from clinicpress.outputs.delivery.schema import metadata as delivery
    from clinicpress.outputs.delivery.suppression import metadata as suppression
    from clinicpress.outputs.edition_texts import metadata as edition_texts

    return (metadata, delivery, suppression, edition_texts)


def _added_columns() -> list[tuple[Table, str]]:
    """Columns added to a table that existed before them (create_all() adds tables, not columns)."""
    from clinicpress.outputs.delivery.schema import sends

    # 5 → 6: who triggered a newsletter send, and its approval (issue 15).
    added = [(sends, name) for name in ("triggered_by", "approval", "approved_by", "approved_at")]
    # 6 → 7: an alert's delivery state (issue 23).
    added += [(alerts, name) for name in ("status", "state", "attempts", "last_attempt_at", "delivered_at")]
    # 8 → 9: the NPI a sign-off was recorded with (issue 25).
    added.append((reviews, "reviewer_npi"))
    # 10 → 11: the text a newsletter send carries (a new version of the same text continues it).
    return [*added, (sends, "content_hash")]


def _column_names(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}


def _add_missing_columns(engine: Engine) -> None:
    """``ALTER TABLE … ADD COLUMN`` for each added column a table lacks, each in its own transaction."""
    for table, name in _added_columns():
        if name in _column_names(engine, table.name):
            continue
        column = CreateColumn(table.c[name]).compile(dialect=engine.dialect)
        quoted = engine.dialect.identifier_preparer.format_table(table)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {quoted} ADD COLUMN {column}"))
        except SQLAlchemyError:
            if name not in _column_names(engine, table.name):
                raise
            # Another process upgrading the same database added it first.


def open_migrated(url: str) -> Engine:
    """The registry's engine, its schema created or upgraded: for the modules that read or write
    one table of it without the whole ``Registry`` (reviews, edition texts)."""
    what = f"registry {shown_url(url)}"
    try:
        engine = open_engine(url)
        migrate(engine, what, RegistryError)
    except (SQLAlchemyError, OSError, ModuleNotFoundError) as exc:
        raise RegistryError(f"{what}: cannot open ({exc})") from None
    return engine


def migrate(engine: Engine, what: str, error: type[ClinicpressError]) -> None:
    """Create what is missing and bring ``schema_info`` to SCHEMA_VERSION; refuse a newer database."""
    schema_info.create(engine, checkfirst=True)
    with engine.connect() as conn:
        current = conn.execute(select(schema_info.c.version)).scalar()
    if current == SCHEMA_VERSION:
        # Stamped only after every table and column below was made: nothing to create. A
        # no-op publish opens the registry ~6 times; create_all()'s checks cost ~40 ms each.
        return
    if current is not None and current > SCHEMA_VERSION:
        # Checked before creating anything: a newer clinicpress may have changed these tables.
        raise error(
            f"{what}: schema version {current} is newer than this clinicpress ({SCHEMA_VERSION}); "
            "upgrade clinicpress"
        )
    for part in _schema_parts():
        part.create_all(engine)
    if current is None or current < SCHEMA_VERSION:
        try:
            _add_missing_columns(engine)
        except SQLAlchemyError as exc:
            raise error(f"{what}: cannot upgrade the schema: {type(exc).__name__}: {exc}") from exc
    with engine.begin() as conn:
        current = conn.execute(select(schema_info.c.version)).scalar()  # again: in this transaction
        if current is None:
            conn.execute(schema_info.insert().values(version=SCHEMA_VERSION))
        elif current < SCHEMA_VERSION:
            # 1 → 2 added release_events; 2 → 3 counted in the newsletter_* tables (a database
            # from before may have them, unversioned, in the same layout); 3 → 4 added
            # source_quotes; 4 → 5 added reviews: create_all() above made whatever was missing;
            # 5 → 6 added columns to newsletter_sends, 6 → 7 to alerts (_add_missing_columns
            # above; older alerts keep status NULL: not pending) and the leases table; 7 → 8
            # added authority_snapshots and the suppression tables (create_all); 8 → 9 the
            # reviews' reviewer_npi (_add_missing_columns); 9 → 10 added held_versions and
            # article_addresses (create_all); 10 → 11 the sends' content_hash
            # (_add_missing_columns). Only the number is left to change.
            conn.execute(schema_info.update().values(version=SCHEMA_VERSION))
