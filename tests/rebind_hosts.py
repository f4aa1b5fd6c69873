"""The loopback hosts of the DNS-rebinding tests: an origin, a counting listener, a fake resolver.

One port on two addresses: the vetted origin on 127.0.0.2 and, on 127.0.0.1, a listener that
only counts connections (the address a rebinding would steer to). ``Resolver`` stands in for
``socket.getaddrinfo`` and answers each test name in turn. Used by tests/checks/test_rebinding.py,
tests/sources/test_import.py and (the listener) tests/tlsfarm.py.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import threading
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from clinicpress.settings.links import LinkCheckSettings

ORIGIN_IP = "127.0.0.2"  # the vetted address: allowed by allow_private_networks
LISTENER_IP = "127.0.0.1"  # the rebinding target: loopback, never allowed here
DEAD_IP = "127.0.0.3"  # nothing listens there: connection refused at once
SETTINGS = LinkCheckSettings(
    allow_private_networks=[f"{ORIGIN_IP}/32"], timeout=1.0, retries=1, min_interval=0
)
PAGE = b"<!doctype html><html><head><title>A study</title></head><body><h1>A study</h1></body></html>"
_REAL_GETADDRINFO = socket.getaddrinfo


# -- the parts: a listener, an origin server, a resolver -----------------------------------------


class Listener:
    """A TCP listener that accepts, counts and closes; counting drains the accept queue first,
    so a connection whose handshake completed is counted even if our thread has not seen it yet."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._socket.setblocking(False)
        self.port = int(sock.getsockname()[1])
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="counting-listener", daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        self._take()
        return self._count

    def _take(self) -> None:
        with self._lock:
            while True:
                try:
                    conn, _ = self._socket.accept()
                except (BlockingIOError, OSError):
                    return
                self._count += 1
                conn.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._socket], [], [], 0.05)
            except (OSError, ValueError):
                return  # closed
            if ready:
                self._take()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    origin: Origin


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: every request connects anew
    timeout = 2

    def do_GET(self) -> None:
        status, headers, body = self.server.origin.answer(urlsplit(self.path).path)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Origin:
    """The real HTTP server on 127.0.0.2: a page, redirects, a 503 that clears; hits counted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = _Server((ORIGIN_IP, port), _Handler)
        self._server.origin = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="rebind-origin",
            daemon=True,
        )
        self._thread.start()

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.hits[path] += 1
            seen = self.hits[path]
        html = {"Content-Type": "text/html; charset=utf-8"}
        if path == "/page":
            return 200, html, PAGE
        if path == "/hop":  # same host again: the next hop must use the same vetted address
            return 302, {"Location": "/page"}, b""
        if path == "/flaky":  # a retry connects again
            return (503, {}, b"") if seen == 1 else (200, html, PAGE)
        if path == "/to-listener":
            return 302, {"Location": f"http://{LISTENER_IP}:{self.port}/"}, b""
        if path == "/to-private-name":
            return 302, {"Location": f"http://private.test:{self.port}/"}, b""
        return 404, {}, b""

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)


class Hosts:
    """The origin on 127.0.0.2:P and the listener on 127.0.0.1:P: the same port, two addresses."""

    def __init__(self) -> None:
        for _ in range(20):  # the port is free on 127.0.0.1; on 127.0.0.2 it almost surely is too
            sock = socket.create_server((LISTENER_IP, 0))
            port = int(sock.getsockname()[1])
            try:
                self.origin = Origin(port)
            except OSError:
                sock.close()
                continue
            self.listener = Listener(sock)
            self.port = port
            return
        raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")

    def url(self, name: str, path: str) -> str:
        return f"http://{name}:{self.port}{path}"

    def close(self) -> None:
        self.origin.close()
        self.listener.close()


class Resolver:
    """``socket.getaddrinfo`` for the test names: each name's answers in turn, the last repeating."""

    def __init__(self) -> None:
        self.answers: dict[str, Sequence[Sequence[str]]] = {}
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
        else:  # a literal: the real resolver, forbidden from asking DNS
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
