"""A loopback HTTP receiver for apprise's ``json://`` alerts: what a chat or paging webhook gets.

Usage::

    receiver = Receiver()          # listening on 127.0.0.1, a free port
    site_urls = [receiver.url]     # json://127.0.0.1:<port>/alerts
    ...
    receiver.posts                 # every JSON body POSTed, in order ({"title", "message", "type", …})
    receiver.close()
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Gate", "Receiver"]


class Receiver:
    """Records the JSON bodies POSTed to it: what a chat or paging webhook would get."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        lock = threading.Lock()
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with lock:
                    received.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Gate:
    """Makes a Receiver answer 503 until ``open()``; what it refused is in ``refused``: a webhook
    that is down, then comes back.

    (Through socketserver's public ``RequestHandlerClass``: the shared Receiver always accepts.)
    """

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.accepting = receiver.server.RequestHandlerClass
        self.refused: list[dict[str, Any]] = []
        refused = self.refused

        class Refusing(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                refused.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        receiver.server.RequestHandlerClass = Refusing

    def open(self) -> None:
        self.receiver.server.RequestHandlerClass = self.accepting
