"""The delivery records: every state transition of a send and its recipients, as SQL.

Each method is one transaction, committed before the caller goes on (a
claim before any SMTP command, ``data_started`` before the first byte of
data). The guards are in the ``WHERE`` clauses: a recipient moves only from
the state the transition expects, and only by the run that claimed it, so
two runs cannot both send one message. Which recipients to send, and what an
outcome means, is decided in ``send.py``; the manual verdicts in ``resolve.py``.

Past 400 lines on purpose: every transition's SQL stays in one place, where its guard can be read
beside the others (the approval's columns joined in issue 15).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Connection, event, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from clinicpress import clock
from clinicpress.outputs.delivery.errors import DeliveryError, LeaseLost
from clinicpress.outputs.delivery.lease import lease_dead
from clinicpress.outputs.delivery.report import RecipientIssue, SendReport, tally
from clinicpress.outputs.delivery.schema import Approval, State, recipients_table, runs, sends, test_sends
from clinicpress.outputs.registry import migrate, new_id, open_engine, shown_url, transaction
from clinicpress.outputs.subscribers import Subscriber

r = recipients_table.c
RACED: Final = "raced"  # _continue_send: another run moved the send between the read and the update


def durable_wal(dbapi_connection: Any, _record: Any) -> None:
    """SQLite in write-ahead-log mode, every commit synced (``synchronous=FULL``): as durable as the
    default rollback journal (a committed claim or ``data_started`` survives a killed process and a
    power cut), with one fsync per commit instead of several. A send commits two or three times per
    recipient: measured on this machine's disk, 12 ms a commit with the journal, 1.1 ms with the WAL
    (bench/newsletter_send.py). The mode stays with the database file, for every later connection."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def eligible(max_attempts: int) -> ColumnElement[bool]:
    """Who a run sends to: pending, and failed under the cap."""
    return (r.state == State.PENDING) | ((r.state == State.FAILED) & (r.attempts < max_attempts))


@dataclass(frozen=True)
class Queued:
    """A recipient a run will try, in send order."""

    id: int
    address: str
    unsubscribe_url: str | None


@dataclass(frozen=True)
class Enqueued:
    """A send as its first enqueue fixed it."""

    id: int
    published_at: datetime
    approval: Approval
    continued_from: str | None = None  # the earlier version of the same text this send continues


@dataclass(frozen=True)
class Found:
    """One recipient as the manual resolution sees it."""

    id: int
    version: str
    state: str


class DeliveryStore:
    """The delivery records in the registry database (created or upgraded with the registry's)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = open_engine(url)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", durable_wal)
            migrate(self.engine, f"delivery records {shown_url(url)}", DeliveryError)
        except (SQLAlchemyError, OSError, ModuleNotFoundError) as exc:
            raise DeliveryError(f"delivery records {shown_url(url)}: cannot open ({exc})") from exc

    def __enter__(self) -> DeliveryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()

    def tx(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine, f"delivery records {shown_url(self.url)}", DeliveryError)

    # -- the send and its recipients
    def ensure_send(
        self,
        slug: str,
        version: str,
        title: str,
        published_at: datetime,
        recipients: Sequence[Subscriber],
        *,
        text: str | None = None,
        text_of: Callable[[str], str | None] = lambda _version: None,
        triggered_by: str | None = None,
        approval: Approval = Approval.NOT_REQUIRED,
    ) -> Enqueued:
        """The send of this version, created with every recipient as pending in one transaction.

        ``triggered_by`` and ``approval`` are fixed by the first enqueue, like the recipients.

        ``text`` is the hash of the text the version carries (``content_hash``). When the slug's
        latest send carries that same text (a version made by a template or site change), that
        send is continued under this version, its recipients' states and approval as they are:
        nobody is sent one text twice. ``text_of`` gives the text of a version whose send was
        recorded before sends kept theirs (from the release reports). Only the latest send is
        continued: a text that comes back after another was sent is news again.
        """
        with self.tx() as conn:
            found = conn.execute(
                select(sends.c.id, sends.c.published_at, sends.c.approval).where(
                    sends.c.slug == slug, sends.c.version == version
                )
            ).first()
        if found is not None:
            return Enqueued(int(found.id), found.published_at, Approval(found.approval))
        if text is not None:
            continued = self._continue_send(slug, version, text, text_of)
            if isinstance(continued, Enqueued):
                return continued
            if continued == RACED:  # another run moved that send at the same moment: look again
                return self.ensure_send(
                    slug,
                    version,
                    title,
                    published_at,
                    recipients,
                    text=text,
                    text_of=text_of,
                    triggered_by=triggered_by,
                    approval=approval,
                )
        at = clock.now()
        first: dict[str, Subscriber] = {}
        for recipient in recipients:
            first.setdefault(recipient.key, recipient)  # the first line of a duplicate wins
        unique = list(first.values())
        try:
            with self.engine.begin() as conn:
                send_id = new_id(
                    conn.execute(
                        sends.insert().values(
                            slug=slug,
                            version=version,
                            title=title,
                            published_at=published_at,
                            created_at=at,
                            candidates=len(unique),
                            triggered_by=triggered_by,
                            approval=approval,
                            content_hash=text,
                        )
                    ).inserted_primary_key
                )
                if unique:
                    conn.execute(
                        recipients_table.insert(),
                        [
                            {
                                "send_id": send_id,
                                "address_key": s.key,
                                "address": s.email,
                                "unsubscribe_url": s.unsubscribe_url,
                                "state": State.PENDING,
                                "attempts": 0,
                                "data_started": False,
                                "updated_at": at,
                            }
                            for s in unique
                        ],
                    )
            return Enqueued(int(send_id), published_at, approval)
        except IntegrityError:
            # Another run enqueued this version at the same moment: use theirs.
            return self.ensure_send(slug, version, title, published_at, ())
        except SQLAlchemyError as exc:
            raise DeliveryError(
                f"delivery records {shown_url(self.url)}: {type(exc).__name__}: {exc}"
            ) from exc

    def _continue_send(
        self, slug: str, version: str, text: str, text_of: Callable[[str], str | None]
    ) -> Enqueued | Literal["raced"] | None:
        """The slug's latest send moved to ``version`` when it carries ``text``; else None."""
        with self.tx() as conn:
            latest = conn.execute(
                select(
                    sends.c.id, sends.c.version, sends.c.content_hash, sends.c.published_at, sends.c.approval
                )
                .where(sends.c.slug == slug)
                .order_by(sends.c.id.desc())
                .limit(1)
            ).first()
            if latest is None or (latest.content_hash or text_of(latest.version)) != text:
                return None
            # The guard: only from the version read above (a concurrent run may have moved it).
            moved = conn.execute(
                sends.update()
                .where(sends.c.id == latest.id, sends.c.version == latest.version)
                .values(version=version, content_hash=text)
            ).rowcount
        if moved != 1:
            return RACED
        return Enqueued(int(latest.id), latest.published_at, Approval(latest.approval), latest.version)

    def acquire(self, send_id: int, owner: str, ttl: float) -> str | None:
        """Take the send's lease; None when taken, else who holds it."""
        at = clock.now()
        with self.tx() as conn:
            row = conn.execute(
                select(sends.c.lease_owner, sends.c.lease_until).where(sends.c.id == send_id)
            ).one()
            if not lease_dead(
                row.lease_owner, row.lease_until, at, host=socket.gethostname(), pid=os.getpid()
            ):
                return f"another run ({row.lease_owner}) is sending this newsletter; nothing sent by this run"
            held = (
                sends.c.lease_owner.is_(None)
                if row.lease_owner is None
                else sends.c.lease_owner == row.lease_owner
            )
            taken = conn.execute(
                sends.update()
                .where(sends.c.id == send_id, held)
                .values(lease_owner=owner, lease_until=at + timedelta(seconds=ttl))
            ).rowcount
        return None if taken == 1 else "another run took this newsletter at the same moment; nothing sent"

    def _renew(self, conn: Connection, send_id: int, owner: str, ttl: float) -> None:
        done = conn.execute(
            sends.update()
            .where(sends.c.id == send_id, sends.c.lease_owner == owner)
            .values(lease_until=clock.now() + timedelta(seconds=ttl))
        ).rowcount
        if done != 1:
            raise LeaseLost("another run took this newsletter over; this run stopped")

    def release(self, send_id: int, owner: str) -> None:
        with self.tx() as conn:
            conn.execute(
                sends.update()
                .where(sends.c.id == send_id, sends.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def recover(self, send_id: int) -> None:
        """Resolve recipients a killed run left claimed (we hold the lease: nobody else is sending)."""
        at = clock.now()
        claimed = (r.send_id == send_id) & (r.state == State.CLAIMED)
        with self.tx() as conn:
            # The data never left: resending is safe.
            conn.execute(
                recipients_table.update()
                .where(claimed, r.data_started.is_(False))
                .values(state=State.PENDING, run_id=None, updated_at=at)
            )
            # The server may have the message.
            conn.execute(
                recipients_table.update()
                .where(claimed, r.data_started.is_(True))
                .values(
                    state=State.UNCERTAIN,
                    finished_at=at,
                    updated_at=at,
                    last_error="the sending run ended after the message data was sent, before the "
                    "server's reply was recorded",
                )
            )

    def sync_list(self, send_id: int, keys: set[str]) -> None:
        """Honour unsubscribes since the first enqueue (and re-subscribes of those not yet sent)."""
        at = clock.now()
        with self.tx() as conn:
            rows = conn.execute(
                select(r.id, r.address_key, r.state).where(
                    r.send_id == send_id, r.state.in_([State.PENDING, State.FAILED, State.EXCLUDED])
                )
            ).all()
            gone = [row.id for row in rows if row.state != State.EXCLUDED and row.address_key not in keys]
            back = [row.id for row in rows if row.state == State.EXCLUDED and row.address_key in keys]
            if gone:
                conn.execute(
                    recipients_table.update()
                    .where(r.id.in_(gone))
                    .values(
                        state=State.EXCLUDED, last_error="no longer in the subscribers list", updated_at=at
                    )
                )
            if back:
                conn.execute(
                    recipients_table.update()
                    .where(r.id.in_(back))
                    .values(state=State.PENDING, last_error=None, updated_at=at)
                )

    def eligible(self, send_id: int, max_attempts: int) -> list[Queued]:
        with self.tx() as conn:
            rows = conn.execute(
                select(r.id, r.address, r.unsubscribe_url)
                .where(r.send_id == send_id, eligible(max_attempts))
                .order_by(r.id)
            ).all()
        return [Queued(int(row.id), str(row.address), row.unsubscribe_url) for row in rows]

    def claim(
        self, send_id: int, rid: int, run_id: str, owner: str, ttl: float, max_attempts: int, message_id: str
    ) -> bool:
        """pending | failed → claimed (attempts + 1), renewing the lease; False when no longer eligible."""
        at = clock.now()
        with self.tx() as conn:
            self._renew(conn, send_id, owner, ttl)
            done = conn.execute(
                recipients_table.update()
                .where(r.id == rid, eligible(max_attempts))
                .values(
                    state=State.CLAIMED,
                    attempts=r.attempts + 1,
                    data_started=False,
                    run_id=run_id,
                    message_id=message_id,
                    claimed_at=at,
                    updated_at=at,
                )
            ).rowcount
        return done == 1

    def mark(self, rid: int, claimed_by: str, /, **values: Any) -> None:
        """Move a recipient this run claimed on (data_started, or its outcome)."""
        with self.tx() as conn:
            done = conn.execute(
                recipients_table.update()
                .where(r.id == rid, r.run_id == claimed_by, r.state == State.CLAIMED)
                .values(updated_at=clock.now(), **values)
            ).rowcount
        if done != 1:
            raise LeaseLost(f"recipient {rid} is no longer claimed by this run; stopped")

    def report(
        self,
        send_id: int,
        max_attempts: int,
        *,
        sent: int,
        busy: str | None = None,
        stopped: str | None = None,
    ) -> SendReport:
        """The send's counts now; a complete send (and not someone else's) is marked completed."""
        with self.tx() as conn:
            send = conn.execute(select(sends).where(sends.c.id == send_id)).one()
            counts = {
                state: int(n)
                for state, n in conn.execute(
                    select(r.state, func.count()).where(r.send_id == send_id).group_by(r.state)
                ).all()
            }
            at_cap = int(
                conn.execute(
                    select(func.count()).where(
                        r.send_id == send_id, r.state == State.FAILED, r.attempts >= max_attempts
                    )
                ).scalar_one()
            )
            issues = conn.execute(
                select(r.address, r.state, r.attempts, r.message_id, r.last_error, r.claimed_at)
                .where(r.send_id == send_id, r.state.in_([State.UNCERTAIN, State.FAILED]))
                .order_by(r.id)
            ).all()
        report = tally(
            slug=send.slug,
            version=send.version,
            candidates=send.candidates,
            counts=counts,
            at_cap=at_cap,
            issues=[RecipientIssue(*issue) for issue in issues],
            max_attempts=max_attempts,
            sent=sent,
            busy=busy,
            stopped=stopped,
            approval=Approval(send.approval),
            triggered_by=send.triggered_by,
            approved_by=send.approved_by,
            approved_at=send.approved_at,
        )
        if report.complete and busy is None and not report.awaiting:
            with self.tx() as conn:
                conn.execute(
                    sends.update()
                    .where(sends.c.id == send_id, sends.c.completed_at.is_(None))
                    .values(completed_at=clock.now())
                )
        return report

    def start_run(self, run_id: str, send_id: int, owner: str) -> None:
        with self.tx() as conn:
            started = clock.now()
            conn.execute(runs.insert().values(id=run_id, send_id=send_id, owner=owner, started_at=started))

    def finish_run(self, run_id: str, report: SendReport) -> None:
        with self.tx() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    finished_at=clock.now(),
                    sent=report.sent,
                    complete=report.complete,
                    summary=report.summary(),
                )
            )

    # -- test sends (recorded apart: no subscriber is marked)
    def start_test_send(self, slug: str, version: str, address: str, message_id: str) -> int:
        with self.tx() as conn:
            return new_id(
                conn.execute(
                    test_sends.insert().values(
                        slug=slug,
                        version=version,
                        address=address,
                        state=State.CLAIMED,
                        message_id=message_id,
                        created_at=clock.now(),
                    )
                ).inserted_primary_key
            )

    def finish_test_send(self, test_id: int, **values: Any) -> None:
        with self.tx() as conn:
            conn.execute(
                test_sends.update()
                .where(test_sends.c.id == test_id)
                .values(finished_at=clock.now(), **values)
            )

    # -- manual resolution
    def find_recipient(self, slug: str, address_key: str, version_prefix: str = "") -> list[Found]:
        """The recipient ``address_key`` in every send of ``slug`` (whose version starts so), newest first."""
        with self.tx() as conn:
            rows = conn.execute(
                select(r.id, sends.c.version, r.state)
                .join(sends, sends.c.id == r.send_id)
                .where(
                    sends.c.slug == slug,
                    sends.c.version.startswith(version_prefix, autoescape=True),
                    r.address_key == address_key,
                )
                .order_by(sends.c.id.desc())
            ).all()
        return [Found(int(row.id), str(row.version), str(row.state)) for row in rows]

    def has_send(self, slug: str) -> bool:
        with self.tx() as conn:
            return conn.execute(select(sends.c.id).where(sends.c.slug == slug).limit(1)).first() is not None

    def latest_send(self, slug: str, version_prefix: str = "") -> tuple[int, str] | None:
        """(id, version) of the newest send of ``slug`` (whose version starts so), or None."""
        with self.tx() as conn:
            row = conn.execute(
                select(sends.c.id, sends.c.version)
                .where(sends.c.slug == slug, sends.c.version.startswith(version_prefix, autoescape=True))
                .order_by(sends.c.id.desc())
                .limit(1)
            ).first()
        return None if row is None else (int(row.id), str(row.version))

    def accepted_by_send(self) -> list[tuple[str, str, str, int]]:
        """(slug, version, title, accepted) of every send that has accepted messages, oldest first:
        the denominators of the monitor's complaint and bounce rates."""
        accepted = func.count(r.id).label("accepted")
        with self.tx() as conn:
            rows = conn.execute(
                select(sends.c.slug, sends.c.version, sends.c.title, accepted)
                .join(recipients_table, r.send_id == sends.c.id)
                .where(r.state == State.ACCEPTED)
                .group_by(sends.c.id, sends.c.slug, sends.c.version, sends.c.title)
                .order_by(sends.c.id)
            ).all()
        return [(str(row.slug), str(row.version), str(row.title), int(row.accepted)) for row in rows]

    def resolve(self, rid: int, state: State, **values: Any) -> bool:
        """uncertain → ``state`` by a person's verdict; False when it was no longer uncertain."""
        at = clock.now()
        with self.tx() as conn:
            done = conn.execute(
                recipients_table.update()
                .where(r.id == rid, r.state == State.UNCERTAIN)
                .values(state=state, updated_at=at, **values)
            ).rowcount
            if done == 1 and state is State.PENDING:
                # Something is left to send: the send is no longer complete.
                send_id = select(r.send_id).where(r.id == rid).scalar_subquery()
                conn.execute(sends.update().where(sends.c.id == send_id).values(completed_at=None))
        return done == 1
