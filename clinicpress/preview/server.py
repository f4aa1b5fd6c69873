"""The preview's HTTP server (stdlib ``ThreadingHTTPServer``, 127.0.0.1 only) and its file watcher.

:func:`route` maps a request path to a response from the state alone, so it is tested without
sockets. The watcher polls the files' stat signatures (mtime, size, inode) every
``WATCH_INTERVAL`` seconds: a handful of ``stat`` calls, no dependency, and editors that save
by renaming a new file over the old one are seen like any other save.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from clinicpress.errors import InputError
from clinicpress.renderers.handout import LARGE_PRINT_SUFFIX
from clinicpress.renderers.markdown import IMAGES_DIR, image_artifacts
from clinicpress.runtime import sigterm_as_interrupt
from clinicpress.site import load_site
from clinicpress.sources.article import Channel
from clinicpress.sources.loader import discover_articles

from . import DEFAULT_PORT, HOST, pages
from .cache import PreviewLinkCache
from .render import Previewer
from .state import Entry, PreviewState, file_changes

log = logging.getLogger(__name__)

# Seconds; the measured save-to-page time is this plus the render (docs/writing/preview.md).
WATCH_INTERVAL = 0.1

HTML = "text/html; charset=utf-8"
# The preview's own pages: their one script and stylesheet come from here, nothing else runs.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
# The channels alone (and in their sandboxed frames): their inline CSS, images, no script at all.
CHANNEL_CSP = (
    "default-src 'self' data: https:; style-src 'self' 'unsafe-inline'; script-src 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
_PAGE_IMAGE = re.compile(r"handout-([1-9][0-9]{0,3})\.png")


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _page(html: str, status: int = HTTPStatus.OK) -> Response:
    return Response(status, HTML, html.encode("utf-8"), (("Content-Security-Policy", PAGE_CSP),))


def _json(data: object) -> Response:
    return Response(HTTPStatus.OK, "application/json", json.dumps(data).encode())


def _not_found(state: PreviewState, what: str) -> Response:
    html = pages.message_page("Not found", what, version=state.version)
    return _page(html, HTTPStatus.NOT_FOUND)


def _channel(entry: Entry, channel: Channel, text: str | None, content_type: str) -> Response:
    """One channel alone: its text, else why not (not a channel, failed, or not rendered yet)."""
    if text is not None:
        return Response(
            HTTPStatus.OK, content_type, text.encode("utf-8"), (("Content-Security-Policy", CHANNEL_CSP),)
        )
    name = pages.CHANNEL_NAMES[channel].lower()
    if channel not in entry.channels:
        page = pages.channel_error_page(name, f"This article has no {channel.value} channel.")
        return Response(HTTPStatus.NOT_FOUND, HTML, page.encode())
    if (error := entry.channel_errors.get(channel.value)) is not None:
        return Response(
            HTTPStatus.INTERNAL_SERVER_ERROR, HTML, pages.channel_error_page(name, error).encode()
        )
    page = pages.channel_error_page(name, "It is being rendered; try again in a second.")
    return Response(HTTPStatus.SERVICE_UNAVAILABLE, HTML, page.encode(), (("Retry-After", "1"),))


_SERVED_HANDOUT = re.compile(r"/handouts/([^/]+)\.pdf")


def route(state: PreviewState, raw_path: str) -> Response:
    """The response to ``GET raw_path`` (query strings, such as ``?v=3``, are ignored)."""
    path = unquote(urlsplit(raw_path).path)
    if path == "/":
        return _page(pages.index_page(state.entries(), version=state.version, site_error=state.site_error))
    if path == "/_/version":
        return _json({"page": state.version})
    if path == "/_/preview.js":
        return Response(HTTPStatus.OK, "text/javascript; charset=utf-8", pages.SCRIPT.encode())
    if path == "/_/preview.css":
        return Response(HTTPStatus.OK, "text/css; charset=utf-8", pages.STYLESHEET.encode())
    if path == "/favicon.ico":
        return Response(HTTPStatus.NO_CONTENT, "image/x-icon", b"")
    if (served := _SERVED_HANDOUT.fullmatch(path)) is not None:
        if served.group(1).endswith(LARGE_PRINT_SUFFIX):
            message = (
                "The large-print handout is made when the article is published; the preview shows the "
                "regular one."
            )
            return Response(HTTPStatus.NOT_FOUND, HTML, pages.channel_error_page("handout", message).encode())
        # The web page links its handout as the web root serves it (../handouts/<slug>.pdf).
        location = f"/{served.group(1)}/handout.pdf"
        return Response(HTTPStatus.FOUND, HTML, b"", (("Location", location),))
    slug, _, rest = path.lstrip("/").partition("/")
    entry = state.by_slug(slug) if slug else None
    if entry is None and slug and (moved := state.moved_to(slug)) is not None:
        # The article moved to another slug (issue 24): the open page follows it. 302, not 301: a
        # browser keeps a 301, and a slug may move back while one writes.
        return Response(HTTPStatus.FOUND, HTML, b"", (("Location", f"/{moved.slug}/{rest}"),))
    if entry is None:
        return _not_found(state, f"No article previews as {slug!r}. Its slug may have changed.")
    if path == f"/{slug}":
        return Response(HTTPStatus.MOVED_PERMANENTLY, HTML, b"", (("Location", f"/{slug}/"),))
    errors = entry.channel_errors
    if rest == "":
        return _page(pages.article_page(entry, site_error=state.site_error))
    if rest == "version":
        return _json(entry.versions())
    if rest == "part/report":
        return _page(pages.report_part(entry, site_error=state.site_error))
    if rest == "part/handout":
        return _page(pages.handout_part(entry))
    if rest == "web":
        return _channel(entry, Channel.WEB, entry.web, HTML)
    if rest.startswith(f"{IMAGES_DIR}/") and entry.article is not None:
        # The web frame's images/<name>, as the web root serves them beside the page.
        wanted = f"web/{entry.article.key}/{rest}"
        for image in image_artifacts(entry.article):
            if image.relpath == wanted:
                return Response(HTTPStatus.OK, image.media_type, image.data)
    if rest == "email":
        return _channel(entry, Channel.NEWSLETTER, entry.email_html, HTML)
    if rest == "email.txt":
        return _channel(entry, Channel.NEWSLETTER, entry.email_text, "text/plain; charset=utf-8")
    handout = entry.handout
    if rest == "handout.pdf" or _PAGE_IMAGE.fullmatch(rest):
        if handout is None:
            if (error := errors.get("handout")) is not None or Channel.HANDOUT not in entry.channels:
                message = error or "This article has no handout channel."
                return Response(
                    HTTPStatus.NOT_FOUND, HTML, pages.channel_error_page("handout", message).encode()
                )
            message = "It is being rendered; try again in a second."
            page = pages.channel_error_page("handout", message).encode()
            return Response(HTTPStatus.SERVICE_UNAVAILABLE, HTML, page, (("Retry-After", "1"),))
        if rest == "handout.pdf":
            disposition = ("Content-Disposition", f'inline; filename="{slug}.pdf"')
            return Response(HTTPStatus.OK, "application/pdf", handout.pdf, (disposition,))
        match = _PAGE_IMAGE.fullmatch(rest)
        assert match is not None
        number = int(match.group(1))
        if number <= len(handout.pages):
            return Response(HTTPStatus.OK, "image/png", handout.pages[number - 1])
    return _not_found(state, f"{path} is not a page of the preview.")


class _Handler(BaseHTTPRequestHandler):
    server: PreviewServer
    protocol_version = "HTTP/1.1"  # keep-alive: the page polls several times a second

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, *, send_body: bool) -> None:
        # A web page elsewhere could point a rebinding DNS name at 127.0.0.1: answer our own names only.
        if self.headers.get("Host", "") not in self.server.allowed_hosts:
            response = Response(HTTPStatus.MISDIRECTED_REQUEST, "text/plain", b"unknown Host\n")
        else:
            try:
                slug = urlsplit(self.path).path.lstrip("/").partition("/")[0]
                if slug and not slug.startswith("_"):
                    self.server.want(unquote(slug))  # render the channels of what is looked at
                response = route(self.server.state, self.path)
            except Exception:  # one bad request must not take the preview down
                log.exception("preview: %s failed", self.path)
                response = Response(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", b"internal error\n")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's parameter names
        pass  # a request line per poll would drown the terminal


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, state: PreviewState) -> None:
        super().__init__((HOST, port), _Handler)
        self.state = state
        self.want: Callable[[str], None] = lambda slug: None  # set to Previewer.want
        bound = self.server_address[1]
        self.allowed_hosts = frozenset({f"{HOST}:{bound}", f"localhost:{bound}"})

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the browser dropped a frame it was reloading: nothing to report
        log.exception("preview: request from %s failed", client_address)


def bind(port: int, state: PreviewState) -> PreviewServer:
    """The server on 127.0.0.1:``port``; a port in use is bad input (exit code 2), named."""
    try:
        return PreviewServer(port, state)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            problem = "is in use" if exc.errno == errno.EADDRINUSE else "is not allowed"
            raise InputError(
                None, "--port", f"{port} {problem} on {HOST}", "a free port, e.g. --port 8766"
            ) from exc
        raise


def article_files(targets: Sequence[Path]) -> list[Path]:
    """The ``*.md`` files of the folders, and the files named (kept even when gone: they say so)."""
    found: list[Path] = []
    for target in targets:
        if target.is_dir():
            found.extend(sorted(p for p in target.glob("*.md") if p.is_file()))
        else:
            found.append(target)
    return list(dict.fromkeys(found))


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class Watcher:
    """Polls the articles and site.toml; a change goes to the previewer (on this thread)."""

    def __init__(
        self, targets: Sequence[Path], previewer: Previewer, interval: float = WATCH_INTERVAL
    ) -> None:
        self.targets = list(targets)
        self.previewer = previewer
        self.interval = interval
        self._files: dict[Path, object] = {}
        self._site = _signature(previewer.site_path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="preview-watcher", daemon=True)

    def poll(self) -> None:
        """One look at the files: load what changed, drop what went away."""
        files: dict[Path, object] = {path: _signature(path) for path in article_files(self.targets)}
        site = _signature(self.previewer.site_path)
        if site != self._site:
            self._site = site
            self._files = files
            self.previewer.reload_site(list(files))
            return
        changed, removed = file_changes(self._files, files)
        self._files = files
        for path in removed:
            self.previewer.state.remove(path)
        for path in changed:
            self.previewer.reload(path)
        if changed or removed:
            # A file refused for a slug another file held may load now that the other changed.
            for entry in self.previewer.state.entries():
                if entry.error is not None and entry.path not in changed:
                    self.previewer.reload(entry.path)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # keep watching: the next save may fix it
                log.exception("preview: watching the files failed")


class Preview:
    """The whole preview: state, workers, watcher and server. :meth:`close` stops all of it."""

    def __init__(
        self, paths: Sequence[Path], site_path: Path, out_dir: Path, port: int = DEFAULT_PORT
    ) -> None:
        site = load_site(site_path)  # a bad site config at start: exit 2, as every command
        targets = list(paths) or [Path("content")]
        discover_articles(targets)  # a path that does not exist: exit 2, named
        self.state = PreviewState()
        self.server = bind(port, self.state)
        # A link check still running at exit may write to it: removal never fails the exit.
        self._tmp = tempfile.TemporaryDirectory(prefix="clinicpress-preview-", ignore_cleanup_errors=True)
        cache = PreviewLinkCache(Path(self._tmp.name), out_dir, site.checks.links)
        self.previewer = Previewer(self.state, site_path, site, cache, out_dir=out_dir)
        self.server.want = self.previewer.want
        self.watcher = Watcher(targets, self.previewer)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/"

    def start(self) -> None:
        """Load and render every article once (the handouts and checks follow), then watch."""
        self.watcher.poll()
        self.previewer.start()
        self.watcher.start()

    def serve_in_thread(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, name="preview-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.watcher.stop()
        self.previewer.stop(wait=1.0)  # a running check or render finishes, or is left behind
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()
        self._tmp.cleanup()


def run_preview(
    paths: Sequence[Path], site_path: Path, out_dir: Path, port: int, say: Callable[[str], None]
) -> None:
    """``clinicpress preview``: serve until Ctrl-C (or SIGTERM), then stop cleanly."""
    preview = Preview(paths, site_path, out_dir, port)
    try:
        with sigterm_as_interrupt():
            preview.start()
            count = len(preview.state.entries())
            say(
                f"preview: {count} article file(s) at {preview.url} "
                "(saving a file refreshes the page; Ctrl-C stops)"
            )
            preview.server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        preview.close()
    say("preview: stopped")
