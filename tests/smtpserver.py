"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), with faults on demand.

Unlike aiosmtpd's Controller, it keeps one event loop thread for its whole
life and can be stopped (listener and every open connection closed, like a
server shut down) and started again on the same port, any number of times.
What it received is kept across restarts in ``received``.

Faults, set as attributes before or while a client sends:

- ``stop_after = k``: after the k-th message accepted since the last start,
  stop (the 250 reaches the client first); ``restart_after = s`` starts it
  again s seconds later. ``stop_after = 0`` stops at the first MAIL. It
  fires once: a start clears it.
- ``drop_after_data = {n, ...}``: the n-th message data received (1-based,
  over all starts) is kept but the connection is closed without a reply:
  the client cannot know whether it was accepted ("uncertain").
- ``reject = {address, ...}``: 550 at RCPT TO.
- ``hang_up_at = {("mail" | "rcpt", n), ...}``: close the connection without
  a reply at the n-th MAIL FROM or RCPT TO (1-based, over all starts); the
  server stays up, like one that times out an idle client. Nothing of that
  message was received: the client must reconnect and send it once.
- ``pause_at = ("rcpt" | "data", n)``: hold the n-th RCPT TO (before it is
  answered) or the n-th message data (kept, reply withheld) until
  ``release()``; ``paused`` is set when it happens, so a test can SIGKILL the
  client at a known point of the SMTP transaction.
- ``data_delay``: seconds to wait before answering each message data.
- ``on_data``: called with each message data as it arrives, before the reply
  (what else is true at that moment: e.g. is the page live yet).

TLS: ``tls="starttls"`` or ``"tls"`` with a certificate from
:func:`self_signed_cert`; ``auth=(user, password)`` requires AUTH.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOST = "127.0.0.1"

# aiosmtpd logs every command at INFO; captured by pytest that costs more than the SMTP itself.
logging.getLogger("mail.log").setLevel(logging.WARNING)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def self_signed_cert(folder: Path) -> tuple[Path, Path] | None:
    """(certificate, key) for 127.0.0.1 made with the openssl CLI; None without it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@dataclass(frozen=True)
class Received:
    start: int  # which start of the server received it (1, 2, ...)
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    replied: bool  # False: kept, but the connection was dropped before the reply

    def message(self) -> EmailMessage:
        msg = BytesParser(policy=email.policy.default).parsebytes(self.data)
        assert isinstance(msg, EmailMessage)
        return msg


class _TrackedSMTP(SMTP):
    """aiosmtpd's SMTP that tells the server of its connections, so stop() can close them."""

    def __init__(self, owner: SMTPTestServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._owner._sessions.add(self)
        self._owner.connections += 1

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._sessions.discard(self)
        super().connection_lost(error)


class _Handler:
    def __init__(self, owner: SMTPTestServer) -> None:
        self.owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        o = self.owner
        if o.stop_after is not None and o.accepted_this_start >= o.stop_after:
            o._stop_now()
        if o.stopping:
            await _hang_up(server)
        o.mail_count += 1
        if ("mail", o.mail_count) in o.hang_up_at:
            await _hang_up(server)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        o = self.owner
        o.rcpt_count += 1
        if ("rcpt", o.rcpt_count) in o.hang_up_at:
            await _hang_up(server)
        if o.pause_at == ("rcpt", o.rcpt_count):
            await o._pause()
        if address.lower() in o.reject:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        o = self.owner
        if o.stopping:
            await _hang_up(server)
        o.data_count += 1
        n = o.data_count
        drop = n in o.drop_after_data
        o._record(
            Received(o.start_count, envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content, not drop)
        )
        if drop:
            await _hang_up(server)
        if o.pause_at == ("data", n):
            await o._pause()
        if o.data_delay:
            await asyncio.sleep(o.data_delay)
        o.accepted_this_start += 1
        if o.stop_after is not None and o.accepted_this_start >= o.stop_after:
            o.stopping = True  # nothing more is accepted; the 250 below is written first
            asyncio.get_running_loop().call_soon(o._auto_stop)
        return "250 2.0.0 OK queued"


async def _hang_up(server: SMTP) -> None:
    """Close the connection without a reply; connection_lost cancels this task."""
    if server.transport is not None:
        server.transport.close()
    await asyncio.Event().wait()


class SMTPTestServer:
    """See the module docstring. Use as a context manager; ``start()`` is called on enter."""

    def __init__(
        self,
        *,
        port: int | None = None,
        tls: Literal["none", "starttls", "tls"] = "none",
        cert: tuple[Path, Path] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.host = HOST
        self.port = port or free_port()
        self.tls = tls
        self.auth = auth
        self._ssl: ssl.SSLContext | None = None
        if tls != "none":
            assert cert is not None, "TLS needs a certificate (self_signed_cert)"
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(*cert)
        self.received: list[Received] = []
        self.start_count = 0
        self.accepted_this_start = 0
        self.data_count = 0
        self.rcpt_count = 0
        self.mail_count = 0
        self.connections = 0  # accepted over all starts
        self.stopping = False
        self.stop_after: int | None = None
        self.restart_after: float | None = None
        self.drop_after_data: set[int] = set()
        self.reject: set[str] = set()
        self.hang_up_at: set[tuple[str, int]] = set()
        self.pause_at: tuple[str, int] | None = None
        self.data_delay = 0.0
        self.on_data: Callable[[Received], None] | None = None
        self.paused = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._sessions: set[_TrackedSMTP] = set()
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp-test-server", daemon=True)
        self._thread.start()

    # -- control, from the test's thread
    def __enter__(self) -> SMTPTestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        self._call(self._stop_now)

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        if self._loop.is_running():
            self.stop()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.replied]

    def messages_to(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address.lower() in (t.lower() for t in r.rcpt_tos)]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("SMTP test server: condition not reached in time")
            time.sleep(0.005)

    # -- inside the loop thread
    def _call(self, fn: Callable[[], None]) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(timeout=10)

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)
        if self.on_data is not None:
            self.on_data(received)

    async def _pause(self) -> None:
        self.paused.set()
        while not self._released.is_set():
            await asyncio.sleep(0.005)

    async def _start(self) -> None:
        if self._server is not None:
            return
        self.start_count += 1
        self.accepted_this_start = 0
        self.stopping = False
        self.stop_after = None  # a stop fires once
        self._server = await self._loop.create_server(
            self._factory,
            self.host,
            self.port,
            reuse_address=True,
            ssl=self._ssl if self.tls == "tls" else None,
        )

    def _stop_now(self) -> None:
        self.stopping = True
        if self._server is not None:
            self._server.close()
            self._server = None
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        self._sessions.clear()

    def _auto_stop(self) -> None:
        self._stop_now()
        if self.restart_after is not None:
            self._loop.call_later(self.restart_after, lambda: self._loop.create_task(self._start()))

    def _factory(self) -> _TrackedSMTP:
        kwargs: dict[str, Any] = {"hostname": "smtp.test", "loop": self._loop}
        if self.tls == "starttls":
            kwargs.update(tls_context=self._ssl, require_starttls=True)
        if self.auth is not None:
            # aiosmtpd only knows of TLS it negotiated (STARTTLS); implicit TLS is TLS too.
            kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=self.tls == "starttls"
            )
        with warnings.catch_warnings():
            # "AUTH without requiring TLS": it is TLS from the first byte when tls="tls".
            warnings.simplefilter("ignore", UserWarning)
            return _TrackedSMTP(self, _Handler(self), **kwargs)

    def _authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.auth is not None
            and (data.login.decode(), data.password.decode()) == self.auth
        )
        # handled=False: aiosmtpd then answers 535 itself (True would leave the client waiting).
        return AuthResult(success=ok, handled=False)
