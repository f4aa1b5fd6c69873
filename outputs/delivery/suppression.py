"""The suppression list: addresses no send may mail again, and the mail events behind them.

Two tables in the registry database (``[registry] url``), beside the delivery tables:

- ``suppressions``: one row per address (lowercased: the subscribers list's key), with when, how
  and a detail. Every send filters its recipients through it, whatever the CSV still lists.
- ``mail_events``: what was heard back about a message or an address: an unsubscribe, a hard or
  soft bounce, a refusal by policy ("blocked"), a complaint. Reading the same mailbox twice adds
  nothing (one row per report, address and kind); the numbers of a send are counted from it.

What suppresses, decided by pure functions (``suppression_for``, ``soft_streak``):

    complaint         → suppressed ("complaint")        the person marked it as spam (RFC 5965 ARF)
    unsubscribe       → suppressed ("unsubscribe")      the one-click link (RFC 8058)
    manual            → suppressed ("manual")           someone asked by other means
    hard-bounce       → suppressed ("hard-bounce")      5.x.x about the address (RFC 3464 DSN)
    soft-bounce       → counted; three sends in a row that each soft-bounced → ("soft-bounces")
    blocked           → counted only: 5.7.x and other refusals of the message or the sender (say an
                        unsigned message at Gmail) are fixed at the sender, not by dropping readers

An address is suppressed once and stays so; a later, stronger reason replaces a weaker one
(complaint > unsubscribe = manual > hard-bounce > soft-bounces: what the person chose outranks what
a server said), while an equal or weaker one changes nothing, so the first opt-out's time is kept
and a repeated POST or a mailbox read twice is a no-op. Each ``record`` is one committed
transaction: when it returns, the suppression survives a crash.

A little past 400 lines on purpose: the two tables, the rules that read them and their SQL stay
together, as ``store.py`` keeps every delivery transition's SQL in one place.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from clinicpress import clock
from clinicpress.outputs.delivery.errors import DeliveryError
from clinicpress.outputs.delivery.schema import State, recipients_table, sends
from clinicpress.outputs.registry import UTCDateTime, migrate, open_engine, shown_url, transaction
from clinicpress.outputs.subscribers import Subscriber, address_key

_T = TypeVar("_T")

__all__ = [
    "SOFT_BOUNCES_IN_A_ROW",
    "Kind",
    "LoopCounts",
    "MailEvent",
    "Recorded",
    "Suppression",
    "SuppressionStore",
    "export_csv",
    "mail_events",
    "metadata",
    "soft_streak",
    "stronger",
    "suppression_for",
    "suppressions",
]

SOFT_BOUNCES_IN_A_ROW = 3


class Kind(enum.StrEnum):
    """What was heard about an address."""

    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"
    HARD_BOUNCE = "hard-bounce"
    SOFT_BOUNCE = "soft-bounce"
    BLOCKED = "blocked"


SOFT_BOUNCES = "soft-bounces"  # the suppression's ``how`` after SOFT_BOUNCES_IN_A_ROW
# How much a reason weighs: the person's own choice first.
_STRENGTH = {
    Kind.COMPLAINT.value: 4,
    Kind.UNSUBSCRIBE.value: 3,
    Kind.MANUAL.value: 3,
    Kind.HARD_BOUNCE.value: 2,
    SOFT_BOUNCES: 1,
}

# Apart from the registry's MetaData, as the delivery tables are (see the lead's wiring in
# registry_schema._schema_parts).
metadata = MetaData()

suppressions = Table(
    "suppressions",
    metadata,
    Column("address", String(320), primary_key=True),  # lowercased (subscribers.address_key)
    Column("at", UTCDateTime, nullable=False),
    Column(
        "how", String(20), nullable=False
    ),  # complaint | unsubscribe | manual | hard-bounce | soft-bounces
    Column("detail", Text, nullable=False),
)

mail_events = Table(
    "mail_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("address", String(320), nullable=False),  # lowercased
    Column("at", UTCDateTime, nullable=False),  # when it was recorded
    Column("kind", String(20), nullable=False),  # Kind
    Column("message_id", Text),  # the Message-ID of the message reported on, when known
    Column("slug", String(80)),  # the newsletter an unsubscribe link came from
    Column("status", String(16)),  # a DSN's status code, e.g. 5.1.1
    Column("detail", Text, nullable=False),
    # What reported it: a report's own Message-ID (or a digest of it), "link:<slug>" for a link.
    Column("source", String(200), nullable=False),
    UniqueConstraint("source", "address", "kind", name="uq_mail_event"),
    Index("ix_mail_events_address", "address"),
)


@dataclass(frozen=True)
class MailEvent:
    """One thing heard about one address."""

    address: str
    kind: Kind
    source: str
    detail: str = ""
    message_id: str | None = None
    slug: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Recorded:
    """What ``record`` did: whether the event was new, and the address's suppression after it."""

    new: bool
    suppressed: str | None  # the suppression's ``how`` after this event, None: not suppressed
    changed: bool  # this event suppressed the address, or replaced a weaker reason


@dataclass(frozen=True)
class Suppression:
    address: str
    at: datetime
    how: str
    detail: str


@dataclass(frozen=True)
class LoopCounts:
    """What was heard back about one newsletter's messages (distinct addresses)."""

    bounced: int = 0  # hard bounces
    soft_bounced: int = 0
    blocked: int = 0
    complained: int = 0
    unsubscribed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict, compare=False)


# -- the decisions (pure) -----------------------------------------------------------------------


def soft_streak(sent: Sequence[str], soft: Collection[str]) -> int:
    """The longest run of consecutive messages in ``sent`` (oldest first) that each soft-bounced.

    A message that did not bounce breaks the run. With no messages known (the registry has no
    record of sending to this address), the number of distinct soft-bounced messages.
    """
    if not sent:
        return len(soft)
    longest = run = 0
    for message_id in sent:
        run = run + 1 if message_id in soft else 0
        longest = max(longest, run)
    return longest


def suppression_for(kind: Kind, streak: int = 0) -> str | None:
    """The suppression an event of ``kind`` makes (its ``how``), or None: counted only."""
    if kind in (Kind.COMPLAINT, Kind.UNSUBSCRIBE, Kind.MANUAL, Kind.HARD_BOUNCE):
        return kind.value
    if kind is Kind.SOFT_BOUNCE and streak >= SOFT_BOUNCES_IN_A_ROW:
        return SOFT_BOUNCES
    return None


def stronger(new: str, old: str) -> bool:
    """Does reason ``new`` replace ``old``? Only a strictly stronger one does."""
    return _STRENGTH.get(new, 0) > _STRENGTH.get(old, 0)


def export_csv(rows: Iterable[Suppression]) -> str:
    """The list as CSV: ``address,at,how,detail`` (``at`` in ISO 8601, UTC)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["address", "at", "how", "detail"])
    for row in rows:
        writer.writerow([row.address, row.at.isoformat(), row.how, row.detail])
    return out.getvalue()


# -- the store ----------------------------------------------------------------------------------


class SuppressionStore:
    """The suppression list and the mail events, in the registry database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.what = f"suppression list {shown_url(url)}"
        try:
            self.engine = open_engine(url)
            migrate(self.engine, self.what, DeliveryError)  # creates these tables (registry_schema)
        except (SQLAlchemyError, OSError, ModuleNotFoundError) as exc:
            raise DeliveryError(f"{self.what}: cannot open ({exc})") from exc

    def __enter__(self) -> SuppressionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()

    def tx(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine, self.what, DeliveryError)

    # -- writing
    def record(self, event: MailEvent, *, at: datetime | None = None) -> Recorded:
        """Record ``event`` and suppress its address if it calls for it: one committed transaction."""
        when = at or clock.now()
        return self._committed(lambda conn: self._record(conn, event, when))

    def _committed(self, write: Callable[[Connection], _T]) -> _T:
        """``write`` in one committed transaction, tried again (three times in all) when another
        process inserted the same event or suppression meanwhile: it then reads what is there."""
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    return write(conn)
            except IntegrityError:
                if attempt == 2:
                    raise DeliveryError(f"{self.what}: kept colliding with another writer") from None
            except SQLAlchemyError as exc:
                raise DeliveryError(f"{self.what}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    def _record(self, conn: Connection, event: MailEvent, when: datetime) -> Recorded:
        key = address_key(event.address)
        e = mail_events.c
        seen = conn.execute(
            select(e.id).where(e.source == event.source, e.address == key, e.kind == event.kind.value)
        ).first()
        if seen is None:
            conn.execute(
                mail_events.insert().values(
                    address=key,
                    at=when,
                    kind=event.kind.value,
                    message_id=event.message_id,
                    slug=event.slug,
                    status=event.status,
                    detail=event.detail,
                    source=event.source,
                )
            )
        streak = self._soft_streak(conn, key) if event.kind is Kind.SOFT_BOUNCE else 0
        how = suppression_for(event.kind, streak)
        detail = event.detail
        if how == SOFT_BOUNCES:
            detail = f"{streak} soft bounces in a row; the last: {event.detail}"
        changed = how is not None and _suppress(conn, key, how, detail, when)
        now_how = conn.execute(select(suppressions.c.how).where(suppressions.c.address == key)).scalar()
        return Recorded(new=seen is None, suppressed=now_how, changed=changed)

    def _soft_streak(self, conn: Connection, key: str) -> int:
        r, e = recipients_table.c, mail_events.c
        sent = conn.execute(
            select(r.message_id)
            .where(
                r.address_key == key,
                r.message_id.is_not(None),
                r.message_id != "",
                r.state.in_([State.ACCEPTED, State.UNCERTAIN]),
            )
            .order_by(func.coalesce(r.finished_at, r.claimed_at, r.updated_at), r.id)
        ).scalars()
        soft = conn.execute(
            select(func.coalesce(e.message_id, e.source)).where(
                e.address == key, e.kind == Kind.SOFT_BOUNCE.value
            )
        ).scalars()
        return soft_streak(list(dict.fromkeys(sent)), set(soft))

    def add(self, address: str, how: str, detail: str = "", *, at: datetime | None = None) -> bool:
        """Suppress ``address`` (``how``: a reason of ``stronger``'s order); False when it already was
        (for this reason or a stronger one). One committed transaction."""
        if how not in _STRENGTH:
            raise ValueError(f"{how!r} is not a suppression reason ({', '.join(_STRENGTH)})")
        when = at or clock.now()
        return self._committed(lambda conn: _suppress(conn, address_key(address), how, detail, when))

    def unsubscribe(self, address: str, how: str, slug: str | None) -> None:
        """The unsubscribe endpoint's callback: committed when it returns."""
        detail = f"{how} from the newsletter {slug}" if slug else how
        self.record(
            MailEvent(address, Kind.UNSUBSCRIBE, source=f"link:{slug or ''}", detail=detail, slug=slug)
        )

    # -- reading
    def is_suppressed(self, address: str) -> bool:
        key = address_key(address)
        with self.tx() as conn:
            found = conn.execute(select(suppressions.c.address).where(suppressions.c.address == key))
            return found.first() is not None

    def suppressed_keys(self) -> set[str]:
        with self.tx() as conn:
            return set(conn.execute(select(suppressions.c.address)).scalars())

    def without_suppressed(
        self, recipients: Sequence[Subscriber]
    ) -> tuple[list[Subscriber], list[Subscriber]]:
        """(recipients to send to, recipients suppressed), each in the list's order."""
        suppressed = self.suppressed_keys()
        kept = [s for s in recipients if s.key not in suppressed]
        dropped = [s for s in recipients if s.key in suppressed]
        return kept, dropped

    def export(self) -> list[Suppression]:
        """Every suppression, oldest first."""
        s = suppressions.c
        with self.tx() as conn:
            rows = conn.execute(select(s.address, s.at, s.how, s.detail).order_by(s.at, s.address)).all()
        return [Suppression(str(r.address), r.at, str(r.how), str(r.detail)) for r in rows]

    def address_for_message_id(self, message_id: str) -> str | None:
        """The recipient of the newsletter message ``message_id`` (each recipient's is its own), or
        None: for a report that redacts the address (many complaint reports do)."""
        r = recipients_table.c
        with self.tx() as conn:
            found = conn.execute(
                select(r.address_key).where(r.message_id == message_id.strip()).limit(2)
            ).scalars()
            keys = set(found)
        return keys.pop() if len(keys) == 1 else None

    def counts(self, slug: str, version: str | None = None) -> LoopCounts:
        """Distinct addresses heard back about, per kind, for the newsletter ``slug`` (one version's
        send when given: bounces and complaints by the Message-ID they name, unsubscribes by the
        newsletter their link came from)."""
        r, e = recipients_table.c, mail_events.c
        ids = select(r.message_id).join(sends, sends.c.id == r.send_id).where(sends.c.slug == slug)
        if version is not None:
            ids = ids.where(sends.c.version == version)
        with self.tx() as conn:
            heard: dict[str, int] = dict(
                conn.execute(
                    select(e.kind, func.count(e.address.distinct()))
                    .where(e.message_id.in_(ids.scalar_subquery()), e.kind != Kind.UNSUBSCRIBE.value)
                    .group_by(e.kind)
                ).all()
            )
            unsubscribed = conn.execute(
                select(func.count(e.address.distinct())).where(
                    e.kind == Kind.UNSUBSCRIBE.value, e.slug == slug
                )
            ).scalar_one()
        by_kind = {str(k): int(n) for k, n in heard.items()}
        return LoopCounts(
            bounced=by_kind.get(Kind.HARD_BOUNCE.value, 0),
            soft_bounced=by_kind.get(Kind.SOFT_BOUNCE.value, 0),
            blocked=by_kind.get(Kind.BLOCKED.value, 0),
            complained=by_kind.get(Kind.COMPLAINT.value, 0),
            unsubscribed=int(unsubscribed),
            by_kind=by_kind,
        )


def _suppress(conn: Connection, key: str, how: str, detail: str, at: datetime) -> bool:
    """Insert or strengthen ``key``'s suppression in ``conn``'s transaction; True when it changed."""
    s = suppressions.c
    old = conn.execute(select(s.how).where(s.address == key)).scalar()
    if old is None:
        conn.execute(suppressions.insert().values(address=key, at=at, how=how, detail=detail[:2000]))
        return True
    if not stronger(how, str(old)):
        return False
    # Guarded by the reason read above: a concurrent stronger write is never overwritten.
    done = conn.execute(
        suppressions.update()
        .where(s.address == key, s.how == old)
        .values(at=at, how=how, detail=detail[:2000])
    ).rowcount
    return done == 1
