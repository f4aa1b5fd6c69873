"""``clinicpress newsletter resolve``: a person's verdict on an uncertain recipient, from the CLI.

The store holds real uncertain recipients: the SMTP test server drops the
connection after their message data (tests/smtpserver.py). The command runs
as the operator runs it (a subprocess), and in-process (typer's CliRunner)
for the refusals.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REFERENCE_SITE, another_text
from smtpserver import SMTPTestServer
from typer.testing import CliRunner

from clinicpress.cli import app
from clinicpress.outputs.delivery import SendReport, send_newsletter
from clinicpress.outputs.subscribers import Subscriber
from clinicpress.renderers.base import RenderContext
from clinicpress.site import SiteConfig, Smtp
from clinicpress.sources.article import Article

V1, V2 = "1" * 64, "2" * 64
READERS = [Subscriber(f"reader{i}@example.org", f"https://example.org/unsub?r={i}") for i in range(3)]


@pytest.fixture
def server() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as srv:
        yield srv


def send(
    article: Article, site: SiteConfig, out: Path, server: SMTPTestServer, version: str = V1
) -> SendReport:
    smtp = Smtp.model_validate({"host": server.host, "port": server.port, "security": "none", "timeout": 5})
    context = RenderContext(published_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC), version=version)
    return send_newsletter(article, site, context, out, recipients=READERS, smtp=smtp, reconnect_delay=0.02)


def resolve(out: Path, *args: str) -> tuple[int, str, str]:
    """``clinicpress newsletter resolve ARGS --site … --out OUT`` in-process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(
        app, ["newsletter", "resolve", *args, "--site", str(REFERENCE_SITE), "--out", str(out)]
    )
    return result.exit_code, result.stdout, result.stderr


def messages_to(server: SMTPTestServer, readers: Sequence[Subscriber]) -> list[int]:
    return [len(server.messages_to(r.email)) for r in readers]


def test_resolve_from_the_command_line_then_the_next_run_sends_only_the_not_sent(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    server.drop_after_data = {1, 2}  # reader0 and reader1: the server may have their messages
    first = send(article, site, tmp_path, server)
    assert [i.email for i in first.uncertain_recipients] == ["reader0@example.org", "reader1@example.org"]
    assert "clinicpress newsletter resolve" in first.summary()  # the report says what to do

    base = [sys.executable, "-m", "clinicpress", "newsletter", "resolve", article.key]
    where = ["--site", str(REFERENCE_SITE), "--out", str(tmp_path)]
    sent = subprocess.run(
        [*base, "reader0@example.org", "--sent", *where], capture_output=True, text=True, timeout=60
    )
    assert sent.returncode == 0, sent.stderr
    assert "uncertain → accepted" in sent.stdout
    not_sent = subprocess.run(
        [*base, "Reader1@Example.org", "--not-sent", *where], capture_output=True, text=True, timeout=60
    )
    assert not_sent.returncode == 0, not_sent.stderr
    assert "uncertain → pending" in not_sent.stdout
    again = subprocess.run(
        [*base, "reader0@example.org", "--not-sent", *where], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 2
    [line] = again.stderr.strip().splitlines()  # one line, no traceback
    assert "'reader0@example.org' is not uncertain" in line
    assert "accepted" in line

    report = send(article, site, tmp_path, server)
    assert report.sent == 1, report.summary()  # only the one the person said was not sent
    assert (report.accepted, report.uncertain) == (3, 0)
    assert report.complete
    assert messages_to(server, READERS) == [1, 2, 1]  # reader1 twice: by the person's decision


@pytest.mark.parametrize(
    ("slug", "email", "says"),
    [
        ("no-such-article", "reader0@example.org", "no newsletter of 'no-such-article' was sent"),
        (None, "stranger@example.org", "'stranger@example.org' is not a recipient of newsletter"),
        (None, "reader2@example.org", "'reader2@example.org' is not uncertain"),
    ],
)
def test_resolve_refuses_what_it_cannot_resolve_with_exit_2(
    article: Article,
    site: SiteConfig,
    tmp_path: Path,
    server: SMTPTestServer,
    slug: str | None,
    email: str,
    says: str,
) -> None:
    server.drop_after_data = {1}
    send(article, site, tmp_path, server)
    code, _, err = resolve(tmp_path, slug or article.key, email, "--sent")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert says in err


def test_resolve_asks_for_the_version_when_uncertain_in_two(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    server.drop_after_data = {1, 4}  # reader0 in both versions
    send(article, site, tmp_path, server, V1)
    send(another_text(article), site, tmp_path, server, V2)
    code, _, err = resolve(tmp_path, article.key, "reader0@example.org", "--sent")
    assert code == 2
    assert "uncertain in 2 versions" in err
    assert "--version" in err

    code, out, err = resolve(tmp_path, article.key, "reader0@example.org", "--sent", "--version", V2[:8])
    assert code == 0, err
    assert f"version {V2[:12]}" in out
    code, _, err = resolve(tmp_path, article.key, "reader0@example.org", "--not-sent")  # V1 is left
    assert code == 0, err


def test_resolve_needs_a_verdict_and_an_existing_registry(tmp_path: Path) -> None:
    code, _, err = resolve(tmp_path, "an-article", "reader0@example.org")
    assert code == 2
    assert "--sent" in err
    code, _, err = resolve(tmp_path / "typo", "an-article", "reader0@example.org", "--sent")
    assert code == 2
    assert "no registry" in err
    assert not (tmp_path / "typo").exists()  # a mistyped --out is not created
