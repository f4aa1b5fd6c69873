"""Newsletter delivery against a real SMTP server on 127.0.0.1 (aiosmtpd, tests/smtpserver.py).

The promises (docs/architecture.md, docs/development/guarantees.md): every recipient of an article
version gets exactly one message, or is reported ``uncertain`` when the
connection dropped after the message data; a stopped server, a dropped
connection or a SIGKILLed sender never causes a duplicate, and a re-run
finishes the job.
"""

from __future__ import annotations

import json
import signal
import smtplib
import sqlite3
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
from conftest import REFERENCE_ARTICLE, another_text, site_text
from requirements import need
from smtpserver import SMTPTestServer, free_port, self_signed_cert
from sqlalchemy import select

from clinicpress.errors import InputError
from clinicpress.outputs.delivery import (
    Delivery,
    DeliveryError,
    DeliveryIncomplete,
    DeliveryStore,
    Outcome,
    SendReport,
    SmtpSession,
    State,
    recipients_table,
    resolve_uncertain,
    send_newsletter,
    sends,
    test_sends,
)
from clinicpress.outputs.delivery.errors import SmtpFatal, SmtpGone
from clinicpress.outputs.delivery.lease import lease_dead
from clinicpress.outputs.delivery.resolve import choose
from clinicpress.outputs.delivery.send import recorded
from clinicpress.outputs.delivery.smtp import MAX_BACKOFF, backoff
from clinicpress.outputs.delivery.store import Found
from clinicpress.outputs.registry import SCHEMA_VERSION, Registry, registry_url
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


def test_a_rerun_sends_nothing_and_a_new_text_sends_again(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(5)
    send(article, site, tmp_path, server, readers)
    again = send(article, site, tmp_path, server, readers)
    assert again.complete
    assert again.sent == 0
    assert again.accepted == 5
    assert len(server.received) == 5

    newer = send(another_text(article), site, tmp_path, server, readers, version=V2)
    assert newer.complete
    assert newer.sent == 5
    assert len(server.received) == 10
    assert all(len(server.messages_to(r.email)) == 2 for r in readers)


def test_a_new_version_of_the_same_text_continues_its_send_and_sends_nobody_twice(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    # A template or site change makes a new version of an unchanged text: the readers have it.
    readers = subscribers(5)
    first = send(article, site, tmp_path, server, readers[:3])  # two readers' messages still to go
    assert first.accepted == 3
    with DeliveryStore(registry_url(site, tmp_path)) as store, store.tx() as conn:
        [send_id] = conn.execute(select(recipients_table.c.send_id).distinct()).scalars()
        conn.execute(  # the two left pending, as a run stopped by a fault leaves them
            recipients_table.insert(),
            [
                {
                    "send_id": send_id,
                    "address_key": r.key,
                    "address": r.email,
                    "state": State.PENDING,
                    "attempts": 0,
                    "data_started": False,
                    "updated_at": PUBLISHED_AT,
                    "unsubscribe_url": None,
                }
                for r in readers[3:]
            ],
        )
        conn.execute(sends.update().values(candidates=5, completed_at=None))

    newer = send(article, site, tmp_path, server, readers, version=V2)

    assert newer.version == V2, newer.summary()
    assert newer.complete, newer.summary()
    assert newer.sent == 2  # only the two the first version had not reached
    assert all(len(server.messages_to(r.email)) == 1 for r in readers)

    # A text that comes back after another was sent is news again: the revert goes out.
    send(another_text(article), site, tmp_path, server, readers, version="3" * 64)
    back = send(article, site, tmp_path, server, readers, version="4" * 64)
    assert back.sent == 5
    assert all(len(server.messages_to(r.email)) == 3 for r in readers)


def test_a_send_recorded_before_sends_kept_their_text_is_continued_by_the_release_report(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    from clinicpress.sources.versioning import content_hash

    readers = subscribers(3)
    send(article, site, tmp_path, server, readers)
    with DeliveryStore(registry_url(site, tmp_path)) as store, store.tx() as conn:
        conn.execute(sends.update().values(content_hash=None))  # as schema 10 recorded it

    # No release says what V1's text was: a second send, as before sends kept their text.
    unknown = send(article, site, tmp_path, server, readers, version=V2)
    assert unknown.sent == 3
    with DeliveryStore(registry_url(site, tmp_path)) as store, store.tx() as conn:
        conn.execute(sends.update().values(content_hash=None))

    # A kept release's report names V2's text: the next version of it continues that send.
    reports = tmp_path / "releases" / "20260105T093000Z-a" / "reports"
    reports.mkdir(parents=True)
    report = {"slug": article.key, "version": V2, "content_hash": content_hash(article)}
    (reports / f"{article.key}.json").write_text(json.dumps(report), encoding="utf-8")
    known = send(article, site, tmp_path, server, readers, version="3" * 64)
    assert known.sent == 0, known.summary()
    assert known.complete
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
    site_path = out / "site.toml"  # the sample's, with a full postal address (a send needs one)
    site_path.write_text(site_text(), encoding="utf-8")
    args = [str(site_path), str(REFERENCE_ARTICLE), str(out), str(csv_path), str(server.port), V1]
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
        need("openssl", "the openssl command makes the test certificate (apt-get install -y openssl)")
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


# -- the connection drops mid-batch: the one reconnect loop ---------------------------------------


@pytest.mark.parametrize("step", ["mail", "rcpt"])
def test_a_connection_dropped_mid_batch_is_reopened_and_nobody_gets_two(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer, step: str
) -> None:
    readers = subscribers(10)
    # The server stays up but hangs up on the 4th and 8th transaction, before any message data.
    server.hang_up_at = {(step, 4), (step, 8)}
    report = send(article, site, tmp_path, server, readers)
    assert report.sent == 10, report.summary()
    assert report.stopped is None
    result = assert_exactly_once(server, readers, report)
    assert result == Tally(sends=10, duplicates=0, lost=0, uncertain=0)
    assert server.connections == 3  # the first, and one after each drop
    # Claimed twice (the first claim went back to pending), sent once.
    assert states(site, tmp_path)[readers[3].email] == ("accepted", True, 2)
    assert states(site, tmp_path)[readers[6].email] == ("accepted", True, 2)


def test_a_server_that_always_hangs_up_stops_the_run_within_its_budget(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(3)
    server.hang_up_at = {("mail", n) for n in range(1, 100)}
    first = send(article, site, tmp_path, server, readers, reconnects=2)
    assert (first.pending, first.claimed, first.sent) == (3, 0, 0), first.summary()
    assert first.stopped is not None
    assert "the next run resumes" in first.stopped
    assert server.connections == 3  # the first try and two reconnects, then the run stops
    assert server.received == []

    server.hang_up_at = set()
    again = send(article, site, tmp_path, server, readers)
    assert again.sent == 3
    assert_exactly_once(server, readers, again)


def test_a_server_that_keeps_dropping_after_the_data_does_not_make_everyone_uncertain(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(6)
    server.drop_after_data = set(range(1, 100))
    report = send(article, site, tmp_path, server, readers, reconnects=2)
    assert (report.uncertain, report.pending, report.sent) == (3, 3, 0), report.summary()
    assert report.stopped is not None
    assert "keeps dropping connections" in report.stopped


def test_smtp_errors_become_ours_with_the_cause_kept(server: SMTPTestServer) -> None:
    closed = Smtp.model_validate({"host": "127.0.0.1", "port": free_port(), "security": "none", "timeout": 5})
    session = SmtpSession(closed, reconnects=1, reconnect_delay=0.01)
    with pytest.raises(SmtpGone, match="unreachable") as gone:
        session.transaction(lambda conn: Delivery(Outcome.ACCEPTED, "unreachable anyway"))
    assert isinstance(gone.value, DeliveryError)
    assert isinstance(gone.value.__cause__, ConnectionRefusedError)

    no_tls = SmtpSession(smtp_for(server, security="starttls"))
    with pytest.raises(SmtpFatal, match="STARTTLS"):
        no_tls.transaction(lambda conn: Delivery(Outcome.ACCEPTED, "never reached"))
    assert server.received == []


def test_login_refused_keeps_smtplibs_error_as_the_cause(cert: tuple[Path, Path]) -> None:
    trust = ssl.create_default_context(cafile=str(cert[0]))
    with SMTPTestServer(tls="tls", cert=cert, auth=("news", "s3cret")) as srv:
        wrong = smtp_for(srv, security="tls", username="news", password="nope")
        with pytest.raises(SmtpFatal, match="login refused") as refused:
            SmtpSession(wrong, trust).transaction(lambda conn: None)
    assert isinstance(refused.value.__cause__, smtplib.SMTPAuthenticationError)


# -- the decisions, as pure functions -------------------------------------------------------------


def test_what_each_outcome_records() -> None:
    at = PUBLISHED_AT
    assert recorded(Delivery(Outcome.ACCEPTED, "250 ok"), at) == {
        "state": State.ACCEPTED,
        "smtp_response": "250 ok",
        "last_error": None,
        "finished_at": at,
    }
    assert recorded(Delivery(Outcome.REFUSED, "550"), at)["state"] is State.FAILED
    assert recorded(Delivery(Outcome.UNKNOWN, "lost"), at)["state"] is State.UNCERTAIN
    # Provably not sent: back to pending, no longer this run's, not finished.
    assert recorded(Delivery(Outcome.NOT_SENT, "lost"), at) == {
        "state": State.PENDING,
        "data_started": False,
        "run_id": None,
        "last_error": "lost",
    }


def test_backoff_doubles_up_to_a_ceiling() -> None:
    assert [backoff(n, 0.5) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff(30, 0.5) == MAX_BACKOFF


def test_who_may_take_a_lease_over() -> None:
    at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    later, earlier = datetime(2026, 1, 5, 9, 31, tzinfo=UTC), datetime(2026, 1, 5, 9, 29, tzinfo=UTC)

    def dead(owner: str | None, until: datetime | None, alive: bool = True) -> bool:
        return lease_dead(owner, until, at, host="here", pid=10, alive=lambda pid: alive)

    assert dead(None, None)
    assert dead("here:11:run", earlier)  # expired
    assert not dead("here:11:run", later)  # alive, on this host
    assert dead("here:11:run", later, alive=False)  # its process is gone
    assert not dead("there:11:run", later, alive=False)  # another host: only expiry tells
    assert not dead("here:10:run", later, alive=False)  # our own pid: another thread of ours


def test_which_record_a_manual_verdict_means() -> None:
    a, b = "a" * 64, "b" * 64
    args = {"slug": "s", "address": "x@example.org", "version": ""}
    assert choose([Found(1, a, "uncertain"), Found(2, b, "accepted")], slug_known=True, **args).id == 1
    with pytest.raises(InputError, match="no newsletter of 's'"):
        choose([], slug_known=False, **args)
    with pytest.raises(InputError, match="not a recipient"):
        choose([], slug_known=True, **args)
    with pytest.raises(InputError, match=r"not uncertain .*accepted in version a{12}"):
        choose([Found(1, a, "accepted")], slug_known=True, **args)
    with pytest.raises(InputError, match=r"uncertain in 2 versions.*--version"):
        choose([Found(1, a, "uncertain"), Found(2, b, "uncertain")], slug_known=True, **args)


# -- the schema: one version with the registry ------------------------------------------------------

# The database as clinicpress made it before the delivery tables were versioned (schema_info 2,
# the newsletter_* tables beside it): the DDL SQLAlchemy emitted for SQLite, copied verbatim.
UNVERSIONED_LAYOUT = """
CREATE TABLE schema_info ( version INTEGER NOT NULL );
CREATE TABLE publishes ( id INTEGER NOT NULL, slug VARCHAR(80) NOT NULL, version VARCHAR(64) NOT NULL, title TEXT NOT NULL, published_at DATETIME NOT NULL, release_id VARCHAR(64), channels JSON NOT NULL, licenses JSON NOT NULL, last_reviewed DATE NOT NULL, next_review DATE NOT NULL, PRIMARY KEY (id), CONSTRAINT uq_publish_slug_version UNIQUE (slug, version) );
CREATE INDEX ix_publishes_slug ON publishes (slug);
CREATE TABLE sources ( id INTEGER NOT NULL, url TEXT NOT NULL, archive_url TEXT, archive_timestamp VARCHAR(14), archive_checked_at DATETIME, PRIMARY KEY (id), UNIQUE (url) );
CREATE TABLE alert_state ( "key" VARCHAR(200) NOT NULL, state VARCHAR(32) NOT NULL, since DATETIME NOT NULL, failures INTEGER NOT NULL, PRIMARY KEY ("key") );
CREATE TABLE alerts ( id INTEGER NOT NULL, "key" VARCHAR(200) NOT NULL, kind VARCHAR(40) NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL, created_at DATETIME NOT NULL, deliveries JSON NOT NULL, PRIMARY KEY (id) );
CREATE INDEX ix_alerts_key ON alerts ("key");
CREATE TABLE release_events ( id INTEGER NOT NULL, at DATETIME NOT NULL, action VARCHAR(16) NOT NULL, release_id VARCHAR(64) NOT NULL, slug VARCHAR(80), detail TEXT NOT NULL, PRIMARY KEY (id) );
CREATE TABLE publish_sources ( publish_id INTEGER NOT NULL, position INTEGER NOT NULL, source_id INTEGER NOT NULL, title TEXT NOT NULL, PRIMARY KEY (publish_id, position), FOREIGN KEY(publish_id) REFERENCES publishes (id) ON DELETE CASCADE, FOREIGN KEY(source_id) REFERENCES sources (id) );
CREATE TABLE source_checks ( id INTEGER NOT NULL, source_id INTEGER NOT NULL, checked_at DATETIME NOT NULL, status VARCHAR(16) NOT NULL, reason TEXT NOT NULL, http_status INTEGER, final_url TEXT, PRIMARY KEY (id), FOREIGN KEY(source_id) REFERENCES sources (id) );
CREATE INDEX ix_source_checks_source_id ON source_checks (source_id);
CREATE TABLE newsletter_sends ( id INTEGER NOT NULL, slug VARCHAR(80) NOT NULL, version VARCHAR(64) NOT NULL, title TEXT NOT NULL, published_at DATETIME NOT NULL, created_at DATETIME NOT NULL, candidates INTEGER NOT NULL, completed_at DATETIME, lease_owner VARCHAR(200), lease_until DATETIME, PRIMARY KEY (id), CONSTRAINT uq_newsletter_send_slug_version UNIQUE (slug, version) );
CREATE TABLE newsletter_test_sends ( id INTEGER NOT NULL, slug VARCHAR(80) NOT NULL, version VARCHAR(64) NOT NULL, address TEXT NOT NULL, state VARCHAR(16) NOT NULL, message_id TEXT, smtp_response TEXT, last_error TEXT, created_at DATETIME NOT NULL, finished_at DATETIME, PRIMARY KEY (id) );
CREATE TABLE newsletter_recipients ( id INTEGER NOT NULL, send_id INTEGER NOT NULL, address_key VARCHAR(320) NOT NULL, address TEXT NOT NULL, unsubscribe_url TEXT, state VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL, data_started BOOLEAN NOT NULL, run_id VARCHAR(32), message_id TEXT, smtp_response TEXT, last_error TEXT, claimed_at DATETIME, finished_at DATETIME, updated_at DATETIME NOT NULL, PRIMARY KEY (id), CONSTRAINT uq_newsletter_recipient UNIQUE (send_id, address_key), FOREIGN KEY(send_id) REFERENCES newsletter_sends (id) ON DELETE CASCADE );
CREATE INDEX ix_newsletter_recipients_state ON newsletter_recipients (send_id, state);
CREATE TABLE newsletter_runs ( id VARCHAR(32) NOT NULL, send_id INTEGER NOT NULL, owner VARCHAR(200) NOT NULL, started_at DATETIME NOT NULL, finished_at DATETIME, sent INTEGER NOT NULL, complete BOOLEAN NOT NULL, summary TEXT, PRIMARY KEY (id), FOREIGN KEY(send_id) REFERENCES newsletter_sends (id) ON DELETE CASCADE );
"""  # noqa: E501


def unversioned_database(path: Path, slug: str, readers: Sequence[Subscriber], *, version: int = 2) -> None:
    """A registry at schema ``version`` holding a half-done send of V1, written as the old code did."""
    stamp = "2026-01-05 09:30:00.000000"
    with sqlite3.connect(path) as db:
        db.executescript(UNVERSIONED_LAYOUT)
        db.execute("INSERT INTO schema_info (version) VALUES (?)", (version,))
        db.execute(
            "INSERT INTO newsletter_sends (id, slug, version, title, published_at, created_at, candidates) "
            "VALUES (1, ?, ?, 'Title', ?, ?, ?)",
            (slug, V1, stamp, stamp, len(readers)),
        )
        for n, (reader, state) in enumerate(zip(readers, ["accepted", "uncertain", "pending"], strict=True)):
            db.execute(
                "INSERT INTO newsletter_recipients (send_id, address_key, address, unsubscribe_url, state, "
                "attempts, data_started, message_id, last_error, updated_at) "
                "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    reader.key,
                    reader.email,
                    reader.unsubscribe_url,
                    state,
                    int(state != "pending"),
                    int(state != "pending"),
                    f"<{n}@example.org>" if state != "pending" else None,
                    "connection lost after the message data" if state == "uncertain" else None,
                    stamp,
                ),
            )
    db.close()


def schema_versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        rows = [int(v) for (v,) in db.execute("SELECT version FROM schema_info")]
    db.close()
    return rows


def test_a_database_with_the_unversioned_delivery_tables_is_upgraded_and_resumed(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    assert SCHEMA_VERSION >= 3  # the version that counted the newsletter tables in, or later
    readers = subscribers(3)
    database = tmp_path / "registry.sqlite"
    unversioned_database(database, article.key, readers)

    report = send(article, site, tmp_path, server, readers)  # the new code opens it first
    assert schema_versions(database) == [SCHEMA_VERSION]
    assert report.sent == 1, report.summary()  # only the pending one
    assert (report.accepted, report.uncertain, report.pending) == (2, 1, 0)
    assert [r.rcpt_tos for r in server.received] == [(readers[2].email,)]
    [issue] = report.uncertain_recipients
    assert (issue.email, issue.message_id) == (readers[1].email, "<1@example.org>")

    with Registry(registry_url(site, tmp_path)) as registry:
        assert registry.unrecorded({article.key: V1}) == {article.key}
    assert schema_versions(database) == [SCHEMA_VERSION]
    resolve_uncertain(site, tmp_path, article.key, "", readers[1].email, delivered=False)
    again = send(article, site, tmp_path, server, readers)
    assert (again.sent, again.accepted, again.uncertain) == (1, 3, 0), again.summary()


def test_the_registry_opening_first_upgrades_the_delivery_tables_too(
    site: SiteConfig, tmp_path: Path
) -> None:
    readers = subscribers(3)
    database = tmp_path / "registry.sqlite"
    unversioned_database(database, "an-article", readers)
    Registry(registry_url(site, tmp_path)).close()
    assert schema_versions(database) == [SCHEMA_VERSION]
    with DeliveryStore(registry_url(site, tmp_path)) as store:
        assert store.report(1, 3, sent=0).counts() == {
            "pending": 1,
            "claimed": 0,
            "accepted": 1,
            "failed": 0,
            "uncertain": 1,
            "excluded": 0,
        }


def test_a_newer_database_is_refused_and_left_alone(site: SiteConfig, tmp_path: Path) -> None:
    database = tmp_path / "registry.sqlite"
    with sqlite3.connect(database) as db:
        db.executescript("CREATE TABLE schema_info ( version INTEGER NOT NULL );")
        db.execute("INSERT INTO schema_info (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(DeliveryError, match="newer than this clinicpress"):
        DeliveryStore(registry_url(site, tmp_path))
    with sqlite3.connect(database) as db:
        assert [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == [
            "schema_info"
        ]
    db.close()


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
