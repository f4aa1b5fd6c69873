"""Bounces and complaints (issue 28, part 3): real-format RFC 3464 DSNs and RFC 5965 ARF reports
(tests/fixtures/mail/, written from the RFCs' own examples) read from a Maildir and through an
IMAP server on 127.0.0.1, then suppressed.

The promises: a hard bounce (5.x.x about the address) and a complaint suppress the address; a
refusal of the message or the sender (5.7.x) does not; soft bounces (4.x.x) count and three sends
in a row that soft-bounced suppress; a report names its recipient by the Message-ID we sent when
the address is redacted or forwarded; reading a mailbox twice records nothing twice; the mailbox
is only read (IMAP EXAMINE and BODY.PEEK: nothing marked read).
"""

from __future__ import annotations

import mailbox
import re
import socketserver
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from clinicpress import clock
from clinicpress.errors import InputError
from clinicpress.outputs.delivery.bounces import (
    bounce_kind,
    complaint_kind,
    parse_imap_url,
    parse_report,
    read_imap,
    read_maildir,
    record_findings,
)
from clinicpress.outputs.delivery.errors import DeliveryError
from clinicpress.outputs.delivery.schema import State, recipients_table, sends
from clinicpress.outputs.delivery.suppression import Kind, SuppressionStore, soft_streak, suppression_for

MAIL = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
KETAMINE = "<ketamine-therapy.1111111111111111.{}@clinic.example>"
NALOXONE = "<naloxone-at-home.2222222222222222.{}@clinic.example>"
PASSWORD = "imap-Pa55word"


def _fixture(name: str) -> bytes:
    return (MAIL / name).read_bytes()


# -- the decisions (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "kind"),
    [
        ("failed", "5.1.1", Kind.HARD_BOUNCE),
        ("failed", "5.0.0 (permanent failure)", Kind.HARD_BOUNCE),
        ("Failed", "5.1.2", Kind.HARD_BOUNCE),
        ("failed", "5.2.1", Kind.HARD_BOUNCE),
        ("failed", "4.0.0", Kind.SOFT_BOUNCE),
        ("delayed", "4.4.7", Kind.SOFT_BOUNCE),
        ("failed", "5.2.2", Kind.SOFT_BOUNCE),  # mailbox full: it may empty
        ("failed", "5.7.26", Kind.BLOCKED),  # unauthenticated: ours to fix, not the reader's address
        ("failed", "5.7.1", Kind.BLOCKED),
        ("failed", "5.6.0", Kind.BLOCKED),
        ("failed", "5.3.4", Kind.BLOCKED),
        ("delivered", "2.0.0", None),
        ("relayed", "2.0.0", None),
        ("expanded", "2.0.0", None),
        ("failed", "", None),  # no status: nothing to act on
    ],
)
def test_what_a_dsn_recipient_block_means(action: str, status: str, kind: Kind | None) -> None:
    assert bounce_kind(action, status) == kind


@pytest.mark.parametrize(
    ("feedback_type", "kind"),
    [
        ("abuse", Kind.COMPLAINT),
        ("Abuse", Kind.COMPLAINT),
        ("not-spam", None),
        ("auth-failure", None),
        ("", None),
    ],
)
def test_only_abuse_is_a_complaint(feedback_type: str, kind: Kind | None) -> None:
    assert complaint_kind(feedback_type) == kind


def test_what_suppresses() -> None:
    assert suppression_for(Kind.HARD_BOUNCE) == "hard-bounce"
    assert suppression_for(Kind.COMPLAINT) == "complaint"
    assert suppression_for(Kind.BLOCKED) is None
    assert suppression_for(Kind.SOFT_BOUNCE, 2) is None
    assert suppression_for(Kind.SOFT_BOUNCE, 3) == "soft-bounces"


@pytest.mark.parametrize(
    ("sent", "soft", "streak"),
    [
        (["m1", "m2", "m3"], {"m1", "m2", "m3"}, 3),
        (["m1", "m2", "m3", "m4"], {"m1", "m2", "m4"}, 2),  # m3 got through: the row is broken
        (["m1", "m2", "m3", "m4"], {"m2", "m3", "m4"}, 3),
        (["m1"], {"x", "y", "z"}, 0),  # bounces of messages we did not send to them
        ([], {"x", "y"}, 2),  # nothing known of what was sent: count them
    ],
)
def test_soft_bounces_in_a_row(sent: list[str], soft: set[str], streak: int) -> None:
    assert soft_streak(sent, soft) == streak


# -- the reports (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "dsn-user-unknown.eml",
            [(Kind.HARD_BOUNCE, "reader@example.net", KETAMINE.format("a" * 12), "5.1.1")],
        ),
        (
            "dsn-multi-recipient.eml",
            [
                (Kind.HARD_BOUNCE, "arathib@vnet.example.com", "<list.19940708@clinic.example>", "5.0.0"),
                (Kind.SOFT_BOUNCE, "johnh@hpnjld.example.com", "<list.19940708@clinic.example>", "4.0.0"),
                (Kind.HARD_BOUNCE, "wsnell@sdcc13.example.edu", "<list.19940708@clinic.example>", "5.0.0"),
            ],
        ),
        ("dsn-gave-up.eml", [(Kind.SOFT_BOUNCE, "second@example.org", KETAMINE.format("b" * 12), "4.0.0")]),
        ("dsn-delayed.eml", [(Kind.SOFT_BOUNCE, "second@example.org", NALOXONE.format("b" * 12), "4.0.0")]),
        ("dsn-policy.eml", [(Kind.BLOCKED, "policy@example.com", KETAMINE.format("c" * 12), "5.7.26")]),
        ("arf-abuse.eml", [(Kind.COMPLAINT, "reader@example.net", KETAMINE.format("d" * 12), None)]),
        ("arf-redacted.eml", [(Kind.COMPLAINT, None, KETAMINE.format("e" * 12), None)]),
        ("arf-optional-fields.eml", [(Kind.COMPLAINT, "third@example.com", NALOXONE.format("f" * 12), None)]),
        ("out-of-office.eml", []),
    ],
)
def test_each_report_is_read(name: str, expected: list[tuple[Kind, str | None, str, str | None]]) -> None:
    found = parse_report(_fixture(name))
    assert [(f.kind, f.address, f.message_id, f.status) for f in found] == expected
    assert all(f.source for f in found)


# -- a Maildir, recorded ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SuppressionStore]:
    with SuppressionStore(f"sqlite:///{tmp_path / 'registry.sqlite'}") as found:
        yield found


def _sent(store: SuppressionStore, slug: str, messages: dict[str, str]) -> None:
    """Sends of the newsletter ``slug``, one per message (Message-ID → address), each accepted,
    in that order (a newsletter mails an address once per send)."""
    at = clock.now() - timedelta(days=30)
    with store.engine.begin() as conn:
        for n, (message_id, address) in enumerate(messages.items()):
            finished = at + timedelta(days=n)
            send_id = conn.execute(
                insert(sends).values(
                    slug=slug,
                    version=f"{n:064x}",
                    title=slug,
                    published_at=finished,
                    created_at=finished,
                    candidates=1,
                )
            ).inserted_primary_key[0]
            conn.execute(
                insert(recipients_table).values(
                    send_id=send_id,
                    address_key=address.lower(),
                    address=address,
                    state=State.ACCEPTED,
                    attempts=1,
                    data_started=True,
                    message_id=message_id,
                    finished_at=finished,
                    updated_at=finished,
                )
            )


def _maildir(folder: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(folder, create=True)
    for raw in messages:
        box.add(raw)
    return folder


def _suppressed(store: SuppressionStore) -> dict[str, str]:
    return {row.address: row.how for row in store.export()}


ALL = sorted(p.name for p in MAIL.glob("*.eml"))


def test_a_maildir_of_reports_suppresses_what_it_should(tmp_path: Path, store: SuppressionStore) -> None:
    _sent(
        store,
        "ketamine-therapy",
        {
            KETAMINE.format("a" * 12): "reader@example.net",
            KETAMINE.format("b" * 12): "second@example.org",
            KETAMINE.format("c" * 12): "policy@example.com",
            KETAMINE.format("d" * 12): "reader@example.net",  # who complained (arf-abuse.eml)
            KETAMINE.format("e" * 12): "hidden@example.org",  # the redacted complaint's recipient
        },
    )
    folder = _maildir(tmp_path / "bounces", [_fixture(name) for name in ALL])
    summary = record_findings(read_maildir(folder), store)
    assert _suppressed(store) == {
        "reader@example.net": "complaint",  # bounced too: the complaint is the stronger reason
        "hidden@example.org": "complaint",  # placed by the Message-ID we sent it
        "third@example.com": "complaint",
        "arathib@vnet.example.com": "hard-bounce",
        "wsnell@sdcc13.example.edu": "hard-bounce",
    }  # not policy@ (5.7.26: blocked), not second@ or johnh@ (soft, fewer than three in a row)
    assert summary.messages == len(ALL)
    assert summary.unplaced == 0
    counts = store.counts("ketamine-therapy")
    assert (counts.bounced, counts.complained, counts.blocked, counts.soft_bounced) == (1, 2, 1, 1)

    again = record_findings(read_maildir(folder), store)  # the same mailbox, read again
    assert again.recorded == 0
    assert again.suppressed == []
    assert store.counts("ketamine-therapy") == counts


def test_a_forwarded_address_is_placed_on_the_subscriber_we_sent_to(
    tmp_path: Path, store: SuppressionStore
) -> None:
    _sent(store, "ketamine-therapy", {KETAMINE.format("a" * 12): "subscriber@example.org"})
    folder = _maildir(tmp_path / "bounces", [_fixture("dsn-user-unknown.eml")])  # names reader@example.net
    record_findings(read_maildir(folder), store)
    assert _suppressed(store) == {"subscriber@example.org": "hard-bounce"}


def test_a_complaint_that_names_nobody_we_know_is_counted_as_unplaced(
    tmp_path: Path, store: SuppressionStore
) -> None:
    folder = _maildir(tmp_path / "bounces", [_fixture("arf-redacted.eml")])
    summary = record_findings(read_maildir(folder), store)
    assert summary.unplaced == 1
    assert _suppressed(store) == {}


def _soft(message_id: str, report_id: str) -> bytes:
    """dsn-gave-up.eml (a 4.0.0 failure) about another message of ours."""
    raw = _fixture("dsn-gave-up.eml")
    raw = raw.replace(KETAMINE.format("b" * 12).encode(), message_id.encode())
    return raw.replace(b"<199407072116.RAA14129@mx.example.org>", report_id.encode())


def test_three_sends_in_a_row_that_soft_bounced_suppress(tmp_path: Path, store: SuppressionStore) -> None:
    ids = [f"<issue-{n}.{n}@clinic.example>" for n in range(1, 5)]
    _sent(store, "monthly", dict.fromkeys(ids, "second@example.org"))
    box = _maildir(tmp_path / "bounces", [])
    mdir = mailbox.Maildir(box, create=False)

    mdir.add(_soft(ids[0], "<r1@mx.example.org>"))
    mdir.add(_soft(ids[0], "<r1-again@mx.example.org>"))  # the same message, reported twice
    mdir.add(_soft(ids[1], "<r2@mx.example.org>"))
    mdir.add(_soft(ids[3], "<r4@mx.example.org>"))  # ids[2] got through: the row is broken
    record_findings(read_maildir(box), store)
    assert _suppressed(store) == {}

    mdir.add(_soft(ids[2], "<r3@mx.example.org>"))  # now four sends in a row soft-bounced
    summary = record_findings(read_maildir(box), store)
    assert summary.suppressed == [("second@example.org", "soft-bounces")]
    (row,) = store.export()
    assert row.detail.startswith("4 soft bounces in a row")


def test_a_folder_that_is_not_a_maildir_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a Maildir"):
        list(read_maildir(tmp_path))


# -- IMAP on loopback ---------------------------------------------------------------------------


class _ImapHandler(socketserver.StreamRequestHandler):
    """Just enough IMAP4rev1 (RFC 3501) for imaplib: LOGIN, EXAMINE/SELECT, UID SEARCH/FETCH."""

    server: ImapTestServer
    timeout = 10

    def _send(self, line: str | bytes) -> None:
        self.wfile.write(line if isinstance(line, bytes) else line.encode() + b"\r\n")

    def handle(self) -> None:
        self._send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] test server ready")
        authenticated = False
        while line := self.rfile.readline(65536):
            tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
            command, _, args = rest.partition(" ")
            name = command.upper()
            if name == "UID":
                sub, _, args = args.partition(" ")
                name = f"UID {sub.upper()}"
            self.server.commands.append(f"{name} {args}".strip())
            if name == "CAPABILITY":
                self._send("* CAPABILITY IMAP4rev1 AUTH=PLAIN")
            elif name == "LOGIN":
                user, _, secret = args.partition(" ")
                if (user, secret.strip('"')) != (self.server.user, self.server.password):
                    self._send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
                    continue
                authenticated = True
            elif name in ("EXAMINE", "SELECT") and authenticated:
                self._send(f"* {len(self.server.messages)} EXISTS")
                self._send("* OK [UIDVALIDITY 1] UIDs valid")
                self._send(f"{tag} OK [{'READ-ONLY' if name == 'EXAMINE' else 'READ-WRITE'}] done")
                continue
            elif name == "UID SEARCH" and authenticated:
                self._send("* SEARCH " + " ".join(str(n) for n in range(1, len(self.server.messages) + 1)))
            elif name == "UID FETCH" and authenticated:
                uid = int(args.split(" ", 1)[0])
                raw = self.server.messages[uid - 1]
                if "BODY.PEEK[]" not in args.upper():
                    self.server.marked_seen.add(uid)  # BODY[] sets \\Seen (RFC 3501 6.4.5)
                self._send(
                    f"* {uid} FETCH (UID {uid} BODY[] {{{len(raw)}}}".encode() + b"\r\n" + raw + b")\r\n"
                )
            elif name == "LOGOUT":
                self._send("* BYE logging out")
                self._send(f"{tag} OK done")
                return
            else:
                self._send(f"{tag} BAD {name or 'nothing'} not understood")
                continue
            self._send(f"{tag} OK done")


class ImapTestServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, messages: list[bytes], user: str = "bounces", password: str = PASSWORD) -> None:
        super().__init__(("127.0.0.1", 0), _ImapHandler)
        self.messages = messages
        self.user, self.password = user, password
        self.commands: list[str] = []
        self.marked_seen: set[int] = set()

    @property
    def url(self) -> str:
        return f"imap://{self.user}@127.0.0.1:{self.server_address[1]}/INBOX"


@pytest.fixture
def imap() -> Iterator[ImapTestServer]:
    server = ImapTestServer([_fixture(name) for name in ALL])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_reports_read_over_imap_suppress_and_nothing_is_marked_read(
    imap: ImapTestServer, store: SuppressionStore
) -> None:
    summary = record_findings(read_imap(parse_imap_url(imap.url), PASSWORD, timeout=10), store)
    assert summary.messages == len(ALL)
    assert _suppressed(store) == {
        "reader@example.net": "complaint",
        "third@example.com": "complaint",
        "arathib@vnet.example.com": "hard-bounce",
        "wsnell@sdcc13.example.edu": "hard-bounce",
    }
    assert summary.unplaced == 1  # the redacted complaint: nothing of ours in this registry
    assert 'EXAMINE "INBOX"' in imap.commands  # read-only
    assert not any(c.startswith("SELECT") for c in imap.commands)
    assert imap.marked_seen == set()


def test_a_refused_imap_login_says_where_and_not_the_password(
    imap: ImapTestServer, store: SuppressionStore
) -> None:
    with pytest.raises(
        DeliveryError, match=re.escape(f"imap://bounces@127.0.0.1:{imap.server_address[1]}")
    ) as caught:
        list(read_imap(parse_imap_url(imap.url), "wrong-" + PASSWORD, timeout=10))
    assert PASSWORD not in str(caught.value)


def test_a_password_in_the_imap_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(InputError, match="password in it") as caught:
        parse_imap_url(f"imaps://bounces:{PASSWORD}@mail.clinic.example/INBOX")
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("imaps://bounces@mail.clinic.example", "imaps://bounces@mail.clinic.example:993/INBOX"),
        ("imap://bounces@127.0.0.1:1143/Bounces%20Box", "imap://bounces@127.0.0.1:1143/Bounces Box"),
    ],
)
def test_imap_urls(url: str, where: str) -> None:
    assert parse_imap_url(url).where() == where


@pytest.mark.parametrize("url", ["https://bounces@mail.example/", "imaps://mail.example/INBOX", "imap://@/"])
def test_a_bad_imap_url_is_bad_input(url: str) -> None:
    with pytest.raises(InputError, match="--imap"):
        parse_imap_url(url)
