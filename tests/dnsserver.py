"""A real DNS server on 127.0.0.1 for tests (dnslib), answering from a zone the test writes.

UDP and TCP on one port (a long TXT record that does not fit a UDP answer is asked again over
TCP, as resolvers do). It answers TXT and CNAME from ``txt`` and ``cname``; a name it knows with
no record of the asked type is NOERROR with no answer, any other name is NXDOMAIN, and a name in
``servfail`` is SERVFAIL (a zone whose servers are broken). ``queries`` records what was asked.

Usage::

    with DNSTestServer() as dns:
        dns.txt["example.org"] = ["v=spf1 -all"]
        resolver_settings = {"nameservers": [dns.nameserver]}

``stop()`` closes both sockets; a stopped server's port refuses (a DNS server that is down).
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Any

from dnslib import CNAME, QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

HOST = "127.0.0.1"
TTL = 60


def _name(name: str) -> str:
    return name.lower().rstrip(".") + "."


def txt_strings(value: str) -> list[bytes]:
    """A TXT value as DNS character-strings (at most 255 bytes each), as a zone file splits it."""
    raw = value.encode("ascii")
    return [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]


class _Zone(BaseResolver):  # type: ignore[misc]
    def __init__(self, server: DNSTestServer) -> None:
        self.server = server

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        with self.server.lock:
            self.server.queries.append((qname, qtype))
            txt = {_name(k): v for k, v in self.server.txt.items()}
            cname = {_name(k): _name(v) for k, v in self.server.cname.items()}
            servfail = {_name(k) for k in self.server.servfail}
        name = qname
        for _ in range(8):  # follow CNAMEs inside the zone
            if name in servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            if name in cname and qtype != "CNAME":
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(cname[name]), ttl=TTL))
                name = cname[name]
                continue
            break
        if qtype in ("TXT", "ANY") and name in txt:
            for value in txt[name]:
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(txt_strings(value)), ttl=TTL))
        elif name not in txt and name not in cname and not reply.rr:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class DNSTestServer:
    """UDP and TCP on one port of 127.0.0.1, in threads; a context manager."""

    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.cname: dict[str, str] = {}
        self.servfail: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.port = 0
        self._servers: list[DNSServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def nameserver(self) -> str:
        """This server as ``[newsletter.domain_check] nameservers`` wants it: ``"127.0.0.1:PORT"``."""
        return f"{HOST}:{self.port}"

    def start(self) -> DNSTestServer:
        quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)
        zone = _Zone(self)
        for _ in range(20):  # the TCP port may be taken by someone else: pick another pair
            udp = DNSServer(zone, address=HOST, port=0, tcp=False, logger=quiet)
            port = int(udp.server.server_address[1])
            try:
                tcp = DNSServer(zone, address=HOST, port=port, tcp=True, logger=quiet)
            except OSError:
                udp.server.server_close()
                continue
            self.port = port
            self._servers = [udp, tcp]
            for server in self._servers:
                # Our own thread, not start_thread(): a short poll makes stop() quick.
                thread = threading.Thread(
                    target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
                )
                thread.start()
                self._threads.append(thread)
            return self
        raise RuntimeError("no free UDP+TCP port pair on 127.0.0.1")

    def stop(self) -> None:
        for server in self._servers:
            server.server.shutdown()  # serve_forever returns
            server.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> DNSTestServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def closed_port() -> int:
    """A UDP and TCP port of 127.0.0.1 nothing listens on (a DNS server that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port
