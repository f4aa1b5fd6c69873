"""No secret in a log, an artifact or the registry (issue 23, part 2), end to end.

Five alert destinations that carry secrets (Pushover, Telegram, Slack, a ``mailtos://`` with a
password, a ``json://user:pass@`` webhook) and an SMTP password given as
``CLINICPRESS_NEWSLETTER__SMTP__PASSWORD`` to a TLS SMTP server that asks for a login. After a
publish that sends the newsletter and two monitor runs (the first with the webhook refusing, the
second delivering the pending alert, with ``-v`` and a logging config that asks for apprise's
DEBUG records on stderr and in Prefect), every secret is searched for, in every form it
could take on the way (as is, URL-quoted, in an HTTP Basic header), in: the processes' stdout
and stderr, every file under ``--out``, every row of the registry, and the Prefect API's flow
runs, task runs, logs, artifacts and events. Found: none.

Nothing leaves 127.0.0.1: the services with a fixed host (Pushover, Telegram, Slack) are reached
through an HTTPS proxy on a closed loopback port (they fail at once), the mail destination points
at a closed loopback port.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import MINIMAL_FRONT_MATTER, ROOT, TEST_UNSUBSCRIBE_SECRET, WriteArticle
from httpfarm import HTTPFarm, Reply
from prefect_server import free_port
from requirements import need
from smtpserver import SMTPTestServer, self_signed_cert
from webhook import Gate, Receiver

SUBSCRIBERS = ("ann@example.org", "bob@example.org", "cy@example.org")
SECRETS = {
    "pushover user key": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
    "pushover app token": "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
    "telegram bot token": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    "slack token": "TIiajkdnlazkcOXrIdevi7FQ",
    "mail password": "mailPa55word-x7Kq2",
    "webhook password": "hookPa55word-m3Zt8",
    "smtp password": "smtpPa55word-q9Lw4",
    "unsubscribe secret": TEST_UNSUBSCRIBE_SECRET,  # set for every test by conftest
}

# A logging config (PREFECT_LOGGING_SETTINGS_PATH) that sends apprise's DEBUG records to stderr
# and to the Prefect API.
VERBOSE_LOGGING = """\
version: 1
disable_existing_loggers: false
formatters:
  plain: {format: "%(name)s %(levelname)s %(message)s"}
handlers:
  console: {class: logging.StreamHandler, formatter: plain, stream: "ext://sys.stderr"}
  api: {class: prefect.logging.handlers.APILogHandler, level: 0}
loggers:
  prefect: {level: INFO}
  prefect.flow_runs: {level: NOTSET, handlers: [api]}
  prefect.task_runs: {level: NOTSET, handlers: [api]}
  apprise: {level: DEBUG, handlers: [console, api], propagate: false}
root: {level: WARNING, handlers: [console]}
"""


def _forms(name: str, secret: str) -> list[bytes]:
    """Each way ``secret`` could be written down: as is, URL-quoted, in a Basic authorization."""
    forms = {secret, quote(secret, safe=""), secret.partition(":")[2] or secret}
    user = {"mail password": "alerts", "webhook password": "hook", "smtp password": "news"}.get(name)
    if user is not None:
        forms.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return [form.encode() for form in forms]


def _hits(where: str, data: bytes) -> list[str]:
    return [f"{name} in {where}" for name, s in SECRETS.items() for form in _forms(name, s) if form in data]


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "tls"
    folder.mkdir()
    made = self_signed_cert(folder)
    if made is None:
        need("openssl", "the openssl command makes the test certificate (apt-get install -y openssl)")
    return made


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


def _prefect_records(since: datetime) -> Iterator[tuple[str, bytes]]:
    """Everything the session's Prefect API recorded since ``since``: (what, JSON)."""
    from prefect.settings import PREFECT_API_URL

    after = since.isoformat()
    with httpx.Client(base_url=str(PREFECT_API_URL.value()), timeout=30) as api:
        runs = api.post("/flow_runs/filter", json={"flow_runs": {"start_time": {"after_": after}}}).json()
        ids = [run["id"] for run in runs]
        assert ids, "no flow run recorded by the Prefect API"
        yield "flow runs", json.dumps(runs).encode()
        by_run = {"flow_runs": {"id": {"any_": ids}}}
        yield "task runs", api.post("/task_runs/filter", json=by_run).content
        yield (
            "artifacts",
            api.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": ids}}}).content,
        )
        offset = 0
        while page := api.post(
            "/logs/filter", json={"logs": {"timestamp": {"after_": after}}, "offset": offset, "limit": 200}
        ).json():
            yield f"logs {offset}-", json.dumps(page).encode()
            offset += len(page)
        window = {
            "occurred": {"since": after, "until": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}
        }
        reply = api.post("/events/filter", json={"filter": window, "limit": 50}).json()
        while True:
            yield "events", json.dumps(reply["events"]).encode()
            if not reply.get("next_page"):
                break
            reply = api.get(reply["next_page"]).json()


def _registry_rows(site: Path, out: Path) -> bytes:
    from sqlalchemy import MetaData

    from clinicpress.outputs.registry import Registry, registry_url
    from clinicpress.site import load_site

    with Registry(registry_url(load_site(site), out)) as registry:
        tables = MetaData()
        tables.reflect(registry.engine)
        with registry.engine.connect() as conn:
            rows: dict[str, Any] = {
                name: [list(row) for row in conn.execute(table.select())]
                for name, table in tables.tables.items()
            }
    assert rows["alerts"], "the monitor recorded no alert"
    return json.dumps(rows, default=str).encode()


@pytest.mark.usefixtures("prefect_harness")
def test_no_secret_in_output_files_registry_or_prefect(
    write_article: WriteArticle,
    write_site: Callable[..., Path],
    tmp_path: Path,
    cert: tuple[Path, Path],
    webhook: Receiver,
) -> None:
    from prefect.settings import PREFECT_API_URL

    since = datetime.now(UTC) - timedelta(seconds=5)  # the API's own (real) clock
    gate = Gate(webhook)
    closed = free_port()  # nothing listens: the mail destination and the proxy fail at once
    hook = webhook.url.replace("json://", f"json://hook:{SECRETS['webhook password']}@")
    destinations = [
        f"pover://{SECRETS['pushover user key']}@{SECRETS['pushover app token']}",
        f"tgram://{SECRETS['telegram bot token']}/42",
        f"slack://T1JJ3T3L2/A1BRTD4JD/{SECRETS['slack token']}/#general",
        f"mailtos://alerts:{SECRETS['mail password']}@127.0.0.1:{closed}"
        "?from=alerts@example.org&to=ops@example.org",
        hook,
    ]
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text("email\n" + "\n".join(SUBSCRIBERS) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    said: list[tuple[str, bytes]] = []
    with (
        SMTPTestServer(tls="starttls", cert=cert, auth=("news", SECRETS["smtp password"])) as smtp,
        HTTPFarm() as farm,
    ):
        paper = farm.route("/paper", Reply(200))
        site = write_site(
            allow_private_hosts='["127.0.0.1"]',
            timeout="2.0",
            retries="0",
            enabled="false",  # [archive]
            failures_before_alert="1",
            postal_address='"Serenity Malibu, 22969 Pacific Coast Highway, Malibu, CA 90265"',
            unsubscribe_mailto='"unsubscribe@serenitymaliburehab.com"\n'
            f'subscribers = "{subscribers}"\n\n'
            f'[newsletter.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "starttls"\n'
            'username = "news"\ntimeout = 5',
        )
        site.write_text(
            site.read_text().replace("urls = []", f"urls = {json.dumps(destinations)}\nretries = 0")
        )
        front = MINIMAL_FRONT_MATTER + f"sources:\n  - {{title: A paper, url: '{paper}'}}\n"
        article = write_article(front_matter=front, body="A claim.[^1]\n")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CLINICPRESS_FAULT")},
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "CLINICPRESS_NEWSLETTER__SMTP__PASSWORD": SECRETS["smtp password"],
            "SSL_CERT_FILE": str(cert[0]),  # the CLI trusts the test server's certificate
            "HTTPS_PROXY": f"http://127.0.0.1:{closed}",
            "NO_PROXY": "127.0.0.1,localhost",
        }

        def run(*args: str, **more_env: str) -> str:
            command = [sys.executable, "-m", "clinicpress", *args, "--site", str(site), "--out", str(out)]
            done = subprocess.run(
                command, cwd=ROOT, env={**env, **more_env}, capture_output=True, timeout=300, check=False
            )
            said.extend([(f"stdout of {args[0]}", done.stdout), (f"stderr of {args[0]}", done.stderr)])
            text = (done.stdout + done.stderr).decode(errors="replace")
            assert done.returncode == 0, text
            return text

        run("publish", str(article))
        assert sorted(r.rcpt_tos[0] for r in smtp.accepted) == sorted(
            SUBSCRIBERS
        )  # sent, over TLS, logged in
        farm.route("/paper", Reply(404))
        first = run("monitor")
        assert "kept pending" in first
        gate.open()
        # As verbose as an operator can make it: apprise's own debug records (they carry tokens) asked
        # for on stderr and in Prefect's logs.
        logging_config = tmp_path / "logging.yml"
        logging_config.write_text(VERBOSE_LOGGING, encoding="utf-8")
        second = run("monitor", "-v", PREFECT_LOGGING_SETTINGS_PATH=str(logging_config))
        assert "pending since" in second
    assert len(gate.refused) == 1
    assert len(webhook.posts) == 1  # the pending alert, delivered by the second run

    found: list[str] = []
    for where, data in said:
        found += _hits(where, data)
    files = [path for path in out.rglob("*") if path.is_file()]
    assert any(path.name.endswith(".pdf") for path in files)
    for path in files:
        found += _hits(str(path.relative_to(out)), path.read_bytes())
    found += _hits("the registry's rows", _registry_rows(site, out))
    recorded = list(_prefect_records(since))
    kinds = {what.split()[0] for what, _ in recorded}
    assert kinds == {"flow", "task", "artifacts", "logs", "events"}, kinds
    assert any(b'"clinicpress.source.broken"' in data for what, data in recorded if what == "events")
    for where, data in recorded:
        found += _hits(f"Prefect's {where}", data)
    assert not found, "\n".join(sorted(set(found)))
