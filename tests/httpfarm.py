"""A real HTTP server on 127.0.0.1 for tests: routes are data, every request is counted.

Usage::

    with HTTPFarm() as farm:
        farm.route("/ok", Reply(200))
        farm.route("/flaky", Reply(503), Reply(200))        # 1st request 503, then 200 forever
        farm.route("/no-head", Reply(200), head=[Reply(405)])
        farm.route("/moved", Reply.redirect(301, "/ok"))
        farm.route("/walled", Reply(403), agents={"Mozilla": Reply(200)})   # by User-Agent
        httpx.get(farm.url("/ok"))
        assert farm.hits("/ok", "GET") == 1

Replies are served in order per route (all methods share one counter, or
HEAD has its own list when ``head`` is given); the last reply repeats.
A route's ``agents`` map a User-Agent substring to the reply for requests
carrying it (a bot wall that lets browsers through). Unknown paths answer
404. ``times(path)`` gives the monotonic start time of every request.
Only loopback, port 0 (the OS picks a free port), one daemon thread per
connection; a ``delay`` sleeps on an event that ``close()`` sets, so
stopping the farm never waits for a slow reply.

What became of each answer is recorded, for evidence that does not depend on
the machine's speed: ``served(path)`` lists, per finished request, how many
body bytes were written, whether the answer was sent in full, and whether the
client went away first (closed during a ``delay``, or while the body was being
written). A ``Reply(..., repeat=n)`` sends its body ``n`` times (a big body
without holding it in memory). ``wait_idle(path)`` waits until the server has
finished every request to ``path`` (the client may return before it has).
"""

from __future__ import annotations

import select
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar
from urllib.parse import urlsplit

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Reply:
    """One canned response."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    body: bytes = b""
    delay: float = 0.0  # seconds to wait before sending the status line
    repeat: int = 1  # the body is sent this many times (Content-Length counts them all)

    @classmethod
    def redirect(cls, status: int, location: str) -> Reply:
        return cls(status, {"Location": location})


_EMPTY_AGENTS: Mapping[str, Reply] = MappingProxyType({})


@dataclass(frozen=True)
class Served:
    """What became of one request's answer, as the server saw it."""

    method: str
    body_sent: int  # body bytes the client's socket accepted
    body_total: int  # body bytes the answer had (0 for HEAD)
    finished: bool  # the whole answer was sent
    client_left: bool  # the client closed the connection before the answer was complete


@dataclass
class Route:
    replies: Sequence[Reply]
    head: Sequence[Reply] | None = None  # HEAD's own sequence, e.g. a server that refuses HEAD
    agents: Mapping[str, Reply] = field(default_factory=lambda: _EMPTY_AGENTS)
    served: int = 0
    served_head: int = 0

    def next_reply(self, method: str, user_agent: str = "") -> Reply:
        for needle, reply in self.agents.items():
            if needle in user_agent:
                return reply
        if method == "HEAD" and self.head is not None:
            reply = self.head[min(self.served_head, len(self.head) - 1)]
            self.served_head += 1
            return reply
        reply = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung keep-alive connection must not block shutdown
    request_queue_size = 256  # listen backlog: tests open dozens of connections at once
    farm: HTTPFarm

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that closes a connection early (timeout, body cut short) resets it: expected.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    timeout = 5  # idle keep-alive connections end on their own

    def _serve(self) -> None:
        farm = self.server.farm
        path = urlsplit(self.path).path
        reply = farm._begin(self.command, path, dict(self.headers.items()))
        total = 0 if self.command == "HEAD" else len(reply.body) * reply.repeat
        sent = 0
        finished = left = False
        try:
            if reply.delay:
                waited = self._wait(reply.delay)
                if waited != "done":
                    left = waited == "left"
                    self.close_connection = True
                    return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body) * reply.repeat))
            self.end_headers()
            for _ in range(reply.repeat if total else 0):
                self.wfile.write(reply.body)
                sent += len(reply.body)
            finished = True
        except (BrokenPipeError, ConnectionResetError):
            left = True
            self.close_connection = True  # the client gave up (timeout, body cut short): expected
        finally:
            farm._end(path, Served(self.command, sent, total, finished, left))

    def _wait(self, seconds: float) -> str:
        """Wait ``seconds``: "done"; or "left" as soon as the client closes the connection;
        or "stopping" when the farm closes."""
        farm = self.server.farm
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            step = min(remaining, 0.05)
            readable, _, _ = select.select([self.connection], [], [], step)
            if readable:
                try:
                    peeked = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    return "left"  # reset
                if not peeked:
                    return "left"  # orderly close
                farm._stopping.wait(step)  # the client sent more (pipelining): cannot tell, wait
            if farm._stopping.is_set():
                return "stopping"
        return "done"

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests assert on counters, not on a log


class HTTPFarm:
    """Context manager running the server in a background thread."""

    default: ClassVar[Reply] = Reply(404)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._hits: Counter[tuple[str, str]] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._max_in_flight: Counter[str] = Counter()
        self._last_headers: dict[str, dict[str, str]] = {}
        self._agents: dict[str, list[str]] = {}
        self._times: dict[str, list[float]] = {}
        self._served: dict[str, list[Served]] = {}
        self._idle = threading.Condition(self._lock)  # notified whenever a request ends
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> HTTPFarm:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.farm = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="httpfarm", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> HTTPFarm:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- configuration ---------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("HTTPFarm is not running")
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(
        self,
        path: str,
        *replies: Reply,
        head: Sequence[Reply] | None = None,
        agents: Mapping[str, Reply] | None = None,
    ) -> str:
        """Define (or replace) what ``path`` answers; returns its absolute URL."""
        if not replies:
            raise ValueError("a route needs at least one reply")
        with self._lock:
            self._routes[path] = Route(
                list(replies), list(head) if head is not None else None, dict(agents or {})
            )
        return self.url(path)

    # -- what the server saw ---------------------------------------------
    def hits(self, path: str, method: str | None = None) -> int:
        with self._lock:
            if method is not None:
                return self._hits[(method, path)]
            return sum(n for (_, p), n in self._hits.items() if p == path)

    def max_in_flight(self, path: str) -> int:
        """The most requests to ``path`` the server was answering at one time."""
        with self._lock:
            return self._max_in_flight[path]

    def last_headers(self, path: str) -> dict[str, str]:
        """The headers of the latest request to ``path`` (empty if none)."""
        with self._lock:
            return dict(self._last_headers.get(path, {}))

    def agents(self, path: str) -> list[str]:
        """The User-Agent of every request to ``path``, in order."""
        with self._lock:
            return list(self._agents.get(path, []))

    def times(self, path: str) -> list[float]:
        """When each request to ``path`` arrived (time.monotonic), in order."""
        with self._lock:
            return list(self._times.get(path, []))

    def served(self, path: str) -> list[Served]:
        """What became of each finished request to ``path``, in the order they finished."""
        with self._lock:
            return list(self._served.get(path, []))

    def wait_idle(self, path: str, timeout: float = 30.0) -> None:
        """Wait until no request to ``path`` is being answered (a hang guard bounds the wait:
        raises TimeoutError after ``timeout`` seconds)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight[path] == 0, timeout):
                raise TimeoutError(f"the farm is still answering {path} after {timeout:g} s")

    def requests(self) -> Iterator[tuple[str, str]]:
        """Every (method, path) seen, as a multiset."""
        with self._lock:
            return iter(list(self._hits.elements()))

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
            self._max_in_flight.clear()
            self._last_headers.clear()
            self._agents.clear()
            self._times.clear()
            self._served.clear()
            for route in self._routes.values():
                route.served = route.served_head = 0

    # -- used by the handler ---------------------------------------------
    def _begin(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        now = time.monotonic()
        with self._lock:
            self._last_headers[path] = headers
            agent = headers.get("User-Agent", "")
            self._agents.setdefault(path, []).append(agent)
            self._times.setdefault(path, []).append(now)
            self._hits[(method, path)] += 1
            self._in_flight[path] += 1
            self._max_in_flight[path] = max(self._max_in_flight[path], self._in_flight[path])
            route = self._routes.get(path)
            return route.next_reply(method, agent) if route is not None else self.default

    def _end(self, path: str, served: Served) -> None:
        with self._lock:
            self._in_flight[path] -= 1
            self._served.setdefault(path, []).append(served)
            self._idle.notify_all()
