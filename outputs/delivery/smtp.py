"""The SMTP side: one connection at a time, one transaction per message, one reconnect loop.

This module is the boundary: smtplib, ssl and socket exceptions do not
leave it. Opening a connection raises ``SmtpFatal`` (no retry fixes it) or
is retried; a message's transaction ends in an ``Outcome`` that says whether
the data can have reached the server. ``SmtpSession.transaction`` is the one
reconnect loop (bounded, with backoff), used by subscriber and test sends
alike; when the server stays away it raises ``SmtpGone``.
"""

from __future__ import annotations

import enum
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import EmailMessage

from clinicpress.outputs.delivery.errors import SmtpError, SmtpFatal, SmtpGone
from clinicpress.site import Smtp

MAX_BACKOFF = 10.0


class Outcome(enum.Enum):
    ACCEPTED = "accepted"  # 250 to the message data
    REFUSED = "refused"  # a definite refusal: failed
    NOT_SENT = "not-sent"  # the connection went away before the data was complete: pending
    UNKNOWN = "unknown"  # the connection went away after the data, before the reply: uncertain


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    detail: str
    cause: OSError | None = field(default=None, compare=False)  # kept for SmtpGone's __cause__


class _Unreachable(SmtpError):
    """Opening a connection failed in a way a later try may not (retried inside this module)."""


@contextmanager
def _mapped(where: str) -> Iterator[None]:
    """Where smtplib, ssl and socket errors of opening a connection become ours (cause kept)."""
    try:
        yield
    except ssl.SSLCertVerificationError as exc:
        raise SmtpFatal(f"SMTP {where}: certificate not trusted ({exc.verify_message})") from exc
    except (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError) as exc:
        raise SmtpFatal(f"SMTP {where}: login refused ({exc})") from exc
    except OSError as exc:  # smtplib's errors, socket timeouts and ssl.SSLError are OSErrors
        raise _Unreachable(f"SMTP {where} unreachable: {exc}") from exc


def _reply(step: str, code: int, text: bytes) -> str:
    return f"{step}: {code} {text.decode('utf-8', 'replace')}".strip()


def _wire_bytes(msg: EmailMessage) -> bytes:
    """The message as SMTP DATA: CRLF line ends, dot-stuffed, ending with <CRLF>.<CRLF>."""
    data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def deliver(
    conn: smtplib.SMTP, sender: str, to: str, msg: EmailMessage, data_started: Callable[[], None]
) -> Delivery:
    """One SMTP transaction, split so that the moment the data leaves is known.

    ``data_started`` is called (and must commit) after the server's 354 and
    before the first byte of data: from then on a drop is UNKNOWN.
    """
    payload = _wire_bytes(msg)
    try:
        code, text = conn.mail(sender)
        if code != 250:
            return _refused("MAIL FROM", code, text)
        code, text = conn.rcpt(to)
        if code not in (250, 251):
            return _refused("RCPT TO", code, text)
        conn.putcmd("data")
        code, text = conn.getreply()
        if code != 354:
            return _refused("DATA", code, text)
    except OSError as exc:  # smtplib's errors are OSErrors too
        return Delivery(Outcome.NOT_SENT, f"connection lost before the message data: {exc}", exc)
    data_started()
    try:
        conn.send(payload)
    except OSError as exc:
        # send() failing means the final <CRLF>.<CRLF> never left: the server cannot accept it.
        return Delivery(Outcome.NOT_SENT, f"connection lost while sending the message data: {exc}", exc)
    try:
        code, text = conn.getreply()
    except OSError as exc:
        return Delivery(
            Outcome.UNKNOWN, f"connection lost after the message data, before the reply: {exc}", exc
        )
    if code == 250:
        return Delivery(Outcome.ACCEPTED, _reply("DATA", code, text))
    if code == 421:
        # The server says it closes the channel and did not take the message.
        return Delivery(Outcome.NOT_SENT, _reply("end of DATA", code, text))
    if code < 200:  # smtplib's -1: a reply it could not read
        return Delivery(Outcome.UNKNOWN, _reply("end of DATA (unreadable reply)", code, text))
    return Delivery(Outcome.REFUSED, _reply("end of DATA", code, text))


def _refused(step: str, code: int, text: bytes) -> Delivery:
    if code == 421 or code < 200:
        # 421: the server is closing the connection; nothing about this recipient.
        return Delivery(Outcome.NOT_SENT, _reply(step, code, text))
    return Delivery(Outcome.REFUSED, _reply(step, code, text))


def backoff(failures: int, delay: float) -> float:
    """Seconds to wait before the next try after ``failures`` consecutive failures (1, 2, …)."""
    return min(delay * 2.0 ** (failures - 1), MAX_BACKOFF)


class SmtpSession:
    """One SMTP connection at a time, reopened on demand within a budget of consecutive failures."""

    def __init__(
        self,
        settings: Smtp,
        ssl_context: ssl.SSLContext | None = None,
        *,
        reconnects: int = 3,
        reconnect_delay: float = 0.5,
    ) -> None:
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.local_hostname = socket.getfqdn()  # once: smtplib would look it up per connection
        self.conn: smtplib.SMTP | None = None
        self.reconnects = reconnects
        self.reconnect_delay = reconnect_delay
        self.failures = 0  # consecutive; a definite outcome resets it
        # The budget is spent: why, and the error behind it (every later transaction raises).
        self.gone: tuple[str, BaseException | None] | None = None

    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def transaction(self, attempt: Callable[[smtplib.SMTP], Delivery | None]) -> Delivery | None:
        """Run ``attempt`` on an open connection: the one reconnect loop.

        A connection that cannot be opened, or an attempt that ends NOT_SENT
        (the data provably never left), is retried on a new connection after
        a backoff. UNKNOWN drops the connection and counts as a failure, but
        is returned (never retried: the server may have the message).
        ``attempt`` returns None when it sent nothing (no longer eligible).
        Raises ``SmtpFatal``, or ``SmtpGone`` once the budget is spent.
        """
        while True:
            if self.gone is not None:
                why, cause = self.gone
                raise SmtpGone(why) from cause
            if self.conn is None and self.failures:
                time.sleep(backoff(self.failures, self.reconnect_delay))
            try:
                conn = self._open()
            except _Unreachable as exc:
                self._failed(str(exc), exc.__cause__)
                continue
            result = attempt(conn)
            if result is None:
                return None
            if result.outcome is Outcome.NOT_SENT:
                self.drop()
                self._failed(f"SMTP {self.where()}: {result.detail}", result.cause)
                continue
            if result.outcome is Outcome.UNKNOWN:
                self.drop()
                # A server that drops every connection after the data must not make everyone uncertain.
                self._failed(f"SMTP {self.where()} keeps dropping connections: {result.detail}", result.cause)
            else:
                self.failures = 0
                if result.outcome is Outcome.REFUSED:
                    self._reset()
            return result

    def _failed(self, why: str, cause: BaseException | None) -> None:
        """Count one consecutive failure (the next open waits for it); past the budget, remember why."""
        self.failures += 1
        if self.failures > self.reconnects:
            self.gone = (why, cause)

    def _open(self) -> smtplib.SMTP:
        if self.conn is not None:
            return self.conn
        s = self.settings
        conn: smtplib.SMTP
        with _mapped(self.where()):
            if s.security == "tls":
                conn = smtplib.SMTP_SSL(
                    s.host, s.port, self.local_hostname, timeout=s.timeout, context=self.ssl_context
                )
            else:
                conn = smtplib.SMTP(s.host, s.port, self.local_hostname, timeout=s.timeout)
        try:
            with _mapped(self.where()):
                self._greet(conn)
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        return conn

    def _greet(self, conn: smtplib.SMTP) -> None:
        """EHLO, STARTTLS when asked for (never falling back to clear text), and login."""
        s = self.settings
        conn.ehlo()
        if s.security == "starttls":
            if not conn.has_extn("starttls"):
                raise SmtpFatal(
                    f"SMTP {self.where()} does not offer STARTTLS; refusing to send in clear text"
                )
            conn.starttls(context=self.ssl_context)
            conn.ehlo()
        if s.username:
            if s.password is None:
                raise SmtpFatal(
                    f"SMTP {self.where()}: username set but no password (set "
                    "CLINICPRESS_NEWSLETTER__SMTP__PASSWORD, or [newsletter.smtp] password_file)"
                )
            conn.login(s.username, s.password.get_secret_value())

    def drop(self) -> None:
        """Forget the connection without a word (mid-transaction a QUIT may wait forever)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _reset(self) -> None:
        """RSET after a refusal; a connection that cannot even do that is dropped."""
        if self.conn is None:
            return
        try:
            code, _ = self.conn.rset()
        except OSError:
            code = 0
        if code != 250:
            self.drop()

    def close(self) -> None:
        if self.conn is not None:
            with suppress(OSError):
                self.conn.quit()
            self.drop()
