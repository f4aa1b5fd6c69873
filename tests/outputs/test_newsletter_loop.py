"""The newsletter's loop, wired end to end (issue 28's "done when").

A send to subscribers through the SMTP sink (tests/smtpserver.py) carries a DKIM signature that
verifies against the published key and each recipient's signed one-click link; POSTing that link
to ``clinicpress unsubscribe-server`` (a process on 127.0.0.1) suppresses the address and the next
send (a new version) skips it; a bounce and a complaint in a Maildir suppress theirs through
``clinicpress newsletter bounces --maildir``; a From domain without DMARC (tests/dnsserver.py)
stops the send with the missing record named while the web page publishes. Each mechanism has a
test that fails without it (the mutants are listed in docs/development/guarantees.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dkim
import pytest
from conftest import MINIMAL_FRONT_MATTER, ROOT, TEST_UNSUBSCRIBE_SECRET, WriteArticle, another_text
from cryptography.hazmat.primitives.asymmetric import rsa
from dkimkeys import key_record, new_key, private_pem
from dnsserver import DNSTestServer
from httpfarm import HTTPFarm, Reply
from smtpserver import SMTPTestServer
from typer.testing import CliRunner

from clinicpress import clock
from clinicpress.cli import app
from clinicpress.outputs.delivery import SendReport, send_newsletter
from clinicpress.outputs.delivery.bounces import IMAP_PASSWORD_ENV
from clinicpress.outputs.delivery.suppression import SuppressionStore
from clinicpress.outputs.delivery.unsubscribe import read_token
from clinicpress.outputs.registry import registry_url
from clinicpress.outputs.subscribers import Subscriber
from clinicpress.renderers.base import RenderContext
from clinicpress.settings.newsletter_loop import (
    UNSUBSCRIBE_SECRET_ENV,
    DkimSettings,
    DomainCheckSettings,
)
from clinicpress.site import SiteConfig, Smtp, load_site
from clinicpress.sources.article import Article

V1, V2 = "1" * 64, "2" * 64
PUBLISHED_AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
SELECTOR = "news2026"
DOMAIN = "serenitymaliburehab.com"  # the reference site's From domain
READERS = [Subscriber(f"reader{i}@example.org") for i in range(3)]  # no link of their own: signed ones
MAIL = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
runner = CliRunner()


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_key()


def publish_records(dns: DNSTestServer, key: rsa.RSAPrivateKey, *, dmarc: bool = True) -> None:
    """The three records a clinic publishes (docs/operating/newsletter.md)."""
    dns.txt[DOMAIN] = ["v=spf1 include:_spf.example.net -all"]
    dns.txt[f"{SELECTOR}._domainkey.{DOMAIN}"] = [key_record(key)]
    if dmarc:
        dns.txt[f"_dmarc.{DOMAIN}"] = [f"v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}"]


@pytest.fixture
def dns(key: rsa.RSAPrivateKey) -> Iterator[DNSTestServer]:
    with DNSTestServer() as server:
        publish_records(server, key)
        yield server


@pytest.fixture
def smtp() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as server:
        yield server


def with_loop(site: SiteConfig, key: rsa.RSAPrivateKey, dns: DNSTestServer) -> SiteConfig:
    """The reference site with DKIM (the key as load_site reads it) and the domain check on ``dns``."""
    dkim_settings = DkimSettings.model_validate(
        {"selector": SELECTOR, "domain": DOMAIN, "key_file": "dkim.pem", "private_key": private_pem(key)}
    )
    news = site.newsletter.model_copy(
        update={
            "dkim": dkim_settings,
            "domain_check": DomainCheckSettings(nameservers=[dns.nameserver], timeout=2.0),
        }
    )
    return site.model_copy(update={"newsletter": news})


def send(
    article: Article,
    site: SiteConfig,
    out: Path,
    server: SMTPTestServer,
    recipients: Sequence[Subscriber] = READERS,
    version: str = V1,
) -> SendReport:
    smtp = Smtp.model_validate({"host": server.host, "port": server.port, "security": "none", "timeout": 5})
    context = RenderContext(published_at=PUBLISHED_AT, version=version)
    return send_newsletter(
        article, site, context, out, recipients=recipients, smtp=smtp, reconnect_delay=0.02
    )


def verifier(key: rsa.RSAPrivateKey) -> tuple[list[bytes], Callable[..., bytes]]:
    asked: list[bytes] = []

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        asked.append(name)
        return key_record(key).encode("ascii")

    return asked, dnsfunc


def one_click_link(data: bytes) -> str:
    """The https link of a received message's List-Unsubscribe header (a plain header, one line)."""
    head = data.partition(b"\r\n\r\n")[0].decode("ascii").replace("\r\n ", " ").replace("\r\n\t", " ")
    (line,) = [h for h in head.split("\r\n") if h.lower().startswith("list-unsubscribe:")]
    targets = [t.strip().strip("<>") for t in line.split(":", 1)[1].split(",")]
    (link,) = [t for t in targets if t.startswith("https://")]
    return link


@pytest.fixture
def unsubscribe_server(write_site: Callable[..., Path], tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """``clinicpress unsubscribe-server --port 0`` as an operator runs it; yields a starter that
    returns its base URL (read from the line it prints: the handshake), and stops it after."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(out: Path) -> str:
        site = write_site(name="endpoint-site.toml")
        proc = subprocess.Popen(
            [sys.executable, "-m", "clinicpress", "unsubscribe-server", "--port", "0", *where(site, out)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert " at http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else b"")
        return line.split(" at ", 1)[1].split()[0]

    yield start
    for proc in procs:
        proc.terminate()  # SIGTERM stops it as Ctrl-C does
        proc.wait(timeout=30)


def where(site: Path | None, out: Path) -> list[str]:
    """``--site SITE --out OUT`` (the reference site.toml when None)."""
    return ["--site", str(site or ROOT / "content" / "site.toml"), "--out", str(out)]


def post_one_click(base: str, link: str) -> int:
    parts = urlsplit(link)
    request = urllib.request.Request(
        f"{base}{parts.path}?{parts.query}",
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


# -- 1. signed, linked, unsubscribed, skipped -----------------------------------------------------


def test_a_signed_message_with_a_signed_link_then_one_click_suppresses_and_the_next_version_skips(
    article: Article,
    site: SiteConfig,
    key: rsa.RSAPrivateKey,
    dns: DNSTestServer,
    smtp: SMTPTestServer,
    tmp_path: Path,
    unsubscribe_server: Callable[[Path], str],
) -> None:
    out = tmp_path / "out"
    loop_site = with_loop(site, key, dns)
    first = send(article, loop_site, out, smtp)
    assert first.complete, first.summary()
    assert first.accepted == 3
    asked, dnsfunc = verifier(key)
    links: dict[str, str] = {}
    for received in smtp.accepted:
        assert dkim.verify(received.data, dnsfunc=dnsfunc), received.rcpt_tos  # the signature verifies
        body = received.data.partition(b"\r\n\r\n")[2]
        assert max(map(len, body.split(b"\r\n"))) <= 78  # the parts keep RFC 2045's short lines
        link = one_click_link(received.data)
        assert link.startswith(site.newsletter.unsubscribe_url + "?t=")
        (token,) = parse_qs(urlsplit(link).query)["t"]
        who = read_token(token, TEST_UNSUBSCRIBE_SECRET, clock.now(), max_age_days=730)
        assert getattr(who, "address", None) == received.rcpt_tos[0]  # signed for this recipient
        assert getattr(who, "slug", None) == article.key
        links[received.rcpt_tos[0]] = link
    assert set(asked) == {f"{SELECTOR}._domainkey.{DOMAIN}.".encode()}

    base = unsubscribe_server(out)
    assert post_one_click(base, links["reader1@example.org"]) == 200
    with SuppressionStore(registry_url(site, out)) as store:
        assert store.is_suppressed("Reader1@Example.org")

    smtp.received.clear()
    second = send(another_text(article), loop_site, out, smtp, version=V2)  # the CSV still lists reader1
    assert second.complete, second.summary()
    assert sorted(r.rcpt_tos[0] for r in smtp.accepted) == ["reader0@example.org", "reader2@example.org"]
    assert second.candidates == 2

    stats = runner.invoke(app, ["newsletter", "stats", article.key, "--version", V1[:8], *where(None, out)])
    assert stats.exit_code == 0, stats.output
    assert "accepted 3" in stats.stdout
    assert "unsubscribed 1" in stats.stdout


def test_a_send_to_subscribers_without_the_unsubscribe_secret_waits_then_goes(
    article: Article, site: SiteConfig, smtp: SMTPTestServer, tmp_path: Path
) -> None:
    news = site.newsletter.model_copy(update={"unsubscribe_secret": None})
    report = send(article, site.model_copy(update={"newsletter": news}), tmp_path, smtp)
    assert smtp.accepted == []
    assert not report.complete
    assert report.stopped is not None
    assert UNSUBSCRIBE_SECRET_ENV in report.stopped
    # Recipients who bring their own link (the CSV's) need no secret.
    own = [Subscriber("own@example.org", "https://lists.example.org/u?id=1")]
    assert send(
        another_text(article), site.model_copy(update={"newsletter": news}), tmp_path, smtp, own, V2
    ).complete
    # With the secret set, the next publish sends the waiting version.
    assert send(article, site, tmp_path, smtp).accepted == 3


def test_the_secret_and_the_key_never_in_site_toml(write_site: Callable[..., Path]) -> None:
    from clinicpress.errors import SiteConfigError

    secret = 'unsubscribe_secret = "' + "x" * 40 + '"'
    path = write_site(unsubscribe_mailto='"unsubscribe@serenitymaliburehab.com"\n' + secret)
    with pytest.raises(SiteConfigError, match=r"newsletter\.unsubscribe_secret") as caught:
        load_site(path)
    assert "x" * 40 not in str(caught.value)


# -- 2. bounces and complaints ---------------------------------------------------------------------


def test_a_bounce_and_a_complaint_in_a_maildir_suppress_theirs_and_the_next_send_skips_them(
    article: Article, site: SiteConfig, smtp: SMTPTestServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    bounced, complained, kept = "reader@example.net", "third@example.com", "kept@example.org"
    readers = [Subscriber(bounced), Subscriber(complained), Subscriber(kept)]
    assert send(article, site, out, smtp, readers).accepted == 3
    folder = tmp_path / "bounces"
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True)
    # dsn-user-unknown: 5.1.1 for reader@example.net; arf-optional-fields: abuse by third@example.com.
    for name in ("dsn-user-unknown.eml", "arf-optional-fields.eml", "out-of-office.eml"):
        shutil.copy(MAIL / name, folder / "new" / f"1.{name}:2,")
    at = where(None, out)
    done = runner.invoke(app, ["newsletter", "bounces", "--maildir", str(folder), *at])
    assert done.exit_code == 0, done.output
    assert f"suppressed {bounced} (hard-bounce)" in done.stdout
    assert f"suppressed {complained} (complaint)" in done.stdout
    again = runner.invoke(app, ["newsletter", "bounces", "--maildir", str(folder), *at])
    assert "0 new" in again.stdout  # read twice, recorded once

    listed = runner.invoke(app, ["subscribers", "suppressed", *at])
    assert listed.exit_code == 0, listed.output
    rows = listed.stdout.splitlines()
    assert rows[0] == "address,at,how,detail"
    assert sorted(r.split(",")[0] for r in rows[1:]) == sorted([bounced, complained])

    smtp.received.clear()
    assert send(another_text(article), site, out, smtp, readers, V2).complete
    assert [r.rcpt_tos[0] for r in smtp.accepted] == [kept]


def test_bounces_take_exactly_one_mailbox(tmp_path: Path) -> None:
    at = where(None, tmp_path)
    assert runner.invoke(app, ["newsletter", "bounces", *at]).exit_code == 2
    both = ["--maildir", str(tmp_path), "--imap", "imaps://u@127.0.0.1/INBOX"]
    assert runner.invoke(app, ["newsletter", "bounces", *both, *at]).exit_code == 2


def test_reading_the_suppression_list_creates_no_database(tmp_path: Path) -> None:
    at = where(None, tmp_path)
    listed = runner.invoke(app, ["subscribers", "suppressed", *at])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout == "address,at,how,detail\n"
    assert not (tmp_path / "registry.sqlite").exists()


# -- 3. a domain without DMARC ------------------------------------------------------------------


def test_a_domain_without_dmarc_blocks_the_send_naming_it(
    article: Article, site: SiteConfig, key: rsa.RSAPrivateKey, smtp: SMTPTestServer, tmp_path: Path
) -> None:
    with DNSTestServer() as dns:
        publish_records(dns, key, dmarc=False)
        report = send(article, with_loop(site, key, dns), tmp_path, smtp)
        assert smtp.accepted == []
        assert report.stopped is not None
        assert f"DMARC (_dmarc.{DOMAIN}): missing" in report.stopped
        assert "SPF" not in report.stopped
        assert "DKIM (" not in report.stopped
        dns.txt[f"_dmarc.{DOMAIN}"] = ["v=DMARC1; p=none"]  # published: the next run sends
        assert send(article, with_loop(site, key, dns), tmp_path, smtp).accepted == 3


def test_dns_that_does_not_answer_warns_and_strict_blocks(
    article: Article, site: SiteConfig, key: rsa.RSAPrivateKey, smtp: SMTPTestServer, tmp_path: Path
) -> None:
    with DNSTestServer() as dns:
        publish_records(dns, key)
        dns.servfail.add(f"_dmarc.{DOMAIN}")
        loop_site = with_loop(site, key, dns)
        context = RenderContext(published_at=PUBLISHED_AT, version=V1)
        smtp_settings = Smtp.model_validate({"host": smtp.host, "port": smtp.port, "security": "none"})
        strict = send_newsletter(
            article, loop_site, context, tmp_path, recipients=READERS, smtp=smtp_settings, strict=True
        )
        assert smtp.accepted == []
        assert strict.stopped is not None
        assert "unreachable" in strict.stopped
        assert send(article, loop_site, tmp_path, smtp).accepted == 3  # not strict: a warning only


@pytest.mark.usefixtures("prefect_harness")
def test_publish_puts_the_page_live_while_the_domain_blocks_the_newsletter(
    write_article: WriteArticle,
    write_site: Callable[..., Path],
    key: rsa.RSAPrivateKey,
    smtp: SMTPTestServer,
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_text(private_pem(key))
    key_file.chmod(0o600)
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text("email\n" + "".join(f"{r.email}\n" for r in READERS))
    with DNSTestServer() as dns, HTTPFarm() as farm:
        publish_records(dns, key, dmarc=False)
        paper = farm.route("/paper", Reply(200))
        site = write_site(
            allow_private_hosts='["127.0.0.1"]',
            timeout="2.0",
            retries="0",
            enabled="false",  # [archive]
            unsubscribe_mailto='"unsubscribe@serenitymaliburehab.com"\n'
            f'subscribers = "{subscribers}"\n\n'
            f'[newsletter.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\ntimeout = 5\n\n'
            f'[newsletter.dkim]\nselector = "{SELECTOR}"\ndomain = "{DOMAIN}"\nkey_file = "{key_file}"\n\n'
            f'[newsletter.domain_check]\nnameservers = ["{dns.nameserver}"]\ntimeout = 2.0\n',
        )
        at = where(site, tmp_path / "out")
        check = runner.invoke(app, ["newsletter", "check-domain", "--site", str(site)])
        assert check.exit_code == 1, check.output
        assert f"DMARC (_dmarc.{DOMAIN}): missing" in check.stdout
        assert f"DKIM ({SELECTOR}._domainkey.{DOMAIN}): ok" in check.stdout

        front = MINIMAL_FRONT_MATTER + f"sources:\n  - {{title: A paper, url: '{paper}'}}\n"
        article = write_article(front_matter=front, body="A claim.[^1]\n")
        published = runner.invoke(app, ["publish", *at, str(article)])
        assert f"DMARC (_dmarc.{DOMAIN}): missing" in published.stdout, published.output
        assert smtp.accepted == []
        pages = list((tmp_path / "out" / "current").rglob("*.html"))
        assert any("A claim." in p.read_text(encoding="utf-8") for p in pages), pages

        dns.txt[f"_dmarc.{DOMAIN}"] = ["v=DMARC1; p=none"]
        assert runner.invoke(app, ["newsletter", "check-domain", "--site", str(site)]).exit_code == 0
        again = runner.invoke(app, ["publish", *at, str(article)])
        assert len(smtp.accepted) == 3, again.output


def test_check_domain_without_dns_is_a_warning_and_strict_blocks(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from dnsserver import closed_port

    site = write_site(
        unsubscribe_mailto='"unsubscribe@serenitymaliburehab.com"\n\n'
        f'[newsletter.domain_check]\nnameservers = ["127.0.0.1:{closed_port()}"]\ntimeout = 0.5\n'
    )
    loose = runner.invoke(app, ["newsletter", "check-domain", "--site", str(site)])
    assert "unreachable" in loose.stdout
    # Without [newsletter.dkim] the DKIM record is named missing: the check blocks either way.
    assert loose.exit_code == 1
    assert os.environ.get(UNSUBSCRIBE_SECRET_ENV)  # the suite's secret, never in a site.toml


@pytest.mark.parametrize(
    "command", [["unsubscribe-server", "--port", "0"], ["serve", "--unsubscribe-port", "0"]]
)
def test_the_endpoint_without_the_secret_is_bad_input_before_anything_starts(
    command: list[str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != UNSUBSCRIBE_SECRET_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "clinicpress", *command, *where(None, tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()  # one line, no traceback
    assert "newsletter.unsubscribe_secret" in line
    assert UNSUBSCRIBE_SECRET_ENV in line


def test_bounces_read_over_imap_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_bounces import PASSWORD, ImapTestServer

    server = ImapTestServer(
        [(MAIL / name).read_bytes() for name in ("dsn-user-unknown.eml", "arf-optional-fields.eml")]
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        args = ["newsletter", "bounces", "--imap", server.url, *where(None, tmp_path)]
        monkeypatch.delenv(IMAP_PASSWORD_ENV, raising=False)
        missing = runner.invoke(app, args)
        assert missing.exit_code == 2, missing.output
        assert IMAP_PASSWORD_ENV in missing.stderr
        monkeypatch.setenv(IMAP_PASSWORD_ENV, PASSWORD)
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
        assert "suppressed reader@example.net (hard-bounce)" in done.stdout
        assert "suppressed third@example.com (complaint)" in done.stdout
        assert server.marked_seen == set()  # read only
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
