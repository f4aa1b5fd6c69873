"""Bounces and complaints read from a mailbox (a Maildir folder, or IMAP), then suppressed.

Two report formats, parsed with the stdlib ``email`` package (``parse_report``, pure):

- RFC 3464 delivery status notifications: ``multipart/report; report-type=delivery-status``,
  one block per recipient with ``Final-Recipient`` (``Original-Recipient`` when given), ``Action``
  and ``Status``. ``bounce_kind`` decides: ``failed`` with 5.x.x is a hard bounce, except the
  refusals of the message or the sender rather than the address: 5.7.x (policy, authentication:
  an unsigned message at Gmail), 5.6.x (content), 5.3.4 (too large), counted as ``blocked``; and
  5.2.2 (mailbox full), a soft bounce. ``failed`` with 4.x.x and ``delayed`` are soft bounces.
  ``delivered``, ``relayed`` and ``expanded`` are no bounce.
- RFC 5965 ARF complaint reports: ``multipart/report; report-type=feedback-report`` with
  ``Feedback-Type: abuse``; the recipient from ``Original-Rcpt-To``, else the included
  message's ``To``. Other feedback types (``not-spam``, ``auth-failure``, …) are not complaints.

Who a report is about: the recipient of the reported message's Message-ID when the registry sent
it (each recipient's message has its own Message-ID, so a report whose address is redacted, as
many complaint reports are, is still placed), else the address the report names. The decisions
(what suppresses) are ``suppression.py``'s; the mailbox is only read, never changed, and reading
it again records nothing twice.

IMAP: ``imaps://USER@HOST[:PORT]/MAILBOX`` (TLS), or ``imap://…`` with STARTTLS (clear text only
to a server on loopback); the password from ``CLINICPRESS_BOUNCES__IMAP_PASSWORD``, never in the
URL (a command line is visible to every user of the machine). The mailbox is opened read-only
(``EXAMINE``) and messages fetched with ``BODY.PEEK[]``: nothing is marked read.
"""

from __future__ import annotations

import email
import email.message
import email.parser
import email.policy
import hashlib
import imaplib
import ipaddress
import mailbox
import re
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from clinicpress.addresses import address_problem
from clinicpress.errors import InputError
from clinicpress.outputs.delivery.errors import DeliveryError
from clinicpress.outputs.delivery.suppression import Kind, MailEvent, SuppressionStore

__all__ = [
    "IMAP_PASSWORD_ENV",
    "BounceSummary",
    "Finding",
    "ImapSource",
    "bounce_kind",
    "complaint_kind",
    "parse_imap_url",
    "parse_report",
    "read_imap",
    "read_maildir",
    "record_findings",
]

IMAP_PASSWORD_ENV = "CLINICPRESS_BOUNCES__IMAP_PASSWORD"  # noqa: S105 (a variable's name)
MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # a report with the whole original attached stays far below
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDRESS = re.compile(r"<?([^<>\s;]+@[^<>\s;]+?)>?\s*$")


@dataclass(frozen=True)
class Finding:
    """One recipient's outcome in one report."""

    kind: Kind
    address: str | None  # None: the report does not say (redacted): placed by ``message_id``
    message_id: str | None  # the reported message's Message-ID, when the report includes it
    status: str | None
    source: str  # the report's identity: its own Message-ID, or a digest of its bytes
    detail: str


# -- the decisions (pure) -----------------------------------------------------------------------


def status_code(text: str | None) -> tuple[int, int, int] | None:
    """``"5.1.1 (user unknown)"`` → (5, 1, 1); None when there is no status code."""
    match = _STATUS.search(text or "")
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def bounce_kind(action: str, status: str | None) -> Kind | None:
    """What one DSN recipient block means (None: no bounce, or nothing to go on)."""
    act = action.strip().lower()
    code = status_code(status)
    if act == "delayed":
        return Kind.SOFT_BOUNCE
    if act != "failed" or code is None:
        return None  # delivered, relayed, expanded; or a failure without a status: not enough to act
    klass, subject, detail = code
    if klass == 4:
        return Kind.SOFT_BOUNCE
    if klass != 5:
        return None
    if (subject, detail) == (2, 2):
        return Kind.SOFT_BOUNCE  # mailbox full: it may empty
    if subject in (6, 7) or (subject, detail) == (3, 4):
        return Kind.BLOCKED  # the message or the sender was refused, not the address
    return Kind.HARD_BOUNCE


def complaint_kind(feedback_type: str) -> Kind | None:
    """An ARF report's ``Feedback-Type``: only ``abuse`` is a complaint."""
    return Kind.COMPLAINT if feedback_type.strip().lower() == "abuse" else None


def _address(value: str | None) -> str | None:
    """``rfc822; a@b.example`` or ``<a@b.example>`` → ``a@b.example`` (a sendable address only)."""
    if not value:
        return None
    text = value.split(";", 1)[1] if ";" in value else value
    match = _ADDRESS.search(text.strip())
    if match is None or address_problem(match[1]):
        return None
    return match[1].lower()


def _source(msg: email.message.Message, raw: bytes) -> str:
    mid = (msg.get("Message-ID") or "").strip()
    return mid[:200] if mid else "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def _text(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _blocks(part: email.message.Message) -> list[email.message.Message]:
    """The field blocks of a ``message/delivery-status`` part (the email package splits them)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, email.message.Message)]
    parser = email.parser.HeaderParser(policy=email.policy.compat32)
    return [parser.parsestr(block) for block in re.split(r"\r?\n\s*\r?\n", _text(part)) if block.strip()]


def _fields(part: email.message.Message) -> email.message.Message:
    """The fields of a ``message/feedback-report`` part (the email package may parse them as a
    message of headers alone, or leave them as text)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
        return payload[0]
    return email.parser.HeaderParser(policy=email.policy.compat32).parsestr(_text(part))


def _detail(action: str, why: str) -> str:
    return f"{action.strip()} {why.strip()}"[:500]


def _original(report: email.message.Message) -> email.message.Message | None:
    """The reported message (or its headers): a ``message/rfc822`` or ``text/rfc822-headers`` part."""
    for part in report.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], email.message.Message):
                return inner[0]
        if ctype == "text/rfc822-headers":
            return email.parser.HeaderParser(policy=email.policy.compat32).parsestr(_text(part))
    return None


def parse_report(raw: bytes) -> list[Finding]:
    """Every bounce or complaint in one mailbox message; [] for anything that is not a report."""
    msg = email.message_from_bytes(raw[:MAX_MESSAGE_BYTES], policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report":
        return []
    report_type = str(msg.get_param("report-type") or "").lower()
    source = _source(msg, raw)
    original = _original(msg)
    message_id = (original.get("Message-ID") or "").strip() or None if original is not None else None
    parts = list(msg.walk())
    if report_type == "delivery-status":
        found: list[Finding] = []
        for part in parts:
            if part.get_content_type() != "message/delivery-status":
                continue
            for block in _blocks(part)[1:]:  # the first block is about the message, the rest per recipient
                kind = bounce_kind(block.get("Action", ""), block.get("Status"))
                if kind is None:
                    continue
                address = _address(block.get("Original-Recipient")) or _address(block.get("Final-Recipient"))
                status = status_code(block.get("Status"))
                diagnostic = " ".join((block.get("Diagnostic-Code") or "").split())
                found.append(
                    Finding(
                        kind=kind,
                        address=address,
                        message_id=message_id,
                        status=".".join(map(str, status)) if status else None,
                        source=source,
                        detail=_detail(block.get("Action", ""), diagnostic or block.get("Status", "")),
                    )
                )
        return found
    if report_type == "feedback-report":
        for part in parts:
            if part.get_content_type() != "message/feedback-report":
                continue
            fields = _fields(part)
            kind = complaint_kind(fields.get("Feedback-Type", ""))
            if kind is None:
                return []
            address = _address(fields.get("Original-Rcpt-To"))
            if address is None and original is not None:
                address = _address(original.get("To"))
            agent = " ".join((fields.get("User-Agent") or "").split())
            detail = f"complaint (Feedback-Type: abuse{', from ' + agent if agent else ''})"[:500]
            return [Finding(kind, address, message_id, None, source, detail)]
    return []


# -- reading a mailbox --------------------------------------------------------------------------


def read_maildir(folder: Path | str) -> Iterator[tuple[str, bytes]]:
    """(key, bytes) of every message in the Maildir ``folder`` (new/ and cur/), read only."""
    path = Path(folder)
    if not (path / "cur").is_dir() or not (path / "new").is_dir():
        raise InputError(path, "--maildir", "is not a Maildir folder", "a folder with cur/ and new/ in it")
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.iterkeys()):
        try:
            yield key, box.get_bytes(key)
        except (KeyError, FileNotFoundError):
            continue  # moved or deleted by the mail server meanwhile


@dataclass(frozen=True)
class ImapSource:
    """Where ``read_imap`` reads: parsed from ``imaps://USER@HOST[:PORT]/MAILBOX``."""

    tls: bool
    host: str
    port: int
    user: str
    mailbox: str

    def where(self) -> str:
        return f"{'imaps' if self.tls else 'imap'}://{self.user}@{self.host}:{self.port}/{self.mailbox}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_imap_url(url: str) -> ImapSource:
    """``imaps://USER@HOST[:PORT]/MAILBOX`` (default mailbox INBOX); a password in it is refused."""
    expected = "imaps://USER@HOST[:PORT]/MAILBOX, the password in " + IMAP_PASSWORD_ENV
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(None, "--imap", f"not a URL ({exc})", expected) from exc
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise InputError(None, "--imap", "needs imap:// or imaps://, a user and a host", expected)
    if parts.password is not None:
        # Never echo the URL: it holds the password.
        raise InputError(
            None, "--imap", "has a password in it (visible to every user of this machine)", expected
        )
    mailbox_name = unquote(parts.path.lstrip("/")) or "INBOX"
    if any(c in mailbox_name for c in '\r\n"\\'):
        raise InputError(None, "--imap", "the mailbox name has a quote, backslash or line break", expected)
    tls = parts.scheme == "imaps"
    return ImapSource(
        tls, parts.hostname, port or (993 if tls else 143), unquote(parts.username), mailbox_name
    )


def read_imap(
    source: ImapSource,
    password: str,
    *,
    timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[tuple[str, bytes]]:
    """(UID, bytes) of every message in the mailbox, opened read-only; nothing is marked read.

    imaplib, ssl and socket errors become ``DeliveryError`` naming the server (never the password).
    """
    where = source.where()
    context = ssl_context or ssl.create_default_context()
    try:
        conn: imaplib.IMAP4
        if source.tls:
            conn = imaplib.IMAP4_SSL(source.host, source.port, ssl_context=context, timeout=timeout)
        else:
            conn = imaplib.IMAP4(source.host, source.port, timeout=timeout)
            if "STARTTLS" in conn.capabilities:
                conn.starttls(context)
            elif not _loopback(source.host):
                conn.shutdown()
                raise DeliveryError(f"{where} does not offer STARTTLS; refusing to log in in clear text")
        try:
            conn.login(source.user, password)
            typ, _ = conn.select(f'"{source.mailbox}"', readonly=True)
            if typ != "OK":
                raise DeliveryError(f"{where}: no such mailbox")
            typ, data = conn.uid("SEARCH", "ALL")
            uids = (data[0] or b"").split() if typ == "OK" and data and isinstance(data[0], bytes) else []
            for uid in uids:
                typ, fetched = conn.uid("FETCH", uid.decode("ascii"), "(BODY.PEEK[])")
                for item in fetched if typ == "OK" else []:
                    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                        yield uid.decode("ascii"), item[1]
        finally:
            try:
                conn.logout()
            except (imaplib.IMAP4.error, OSError):
                conn.shutdown()
    except imaplib.IMAP4.error as exc:
        raise DeliveryError(f"{where}: the server refused ({exc})") from exc
    except (OSError, EOFError) as exc:  # ssl.SSLError and socket timeouts are OSErrors
        raise DeliveryError(f"{where}: cannot read ({exc})") from exc


# -- recording ----------------------------------------------------------------------------------


@dataclass
class BounceSummary:
    """What one reading of a mailbox found and did."""

    messages: int = 0
    reports: int = 0  # messages that were DSN or ARF reports with a finding
    recorded: int = 0  # new events (a report read before adds none)
    by_kind: dict[str, int] = field(default_factory=dict)
    suppressed: list[tuple[str, str]] = field(default_factory=list)  # (address, how) made or strengthened
    unplaced: int = 0  # findings whose recipient could not be told

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.by_kind.items())) or "nothing"
        out = [
            f"{self.messages} message(s) read, {self.reports} report(s): {kinds}; {self.recorded} new",
            *(f"suppressed {address} ({how})" for address, how in self.suppressed),
        ]
        if self.unplaced:
            out.append(
                f"{self.unplaced} finding(s) name no recipient we can tell (redacted, not our message)"
            )
        return out


def record_findings(messages: Iterable[tuple[str, bytes]], store: SuppressionStore) -> BounceSummary:
    """Parse each message, place each finding on an address, record it (one transaction each)."""
    summary = BounceSummary()
    for _key, raw in messages:
        summary.messages += 1
        findings = parse_report(raw)
        if findings:
            summary.reports += 1
        for finding in findings:
            # Our Message-IDs are per recipient: the registry's answer beats a forwarded address.
            address = (store.address_for_message_id(finding.message_id) if finding.message_id else None) or (
                finding.address
            )
            if address is None:
                summary.unplaced += 1
                continue
            summary.by_kind[finding.kind.value] = summary.by_kind.get(finding.kind.value, 0) + 1
            done = store.record(
                MailEvent(
                    address=address,
                    kind=finding.kind,
                    source=finding.source,
                    detail=finding.detail,
                    message_id=finding.message_id,
                    status=finding.status,
                )
            )
            summary.recorded += int(done.new)
            if done.changed and done.suppressed is not None:
                summary.suppressed.append((address, done.suppressed))
    return summary
