"""The delivery store: the send state machine's records, driven directly (mostly no SMTP server).

test_delivery.py sends end to end; these read each transition back, and kill the mutants that
test_delivery.py lets live (docs/mutation.md; `make mutation`).

Each step reads the recipient rows back, so a transition that goes to the wrong state, forgets the
attempt count or the lease shows at once.
"""

from __future__ import annotations

import os
import smtplib
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from smtpserver import SMTPTestServer
from sqlalchemy import select

from clinicpress.faults import FAULT_ENV, InjectedFault
from clinicpress.outputs.delivery.errors import DeliveryError, LeaseLost
from clinicpress.outputs.delivery.schema import State, recipients_table, sends
from clinicpress.outputs.delivery.send import STATE_AFTER, recorded, send_newsletter
from clinicpress.outputs.delivery.smtp import Delivery, Outcome
from clinicpress.outputs.delivery.store import DeliveryStore
from clinicpress.outputs.subscribers import Subscriber
from clinicpress.renderers.base import RenderContext
from clinicpress.site import SiteConfig, Smtp
from clinicpress.sources.article import Article

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOST = socket.gethostname()
OWNER = f"{HOST}:{os.getpid()}:run-1"


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with DeliveryStore(f"sqlite:///{tmp_path / 'registry.sqlite'}") as opened:
        yield opened


def _send_id(store: DeliveryStore, readers: list[Subscriber], version: str = "v1") -> int:
    enqueued: Any = store.ensure_send("a", version, "Title", AT, readers)
    return int(enqueued.id if hasattr(enqueued, "id") else enqueued[0])


def _rows(store: DeliveryStore, send_id: int) -> dict[str, tuple[Any, ...]]:
    r = recipients_table.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(r.address, r.state, r.attempts, r.data_started, r.run_id)
            .where(r.send_id == send_id)
            .order_by(r.id)
        ).all()
    return {row.address: (State(row.state), row.attempts, bool(row.data_started), row.run_id) for row in rows}


def _ids(store: DeliveryStore, send_id: int) -> dict[str, int]:
    return {q.address: q.id for q in store.eligible(send_id, 99)}


def readers(*names: str) -> list[Subscriber]:
    return [Subscriber(f"{name}@example.org") for name in names]


def test_enqueue_once_first_duplicate_wins(store: DeliveryStore) -> None:
    send_id = _send_id(store, [Subscriber("Ann@example.org"), *readers("ann", "bob")])
    assert _send_id(store, readers("carl")) == send_id  # the list was fixed by the first enqueue
    assert list(_rows(store, send_id)) == ["Ann@example.org", "bob@example.org"]
    assert _send_id(store, readers("carl"), version="v2") != send_id
    with store.engine.connect() as conn:
        assert conn.execute(select(sends.c.candidates).where(sends.c.id == send_id)).scalar_one() == 2


def test_the_lease_is_one_runs_at_a_time(store: DeliveryStore) -> None:
    send_id = _send_id(store, readers("ann"))
    assert store.acquire(send_id, OWNER, 600) is None
    busy = store.acquire(send_id, f"{HOST}:{os.getpid()}:run-2", 600)
    assert busy is not None
    assert "another run" in busy
    store.release(send_id, f"{HOST}:{os.getpid()}:run-2")  # not its lease: nothing released
    assert store.acquire(send_id, f"{HOST}:{os.getpid()}:run-3", 600) is not None
    store.release(send_id, OWNER)
    assert store.acquire(send_id, f"{HOST}:{os.getpid()}:run-2", 600) is None


def test_an_expired_lease_or_a_dead_holder_is_taken_over(store: DeliveryStore) -> None:
    send_id = _send_id(store, readers("ann"))
    assert store.acquire(send_id, OWNER, -1) is None  # expired at once
    assert store.acquire(send_id, f"{HOST}:{os.getpid()}:run-2", 600) is None
    other = _send_id(store, readers("ann"), version="v2")
    dead = f"{HOST}:{2**22 + 12345}:gone"  # above any pid this machine hands out
    assert store.acquire(other, dead, 600) is None
    assert store.acquire(other, OWNER, 600) is None
    elsewhere = _send_id(store, readers("ann"), version="v3")
    assert store.acquire(elsewhere, f"other-host:{2**22 + 12345}:x", 600) is None
    assert store.acquire(elsewhere, OWNER, 600) is not None  # another host: only expiry tells


def test_claim_needs_the_lease_and_an_eligible_recipient(store: DeliveryStore) -> None:
    send_id = _send_id(store, readers("ann", "bob"))
    ids = _ids(store, send_id)
    with pytest.raises(LeaseLost):
        store.claim(send_id, ids["ann@example.org"], "run-1", OWNER, 600, 3, "<m1>")  # no lease
    assert store.acquire(send_id, OWNER, 600) is None
    assert store.claim(send_id, ids["ann@example.org"], "run-1", OWNER, 600, 3, "<m1>")
    assert not store.claim(send_id, ids["ann@example.org"], "run-1", OWNER, 600, 3, "<m2>")  # claimed now
    assert _rows(store, send_id) == {
        "ann@example.org": (State.CLAIMED, 1, False, "run-1"),
        "bob@example.org": (State.PENDING, 0, False, None),
    }
    assert [q.address for q in store.eligible(send_id, 3)] == ["bob@example.org"]


def test_a_failed_recipient_is_retried_up_to_the_cap(store: DeliveryStore) -> None:
    send_id = _send_id(store, readers("ann"))
    rid = _ids(store, send_id)["ann@example.org"]
    store.acquire(send_id, OWNER, 600)
    for attempt in (1, 2):
        assert store.claim(send_id, rid, f"run-{attempt}", OWNER, 600, 2, "<m>")
        store.mark(rid, f"run-{attempt}", **recorded(Delivery(Outcome.REFUSED, "550 no"), AT))
        assert _rows(store, send_id)["ann@example.org"][:2] == (State.FAILED, attempt)
    assert store.eligible(send_id, 2) == []  # two attempts, cap two
    assert [q.id for q in store.eligible(send_id, 3)] == [rid]
    assert not store.claim(send_id, rid, "run-3", OWNER, 600, 2, "<m>")


def test_mark_only_moves_a_recipient_this_run_claimed(store: DeliveryStore) -> None:
    send_id = _send_id(store, readers("ann"))
    rid = _ids(store, send_id)["ann@example.org"]
    store.acquire(send_id, OWNER, 600)
    with pytest.raises(LeaseLost):
        store.mark(rid, "run-1", data_started=True)  # not claimed
    store.claim(send_id, rid, "run-1", OWNER, 600, 3, "<m>")
    with pytest.raises(LeaseLost):
        store.mark(rid, "run-other", data_started=True)
    store.mark(rid, "run-1", data_started=True)
    store.mark(rid, "run-1", **recorded(Delivery(Outcome.ACCEPTED, "250 ok"), AT))
    assert _rows(store, send_id)["ann@example.org"] == (State.ACCEPTED, 1, True, "run-1")
    with pytest.raises(LeaseLost):
        store.mark(rid, "run-1", **recorded(Delivery(Outcome.ACCEPTED, "250 ok"), AT))  # finished


def test_recover_resends_only_what_never_left(store: DeliveryStore) -> None:
    send_id = _send_id(store, readers("ann", "bob", "cy"))
    ids = _ids(store, send_id)
    store.acquire(send_id, OWNER, 600)
    store.claim(send_id, ids["ann@example.org"], "dead-run", OWNER, 600, 3, "<a>")
    store.claim(send_id, ids["bob@example.org"], "dead-run", OWNER, 600, 3, "<b>")
    store.mark(ids["bob@example.org"], "dead-run", data_started=True)
    store.recover(send_id)
    assert _rows(store, send_id) == {
        "ann@example.org": (State.PENDING, 1, False, None),
        "bob@example.org": (State.UNCERTAIN, 1, True, "dead-run"),
        "cy@example.org": (State.PENDING, 0, False, None),
    }
    assert [q.address for q in store.eligible(send_id, 3)] == ["ann@example.org", "cy@example.org"]


def test_sync_list_honours_unsubscribes_and_resubscribes(store: DeliveryStore) -> None:
    send_id = _send_id(store, readers("ann", "bob", "cy", "dee"))
    ids = _ids(store, send_id)
    store.acquire(send_id, OWNER, 600)
    store.claim(send_id, ids["dee@example.org"], "run-1", OWNER, 600, 3, "<d>")
    store.mark(ids["dee@example.org"], "run-1", **recorded(Delivery(Outcome.ACCEPTED, "250"), AT))
    store.claim(send_id, ids["cy@example.org"], "run-1", OWNER, 600, 3, "<c>")
    store.mark(ids["cy@example.org"], "run-1", **recorded(Delivery(Outcome.REFUSED, "550"), AT))
    store.sync_list(send_id, {"ann@example.org"})  # bob and cy unsubscribed; dee was sent already
    states = {a: row[0] for a, row in _rows(store, send_id).items()}
    assert states == {
        "ann@example.org": State.PENDING,
        "bob@example.org": State.EXCLUDED,
        "cy@example.org": State.EXCLUDED,
        "dee@example.org": State.ACCEPTED,
    }
    assert [q.address for q in store.eligible(send_id, 3)] == ["ann@example.org"]
    store.sync_list(send_id, {"ann@example.org", "bob@example.org", "dee@example.org"})
    states = {a: row[0] for a, row in _rows(store, send_id).items()}
    assert states["bob@example.org"] is State.PENDING
    assert states["cy@example.org"] is State.EXCLUDED
    assert states["dee@example.org"] is State.ACCEPTED


def test_eligible_is_pending_and_failed_under_the_cap_in_order(store: DeliveryStore) -> None:
    send_id = _send_id(store, readers("ann", "bob", "cy", "dee", "eve"))
    ids = _ids(store, send_id)
    store.acquire(send_id, OWNER, 600)
    outcomes = {
        "ann@example.org": Outcome.UNKNOWN,
        "bob@example.org": Outcome.REFUSED,
        "cy@example.org": Outcome.ACCEPTED,
        "dee@example.org": Outcome.NOT_SENT,
    }
    for address, outcome in outcomes.items():
        store.claim(send_id, ids[address], "run-1", OWNER, 600, 3, "<m>")
        store.mark(ids[address], "run-1", **recorded(Delivery(outcome, "x"), AT))
    assert [q.address for q in store.eligible(send_id, 3)] == [
        "bob@example.org",
        "dee@example.org",
        "eve@example.org",
    ]
    assert [q.address for q in store.eligible(send_id, 1)] == ["dee@example.org", "eve@example.org"]
    rows = _rows(store, send_id)
    assert rows["ann@example.org"][0] is State.UNCERTAIN
    assert rows["dee@example.org"] == (State.PENDING, 1, False, None)  # released for the next attempt


def test_what_each_outcome_records() -> None:
    assert STATE_AFTER == {
        Outcome.ACCEPTED: State.ACCEPTED,
        Outcome.REFUSED: State.FAILED,
        Outcome.UNKNOWN: State.UNCERTAIN,
        Outcome.NOT_SENT: State.PENDING,
    }
    assert recorded(Delivery(Outcome.ACCEPTED, "250 ok"), AT) == {
        "state": State.ACCEPTED,
        "smtp_response": "250 ok",
        "last_error": None,
        "finished_at": AT,
    }
    assert recorded(Delivery(Outcome.NOT_SENT, "gone"), AT) == {
        "state": State.PENDING,
        "data_started": False,
        "run_id": None,
        "last_error": "gone",
    }
    assert recorded(Delivery(Outcome.REFUSED, "550 no"), AT) == {
        "state": State.FAILED,
        "last_error": "550 no",
        "finished_at": AT,
    }
    assert recorded(Delivery(Outcome.UNKNOWN, "dropped"), AT) == {
        "state": State.UNCERTAIN,
        "last_error": "dropped",
        "finished_at": AT,
    }


def test_a_message_that_cannot_be_made_fails_alone_and_the_run_goes_on(
    article: Article, site: SiteConfig, tmp_path: Path
) -> None:
    """One recipient whose message cannot be built (a line break in its unsubscribe URL) is failed
    without a connection; the recipients after it are still sent this run."""
    bad = Subscriber("bad@example.org", "https://example.org/unsub?r=1\nBcc: everyone@example.org")
    good = [Subscriber(f"ok{i}@example.org", f"https://example.org/unsub?r=ok{i}") for i in range(2)]
    with SMTPTestServer() as server:
        smtp = Smtp.model_validate(
            {"host": server.host, "port": server.port, "security": "none", "timeout": 5}
        )
        context = RenderContext(published_at=AT, version="v1")
        report = send_newsletter(
            article, site, context, tmp_path, recipients=[bad, *good], smtp=smtp, reconnect_delay=0.02
        )
        received = sorted(r.rcpt_tos for r in server.received)
    assert received == [("ok0@example.org",), ("ok1@example.org",)]
    assert (report.sent, report.accepted, report.failed) == (2, 2, 1)
    [issue] = report.failed_recipients
    assert issue.email == "bad@example.org"


def test_a_run_that_dies_mid_transaction_drops_the_connection_and_frees_the_lease(
    article: Article, site: SiteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No polite QUIT mid-transaction (it may wait for a reply that never comes); the lease is
    released, and the recipient it held claimed is resent by the next run (the data never left)."""
    quits: list[str] = []
    real_quit = smtplib.SMTP.quit

    def quit_recorded(conn: smtplib.SMTP) -> Any:
        quits.append("QUIT")
        return real_quit(conn)

    monkeypatch.setattr(smtplib.SMTP, "quit", quit_recorded)
    readers = [Subscriber(f"r{i}@example.org", f"https://example.org/unsub?r={i}") for i in range(2)]
    with SMTPTestServer() as server:
        plain = {"host": server.host, "port": server.port, "security": "none", "timeout": 5}
        smtp = Smtp.model_validate(plain)
        context = RenderContext(published_at=AT, version="v1")
        monkeypatch.setenv(FAULT_ENV, "newsletter.claimed")
        with pytest.raises(InjectedFault):
            send_newsletter(article, site, context, tmp_path, recipients=readers, smtp=smtp)
        assert quits == []
        monkeypatch.delenv(FAULT_ENV)
        again = send_newsletter(article, site, context, tmp_path, recipients=readers, smtp=smtp)
        received = sorted(r.rcpt_tos for r in server.received)
    assert (again.sent, again.accepted, again.uncertain) == (2, 2, 0)  # not busy: the lease was freed
    assert received == [("r0@example.org",), ("r1@example.org",)]


def test_a_database_error_while_enqueueing_is_a_delivery_error(store: DeliveryStore) -> None:
    """One exception tree: a failing database is our DeliveryError naming the records, not SQLAlchemy's."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {recipients_table.name}")
    with pytest.raises(DeliveryError, match="delivery records"):
        store.ensure_send("a", "v1", "Title", AT, readers("ann"))
