"""Real HTTPS on loopback for tests: a test certificate authority (``trustme``), an HTTPS origin
on 127.0.0.2, a counting listener on 127.0.0.1 with the same port, and a DNS we control.

Usage::

    pki = TestPKI.make(tmp_folder)            # pki.ca_file: what SSL_CERT_FILE points at
    with TLSHosts(pki.leaf(NAME)) as hosts:   # the origin presents this certificate
        resolver = FakeDNS({NAME: [[ORIGIN_IP], [LISTENER_IP]]})
        monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
        hosts.url("/page.html")               # https://clinic-sources.test:<port>/page.html
        hosts.origin.sni                      # the server names the clients sent, per handshake
        hosts.listener.connections            # TCP connections to 127.0.0.1:<port>

The origin does the TLS handshake in each connection's own thread (a client that never
finishes one cannot stall the others) and serves HTTP/1.0, so every request is a new
connection, a new handshake and a new pinned connect. Linux routes all of 127/8 to lo.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import trustme
from rebind_hosts import Listener

NAME = "clinic-sources.test"  # the host name the certificates are for
ORIGIN_IP = "127.0.0.2"  # the vetted address: the HTTPS origin
LISTENER_IP = "127.0.0.1"  # the rebinding target: a listener that only counts connections
HTML = {"Content-Type": "text/html; charset=utf-8"}
PAGE = (
    b"<!doctype html><html><head><title>Sleep and early recovery</title></head><body>"
    b"<h1>Sleep and early recovery</h1><p>Poor sleep is common in the first weeks without alcohol."
    b" It usually improves with time.</p></body></html>"
)
Reply = tuple[int, Mapping[str, str], bytes]  # status, headers, body
# path -> its replies in order, the last repeating; other paths answer 404.
ROUTES: Mapping[str, Sequence[Reply]] = {
    "/page.html": [(200, HTML, PAGE)],
    "/hop": [(302, {"Location": "/page.html"}, b"")],  # same host: the next hop is pinned too
    "/flaky": [(503, {}, b""), (200, HTML, PAGE)],  # the retry connects (and is pinned) again
}
_REAL_GETADDRINFO = socket.getaddrinfo


@dataclass(frozen=True)
class TestPKI:
    """The CA the checker is told to trust (``ca_file``), and one it is not (``rogue``)."""

    __test__ = False  # not a test class, whatever its name

    ca: trustme.CA
    rogue: trustme.CA
    ca_file: Path

    @classmethod
    def make(cls, folder: Path) -> TestPKI:
        ca = trustme.CA()
        ca_file = folder / "test-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        return cls(ca=ca, rogue=trustme.CA(), ca_file=ca_file)

    def leaf(self, *names: str, untrusted: bool = False) -> trustme.LeafCert:
        """A server certificate for ``names`` (default: NAME), issued by the trusted CA or the rogue one."""
        return (self.rogue if untrusted else self.ca).issue_cert(*(names or (NAME,)))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    origin: TLSOrigin

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # The handshake here, in the connection's thread, not in the accept loop.
        try:
            request.settimeout(2)
            tls = self.origin.context.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: the client refused us
            self.origin._failed(exc)
            self.shutdown_request(request)
            return
        self.origin._handshaken()
        super().process_request_thread(tls, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-reply is not a test failure; the counters say what happened


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection
    timeout = 2

    def do_GET(self) -> None:
        status, headers, body = self.server.origin._answer(self.command, urlsplit(self.path).path)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TLSOrigin:
    """An HTTPS server on ``ip:port`` presenting ``cert``; handshakes, SNI and requests counted."""

    def __init__(self, cert: trustme.LeafCert, ip: str = ORIGIN_IP, port: int = 0) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.context)
        self.context.sni_callback = self._sni
        self._lock = threading.Lock()
        self.sni: list[str | None] = []  # the server name each client sent (None: no SNI)
        self.handshakes = 0  # completed
        self.failures: list[str] = []  # handshakes the client broke off (e.g. it refused our certificate)
        self.hits: Counter[str] = Counter()
        self._server = _Server((ip, port), _Handler)
        self._server.origin = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="tls-origin", daemon=True
        )
        self._thread.start()

    def _sni(self, connection: Any, name: str | None, context: ssl.SSLContext) -> None:
        with self._lock:
            self.sni.append(name)

    def _handshaken(self) -> None:
        with self._lock:
            self.handshakes += 1

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failures.append(f"{type(exc).__name__}: {exc}")

    def _answer(self, method: str, path: str) -> Reply:
        with self._lock:
            self.hits[path] += 1
            seen = self.hits[path]
        replies = ROUTES.get(path, [(404, {}, b"")])
        return replies[min(seen, len(replies)) - 1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)


class TLSHosts:
    """The HTTPS origin on 127.0.0.2:P and the counting listener on 127.0.0.1:P (one port)."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        for _ in range(20):  # P is free on 127.0.0.1; on 127.0.0.2 it almost surely is too
            sock = socket.create_server((LISTENER_IP, 0))
            port = int(sock.getsockname()[1])
            try:
                self.origin = TLSOrigin(cert, ORIGIN_IP, port)
            except OSError:
                sock.close()
                continue
            self.listener = Listener(sock)
            self.port = port
            return
        raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")

    def url(self, path: str, name: str = NAME) -> str:
        return f"https://{name}:{self.port}{path}"

    def close(self) -> None:
        self.origin.close()
        self.listener.close()

    def __enter__(self) -> TLSHosts:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class FakeDNS:
    """``socket.getaddrinfo`` for test names: each name's answers in turn, the last repeating.

    IP literals go to the real resolver with AI_NUMERICHOST (no DNS query leaves the machine);
    any other name does not exist.
    """

    def __init__(self, answers: Mapping[str, Sequence[Sequence[str]]]) -> None:
        self.answers = dict(answers)
        self.asked: Counter[str] = Counter()
        self._lock = threading.Lock()

    def getaddrinfo(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        name = (host.decode() if isinstance(host, bytes) else str(host or "")).lower().rstrip(".")
        try:
            ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            return _REAL_GETADDRINFO(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        with self._lock:
            self.asked[name] += 1
            turns = self.answers.get(name)
            if turns is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            addresses = turns[min(self.asked[name], len(turns)) - 1]
        number = int(port) if port not in (None, b"", "") else 0
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, number))
            for address in addresses
        ]
