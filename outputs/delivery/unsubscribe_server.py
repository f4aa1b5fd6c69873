"""The one-click unsubscribe endpoint (RFC 8058), on 127.0.0.1 behind the clinic's web server.

It answers at the path of ``[newsletter] unsubscribe_url`` only:

- ``POST …?t=<token>`` with the body ``List-Unsubscribe=One-Click`` (form-urlencoded or
  multipart, as RFC 8058 allows) unsubscribes at once: no cookie, no redirect, no confirmation
  step. The ``suppress`` callback commits before the 200 is sent, so an answered unsubscribe is
  never lost to a crash; if it fails, the answer is 500 and the mail client may try again.
- ``GET …?t=<token>`` shows a page with one button, a form that POSTs the same. A GET never
  unsubscribes: mail scanners and link previews open links on their own.
- A forged, altered, expired or malformed token gets one and the same answer (400, the same page,
  byte for byte), which says nothing about any address: the token is checked before anything else
  and no list is ever looked at.

:func:`answer` decides the response from the request alone (tested without sockets); the
handler only reads the request and writes the response. The stdlib ``ThreadingHTTPServer``, as
the preview uses: a handful of requests a day needs nothing more. The log says what happened and
why a token was refused, never the token or the address.
"""

from __future__ import annotations

import email.parser
import email.policy
import errno
import html
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from clinicpress import clock
from clinicpress.errors import InputError
from clinicpress.faults import fault_point
from clinicpress.outputs.delivery.unsubscribe import TOKEN_PARAMETER, Refused, read_token
from clinicpress.runtime import sigterm_as_interrupt

__all__ = [
    "HOST",
    "ONE_CLICK",
    "Endpoint",
    "Response",
    "Suppress",
    "UnsubscribeServer",
    "answer",
    "bind",
    "serve_in_thread",
    "serve_unsubscribes",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
ONE_CLICK = "One-Click"
HOW = "one-click"  # the suppression's detail: the RFC 8058 POST (from a mail client or our page)
MAX_BODY = 8 * 1024
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request
HTML = "text/html; charset=utf-8"
# Our pages: inline style only, the form posts back here, nothing else loads or runs.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# No cookie and no redirect, ever (RFC 8058); the token in the URL goes nowhere else.
HEADERS = (
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", CSP),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
)


class Suppress(Protocol):
    """What an unsubscribe does: committed when it returns (``SuppressionStore.unsubscribe``)."""

    def __call__(self, address: str, how: str, slug: str | None) -> object: ...


@dataclass(frozen=True)
class Endpoint:
    """What the endpoint needs: where it answers, the secret, and what an unsubscribe does."""

    path: str  # the path of [newsletter] unsubscribe_url
    secret: str
    max_age_days: int
    suppress: Suppress
    organization: str  # named on the pages
    contact: str | None = None  # an address to write to when a link does not work
    now: Callable[[], datetime] = field(default=clock.now)

    @classmethod
    def at(cls, unsubscribe_url: str, **kwargs: Any) -> Endpoint:
        return cls(path=urlsplit(unsubscribe_url).path or "/", **kwargs)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = HTML
    headers: tuple[tuple[str, str], ...] = ()
    log: str = ""  # what happened, for the log (never the token or the address)


def _page(title: str, paragraphs: list[str], *, form: bool = False) -> bytes:
    text = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    button = (
        '<form method="post" action="">'
        f'<input type="hidden" name="List-Unsubscribe" value="{ONE_CLICK}">'
        '<button type="submit">Unsubscribe</button></form>'
        if form
        else ""
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:1.1rem/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
        "button{font:inherit;padding:.6rem 1.4rem;cursor:pointer}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{text}{button}</body></html>"
    )
    return page.encode("utf-8")


def refused_page(endpoint: Endpoint) -> bytes:
    """The one answer to every token that does not check out."""
    write = f" To unsubscribe, write to {endpoint.contact}." if endpoint.contact else ""
    return _page(
        "This link does not work",
        [
            "This unsubscribe link is not valid, or it has expired.",
            f"Use the link in a recent newsletter from {endpoint.organization}.{write}",
        ],
    )


def _refused(endpoint: Endpoint, why: str) -> Response:
    return Response(HTTPStatus.BAD_REQUEST, refused_page(endpoint), log=f"refused: {why}")


def _form_fields(content_type: str, body: bytes) -> dict[str, list[str]]:
    """The fields of a POST body: form-urlencoded (also when no type is given) or multipart."""
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        found: dict[str, list[str]] = {}
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                if isinstance(name, str) and isinstance(payload, bytes):
                    found.setdefault(name, []).append(payload.decode("utf-8", "replace").strip())
        return found
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def answer(
    endpoint: Endpoint, method: str, raw_path: str, content_type: str = "", body: bytes = b""
) -> Response:
    """The response to one request. A POST that checks out calls ``endpoint.suppress`` first."""
    parts = urlsplit(raw_path)
    if parts.path != endpoint.path:
        return Response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", log="not found")
    if method not in ("GET", "HEAD", "POST"):
        return Response(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"GET or POST\n",
            "text/plain; charset=utf-8",
            (("Allow", "GET, HEAD, POST"),),
            log=f"method {method}",
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    fields = _form_fields(content_type, body) if method == "POST" else {}
    tokens = query.get(TOKEN_PARAMETER) or fields.get(TOKEN_PARAMETER) or [""]
    verdict = read_token(tokens[0], endpoint.secret, endpoint.now(), max_age_days=endpoint.max_age_days)
    if isinstance(verdict, Refused):
        return _refused(endpoint, verdict.reason)
    if method != "POST":
        page = _page(
            f"Unsubscribe from {endpoint.organization}",
            [f"Press the button to stop receiving the newsletter from {endpoint.organization}."],
            form=True,
        )
        return Response(HTTPStatus.OK, page, log="asked")
    if ONE_CLICK not in fields.get("List-Unsubscribe", []):
        return Response(
            HTTPStatus.BAD_REQUEST,
            _page("Nothing was done", ["This request did not ask to unsubscribe."]),
            log="POST without List-Unsubscribe=One-Click",
        )
    try:
        endpoint.suppress(verdict.address, HOW, verdict.slug)
    except Exception:  # the database is away: say so, the client may try again
        log.exception("unsubscribe: could not record an unsubscribe")
        return Response(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            _page("Please try again", ["Your request could not be recorded just now. Please try again."]),
            log="not recorded",
        )
    done = _page(
        "You are unsubscribed",
        [f"You will receive no more newsletters from {endpoint.organization}."],
    )
    return Response(HTTPStatus.OK, done, log="unsubscribed")


class _Handler(BaseHTTPRequestHandler):
    server: UnsubscribeServer
    timeout = REQUEST_TIMEOUT  # a client that sends nothing does not hold a thread for ever

    def do_GET(self) -> None:
        self._respond("GET")

    def do_HEAD(self) -> None:
        self._respond("HEAD")

    def do_POST(self) -> None:
        self._respond("POST")

    def do_PUT(self) -> None:
        self._respond("PUT")

    def do_DELETE(self) -> None:
        self._respond("DELETE")

    def _body(self) -> bytes | Response:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return Response(HTTPStatus.LENGTH_REQUIRED, b"Content-Length required\n", "text/plain")
        try:
            length = int(raw)
        except ValueError:
            return Response(HTTPStatus.BAD_REQUEST, b"bad Content-Length\n", "text/plain")
        if length < 0 or length > MAX_BODY:
            return Response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"too large\n", "text/plain")
        return self.rfile.read(length)

    def _respond(self, method: str) -> None:
        body = self._body() if method == "POST" else b""
        if isinstance(body, Response):
            response = body
        else:
            try:
                response = answer(
                    self.server.endpoint, method, self.path, self.headers.get("Content-Type", ""), body
                )
            except Exception:  # one bad request must not take the endpoint down
                log.exception("unsubscribe: a %s failed", method)
                response = Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in (*HEADERS, *response.headers):
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()
        log.info("unsubscribe: %s %d %s", method, response.status, response.log)
        if response.log == "unsubscribed":
            fault_point("unsubscribe.answered")  # tests: a crash right after the answer loses nothing

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's parameter names
        pass  # the request line holds the token (and so the address): never logged


class UnsubscribeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, endpoint: Endpoint) -> None:
        super().__init__((HOST, port), _Handler)
        self.endpoint = endpoint

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def bind(port: int, endpoint: Endpoint) -> UnsubscribeServer:
    """The endpoint on 127.0.0.1:``port``; a port in use is bad input (exit code 2), named."""
    try:
        return UnsubscribeServer(port, endpoint)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            problem = "is in use" if exc.errno == errno.EADDRINUSE else "is not allowed"
            raise InputError(None, "--port", f"{port} {problem} on {HOST}", "a free port") from exc
        raise


def serve_unsubscribes(port: int, endpoint: Endpoint, say: Callable[[str], None]) -> None:
    """``clinicpress unsubscribe-server --port N``: answer until Ctrl-C (or SIGTERM)."""
    server = bind(port, endpoint)
    try:
        with sigterm_as_interrupt():
            say(
                f"unsubscribe-server: answering {endpoint.path} at http://{HOST}:{server.port} (Ctrl-C stops)"
            )
            server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    say("unsubscribe-server: stopped")


def serve_in_thread(port: int, endpoint: Endpoint, say: Callable[[str], None]) -> UnsubscribeServer:
    """The endpoint in a daemon thread beside another service (``clinicpress serve``); bound before
    it returns (a port in use is exit 2 before the service starts). ``shutdown()`` stops it."""
    server = bind(port, endpoint)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.25}, name="unsubscribe", daemon=True
    ).start()
    say(f"unsubscribe endpoint: answering {endpoint.path} at http://{HOST}:{server.port}")
    return server
