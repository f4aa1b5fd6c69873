"""Newsletter delivery against a real SMTP server on 127.0.0.1 (aiosmtpd, tests/smtpd.py).

The promises (DESIGN.md, "Reliability rules"): every recipient of an article
version gets exactly one message, or is reported ``uncertain`` when the
connection dropped after the message data; a stopped server, a dropped
connection or a SIGKILLed sender never causes a duplicate, and a re-run
finishes the job.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REFERENCE_ARTICLE, REFERENCE_SITE
from smtpserver import SMTPTestServer, self_signed_cert
from sqlalchemy import select

from clinicpress.errors import InputError
from clinicpress.outputs.delivery import (
    DeliveryIncomplete,
    DeliveryStore,
    SendReport,
    recipients_table,
    resolve_uncertain,
    send_newsletter,
    test_sends,
)
from clinicpress.outputs.registry import registry_url
from clinicpress.outputs.subscribers import Subscriber, SubscribersError, load_subscribers
from clinicpress.renderers.base import RenderContext
from clinicpress.site import SiteConfig, Smtp
from clinicpress.sources.article import Article

PUBLISHED_AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
V1 = "1" * 64
V2 = "2" * 64

# The long matrix (about 11 minutes): deselected by default, `make test-slow` runs it.
SLOW = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as srv:
        yield srv


def subscribers(n: int) -> list[Subscriber]:
    return [
        Subscriber(f"reader{i:02d}@example.org", f"https://example.org/unsub?r={i:02d}") for i in range(n)
    ]


def smtp_for(server: SMTPTestServer, **kwargs: object) -> Smtp:
    return Smtp.model_validate(
        {"host": server.host, "port": server.port, "security": "none", "timeout": 5, **kwargs}
    )


def send(
    article: Article,
    site: SiteConfig,
    out: Path,
    server: SMTPTestServer,
    recipients: Sequence[Subscriber],
    version: str = V1,
    *,
    smtp: Smtp | None = None,
    test_to: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    reconnects: int = 3,
) -> SendReport:
    context = RenderContext(published_at=PUBLISHED_AT, version=version)
    return send_newsletter(
        article,
        site,
        context,
        out,
        recipients=recipients,
        smtp=smtp or smtp_for(server),
        test_to=test_to,
        ssl_context=ssl_context,
        reconnects=reconnects,
        reconnect_delay=0.02,  # a stopped server is given up on in ~0.2 s
    )


@dataclass(frozen=True)
class Tally:
    sends: int  # messages the server(s) received
    duplicates: int  # recipients with more than one
    lost: int  # recipients with none that are not reported uncertain
    uncertain: int

    def __str__(self) -> str:
        return f"sends={self.sends} duplicates={self.duplicates} lost={self.lost} uncertain={self.uncertain}"


def tally(server: SMTPTestServer, recipients: Sequence[Subscriber], report: SendReport) -> Tally:
    per = Counter(to.lower() for r in server.received for to in r.rcpt_tos)
    uncertain = {i.email.lower() for i in report.uncertain_recipients}
    return Tally(
        sends=len(server.received),
        duplicates=sum(1 for s in recipients if per[s.email.lower()] > 1),
        lost=sum(1 for s in recipients if per[s.email.lower()] == 0 and s.email.lower() not in uncertain),
        uncertain=len(uncertain),
    )


def assert_exactly_once(
    server: SMTPTestServer, recipients: Sequence[Subscriber], report: SendReport
) -> Tally:
    """Each recipient has exactly one message, or (at most one per message in flight) is uncertain."""
    result = tally(server, recipients, report)
    assert result.duplicates == 0, result
    assert result.lost == 0, result
    assert report.complete, report.summary()
    for issue in report.uncertain_recipients:
        assert len(server.messages_to(issue.email)) <= 1
    return result


def states(site: SiteConfig, out: Path) -> dict[str, tuple[str, bool, int]]:
    """address → (state, data_started, attempts), straight from the records."""
    with DeliveryStore(registry_url(site, out)) as store, store.tx() as conn:
        rows = conn.execute(
            select(
                recipients_table.c.address,
                recipients_table.c.state,
                recipients_table.c.data_started,
                recipients_table.c.attempts,
            )
        ).all()
    return {r.address: (r.state, r.data_started, r.attempts) for r in rows}


# -- the normal send ------------------------------------------------------------------------------


def test_each_recipient_gets_one_message_of_their_own(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(5)
    report = send(article, site, tmp_path, server, readers)

    assert report.complete, report.summary()
    assert report.accepted == report.sent == 5
    assert len(server.received) == 5
    ids = set()
    for reader in readers:
        [got] = server.messages_to(reader.email)
        assert got.rcpt_tos == (reader.email,)
        assert got.mail_from == site.newsletter.from_address
        msg = got.message()
        assert msg["To"] == reader.email
        assert msg["Subject"] == article.title
        assert f"<{reader.unsubscribe_url}>" in msg["List-Unsubscribe"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        assert text is not None
        assert html is not None
        own_url = reader.unsubscribe_url
        assert own_url is not None
        assert own_url in text.get_content()
        assert own_url.replace("&", "&amp;") in html.get_content()
        assert site.newsletter.unsubscribe_url not in text.get_content()
        ids.add(msg["Message-ID"])
    assert len(ids) == 5  # one Message-ID per recipient


def test_a_rerun_sends_nothing_and_a_new_version_sends_again(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(5)
    send(article, site, tmp_path, server, readers)
    again = send(article, site, tmp_path, server, readers)
    assert again.complete
    assert again.sent == 0
    assert again.accepted == 5
    assert len(server.received) == 5

    newer = send(article, site, tmp_path, server, readers, version=V2)
    assert newer.complete
    assert newer.sent == 5
    assert len(server.received) == 10
    assert all(len(server.messages_to(r.email)) == 2 for r in readers)


# -- the server goes away -------------------------------------------------------------------------


def test_server_stopped_half_way_then_a_rerun_finishes(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(50)
    server.stop_after = 20
    first = send(article, site, tmp_path, server, readers)
    assert not first.complete
    assert (first.accepted, first.pending, first.uncertain) == (20, 30, 0), first.summary()
    assert first.stopped is not None
    assert "unreachable" in first.stopped
    with pytest.raises(DeliveryIncomplete, match="30 pending"):
        first.raise_if_incomplete()

    server.start()
    second = send(article, site, tmp_path, server, readers)
    assert second.sent == 30
    result = assert_exactly_once(server, readers, second)
    assert result == Tally(sends=50, duplicates=0, lost=0, uncertain=0)
    assert {r.start for r in server.received} == {1, 2}


def test_a_server_restart_during_the_run_is_survived(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(30)
    server.stop_after = 10
    server.restart_after = 0.05
    report = send(article, site, tmp_path, server, readers, reconnects=6)
    assert report.sent == 30
    assert_exactly_once(server, readers, report)
    assert server.start_count == 2


def test_a_drop_after_the_data_is_uncertain_and_never_resent(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(10)
    server.drop_after_data = {4}
    first = send(article, site, tmp_path, server, readers)
    assert first.complete  # accounted for: 9 accepted + 1 uncertain
    assert (first.accepted, first.uncertain) == (9, 1), first.summary()
    [issue] = first.uncertain_recipients
    assert issue.email == readers[3].email
    assert issue.message_id
    assert issue.message_id.startswith("<")
    assert "after the message data" in (issue.last_error or "")
    assert "uncertain: reader03@example.org" in first.summary()

    again = send(article, site, tmp_path, server, readers)
    assert again.sent == 0
    assert again.uncertain == 1
    assert len(server.received) == 10  # the uncertain one was never sent twice
    assert_exactly_once(server, readers, again)


def test_a_person_resolves_an_uncertain_recipient(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(3)
    server.drop_after_data = {1, 2}
    send(article, site, tmp_path, server, readers)
    resolve_uncertain(site, tmp_path, article.key, V1, readers[0].email, delivered=True)
    resolve_uncertain(site, tmp_path, article.key, V1[:12], readers[1].email.upper(), delivered=False)
    with pytest.raises(InputError, match="not uncertain"):
        resolve_uncertain(site, tmp_path, article.key, V1, readers[2].email, delivered=False)

    report = send(article, site, tmp_path, server, readers)
    assert report.sent == 1  # only the one the person said to resend
    assert (report.accepted, report.uncertain) == (3, 0)
    assert len(server.messages_to(readers[1].email)) == 2  # by the person's decision


def test_a_refused_recipient_is_retried_by_later_runs_up_to_the_cap(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(4)
    server.reject = {readers[1].email}
    cap = site.newsletter.max_send_attempts
    for attempt in range(1, cap + 1):
        report = send(article, site, tmp_path, server, readers)
        assert report.complete
        assert report.accepted == 3
        assert states(site, tmp_path)[readers[1].email] == ("failed", False, attempt)
    assert (report.failed, report.excluded) == (0, 1), report.summary()
    [gave_up] = report.failed_recipients
    assert gave_up.state == "excluded"
    assert "550" in (gave_up.last_error or "")

    server.reject = set()
    last = send(article, site, tmp_path, server, readers)  # past the cap: not tried again
    assert last.sent == 0
    assert states(site, tmp_path)[readers[1].email][2] == cap
    assert len(server.received) == 3


def test_a_failed_recipient_is_sent_when_the_server_takes_it(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(3)
    server.reject = {readers[0].email}
    assert send(article, site, tmp_path, server, readers).failed == 1
    server.reject = set()
    report = send(article, site, tmp_path, server, readers)
    assert report.sent == 1
    assert_exactly_once(server, readers, report)


def test_unsubscribed_before_the_rerun_is_excluded(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(6)
    server.stop_after = 2
    send(article, site, tmp_path, server, readers)
    server.start()
    remaining = [r for r in readers if r is not readers[4]]
    report = send(article, site, tmp_path, server, [*remaining, Subscriber("late@example.org")])
    assert report.complete, report.summary()
    assert (report.accepted, report.excluded) == (5, 1)
    assert server.messages_to(readers[4].email) == []
    assert server.messages_to("late@example.org") == []  # the list of a version is fixed at its first send


def test_two_runs_at_once_send_once(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(5)
    server.pause_at = ("rcpt", 2)
    reports: list[SendReport] = []
    first = threading.Thread(target=lambda: reports.append(send(article, site, tmp_path, server, readers)))
    first.start()
    assert server.paused.wait(10)
    loser = send(article, site, tmp_path, server, readers)
    server.release()
    first.join(20)
    assert loser.busy is not None
    assert "another run" in loser.busy
    assert loser.sent == 0
    assert_exactly_once(server, readers, reports[0])
    assert len(server.received) == 5


# -- the sender is killed -------------------------------------------------------------------------

CHILD = """
import sys
from datetime import datetime
from clinicpress.outputs.delivery import send_newsletter
from clinicpress.outputs.subscribers import load_subscribers
from clinicpress.renderers.base import RenderContext
from clinicpress.site import Smtp, load_site
from clinicpress.sources.loader import load_article

site, article, out, csv, port, version, published = sys.argv[1:]
context = RenderContext(published_at=datetime.fromisoformat(published), version=version)
smtp = Smtp(host="127.0.0.1", port=int(port), security="none", timeout=5)
report = send_newsletter(load_article(article), load_site(site), context, out,
                         recipients=load_subscribers(csv), smtp=smtp)
print(report.summary())
"""


def write_csv(path: Path, readers: Sequence[Subscriber]) -> Path:
    lines = ["email,unsubscribe_url", *(f"{r.email},{r.unsubscribe_url}" for r in readers)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def kill_mid_send(
    article: Article,
    site: SiteConfig,
    out: Path,
    server: SMTPTestServer,
    readers: Sequence[Subscriber],
    at: tuple[str, int],
) -> SendReport:
    """SIGKILL a sending process while the server holds message ``at``, then re-run here."""
    csv_path = write_csv(out / "subscribers.csv", readers)
    server.pause_at = at
    args = [str(REFERENCE_SITE), str(REFERENCE_ARTICLE), str(out), str(csv_path), str(server.port), V1]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args, PUBLISHED_AT.isoformat()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.paused.wait(30), child.communicate(timeout=5)
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        child.kill()
        child.communicate()
        server.pause_at = None
        server.release()
    return send(article, site, out, server, load_subscribers(csv_path))


def test_sigkill_before_the_data_resends_that_recipient(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(30)
    # The 13th recipient is claimed (committed) and its RCPT TO is on the wire when the sender dies.
    report = kill_mid_send(article, site, tmp_path, server, readers, ("rcpt", 13))
    assert (report.sent, report.uncertain) == (18, 0), report.summary()
    assert len(server.messages_to(readers[12].email)) == 1
    result = assert_exactly_once(server, readers, report)
    assert result == Tally(sends=30, duplicates=0, lost=0, uncertain=0)


def test_sigkill_after_the_data_leaves_one_uncertain(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(30)
    # The server has the 13th message; the sender dies before it reads the reply.
    report = kill_mid_send(article, site, tmp_path, server, readers, ("data", 13))
    assert (report.sent, report.uncertain) == (17, 1), report.summary()
    assert [i.email for i in report.uncertain_recipients] == [readers[12].email]
    result = assert_exactly_once(server, readers, report)
    assert result == Tally(sends=30, duplicates=0, lost=0, uncertain=1)


# -- the test send --------------------------------------------------------------------------------


def test_test_send_goes_to_one_address_and_marks_no_subscriber(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(3)
    report = send(article, site, tmp_path, server, readers, test_to="editor@example.org")
    assert report.test
    assert report.accepted == 1
    assert report.complete
    [got] = server.received
    assert got.rcpt_tos == ("editor@example.org",)
    assert got.message()["Subject"] == f"[TEST] {article.title}"
    assert states(site, tmp_path) == {}  # no subscriber enqueued, none marked sent
    with DeliveryStore(registry_url(site, tmp_path)) as store, store.tx() as conn:
        [row] = conn.execute(select(test_sends)).all()
    assert (row.address, row.state) == ("editor@example.org", "accepted")

    real = send(article, site, tmp_path, server, readers)
    assert real.sent == 3
    assert len(server.received) == 4


def test_test_send_to_a_bad_address_is_an_input_error(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    with pytest.raises(InputError, match="--test-to") as caught:
        send(article, site, tmp_path, server, [], test_to="editor@example.org\r\nBcc: x@example.org")
    assert caught.value.exit_code == 2
    assert server.received == []


# -- security and login ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = self_signed_cert(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    return made


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_and_login(
    article: Article, site: SiteConfig, tmp_path: Path, cert: tuple[Path, Path], security: str
) -> None:
    trust = ssl.create_default_context(cafile=str(cert[0]))
    readers = subscribers(2)
    with SMTPTestServer(tls=security, cert=cert, auth=("news", "s3cret")) as srv:  # type: ignore[arg-type]
        wrong = smtp_for(srv, security=security, username="news", password="nope")
        refused = send(article, site, tmp_path, srv, readers, smtp=wrong, ssl_context=trust)
        assert refused.stopped is not None
        assert "login refused" in refused.stopped
        assert refused.pending == 2
        assert srv.received == []

        right = smtp_for(srv, security=security, username="news", password="s3cret")
        report = send(article, site, tmp_path, srv, readers, smtp=right, ssl_context=trust)
        assert report.complete
        assert report.sent == 2


def test_starttls_required_but_not_offered_sends_nothing(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    report = send(article, site, tmp_path, server, subscribers(2), smtp=smtp_for(server, security="starttls"))
    assert report.stopped is not None
    assert "STARTTLS" in report.stopped
    assert report.pending == 2
    assert server.received == []


# -- the subscribers CSV --------------------------------------------------------------------------


def test_subscribers_csv_is_read_and_deduplicated(tmp_path: Path) -> None:
    path = tmp_path / "subs.csv"
    path.write_bytes(
        b"\xef\xbb\xbfEmail,Name,unsubscribe_url\r\n"
        b"Ann@Example.org,Ann,https://example.org/u?a=1\r\n"
        b"\r\n"
        b'bob@example.org,"Bob, Jr.",\r\n'
        b"ann@example.ORG,Ann again,https://example.org/u?a=2\r\n"
    )
    loaded = load_subscribers(path)
    assert [s.email for s in loaded] == ["Ann@Example.org", "bob@example.org"]
    assert loaded[0].unsubscribe_url == "https://example.org/u?a=1"
    assert loaded[0].name == "Ann"
    assert loaded[1].unsubscribe_url is None
    assert loaded[1].name == "Bob, Jr."
    assert loaded.duplicates == ((5, "ann@example.ORG"),)


@pytest.mark.parametrize(
    ("content", "where", "says"),
    [
        (b"email\nann@@example.org\n", "line 2: email", "exactly one @"),
        (b"email\nann@example\n", "line 2: email", "invalid domain"),
        (b'email\n"ann@example.org\nBcc: x@example.org"\n', "line 3: email", "line break"),
        (b"email\nann example@example.org\n", "line 2: email", "before the @"),
        (b"email\nj\xc3\xb6rg@example.org\n", "line 2: email", "non-ASCII"),
        (
            b"email,unsubscribe_url\nann@example.org,http://example.org/u\n",
            "line 2: unsubscribe_url",
            "https",
        ),
        (b"email,name\nann@example.org,Ann,extra\n", "line 2", "3 fields"),
        (b"mail\nann@example.org\n", "line 1: header", "unknown column 'mail'"),
        (b"name\nAnn\n", "line 1: header", "no email column"),
        (b"", "line 1", "empty"),
        (b"email\n\xff\xfe\n", "subs.csv", "not UTF-8"),
    ],
)
def test_bad_subscribers_csv_names_file_line_and_field(
    tmp_path: Path, content: bytes, where: str, says: str
) -> None:
    path = tmp_path / "subs.csv"
    path.write_bytes(content)
    with pytest.raises(SubscribersError) as caught:
        load_subscribers(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert where in message, message
    assert says in message, message
    assert caught.value.exit_code == 2
    assert isinstance(caught.value, InputError)


def test_missing_subscribers_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(SubscribersError, match="file not found"):
        load_subscribers(tmp_path / "nope.csv")


# -- the long matrix (issue 8) ---------------------------------------------------------------------


@SLOW
@pytest.mark.parametrize("k", range(51))
def test_matrix_server_stopped_after_k(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer, k: int
) -> None:
    readers = subscribers(50)
    server.stop_after = k
    send(article, site, tmp_path, server, readers)
    server.start()
    report = send(article, site, tmp_path, server, readers)
    result = assert_exactly_once(server, readers, report)
    print(f"server stop k={k}: {result}")
    assert result.uncertain == 0
    assert result.sends == 50


@SLOW
@pytest.mark.parametrize("phase", ["rcpt", "data"])
@pytest.mark.parametrize("k", range(50))
def test_matrix_sender_sigkilled_after_k(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer, k: int, phase: str
) -> None:
    readers = subscribers(50)
    report = kill_mid_send(article, site, tmp_path, server, readers, (phase, k + 1))
    result = assert_exactly_once(server, readers, report)
    print(f"SIGKILL at {phase} of message {k + 1}: {result}")
    assert result.uncertain == (1 if phase == "data" else 0)
