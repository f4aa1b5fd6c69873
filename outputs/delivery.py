"""Newsletter delivery over SMTP: one message per subscriber and article version, never two.

Called only after the release swap has committed (an email cannot be
recalled). Every recipient of a newsletter version has a recorded state in
the registry database (tables ``newsletter_*``, on their own MetaData)::

    pending ──claim──▶ claimed ──▶ accepted    the server replied 250 to the message data
       ▲                  │    ├─▶ failed      a definite refusal (MAIL, RCPT, DATA or the
       │                  │    │               reply to the data); retried by a later run
       │                  │    │               while attempts < max_send_attempts
       │                  │    └─▶ uncertain   the connection dropped after the message data
       │                  │                    was sent but before the reply: the server may
       │                  │                    have it. Reported, never resent automatically.
       └──────────────────┘  the connection dropped before the message data was complete:
                             provably not sent, back to pending (no recipient's fault).
    pending | failed ──▶ excluded   no longer in the subscribers CSV (unsubscribed)

Rules:

- The claim (pending → claimed, attempts + 1) is committed before any SMTP
  command for that recipient; ``data_started`` is committed after the server's
  354 and before the first byte of the message data.
- A run that finds ``claimed`` rows left by a killed run resolves them before
  sending: without ``data_started`` → pending (the data never left: resend is
  safe); with it → uncertain (the server may have the message).
- A run sends only to pending, and to failed while attempts < max_send_attempts.
  Failed at the cap counts as excluded in the report.
- The recipient list of a version is fixed by its first enqueue (in one
  transaction with the send record); later enqueues add nobody. A new version
  is a new send. Removals from the CSV are honoured (→ excluded).
- One run per version at a time: a run holds a lease on the send (renewed at
  every claim; a lease whose process is gone on this host, or that expired,
  may be taken over). A second run finds it held and says so.
- Accounting: a run is complete only when candidates = accepted + failed +
  uncertain + excluded (nothing pending or claimed).
- A dropped connection is reopened (bounded, with backoff) and the run goes
  on with the next recipient; when the server stays away the run stops and
  the next run resumes.
"""

from __future__ import annotations

import enum
import functools
import os
import re
import smtplib
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    ForeignKey,
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

from clinicpress.errors import ClinicpressError, InputError
from clinicpress.faults import fault_point
from clinicpress.outputs.registry import (
    UTCDateTime,
    new_id,
    open_engine,
    registry_url,
    shown_url,
    transaction,
)
from clinicpress.outputs.subscribers import Subscriber, address_problem
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.newsletter import MessageTemplate, personalise, render_message_template
from clinicpress.site import SiteConfig, Smtp
from clinicpress.sources.article import Article, Channel

TEST_SUBJECT_PREFIX = "[TEST] "
MAX_BACKOFF = 10.0


class DeliveryError(ClinicpressError):
    """The newsletter could not be sent as asked (SMTP settings, the delivery records)."""


class DeliveryIncomplete(DeliveryError):
    """A send ended with recipients still pending or claimed; the report has the counts."""

    def __init__(self, report: SendReport) -> None:
        self.report = report
        super().__init__(report.summary())


class State(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    ACCEPTED = "accepted"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    EXCLUDED = "excluded"


# -- schema (the registry's database, our own MetaData) --------------------------------------


metadata = MetaData()

sends = Table(
    "newsletter_sends",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False),
    Column("version", String(64), nullable=False),
    Column("title", Text, nullable=False),
    # The Date header of every recipient's message: fixed at the first enqueue.
    Column("published_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("candidates", Integer, nullable=False),
    Column("completed_at", UTCDateTime),
    Column("lease_owner", String(200)),  # "<host>:<pid>:<run id>"
    Column("lease_until", UTCDateTime),
    UniqueConstraint("slug", "version", name="uq_newsletter_send_slug_version"),
)

recipients_table = Table(
    "newsletter_recipients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("send_id", ForeignKey("newsletter_sends.id", ondelete="CASCADE"), nullable=False),
    Column("address_key", String(320), nullable=False),
    Column("address", Text, nullable=False),
    Column("unsubscribe_url", Text),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("data_started", Boolean, nullable=False, default=False),
    Column("run_id", String(32)),
    Column("message_id", Text),  # to look the message up in the server's log
    Column("smtp_response", Text),
    Column("last_error", Text),
    Column("claimed_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("send_id", "address_key", name="uq_newsletter_recipient"),
    Index("ix_newsletter_recipients_state", "send_id", "state"),
)

runs = Table(
    "newsletter_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("send_id", ForeignKey("newsletter_sends.id", ondelete="CASCADE"), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("sent", Integer, nullable=False, default=0),
    Column("complete", Boolean, nullable=False, default=False),
    Column("summary", Text),
)

test_sends = Table(
    "newsletter_test_sends",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False),
    Column("version", String(64), nullable=False),
    Column("address", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("message_id", Text),
    Column("smtp_response", Text),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)


# -- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipientIssue:
    """A recipient a person may need to look at (uncertain, or failed for good)."""

    email: str
    state: str
    attempts: int
    message_id: str | None
    last_error: str | None
    claimed_at: datetime | None


@dataclass(frozen=True)
class SendReport:
    slug: str
    version: str
    test: bool
    candidates: int
    pending: int
    claimed: int
    accepted: int
    failed: int  # refused, will be retried by the next run
    uncertain: int
    excluded: int  # unsubscribed, or failed max_send_attempts times
    sent: int  # accepted during this run
    uncertain_recipients: tuple[RecipientIssue, ...] = ()
    failed_recipients: tuple[RecipientIssue, ...] = ()  # failed and failed-for-good
    busy: str | None = None  # another run holds this send: who
    stopped: str | None = None  # why this run ended before the list did
    problem: str | None = None  # the accounting did not balance

    @property
    def accounted(self) -> int:
        return self.accepted + self.failed + self.uncertain + self.excluded

    @property
    def complete(self) -> bool:
        """Every candidate is accepted, failed, uncertain or excluded."""
        return self.problem is None and self.pending == 0 and self.claimed == 0

    def counts(self) -> dict[str, int]:
        return {
            "pending": self.pending,
            "claimed": self.claimed,
            "accepted": self.accepted,
            "failed": self.failed,
            "uncertain": self.uncertain,
            "excluded": self.excluded,
        }

    def summary(self) -> str:
        what = "test send" if self.test else "newsletter"
        line = (
            f"{what} {self.slug} (version {self.version[:12]}): {self.candidates} recipient(s): "
            f"{self.accepted} accepted, {self.failed} failed, {self.uncertain} uncertain, "
            f"{self.excluded} excluded, {self.pending} pending, {self.claimed} claimed; "
            f"{self.sent} sent by this run; {'complete' if self.complete else 'NOT complete'}"
        )
        extra = [f"  {text}" for text in (self.busy, self.stopped, self.problem) if text]
        for issue in self.uncertain_recipients:
            extra.append(
                f"  uncertain: {issue.email} (Message-ID {issue.message_id}): {issue.last_error}; "
                "not resent: check the mail server's log before resending by hand"
            )
        for issue in self.failed_recipients:
            extra.append(
                f"  {issue.state}: {issue.email} after {issue.attempts} attempt(s): {issue.last_error}"
            )
        return "\n".join([line, *extra])

    def raise_if_incomplete(self) -> None:
        if not self.complete:
            raise DeliveryIncomplete(self)


# -- the records ---------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


class _LeaseLost(DeliveryError):
    """Another run took this send over (ours looked dead): stop at once."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _lease_dead(owner: str | None, until: datetime | None, now: datetime) -> bool:
    if owner is None or until is None or until < now:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        # Another host: only expiry tells. Our own pid: another thread of ours may hold it.
        return False
    return not _pid_alive(int(pid_text))


class DeliveryStore:
    """The delivery records in the registry database."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = open_engine(url)
            metadata.create_all(self.engine)
        except (SQLAlchemyError, OSError, ModuleNotFoundError) as exc:
            raise DeliveryError(f"delivery records {self._shown_url()}: cannot open ({exc})") from None

    def __enter__(self) -> DeliveryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()

    def _shown_url(self) -> str:
        return shown_url(self.url)

    def tx(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine, f"delivery records {self._shown_url()}", DeliveryError)

    # -- the send and its recipients
    def ensure_send(
        self, slug: str, version: str, title: str, published_at: datetime, recipients: Sequence[Subscriber]
    ) -> tuple[int, datetime]:
        """The send of this version, created with every recipient as pending in one transaction."""
        with self.tx() as conn:
            found = conn.execute(
                select(sends.c.id, sends.c.published_at).where(
                    sends.c.slug == slug, sends.c.version == version
                )
            ).first()
        if found is not None:
            return int(found.id), found.published_at
        now = _now()
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
                            created_at=now,
                            candidates=len(unique),
                        )
                    ).inserted_primary_key
                )
                if unique:
                    conn.execute(
                        recipients_table.insert(),
                        [
                            {
                                "send_id": send_id,
                                "address_key": r.key,
                                "address": r.email,
                                "unsubscribe_url": r.unsubscribe_url,
                                "state": State.PENDING,
                                "attempts": 0,
                                "data_started": False,
                                "updated_at": now,
                            }
                            for r in unique
                        ],
                    )
            return int(send_id), published_at
        except IntegrityError:
            # Another run enqueued this version at the same moment: use theirs.
            return self.ensure_send(slug, version, title, published_at, ())
        except SQLAlchemyError as exc:
            raise DeliveryError(
                f"delivery records {self._shown_url()}: {type(exc).__name__}: {exc}"
            ) from None

    def acquire(self, send_id: int, owner: str, ttl: float) -> str | None:
        """Take the send's lease; None when taken, else who holds it."""
        now = _now()
        with self.tx() as conn:
            row = conn.execute(
                select(sends.c.lease_owner, sends.c.lease_until).where(sends.c.id == send_id)
            ).one()
            if not _lease_dead(row.lease_owner, row.lease_until, now):
                return f"another run ({row.lease_owner}) is sending this newsletter; nothing sent by this run"
            held = (
                sends.c.lease_owner.is_(None)
                if row.lease_owner is None
                else sends.c.lease_owner == row.lease_owner
            )
            taken = conn.execute(
                sends.update()
                .where(sends.c.id == send_id, held)
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=ttl))
            ).rowcount
        return None if taken == 1 else "another run took this newsletter at the same moment; nothing sent"

    def renew(self, conn: Connection, send_id: int, owner: str, ttl: float) -> None:
        done = conn.execute(
            sends.update()
            .where(sends.c.id == send_id, sends.c.lease_owner == owner)
            .values(lease_until=_now() + timedelta(seconds=ttl))
        ).rowcount
        if done != 1:
            raise _LeaseLost("another run took this newsletter over; this run stopped")

    def release(self, send_id: int, owner: str) -> None:
        with self.tx() as conn:
            conn.execute(
                sends.update()
                .where(sends.c.id == send_id, sends.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def recover(self, send_id: int) -> None:
        """Resolve recipients a killed run left claimed (we hold the lease: nobody else is sending)."""
        now = _now()
        claimed = (recipients_table.c.send_id == send_id) & (recipients_table.c.state == State.CLAIMED)
        with self.tx() as conn:
            conn.execute(
                recipients_table.update()
                .where(claimed, recipients_table.c.data_started.is_(False))
                .values(state=State.PENDING, run_id=None, updated_at=now)
            )
            conn.execute(
                recipients_table.update()
                .where(claimed, recipients_table.c.data_started.is_(True))
                .values(
                    state=State.UNCERTAIN,
                    finished_at=now,
                    updated_at=now,
                    last_error="the sending run ended after the message data was sent, before the "
                    "server's reply was recorded",
                )
            )

    def sync_list(self, send_id: int, keys: set[str]) -> None:
        """Honour unsubscribes since the first enqueue (and re-subscribes of those not yet sent)."""
        now = _now()
        with self.tx() as conn:
            rows = conn.execute(
                select(recipients_table.c.id, recipients_table.c.address_key, recipients_table.c.state).where(
                    recipients_table.c.send_id == send_id,
                    recipients_table.c.state.in_([State.PENDING, State.FAILED, State.EXCLUDED]),
                )
            ).all()
            gone = [r.id for r in rows if r.state != State.EXCLUDED and r.address_key not in keys]
            back = [r.id for r in rows if r.state == State.EXCLUDED and r.address_key in keys]
            if gone:
                conn.execute(
                    recipients_table.update()
                    .where(recipients_table.c.id.in_(gone))
                    .values(
                        state=State.EXCLUDED, last_error="no longer in the subscribers list", updated_at=now
                    )
                )
            if back:
                conn.execute(
                    recipients_table.update()
                    .where(recipients_table.c.id.in_(back))
                    .values(state=State.PENDING, last_error=None, updated_at=now)
                )

    def eligible(self, send_id: int, max_attempts: int) -> list[tuple[int, str, str | None]]:
        with self.tx() as conn:
            rows = conn.execute(
                select(recipients_table.c.id, recipients_table.c.address, recipients_table.c.unsubscribe_url)
                .where(recipients_table.c.send_id == send_id, self._eligible(max_attempts))
                .order_by(recipients_table.c.id)
            ).all()
        return [(int(r.id), str(r.address), r.unsubscribe_url) for r in rows]

    @staticmethod
    def _eligible(max_attempts: int) -> Any:
        r = recipients_table.c
        return (r.state == State.PENDING) | ((r.state == State.FAILED) & (r.attempts < max_attempts))

    def claim(
        self, send_id: int, rid: int, run_id: str, owner: str, ttl: float, max_attempts: int, message_id: str
    ) -> bool:
        now = _now()
        with self.tx() as conn:
            self.renew(conn, send_id, owner, ttl)
            done = conn.execute(
                recipients_table.update()
                .where(recipients_table.c.id == rid, self._eligible(max_attempts))
                .values(
                    state=State.CLAIMED,
                    attempts=recipients_table.c.attempts + 1,
                    data_started=False,
                    run_id=run_id,
                    message_id=message_id,
                    claimed_at=now,
                    updated_at=now,
                )
            ).rowcount
        return done == 1

    def mark(self, rid: int, claimed_by: str, /, **values: Any) -> None:
        """Move a recipient this run claimed on (data_started, or its outcome)."""
        with self.tx() as conn:
            done = conn.execute(
                recipients_table.update()
                .where(
                    recipients_table.c.id == rid,
                    recipients_table.c.run_id == claimed_by,
                    recipients_table.c.state == State.CLAIMED,
                )
                .values(updated_at=_now(), **values)
            ).rowcount
        if done != 1:
            raise _LeaseLost(f"recipient {rid} is no longer claimed by this run; stopped")

    def report(
        self,
        send_id: int,
        max_attempts: int,
        *,
        sent: int,
        busy: str | None = None,
        stopped: str | None = None,
    ) -> SendReport:
        r = recipients_table.c
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
        rows = sum(counts.values())
        known = sum(counts.get(s, 0) for s in State)
        problem = None
        if rows != send.candidates or known != rows:
            problem = (
                f"accounting: {send.candidates} candidate(s) enqueued but {rows} recorded "
                f"({known} in known states): {counts}"
            )
        report = SendReport(
            slug=send.slug,
            version=send.version,
            test=False,
            candidates=send.candidates,
            pending=counts.get(State.PENDING, 0),
            claimed=counts.get(State.CLAIMED, 0),
            accepted=counts.get(State.ACCEPTED, 0),
            failed=counts.get(State.FAILED, 0) - at_cap,
            uncertain=counts.get(State.UNCERTAIN, 0),
            excluded=counts.get(State.EXCLUDED, 0) + at_cap,
            sent=sent,
            uncertain_recipients=tuple(
                RecipientIssue(i.address, i.state, i.attempts, i.message_id, i.last_error, i.claimed_at)
                for i in issues
                if i.state == State.UNCERTAIN
            ),
            failed_recipients=tuple(
                RecipientIssue(
                    i.address,
                    "failed" if i.attempts < max_attempts else "excluded",
                    i.attempts,
                    i.message_id,
                    i.last_error,
                    i.claimed_at,
                )
                for i in issues
                if i.state == State.FAILED
            ),
            busy=busy,
            stopped=stopped,
            problem=problem,
        )
        if report.complete and busy is None:
            with self.tx() as conn:
                conn.execute(
                    sends.update()
                    .where(sends.c.id == send_id, sends.c.completed_at.is_(None))
                    .values(completed_at=_now())
                )
        return report

    def start_run(self, run_id: str, send_id: int, owner: str) -> None:
        with self.tx() as conn:
            conn.execute(runs.insert().values(id=run_id, send_id=send_id, owner=owner, started_at=_now()))

    def finish_run(self, run_id: str, report: SendReport) -> None:
        with self.tx() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    finished_at=_now(), sent=report.sent, complete=report.complete, summary=report.summary()
                )
            )


# -- SMTP ----------------------------------------------------------------------------------------


class Outcome(enum.Enum):
    ACCEPTED = "accepted"  # 250 to the message data
    REFUSED = "refused"  # a definite refusal: failed
    NOT_SENT = "not-sent"  # the connection went away before the data was complete: pending
    UNKNOWN = "unknown"  # the connection went away after the data, before the reply: uncertain


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    detail: str


class _Fatal(DeliveryError):
    """An SMTP problem no retry fixes (no STARTTLS, bad credentials, untrusted certificate)."""


def _reply(step: str, code: int, text: bytes) -> str:
    return f"{step}: {code} {text.decode('utf-8', 'replace')}".strip()


def _wire_bytes(msg: EmailMessage) -> bytes:
    """The message as SMTP DATA: CRLF line ends, dot-stuffed, ending with <CRLF>.<CRLF>."""
    data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def deliver(
    conn: smtplib.SMTP, sender: str, to: str, msg: EmailMessage, data_started: Callable[[], None]
) -> Delivery:
    """One SMTP transaction, split so that the moment the data leaves is known.

    ``data_started`` is called (and must commit) after the server's 354 and
    before the first byte of data: from then on a drop is UNKNOWN.
    """
    payload = _wire_bytes(msg)
    try:
        code, text = conn.mail(sender)
        if code != 250:
            return _refused("MAIL FROM", code, text)
        code, text = conn.rcpt(to)
        if code not in (250, 251):
            return _refused("RCPT TO", code, text)
        conn.putcmd("data")
        code, text = conn.getreply()
        if code != 354:
            return _refused("DATA", code, text)
    except OSError as exc:  # smtplib's errors are OSErrors too
        return Delivery(Outcome.NOT_SENT, f"connection lost before the message data: {exc}")
    data_started()
    try:
        conn.send(payload)
    except OSError as exc:
        # send() failing means the final <CRLF>.<CRLF> never left: the server cannot accept it.
        return Delivery(Outcome.NOT_SENT, f"connection lost while sending the message data: {exc}")
    try:
        code, text = conn.getreply()
    except OSError as exc:
        return Delivery(Outcome.UNKNOWN, f"connection lost after the message data, before the reply: {exc}")
    if code == 250:
        return Delivery(Outcome.ACCEPTED, _reply("DATA", code, text))
    if code == 421:
        # The server says it closes the channel and did not take the message.
        return Delivery(Outcome.NOT_SENT, _reply("end of DATA", code, text))
    if code < 200:  # smtplib's -1: a reply it could not read
        return Delivery(Outcome.UNKNOWN, _reply("end of DATA (unreadable reply)", code, text))
    return Delivery(Outcome.REFUSED, _reply("end of DATA", code, text))


def _refused(step: str, code: int, text: bytes) -> Delivery:
    if code == 421 or code < 200:
        # 421: the server is closing the connection; nothing about this recipient.
        return Delivery(Outcome.NOT_SENT, _reply(step, code, text))
    return Delivery(Outcome.REFUSED, _reply(step, code, text))


class SmtpSession:
    """One SMTP connection at a time, reopened on demand (bounded by the caller)."""

    def __init__(self, settings: Smtp, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.local_hostname = socket.getfqdn()  # once: smtplib would look it up per connection
        self.conn: smtplib.SMTP | None = None

    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def open(self) -> smtplib.SMTP:
        if self.conn is not None:
            return self.conn
        s = self.settings
        conn: smtplib.SMTP
        try:
            if s.security == "tls":
                conn = smtplib.SMTP_SSL(
                    s.host, s.port, self.local_hostname, timeout=s.timeout, context=self.ssl_context
                )
            else:
                conn = smtplib.SMTP(s.host, s.port, self.local_hostname, timeout=s.timeout)
        except ssl.SSLCertVerificationError as exc:
            raise _Fatal(f"SMTP {self.where()}: certificate not trusted ({exc.verify_message})") from None
        try:
            conn.ehlo()
            if s.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise _Fatal(
                        f"SMTP {self.where()} does not offer STARTTLS; refusing to send in clear text"
                    )
                conn.starttls(context=self.ssl_context)
                conn.ehlo()
            if s.username:
                if s.password is None:
                    raise _Fatal(
                        f"SMTP {self.where()}: username set but no password "
                        "(set CLINICPRESS_NEWSLETTER__SMTP__PASSWORD)"
                    )
                conn.login(s.username, s.password.get_secret_value())
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise _Fatal(f"SMTP {self.where()}: certificate not trusted ({exc.verify_message})") from None
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError) as exc:
            conn.close()
            raise _Fatal(f"SMTP {self.where()}: login refused ({exc})") from None
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        return conn

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def reset(self) -> None:
        """RSET after a refusal; a connection that cannot even do that is dropped."""
        if self.conn is None:
            return
        try:
            code, _ = self.conn.rset()
        except OSError:
            code = 0
        if code != 250:
            self.drop()

    def close(self) -> None:
        if self.conn is not None:
            with suppress(OSError):
                self.conn.quit()
            self.drop()


class _Reconnects:
    """Consecutive connection failures, with backoff; reset by a definite outcome."""

    def __init__(self, limit: int, delay: float) -> None:
        self.limit = limit
        self.delay = delay
        self.count = 0

    def failed(self) -> bool:
        """Count one failure; False when the budget is spent. Sleeps before the next try."""
        self.count += 1
        if self.count > self.limit:
            return False
        time.sleep(min(self.delay * 2 ** (self.count - 1), MAX_BACKOFF))
        return True


# -- the entry point -----------------------------------------------------------------------------


def send_newsletter(
    article: Article,
    site: SiteConfig,
    context: RenderContext,
    out_dir: Path | str,
    *,
    recipients: Sequence[Subscriber],
    smtp: Smtp,
    test_to: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    reconnects: int = 3,
    reconnect_delay: float = 0.5,
    db_url: str | None = None,
) -> SendReport:
    """Send this article version's newsletter to every recipient not yet sent to.

    Call only after the release swap committed. With ``test_to`` one message
    with "[TEST] " in the subject goes to that address only, recorded apart
    (no subscriber is marked sent). Never raises for SMTP trouble: the report
    says what happened; call ``report.raise_if_incomplete()`` to make an
    incomplete send an error.
    """
    if Channel.NEWSLETTER not in article.channels:
        raise DeliveryError(f"{article.key}: the article has no newsletter channel; nothing to send")
    url = db_url or registry_url(site, Path(out_dir))
    session = SmtpSession(smtp, ssl_context)
    with DeliveryStore(url) as store:
        if test_to is not None:
            return _test_send(
                store, session, article, site, context, test_to, _Reconnects(reconnects, reconnect_delay)
            )
        return _Run(store, session, article, site, context, recipients, reconnects, reconnect_delay).run()


class _Run:
    def __init__(
        self,
        store: DeliveryStore,
        session: SmtpSession,
        article: Article,
        site: SiteConfig,
        context: RenderContext,
        recipients: Sequence[Subscriber],
        reconnects: int,
        reconnect_delay: float,
    ) -> None:
        self.store = store
        self.session = session
        self.article = article
        self.site = site
        self.context = context
        self.recipients = recipients
        self.max_attempts = site.newsletter.max_send_attempts
        self.reconnects = _Reconnects(reconnects, reconnect_delay)
        self.run_id = uuid.uuid4().hex
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{self.run_id}"
        # Longer than the longest gap between two renewals (a reconnect is ~5 SMTP round trips).
        self.ttl = 10 * session.settings.timeout + 60
        self.sent = 0

    def run(self) -> SendReport:
        fault_point("newsletter.enqueue")
        send_id, published_at = self.store.ensure_send(
            self.article.key,
            self.context.version,
            self.article.title,
            self.context.published_at,
            self.recipients,
        )
        fault_point("newsletter.enqueued")
        busy = self.store.acquire(send_id, self.owner, self.ttl)
        if busy is not None:
            return self.store.report(send_id, self.max_attempts, sent=0, busy=busy)
        self.store.start_run(self.run_id, send_id, self.owner)
        stopped: str | None = None
        try:
            self.store.recover(send_id)
            self.store.sync_list(send_id, {r.key for r in self.recipients})
            queue = self.store.eligible(send_id, self.max_attempts)
            if queue:
                # Every recipient's message carries the Date of the first enqueue, whichever run sends it.
                context = RenderContext(published_at=published_at, version=self.context.version)
                template = render_message_template(self.article, self.site, context)
                stopped = self._send(send_id, template, queue)
        except BaseException:
            # Mid-transaction a polite QUIT would wait for a reply that may never come.
            self.session.drop()
            raise
        finally:
            self.session.close()
            try:
                report = self.store.report(send_id, self.max_attempts, sent=self.sent, stopped=stopped)
                self.store.finish_run(self.run_id, report)
            finally:
                self.store.release(send_id, self.owner)
        return report

    def _send(
        self, send_id: int, template: MessageTemplate, queue: list[tuple[int, str, str | None]]
    ) -> str | None:
        """Send to the queue in order; the reason the run stopped early, or None."""
        index = 0
        while index < len(queue):
            rid, address, unsubscribe_url = queue[index]
            try:
                conn = self.session.open()
            except _Fatal as exc:
                return str(exc)
            except OSError as exc:
                if not self.reconnects.failed():
                    return f"SMTP {self.session.where()} unreachable: {exc}; the next run resumes"
                continue
            try:
                msg = personalise(template, to=address, unsubscribe_url=unsubscribe_url)
            except ClinicpressError as exc:  # e.g. this recipient's message is too large
                if self.store.claim(send_id, rid, self.run_id, self.owner, self.ttl, self.max_attempts, ""):
                    self.store.mark(
                        rid, self.run_id, state=State.FAILED, last_error=str(exc), finished_at=_now()
                    )
                index += 1
                continue
            if not self.store.claim(
                send_id, rid, self.run_id, self.owner, self.ttl, self.max_attempts, str(msg["Message-ID"])
            ):
                index += 1  # no longer eligible (unsubscribed meanwhile)
                continue
            result = deliver(
                conn,
                template.from_address,
                address,
                msg,
                functools.partial(self.store.mark, rid, self.run_id, data_started=True),
            )
            now = _now()
            if result.outcome is Outcome.ACCEPTED:
                self.store.mark(
                    rid,
                    self.run_id,
                    state=State.ACCEPTED,
                    smtp_response=result.detail,
                    last_error=None,
                    finished_at=now,
                )
                self.sent += 1
                self.reconnects.count = 0
                index += 1
            elif result.outcome is Outcome.REFUSED:
                self.store.mark(
                    rid, self.run_id, state=State.FAILED, last_error=result.detail, finished_at=now
                )
                self.reconnects.count = 0
                self.session.reset()
                index += 1
            elif result.outcome is Outcome.UNKNOWN:
                self.store.mark(
                    rid, self.run_id, state=State.UNCERTAIN, last_error=result.detail, finished_at=now
                )
                self.session.drop()
                index += 1
                # A server that drops every connection after the data must not make everyone uncertain.
                if not self.reconnects.failed():
                    return f"SMTP {self.session.where()} keeps dropping connections: {result.detail}"
            else:  # NOT_SENT: provably not sent; the same recipient again on a new connection
                self.store.mark(
                    rid,
                    self.run_id,
                    state=State.PENDING,
                    data_started=False,
                    run_id=None,
                    last_error=result.detail,
                )
                self.session.drop()
                if not self.reconnects.failed():
                    return f"SMTP {self.session.where()}: {result.detail}; the next run resumes"
        return None


def _test_send(
    store: DeliveryStore,
    session: SmtpSession,
    article: Article,
    site: SiteConfig,
    context: RenderContext,
    test_to: str,
    reconnects: _Reconnects,
) -> SendReport:
    """One "[TEST] " message to one address, recorded apart from the subscribers."""
    problem = address_problem(test_to)
    if problem:
        raise InputError(None, "--test-to", f"{test_to[:80]!r} {problem}", "an address like name@example.org")
    template = render_message_template(article, site, context)
    msg = personalise(template, to=test_to, subject_prefix=TEST_SUBJECT_PREFIX)
    with store.tx() as conn:
        test_id = new_id(
            conn.execute(
                test_sends.insert().values(
                    slug=article.key,
                    version=context.version,
                    address=test_to,
                    state=State.CLAIMED,
                    message_id=str(msg["Message-ID"]),
                    created_at=_now(),
                )
            ).inserted_primary_key
        )

    def mark(**values: Any) -> None:
        with store.tx() as conn:
            conn.execute(test_sends.update().where(test_sends.c.id == test_id).values(**values))

    state, detail, stopped = State.PENDING, "", None
    try:
        while True:
            try:
                smtp_conn = session.open()
            except _Fatal as exc:
                stopped = str(exc)
                break
            except OSError as exc:
                if reconnects.failed():
                    continue
                stopped = f"SMTP {session.where()} unreachable: {exc}"
                break
            # A test message is never resent automatically, so no data_started marker is needed.
            result = deliver(smtp_conn, template.from_address, test_to, msg, lambda: None)
            detail = result.detail
            if result.outcome is Outcome.NOT_SENT:
                session.drop()
                if reconnects.failed():
                    continue
                stopped = detail
                break
            state = {
                Outcome.ACCEPTED: State.ACCEPTED,
                Outcome.REFUSED: State.FAILED,
                Outcome.UNKNOWN: State.UNCERTAIN,
            }[result.outcome]
            break
    finally:
        session.close()
    if stopped is not None:
        state = State.FAILED
    mark(
        state=state,
        smtp_response=detail if state is State.ACCEPTED else None,
        last_error=None if state is State.ACCEPTED else (stopped or detail),
        finished_at=_now(),
    )
    issue = RecipientIssue(test_to, state, 1, str(msg["Message-ID"]), stopped or detail, None)
    return SendReport(
        slug=article.key,
        version=context.version,
        test=True,
        candidates=1,
        pending=int(state is State.PENDING),
        claimed=0,
        accepted=int(state is State.ACCEPTED),
        failed=int(state is State.FAILED),
        uncertain=int(state is State.UNCERTAIN),
        excluded=0,
        sent=int(state is State.ACCEPTED),
        uncertain_recipients=(issue,) if state is State.UNCERTAIN else (),
        failed_recipients=(issue,) if state is State.FAILED else (),
        stopped=stopped,
    )


def resolve_uncertain(
    site: SiteConfig, out_dir: Path | str, slug: str, version: str, address: str, *, delivered: bool
) -> None:
    """A person's verdict on an uncertain recipient, after reading the mail server's log.

    ``delivered=True`` records it as accepted; ``False`` puts it back to
    pending, so the next run sends it.
    """
    now = _now()
    r = recipients_table.c
    values: dict[str, Any] = (
        {"state": State.ACCEPTED, "smtp_response": "confirmed by hand", "finished_at": now}
        if delivered
        else {"state": State.PENDING, "data_started": False, "run_id": None, "finished_at": None}
    )
    with DeliveryStore(registry_url(site, Path(out_dir))) as store, store.tx() as conn:
        found = conn.execute(
            select(sends.c.id).where(sends.c.slug == slug, sends.c.version.startswith(version))
        ).all()
        done = 0
        if len(found) == 1:  # a version prefix must name one send
            send_id = found[0].id
            done = conn.execute(
                recipients_table.update()
                .where(
                    r.send_id == send_id,
                    r.address_key == address.strip().lower(),
                    r.state == State.UNCERTAIN,
                )
                .values(updated_at=now, **values)
            ).rowcount
    if done != 1:
        raise InputError(
            None, "recipient", f"{address!r} is not uncertain in newsletter {slug} {version[:12]}", None
        )


__all__ = [
    "DeliveryError",
    "DeliveryIncomplete",
    "DeliveryStore",
    "Outcome",
    "RecipientIssue",
    "SendReport",
    "State",
    "deliver",
    "resolve_uncertain",
    "send_newsletter",
]
