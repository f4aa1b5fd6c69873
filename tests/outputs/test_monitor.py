"""Monitoring: the registry, transitions, and the monitor flow with real parts on loopback.

A source changes between monitor runs (200 → 404 → 404 → 200) on a real HTTP
server; alerts go to a webhook receiver that records POSTs and to an aiosmtpd
SMTP server, through apprise; a dead alert channel must not stop the others.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import MINIMAL_FRONT_MATTER, TODAY, WriteArticle
from httpfarm import HTTPFarm, Reply
from webhook import Receiver

from clinicpress.checks.model import Archived, LinkResult, LinkStatus
from clinicpress.checks.transitions import (
    KeptState,
    Kind,
    license_bucket,
    license_transition,
    review_transition,
    source_transition,
)
from clinicpress.outputs.alerts import Alert
from clinicpress.outputs.monitoring import plan_outbox
from clinicpress.outputs.registry import (
    AlertRecord,
    LockLost,
    PendingAlert,
    PublishRecord,
    Registry,
)
from clinicpress.site import License

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def _result(status: LinkStatus, url: str = "https://example.org/a") -> LinkResult:
    return LinkResult(url=url, status=status, reason=status.value)


# -- transitions (pure) -------------------------------------------------------------------------


def test_source_alerts_once_after_the_threshold_and_once_on_recovery() -> None:
    sequence = [LinkStatus.OK, LinkStatus.BROKEN, LinkStatus.BROKEN, LinkStatus.BROKEN, LinkStatus.OK]
    state: KeptState | None = None
    kinds = []
    for day, status in enumerate(sequence):
        state, kind = source_transition(state, _result(status), NOW + timedelta(days=day), threshold=2)
        kinds.append(kind)
    assert kinds == [None, None, Kind.SOURCE_BROKEN, None, Kind.SOURCE_RECOVERED]


def test_flapping_and_unverified_sources_page_no_one() -> None:
    state: KeptState | None = None
    kinds = []
    for status in [LinkStatus.BROKEN, LinkStatus.OK, LinkStatus.BROKEN, LinkStatus.UNVERIFIED, LinkStatus.OK]:
        state, kind = source_transition(state, _result(status), NOW, threshold=2)
        kinds.append(kind)
    assert kinds == [None, None, None, None, None]


def test_broken_since_is_the_first_failed_run() -> None:
    first, _ = source_transition(None, _result(LinkStatus.BROKEN), NOW, threshold=2)
    second, kind = source_transition(first, _result(LinkStatus.BROKEN), NOW + timedelta(days=1), threshold=2)
    assert kind is Kind.SOURCE_BROKEN
    assert second.since == NOW


def test_moved_source_alerts_once() -> None:
    state, kind = source_transition(None, _result(LinkStatus.REDIRECTED), NOW, threshold=2)
    assert kind is Kind.SOURCE_MOVED
    assert source_transition(state, _result(LinkStatus.REDIRECTED), NOW, threshold=2)[1] is None


@pytest.mark.parametrize(
    ("today", "bucket"),
    [
        (date(2026, 11, 1), "ok"),
        (date(2026, 12, 1), "150"),
        (date(2027, 2, 1), "90"),
        (date(2027, 4, 1), "30"),
        (date(2027, 4, 30), "30"),
        (date(2027, 5, 1), "expired"),
    ],
)
def test_license_buckets(today: date, bucket: str) -> None:
    assert license_bucket(date(2027, 4, 30), today, [150, 90, 30]) == bucket


def test_license_alerts_once_per_threshold_with_a_clock_we_control() -> None:
    expires = date(2027, 4, 30)
    state: KeptState | None = None
    alerts = []
    day = date(2026, 11, 1)
    while day <= date(2027, 5, 10):  # every day from 180 days before expiry to 10 days after
        state, kind = license_transition(state, expires, day, [150, 90, 30], NOW)
        if kind is not None:
            alerts.append((day, kind, state.state))
        day += timedelta(days=1)
    assert alerts == [
        (date(2026, 12, 1), Kind.LICENSE_EXPIRING, "150"),
        (date(2027, 1, 30), Kind.LICENSE_EXPIRING, "90"),
        (date(2027, 3, 31), Kind.LICENSE_EXPIRING, "30"),
        (date(2027, 5, 1), Kind.LICENSE_EXPIRED, "expired"),
    ]
    renewed, kind = license_transition(state, date(2029, 4, 30), date(2027, 5, 11), [150, 90, 30], NOW)
    assert (renewed.state, kind) == ("ok", Kind.LICENSE_RENEWED)


def test_review_falls_due_once() -> None:
    state, kind = review_transition(None, date(2027, 1, 1), date(2027, 1, 1), NOW)
    assert kind is None
    state, kind = review_transition(state, date(2027, 1, 1), date(2027, 1, 2), NOW)
    assert kind is Kind.REVIEW_DUE
    assert review_transition(state, date(2027, 1, 1), date(2027, 1, 3), NOW)[1] is None


# -- registry -----------------------------------------------------------------------------------


def _record(registry: Registry, version: str, urls: list[str]) -> bool:
    lic = License(issuer="Dept", program_id="190655AP", expires=date(2027, 4, 30))
    return registry.record_publish(
        slug="a",
        version=version,
        title="A",
        published_at=NOW,
        release_id="r1",
        channels={"web": ["web/a/index.html"], "handout": ["handouts/a.pdf"]},
        licenses=[lic],
        last_reviewed=date(2026, 11, 1),
        next_review=date(2027, 11, 1),
        cited=[(f"S{i}", url) for i, url in enumerate(urls, 1)],
    )


def _publish_record(slug: str, version: str, urls: list[str]) -> PublishRecord:
    lic = License(issuer="Dept", program_id="190655AP", expires=date(2027, 4, 30))
    return PublishRecord(
        slug=slug,
        version=version,
        title=slug.upper(),
        published_at=NOW,
        release_id="r1",
        channels={"web": [f"web/{slug}/index.html"]},
        licenses=[lic],
        last_reviewed=date(2026, 11, 1),
        next_review=date(2027, 11, 1),
        cited=[(f"S{i}", url) for i, url in enumerate(urls, 1)],
    )


def test_registry_records_a_catalog_in_one_call(registry: Registry) -> None:
    shared, only_b = "https://example.org/shared", "https://example.org/b"
    assert _record(registry, "v1", [shared])  # "a" v1 recorded before, one at a time
    records = [
        _publish_record("a", "v1", [shared]),  # recorded already: skipped
        _publish_record("b", "v1", [shared, only_b]),
        _publish_record("c", "v1", [only_b, shared]),
    ]
    assert registry.record_publishes(records) == ["b", "c"]
    assert registry.record_publishes(records) == []  # all recorded: a no-op
    latest = {p.slug: [s.url for s in p.sources] for p in registry.latest_publishes()}
    assert latest == {"a": [shared], "b": [shared, only_b], "c": [only_b, shared]}
    with registry.engine.connect() as conn:  # one source row per URL, however often it is cited
        assert conn.exec_driver_sql("SELECT count(*) FROM sources").scalar() == 2
    # The same version twice in one call: the unique key refuses the second insert; the call
    # falls back to one transaction per record and records it once.
    twice = [_publish_record("d", "v1", [shared]), _publish_record("d", "v1", [shared])]
    assert registry.record_publishes(twice) == ["d"]
    assert registry.unrecorded({"d": "v1"}) == set()


def test_registry_records_publishes_history_and_state(registry: Registry) -> None:
    assert _record(registry, "v1", ["https://example.org/a", "https://example.org/b"])
    assert not _record(registry, "v1", ["https://example.org/a"])  # same version: a no-op
    assert _record(registry, "v2", ["https://example.org/b"])
    [latest] = registry.latest_publishes()
    assert (latest.version, [s.url for s in latest.sources]) == ("v2", ["https://example.org/b"])
    assert latest.has_handout
    assert latest.licenses == [{"program_id": "190655AP", "issuer": "Dept", "expires": "2027-04-30"}]

    registry.record_checks([_result(LinkStatus.OK, "https://example.org/b")], NOW)
    registry.record_checks([_result(LinkStatus.BROKEN, "https://example.org/b")], NOW + timedelta(days=1))
    assert [s for _, s in registry.history("https://example.org/b")] == [LinkStatus.OK, LinkStatus.BROKEN]
    assert registry.history("https://example.org/b")[0][0] == NOW

    registry.record_archive(
        "https://example.org/b", Archived("https://web.archive.org/x", "20240101000000"), NOW
    )
    registry.record_archive("https://example.org/a", None, NOW)
    assert registry.archives(["https://example.org/a", "https://example.org/b"]) == {
        "https://example.org/b": Archived("https://web.archive.org/x", "20240101000000")
    }
    assert registry.archive_checked(["https://example.org/a", "https://example.org/c"]) == {
        "https://example.org/a"
    }

    registry.save_states({"source:x": KeptState("broken", NOW, 2)})
    registry.save_states({"source:x": KeptState("ok", NOW, 0)})
    assert registry.states() == {"source:x": KeptState("ok", NOW, 0)}


# -- pending alerts and the monitor's lease (issue 23) ----------------------------------------------

LOCK = ("monitor", "elsewhere:1:run-a", 60.0)  # another host's run: only its expiry lets it go


def _raised(key: str = "source:x", state: str = "broken", kind: str = "source.broken") -> AlertRecord:
    return AlertRecord(key=key, kind=kind, title=f"[clinicpress] {kind}", body="B", state=state, pending=True)


def _record_run(
    registry: Registry, lock: tuple[str, str, float], raised: list[AlertRecord], at: datetime = NOW
) -> list[PendingAlert]:
    states = {alert.key: KeptState(alert.state, at, 2) for alert in raised}
    return registry.record_monitor(
        lock=lock, renewed_at=at, results=[], checked_at=at, states=states, superseded=[], raised=raised
    )


def test_an_alert_stays_pending_until_a_destination_accepts_it(registry: Registry) -> None:
    assert registry.take_lease(LOCK[0], LOCK[1], LOCK[2], NOW) is None
    [pending] = _record_run(registry, LOCK, [_raised()])
    assert (pending.key, pending.state, pending.attempts, pending.created_at) == (
        "source:x",
        "broken",
        0,
        NOW,
    )
    refused = [{"destination": "alerts.urls[0] json://127.0.0.1:9/a", "ok": False, "error": "refused"}]
    registry.record_attempt(pending.id, refused, NOW + timedelta(days=1), accepted=False)
    [still] = registry.pending_alerts()
    assert (still.id, still.attempts) == (pending.id, 1)
    accepted = [{**refused[0], "ok": True, "error": None}]
    registry.record_attempt(pending.id, accepted, NOW + timedelta(days=2), accepted=True)
    assert registry.pending_alerts() == []
    registry.record_attempt(pending.id, accepted, NOW + timedelta(days=3), accepted=True)  # no-op now
    [row] = registry.alert_log()
    assert (row["status"], row["attempts"], row["delivered_at"]) == ("delivered", 2, NOW + timedelta(days=2))
    assert row["deliveries"] == accepted


def test_one_monitor_lease_at_a_time_and_a_run_that_lost_it_records_nothing(registry: Registry) -> None:
    name, first, ttl = LOCK
    assert registry.take_lease(name, first, ttl, NOW) is None
    busy = registry.take_lease(name, "elsewhere:2:run-b", ttl, NOW + timedelta(seconds=30))
    assert busy is not None
    assert first in busy
    # Expired: another run takes it over; the first, still going, can neither renew nor record.
    assert registry.take_lease(name, "elsewhere:2:run-b", ttl, NOW + timedelta(seconds=61)) is None
    with pytest.raises(LockLost, match="another run took the monitor lock over"):
        registry.renew_lease(name, first, ttl, NOW + timedelta(seconds=62))
    with pytest.raises(LockLost):
        _record_run(registry, LOCK, [_raised()])
    assert registry.states() == {}
    assert registry.pending_alerts() == []
    registry.drop_lease(name, first)  # not its lease any more: changes nothing
    assert registry.take_lease(name, first, ttl, NOW + timedelta(seconds=63)) is not None
    registry.drop_lease(name, "elsewhere:2:run-b")
    assert registry.take_lease(name, first, ttl, NOW + timedelta(seconds=64)) is None


def test_a_killed_runs_lease_lets_go_at_once_on_its_own_host(registry: Registry) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid is dead (and reaped)
    killed = f"{socket.gethostname()}:{gone.pid}:run-killed"
    assert registry.take_lease("monitor", killed, 3600, NOW) is None
    assert registry.take_lease("monitor", f"{socket.gethostname()}:{os.getpid()}:run-next", 3600, NOW) is None


def test_a_version_6_registry_gains_pending_alerts_and_leases(registry: Registry) -> None:
    from sqlalchemy import inspect, text

    from clinicpress.outputs.registry import SCHEMA_VERSION

    added = ("status", "state", "attempts", "last_attempt_at", "delivered_at")
    with registry.engine.begin() as conn:  # today's schema, taken back to what version 6 had
        conn.execute(text("DROP TABLE leases"))
        for column in added:
            conn.execute(text(f"ALTER TABLE alerts DROP COLUMN {column}"))
        conn.execute(
            text(
                "INSERT INTO alerts (key, kind, title, body, created_at, deliveries) "
                "VALUES ('source:old', 'source.broken', 'T', 'B', '2026-01-05 09:30:00', '[]')"
            )
        )
        conn.execute(text("UPDATE schema_info SET version = 6"))
    with Registry(registry.url) as upgraded:
        columns = {c["name"] for c in inspect(upgraded.engine).get_columns("alerts")}
        assert set(added) <= columns
        assert "leases" in inspect(upgraded.engine).get_table_names()
        with upgraded.engine.connect() as conn:
            assert conn.execute(text("SELECT version FROM schema_info")).scalar() == SCHEMA_VERSION >= 7
        assert upgraded.pending_alerts() == []  # an alert from before was recorded as seen: not resent
        assert upgraded.take_lease(*LOCK[:2], LOCK[2], NOW) is None


def _alert(kind: Kind, key: str) -> Alert:
    return Alert(kind=kind, key=key, title=kind.value, body="", articles=(), reprint_needed=False)


def _pending(id: int, key: str, state: str, kind: Kind) -> PendingAlert:
    return PendingAlert(id, key, kind.value, kind.value, "", state, NOW, 1)


def test_a_pending_alert_is_sent_until_its_news_is_over_and_an_unheard_all_clear_is_not() -> None:
    broken = _pending(1, "source:a", "broken", Kind.SOURCE_BROKEN)
    expiring = _pending(2, "license:L", "150", Kind.LICENSE_EXPIRING)
    due = _pending(3, "review:s", "due", Kind.REVIEW_DUE)
    retracted = _pending(4, "integrity:d", "retracted:1a2b3c4d", Kind.SOURCE_RETRACTED)
    states = {
        "source:a": KeptState("ok", NOW),  # works again: the broken alert's news is over ...
        "license:L": KeptState("90", NOW),  # a later threshold: its own alert replaces the 150-day one
        "review:s": KeptState("due", NOW),  # still due: sent again
        # integrity:d not evaluated this run (no answer): kept, not dropped
    }
    alerts = [_alert(Kind.SOURCE_RECOVERED, "source:a"), _alert(Kind.LICENSE_EXPIRING, "license:L")]
    outbox = plan_outbox(alerts, states, [broken, expiring, due, retracted])
    assert outbox.superseded == [1, 2]
    assert outbox.kept == [3, 4]
    # ... and nobody heard of the problem, so its all-clear is stored, never sent.
    assert [(r.kind, r.state, r.pending) for r in outbox.raised] == [
        ("source.recovered", "ok", False),
        ("license.expiring", "90", True),
    ]
    # An all-clear after a problem that was told (nothing pending for it) is sent.
    [told] = plan_outbox([_alert(Kind.SOURCE_RECOVERED, "source:a")], states, []).raised
    assert told.pending


# -- the monitor flow, end to end -----------------------------------------------------------------


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def alert_sinks() -> Iterator[tuple[Receiver, _Mailbox, int]]:
    webhook = Receiver()
    mailbox = _Mailbox()
    port = _free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        yield webhook, mailbox, port
    finally:
        smtp.stop()
        webhook.close()


@pytest.mark.usefixtures("prefect_harness")
def test_publish_then_monitor_alerts_once_per_transition(
    write_article: WriteArticle,
    write_site: Callable[..., Path],
    tmp_path: Path,
    alert_sinks: tuple[Receiver, _Mailbox, int],
) -> None:
    from clinicpress.flows.monitor import monitor_flow
    from clinicpress.flows.publish import publish_flow

    webhook, mailbox, smtp_port = alert_sinks
    dead = f"json://127.0.0.1:{_free_port()}/nobody-listens"
    mail = f"mailto://127.0.0.1:{smtp_port}?from=alerts@example.org&to=ops@example.org&mode=insecure"
    with HTTPFarm() as farm:
        paper = farm.route("/paper", Reply(200))
        # No archive lookup: a loopback source is never named to a third party (checks/archive.py).
        # The snapshot the broken alert offers is recorded below, as a lookup at publish would.
        site = write_site(allow_private_hosts='["127.0.0.1"]', timeout="2.0", retries="0", enabled="false")
        text = site.read_text()
        text = text.replace("urls = []", f"urls = {json.dumps([dead, webhook.url, mail])}\nretries = 1")
        site.write_text(text)
        front = MINIMAL_FRONT_MATTER + f"sources:\n  - {{title: A paper, url: '{farm.url('/paper')}'}}\n"
        article = write_article(front_matter=front, body="A claim.[^1]\n")
        out = tmp_path / "out"

        published = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out))
        assert published.outcomes[0].published
        with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
            snapshot = Archived("https://web.archive.org/web/20240101000000/paper", "20240101000000")
            registry.record_archive(paper, snapshot, NOW)

        def run(status: int) -> list[str]:
            farm.route("/paper", Reply(status))
            result = monitor_flow(site_path=str(site), out_dir=str(out), today=TODAY)
            return [alert.kind for alert in result.alerts]

        assert run(200) == []
        assert run(404) == []  # one failed run: a flapping server pages no one
        assert run(404) == ["source.broken"]
        assert run(404) == []  # still broken: no second alert
        assert run(200) == ["source.recovered"]

    assert [post["type"] for post in webhook.posts] == ["failure", "success"]
    kinds = [post["title"] for post in webhook.posts]
    assert kinds == ["[clinicpress] A cited source is broken", "[clinicpress] A cited source works again"]
    broken = webhook.posts[0]["message"]
    assert paper in broken
    assert "Test Article (test-article) — handout" in broken
    assert "Archived copy: https://web.archive.org/web/20240101000000/paper" in broken
    assert "Reprint needed" in broken
    assert len(mailbox.messages) == 2  # the email destination got both, despite the dead webhook
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        log = registry.alert_log()
        assert [entry["kind"] for entry in log] == ["source.broken", "source.recovered"]
        deliveries = log[0]["deliveries"]
        assert [d["ok"] for d in deliveries] == [False, True, True]
        assert len(registry.history(paper)) == 6  # publish + five monitor runs


def test_deployments_publish_manual_monitor_on_the_site_schedule(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from clinicpress.flows.deployments import build_deployments

    site = write_site(schedule='"30 6 * * 1-5"')
    publish, monitor, review = build_deployments(site, tmp_path / "out")
    assert (publish.name, monitor.name, review.name) == ("publish", "monitor", "review")
    assert not review.schedules  # a person starts a review
    assert not publish.schedules
    [schedule] = monitor.schedules
    assert schedule.schedule.cron == "30 6 * * 1-5"
    assert monitor.parameters == {
        "site_path": str(site.resolve()),
        "out_dir": str((tmp_path / "out").resolve()),
    }


@pytest.mark.usefixtures("prefect_harness")
def test_monitor_cli_with_nothing_published(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clinicpress.cli import app

    result = CliRunner().invoke(app, ["monitor", "--out", str(tmp_path / "empty")])
    assert result.exit_code == 0, result.output
    assert "nothing published" in result.stdout


def test_the_renewal_wording_follows_license_warn_days() -> None:
    from clinicpress.checks.transitions import Kind
    from clinicpress.outputs.alerts import license_alert

    alert = license_alert(Kind.LICENSE_EXPIRING, "190655AP", "DHCS", "2027-01-31", "60", [], [14, 60])
    assert "alerts at 60, 14 days before expiry: [checks] license_warn_days" in alert.body
    assert "150" not in alert.body
