"""A send's numbers that say whether the newsletter is working (issue 28, part 4).

The monitor alerts once when a send's complaints pass ``[newsletter] complaint_alert_rate`` (0.1 %)
or its hard bounces ``bounce_alert_rate`` (2 %) of its accepted messages, through the pending
alert machinery (``alert_state`` keys ``send:<slug>:<version>:complaints`` / ``:bounces``).

End to end: a send to the SMTP sink (tests/smtpserver.py), a DSN and an ARF report about two of
its messages in a Maildir, ``clinicpress newsletter bounces``, then ``clinicpress monitor`` twice:
one alert reaches the webhook (tests/webhook.py), not two, and not the bounce alert (1 of 60 is
under 2 %).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import TODAY
from smtpserver import SMTPTestServer
from typer.testing import CliRunner
from webhook import Receiver

from clinicpress.checks.transitions import KeptState
from clinicpress.cli import app
from clinicpress.outputs.alerts import AlertKey, LoopKind, alert_kind
from clinicpress.outputs.delivery import send_newsletter
from clinicpress.outputs.delivery.loop import SendRates
from clinicpress.outputs.monitoring import RATE_OVER, evaluate, rate_transition
from clinicpress.outputs.registry import Registry
from clinicpress.outputs.subscribers import Subscriber
from clinicpress.renderers.base import RenderContext
from clinicpress.site import SiteConfig, Smtp, load_site
from clinicpress.sources.article import Article

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
V1 = "3" * 64
MAIL = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
runner = CliRunner()


def rates(accepted: int, bounced: int = 0, complained: int = 0, version: str = V1) -> SendRates:
    return SendRates("ketamine", version, "Ketamine therapy", accepted, bounced, complained)


# -- the decisions (pure) -------------------------------------------------------------------------


def test_a_rate_alerts_the_run_it_passes_the_threshold_and_never_again() -> None:
    state: KeptState | None = None
    passed = []
    for percent in [0.0, 0.1, 0.2, 0.3, 0.05, 0.4]:  # 0.1 is not past 0.1; a dip and a rise: no news
        state, alert = rate_transition(state, percent, 0.1, NOW)
        passed.append(alert)
    assert passed == [False, False, True, False, False, False]
    assert state is not None
    assert state.state == RATE_OVER


def test_each_send_alerts_once_per_rate_over_its_threshold(site: SiteConfig) -> None:
    sends = [
        rates(1000, bounced=20, complained=1),  # exactly 2 % and 0.1 %: not past either
        rates(1000, bounced=21, complained=2, version="4" * 64),  # past both
        rates(0),  # nothing accepted: no rate
    ]
    first = evaluate([], {}, {}, {}, site, today=TODAY, now=NOW, sends=sends)
    kinds = sorted((a.kind.value, a.key) for a in first.alerts if isinstance(a.kind, LoopKind))
    assert kinds == [
        ("newsletter.bounces", f"send:ketamine:{'4' * 64}:bounces"),
        ("newsletter.complaints", f"send:ketamine:{'4' * 64}:complaints"),
    ]
    complaint = next(a for a in first.alerts if a.kind is LoopKind.NEWSLETTER_COMPLAINTS)
    assert "2 complaints of 1000 accepted messages (0.20 %)" in complaint.body
    assert "complaint_alert_rate (0.1 %)" in complaint.body
    second = evaluate([], {}, first.states, {}, site, today=TODAY, now=NOW + timedelta(days=1), sends=sends)
    assert [a for a in second.alerts if isinstance(a.kind, LoopKind)] == []  # the state remembers: once


def test_the_thresholds_are_settings(site: SiteConfig) -> None:
    news = site.newsletter
    assert (news.complaint_alert_rate, news.bounce_alert_rate) == (0.1, 2.0)
    strict = site.model_copy(update={"newsletter": news.model_copy(update={"bounce_alert_rate": 1.0})})
    found = evaluate([], {}, {}, {}, strict, today=TODAY, now=NOW, sends=[rates(100, bounced=2)])
    assert [a.kind for a in found.alerts if isinstance(a.kind, LoopKind)] == [LoopKind.NEWSLETTER_BOUNCES]


def test_the_key_is_built_in_one_place_and_the_kinds_are_known() -> None:
    assert AlertKey.send_rate("a", "v", LoopKind.NEWSLETTER_COMPLAINTS) == "send:a:v:complaints"
    assert AlertKey.send_rate("a", "v", LoopKind.NEWSLETTER_BOUNCES) == "send:a:v:bounces"
    assert alert_kind("newsletter.bounces") is LoopKind.NEWSLETTER_BOUNCES
    assert alert_kind("source.broken").value == "source.broken"


# -- end to end -----------------------------------------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def smtp() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as server:
        yield server


def report_about(fixture: str, *, address: str, message_id: str, was: str, was_id: str) -> bytes:
    """A real-format report (tests/fixtures/mail/) made about one of the messages we sent."""
    text = (MAIL / fixture).read_text(encoding="ascii")
    assert was in text
    assert was_id in text
    return text.replace(was, address).replace(was_id, message_id).encode("ascii")


def maildir_with(folder: Path, reports: dict[str, bytes]) -> Path:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name, data in reports.items():
        (folder / "new" / f"{name}:2,").write_bytes(data)
    return folder


@pytest.mark.usefixtures("prefect_harness")
def test_a_send_whose_complaints_pass_the_rate_alerts_once_through_the_webhook(
    article: Article,
    write_site: Callable[..., Path],
    smtp: SMTPTestServer,
    webhook: Receiver,
    tmp_path: Path,
) -> None:
    path = write_site()
    path.write_text(path.read_text().replace("urls = []", f'urls = ["{webhook.url}"]', 1))
    site = load_site(path)
    out = tmp_path / "out"
    readers = [Subscriber(f"reader{i}@example.org") for i in range(60)]
    server = Smtp.model_validate({"host": smtp.host, "port": smtp.port, "security": "none", "timeout": 5})
    context = RenderContext(published_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC), version=V1)
    report = send_newsletter(article, site, context, out, recipients=readers, smtp=server)
    assert report.complete, report.summary()
    assert report.accepted == 60

    sent = {r.rcpt_tos[0]: str(r.message()["Message-ID"]) for r in smtp.accepted}
    # One complaint (1 of 60: past 0.1 %) and one hard bounce (1 of 60: under 2 %).
    folder = maildir_with(
        tmp_path / "bounces",
        {
            "1.arf": report_about(
                "arf-abuse.eml",
                address="reader7@example.org",
                message_id=sent["reader7@example.org"],
                was="reader@example.net",
                was_id="<ketamine-therapy.1111111111111111.dddddddddddd@clinic.example>",
            ),
            "2.dsn": report_about(
                "dsn-user-unknown.eml",
                address="reader9@example.org",
                message_id=sent["reader9@example.org"],
                was="reader@example.net",
                was_id="<ketamine-therapy.1111111111111111.aaaaaaaaaaaa@clinic.example>",
            ),
        },
    )
    where = ["--site", str(path), "--out", str(out)]
    read = runner.invoke(app, ["newsletter", "bounces", "--maildir", str(folder), *where])
    assert read.exit_code == 0, read.output
    stats = runner.invoke(app, ["newsletter", "stats", article.key, *where])
    assert "bounced 1 (1.67 % of accepted), complained 1 (1.67 % of accepted)" in stats.stdout, stats.output

    first = runner.invoke(app, ["monitor", *where])
    assert first.exit_code == 0, first.output
    assert "alert newsletter.complaints" in first.stdout, first.stdout
    assert "delivered to 1 of 1 destination(s)" in first.stdout
    second = runner.invoke(app, ["monitor", *where])
    assert second.exit_code == 0, second.output
    assert "alert " not in second.stdout, second.stdout

    assert len(webhook.posts) == 1, [post["title"] for post in webhook.posts]
    (post,) = webhook.posts
    assert post["type"] == "failure"
    assert post["title"].startswith("[clinicpress] Newsletter complaints at 1.67 %")
    assert "1 complaints of 60 accepted messages (1.67 %)" in post["message"]
    assert post["message"].endswith("Alert kind: newsletter.complaints")
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        log = registry.alert_log()
        states = registry.states()
    assert [(e["kind"], e["key"], e["status"]) for e in log] == [
        ("newsletter.complaints", f"send:{article.key}:{V1}:complaints", "delivered")
    ]
    assert states[f"send:{article.key}:{V1}:complaints"].state == "over"
    assert states[f"send:{article.key}:{V1}:bounces"].state == "ok"
    assert re.search(r"\bbounces\b", post["message"]) is None  # the bounce rate stayed under 2 %
