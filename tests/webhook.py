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

__all__ = ["Receiver"]


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
