"""Alerts at least once, never twice (issue 23), and destinations shown only in apprise's privacy form.

- A webhook that refuses for two monitor runs, then accepts, gets the alert exactly once: on the
  third run, saying how long it waited.
- Two ``clinicpress monitor`` processes started together after a source broke send one alert in
  all. The overlap is forced, not hoped for: a run that got past the monitor lock holds at the
  ``monitor.record`` pause point (clinicpress/faults.py: it has read the states, it has recorded
  nothing) until every run is either held there or finished. Without the lock both would be
  held there, both having seen the source as it was, and both would alert.
- A destination apprise cannot parse, or whose plugin fails, never stops the others, and no
  destination is ever shown with its tokens.

Destinations that would leave the machine (Pushover, Telegram) go through an HTTPS proxy on a
closed loopback port: they fail at once and nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import MINIMAL_FRONT_MATTER, ROOT, TODAY, WriteArticle
from httpfarm import HTTPFarm, Reply
from prefect_server import free_port
from webhook import Gate, Receiver

from clinicpress.faults import FAULT_ENV, GO
from clinicpress.outputs.alerts import deliver, destination_label, outgoing_message
from clinicpress.outputs.registry import PendingAlert, Registry

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
PUSHOVER = "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi"
TELEGRAM = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/42"


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def no_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every HTTPS request apprise makes to a service's own host goes to a closed loopback port."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# -- how a destination is shown ---------------------------------------------------------------------


def test_destinations_are_shown_in_apprises_privacy_form_never_in_clear() -> None:
    secrets = {
        PUSHOVER: ["uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "azGDORePK8gMaC0QOYAMyEEuzJnyUi"],
        TELEGRAM: ["AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"],
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general": ["TIiajkdnlazkcOXrIdevi7FQ"],
        "mailtos://alerts:mailPa55word@mail.example.org?to=ops@example.org": ["mailPa55word"],
        "json://hook:hookPa55word@127.0.0.1:9/alerts?+X-Token=headerSecret": ["hookPa55word", "headerSecret"],
        "not a url at all hookPa55word": ["hookPa55word"],
    }
    shown = [destination_label(index, url) for index, url in enumerate(secrets)]
    assert shown == [
        "alerts.urls[0] pover://u...G@a...i//",
        "alerts.urls[1] tgram://1...w/42/",
        "alerts.urls[2] slack://T...2/A...D/T...Q/%23general/",
        "alerts.urls[3] mailtos://alerts:****@mail.example.org/ops%40example.org",
        "alerts.urls[4] json://hook:****@127.0.0.1:9/alerts",
        "alerts.urls[5] (unparseable)",
    ]
    for label, words in zip(shown, secrets.values(), strict=True):
        assert not any(word in label for word in words), label


@pytest.mark.usefixtures("no_way_out")
def test_an_unparseable_or_failing_destination_never_stops_the_others(webhook: Receiver) -> None:
    alert = PendingAlert(1, "source:a", "source.broken", "[clinicpress] T", "Body.", "broken", NOW, 0)
    urls = [TELEGRAM, "nonsense://", webhook.url, PUSHOVER]
    deliveries = deliver(alert, urls, now=NOW, retries=0)
    assert [(d.destination, d.ok) for d in deliveries] == [
        ("alerts.urls[0] tgram://1...w/42/", False),
        ("alerts.urls[1] (unparseable)", False),
        (f"alerts.urls[2] {webhook.url}", True),
        ("alerts.urls[3] pover://u...G@a...i//", False),
    ]
    assert deliveries[1].error == "apprise cannot parse this URL"
    assert [post["message"] for post in webhook.posts] == ["Body.\nAlert kind: source.broken"]


def test_a_destination_that_failed_this_run_is_tried_once_for_the_next_alerts(webhook: Receiver) -> None:
    gate = Gate(webhook)
    failed: set[int] = set()
    for n in (1, 2, 3):
        alert = PendingAlert(n, f"review:{n}", "review.due", "[clinicpress] T", "B", "due", NOW, 0)
        [delivery] = deliver(alert, [webhook.url], now=NOW, retries=2, backoff=0, failed=failed)
        assert not delivery.ok
    assert len(gate.refused) == 3 + 1 + 1  # the retries for the first alert only
    assert failed == {0}


def test_a_late_alert_says_how_long_it_waited() -> None:
    alert = PendingAlert(1, "review:a", "review.due", "[clinicpress] T", "Body.", "due", NOW, 2)
    assert outgoing_message(alert, NOW) == "Body.\nAlert kind: review.due"  # the run that raised it
    late = outgoing_message(alert, NOW + timedelta(days=3, hours=5))
    assert late.splitlines()[0] == (
        "Pending since November 27, 2026 08:00 UTC (3 days): no alert destination accepted it until now."
    )


def test_zero_destinations_says_why_and_keeps_the_alert() -> None:
    from clinicpress.flows.monitor import AlertOutcome, MonitorResult

    alert = AlertOutcome(kind="source.broken", title="[clinicpress] T", body="B", delivered=0, failed=[])
    result = MonitorResult(articles=1, sources=1, statuses={"broken": 1}, alerts=[alert], destinations=0)
    assert result.lines()[1] == (
        "  alert source.broken: [clinicpress] T — delivered to 0 destination(s): no [alerts] urls "
        "configured in site.toml; kept pending for the next run"
    )


# -- the monitor flow: at least once ----------------------------------------------------------------


def _site(write_site: Callable[..., Path], urls: list[str]) -> Path:
    """A site whose monitor alerts on the first failed run, to ``urls``, with no archive lookups."""
    site = write_site(
        allow_private_hosts='["127.0.0.1"]',
        timeout="2.0",
        retries="0",
        enabled="false",  # [archive]: nothing to look up on loopback
        failures_before_alert="1",
    )
    site.write_text(site.read_text().replace("urls = []", f"urls = {json.dumps(urls)}\nretries = 0"))
    return site


@pytest.mark.usefixtures("prefect_harness")
def test_a_refused_alert_is_delivered_exactly_once_on_the_first_run_a_destination_accepts(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path, webhook: Receiver
) -> None:
    from clinicpress.flows.monitor import monitor_flow
    from clinicpress.flows.publish import publish_flow

    gate = Gate(webhook)
    site = _site(write_site, [webhook.url])
    out = tmp_path / "out"
    with HTTPFarm() as farm:
        paper = farm.route("/paper", Reply(200))
        front = MINIMAL_FRONT_MATTER + f"sources:\n  - {{title: A paper, url: '{paper}'}}\n"
        article = write_article(front_matter=front, body="A claim.[^1]\n")
        assert publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out)).outcomes[0].published
        farm.route("/paper", Reply(404))
        runs = []
        for accepting in (False, False, True, True):
            if accepting:
                gate.open()
            runs.append(monitor_flow(site_path=str(site), out_dir=str(out), today=TODAY))

    assert [[a.kind for a in run.alerts] for run in runs] == [["source.broken"], [], [], []]
    assert [[a.delivered for a in run.retried] for run in runs] == [[], [0], [1], []]
    assert len(gate.refused) == 2  # one try per run while the webhook refused
    [post] = webhook.posts  # then exactly one delivery, and none after it
    assert post["title"] == "[clinicpress] A cited source is broken"
    assert post["message"].startswith("Pending since ")
    assert paper in post["message"]
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        [row] = registry.alert_log()
    assert (row["status"], row["attempts"]) == ("delivered", 3)


@pytest.mark.usefixtures("prefect_harness")
def test_a_source_broken_once_says_when_it_will_alert(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path, webhook: Receiver
) -> None:
    """Not "no changes": the first failed run says what is broken and after how many runs it alerts."""
    from clinicpress.flows.monitor import monitor_flow
    from clinicpress.flows.publish import publish_flow

    site = _site(write_site, [webhook.url])
    site.write_text(site.read_text().replace("failures_before_alert = 1", "failures_before_alert = 2"))
    out = tmp_path / "out"
    with HTTPFarm() as farm:
        paper = farm.route("/paper", Reply(200))
        front = MINIMAL_FRONT_MATTER + f"sources:\n  - {{title: A paper, url: '{paper}'}}\n"
        article = write_article(front_matter=front, body="A claim.[^1]\n")
        assert publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out)).outcomes[0].published
        farm.route("/paper", Reply(404))
        first = monitor_flow(site_path=str(site), out_dir=str(out), today=TODAY)
        second = monitor_flow(site_path=str(site), out_dir=str(out), today=TODAY)
    assert first.lines()[1:] == ["  1 broken, not alerted yet (alerts after 2 failures in a row)"]
    assert [a.kind for a in second.alerts] == ["source.broken"]
    assert len(webhook.posts) == 1


# -- two monitor runs at once: never twice ----------------------------------------------------------


def _start_monitor(site: Path, out: Path, held: Path) -> subprocess.Popen[str]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env[FAULT_ENV] = f"monitor.record:pause:{held}"
    command = [sys.executable, "-m", "clinicpress", "monitor", "--site", str(site), "--out", str(out)]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _each_held_or_done(held: Path, runs: list[subprocess.Popen[str]], timeout: float = 240) -> None:
    """Until every run either waits at the pause point or has ended (and at least one waits)."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = len(list(held.glob("*.waiting")))
        ended = sum(run.poll() is not None for run in runs)
        if waiting and waiting + ended >= len(runs):
            return
        if ended == len(runs):
            outputs = [run.communicate() for run in runs]
            pytest.fail(f"no run reached the monitor.record pause point: {outputs}")
        assert time.monotonic() < deadline, f"runs neither held nor ended after {timeout} s"
        time.sleep(0.05)


@pytest.mark.usefixtures("prefect_harness")
def test_two_monitor_runs_started_together_send_one_alert(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path, webhook: Receiver
) -> None:
    from clinicpress.flows.publish import publish_flow

    site = _site(write_site, [webhook.url])
    out = tmp_path / "out"
    held = tmp_path / "held"
    held.mkdir()
    with HTTPFarm() as farm:
        paper = farm.route("/paper", Reply(200))
        front = MINIMAL_FRONT_MATTER + f"sources:\n  - {{title: A paper, url: '{paper}'}}\n"
        article = write_article(front_matter=front, body="A claim.[^1]\n")
        assert publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out)).outcomes[0].published
        farm.route("/paper", Reply(404))  # the source broke: the next run alerts
        runs = [_start_monitor(site, out, held) for _ in range(2)]
        try:
            _each_held_or_done(held, runs)
        finally:
            (held / GO).touch()
        try:
            outputs = [run.communicate(timeout=300) for run in runs]
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
    said = "\n".join(
        f"exit {run.returncode}:\n{out}{err}" for run, (out, err) in zip(runs, outputs, strict=True)
    )
    assert [run.returncode for run in runs] == [0, 0], said
    assert len(webhook.posts) == 1, said  # one alert in all
    assert sorted("another monitor run is running" in out for out, _ in outputs) == [False, True], said
    assert sum("alert source.broken" in out for out, _ in outputs) == 1, said
