"""A fast loopback link farm serving every link category of the benchmark.

Run as its own process (``python -m bench.linkcheck.farm``) so its CPU time is not
charged to the checker being measured; it prints its port on the first stdout line.
A minimal HTTP/1.1 server on asyncio streams (keep-alive, Content-Length, HEAD), much
cheaper per request than http.server, so the farm is not what the benchmark measures.

Routes are a function of the path (see ``respond``); the few stateful ones (503 once,
429 once) keep per-path counters that ``GET /__reset`` clears between checkers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections import Counter
from collections.abc import Mapping

BROWSER_TOKENS = (
    "Chrome/",
    "Firefox/",
    "Safari/",
)  # a real browser's User-Agent, not "Mozilla (compatible; bot)"
MAX_LIFETIME = 600.0  # seconds: the farm stops by itself even if the runner dies

_served: Counter[str] = Counter()
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")  # one per "site"
JOURNAL = ADDRESSES[0]
_port = 0


def page(title: str, ids: int = 5, filler: int = 40) -> bytes:
    """A realistic small article page (~6 KB): head, nav, sections with ids, footer."""
    sections = "".join(
        f'<section id="section-{k}"><h2>Part {k}</h2>'
        + "<p>Ketamine-assisted therapy was studied in adults with substance use disorders. " * 4
        + "</p></section>"
        for k in range(1, ids + 1)
    )
    nav = "".join(f'<li><a href="/ok/{k}">Related {k}</a></li>' for k in range(filler // 4))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title} | Journal of Loopback Medicine</title>"
        '<meta name="viewport" content="width=device-width"><link rel="stylesheet" href="/s.css">'
        f'</head><body><nav><ul>{nav}</ul></nav><main><h1 id="top-heading">{title}</h1>{sections}</main>'
        "<footer><p>© Journal of Loopback Medicine</p></footer></body></html>"
    ).encode()


HTML = {"Content-Type": "text/html; charset=utf-8"}
Reply = tuple[int, Mapping[str, str], bytes, float]  # status, headers, body, delay


def respond(method: str, path: str, agent: str) -> Reply:
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    head = parts[0] if parts else ""
    rest = "/".join(parts[1:])
    if not parts:
        return 200, HTML, page("Journal of Loopback Medicine"), 0.0
    if head in ("ok", "new", "article", "target", "doc"):
        return 200, HTML, page(f"Study {rest}"), 0.0
    if head == "files":
        return 200, {"Content-Type": "application/pdf"}, b"%PDF-1.7\n" + b"0" * 2000, 0.0
    if head == "nohead":
        if method == "HEAD":
            return 405, {"Allow": "GET"}, b"", 0.0
        return 200, HTML, page(f"No-HEAD study {rest}"), 0.0
    if head == "go":
        return 302, {"Location": f"/target/{rest}"}, b"", 0.0
    if head == "old":
        return 301, {"Location": f"/new/{rest}"}, b"", 0.0
    if head == "doi":
        if "missing" in rest:
            return 404, HTML, b"<html><title>Error: DOI Not Found</title></html>", 0.0
        # The resolver sends readers to the publisher: another site.
        return 302, {"Location": f"http://{JOURNAL}:{_port}/article/{rest.replace('/', '-')}"}, b"", 0.0
    if head == "gone":
        return 404, HTML, b"<html><title>404 Not Found</title></html>", 0.0
    if head == "removed":
        return 410, HTML, b"<html><title>Gone</title></html>", 0.0
    if head == "loop":
        other = "b" if parts[-1] == "a" else "a"
        return 302, {"Location": f"/loop/{parts[1]}/{other}"}, b"", 0.0
    if head == "soft":
        body = b"<html><head><title>Page Not Found | Journal</title></head><body><h1>Oops</h1></body></html>"
        return 200, HTML, body, 0.0
    if head == "archive":  # a deep URL that now lands on the home page
        return 301, {"Location": "/"}, b"", 0.0
    if head == "cf":
        body = b"<html><head><title>Just a moment...</title></head><body>cf-chl-bypass</body></html>"
        return 403, {**HTML, "cf-mitigated": "challenge", "Server": "cloudflare"}, body, 0.0
    if head == "ua":
        if any(token in agent for token in BROWSER_TOKENS):
            return 200, HTML, page(f"Browser-only study {rest}"), 0.0
        return 403, HTML, b"<html><title>Forbidden</title></html>", 0.0
    if head == "in":
        return 999, HTML, b"", 0.0
    if head in ("flaky", "busy"):
        _served[path] += 1
        if _served[path] == 1:
            if head == "busy":
                return 429, {"Retry-After": "1"}, b"", 0.0
            return 503, {}, b"", 0.0
        return 200, HTML, page(f"Recovered {rest}"), 0.0
    if head == "throttle":
        return 429, {"Retry-After": "1"}, b"", 0.0
    if head == "error":
        return 500, HTML, b"<html><title>Internal Server Error</title></html>", 0.0
    if head == "slow":
        return 200, HTML, page("Slow"), 30.0
    if head == "pause":  # slow but within the checkers' 2 s timeout (bench/linkcheck_mixed.py)
        return 200, HTML, page(f"Slow study {rest}"), 1.0
    if head == "to-metadata":
        return 302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"", 0.0
    return 404, HTML, b"<html><title>Not Found</title></html>", 0.0


_PHRASES = {200: "OK", 301: "Moved Permanently", 302: "Found", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 410: "Gone", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable", 999: "Request denied"}  # fmt: skip


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=15)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = [*lines[0].split(" "), "", ""][:3]
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if target == "/__reset":
                _served.clear()
                status, extra, body, delay = 200, {}, b"reset", 0.0
            else:
                status, extra, body, delay = respond(method, target, headers.get("user-agent", ""))
            if delay:
                await asyncio.sleep(delay)
            out = [f"HTTP/1.1 {status} {_PHRASES.get(status, 'Status')}", f"Content-Length: {len(body)}"]
            out += [f"{k}: {v}" for k, v in extra.items()]
            out.append("LinkChecker: farm")  # LinkChecker's documented opt-in to > 10 requests/s per host
            writer.write(
                ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + (b"" if method == "HEAD" else body)
            )
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                return
    except (ConnectionError, OSError, asyncio.CancelledError):
        return  # a client gave up, or the farm is stopping: nothing to report
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(port: int) -> None:
    global _port
    first = await asyncio.start_server(handle, ADDRESSES[0], port, backlog=1024, limit=65536)
    _port = first.sockets[0].getsockname()[1]
    servers = [first] + [
        await asyncio.start_server(handle, address, _port, backlog=1024, limit=65536)
        for address in ADDRESSES[1:]
    ]
    print(_port, flush=True)
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            await stack.enter_async_context(server)
        with contextlib.suppress(TimeoutError):
            # stdin closes when the runner exits: stop then, or after MAX_LIFETIME at the latest.
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            await asyncio.wait_for(reader.read(), timeout=MAX_LIFETIME)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
