"""Regenerate the README pictures of the three channels from the reference article.

    .venv/bin/python tools/screenshots.py            # writes docs/img/{web,email,handout-1}.png

The web page and the email preview are screenshots from headless Chromium
(Debian's ``chromium``), the handout's first page comes from ``pdftoppm``
(poppler-utils). Nothing leaves the machine: the pages are self-contained
files and Chromium runs with its background networking off.

This module also holds the small Chrome DevTools Protocol client that
``tests/renderers/test_browser.py`` uses to run axe-core in the same browser: one
websocket (the ``websockets`` package, already installed with Prefect), no
browser-automation dependency.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_ARTICLE = ROOT / "content" / "ketamine-therapy-substance-abuse.md"
REFERENCE_SITE = ROOT / "content" / "site.toml"
IMG_DIR = ROOT / "docs" / "img"

# Without these Chromium reaches out to Google hosts (updates, sync, field trials, QUIC probes).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
)


class BrowserError(RuntimeError):
    """Chromium could not be started or a DevTools command failed."""


def find_chromium() -> str | None:
    """``$CHROMIUM`` or the first of chromium / chromium-browser / google-chrome on PATH."""
    if env := os.environ.get("CHROMIUM"):
        return env if Path(env).exists() else shutil.which(env)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


class Page:
    """One tab, driven through a flat DevTools session on the browser's websocket."""

    def __init__(self, browser: Chromium, session_id: str) -> None:
        self._browser = browser
        self.session_id = session_id

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20.0) -> Any:
        return self._browser.send(method, params, session_id=self.session_id, timeout=timeout)

    def goto(self, url: str, timeout: float = 20.0) -> None:
        self._browser.events.clear()
        self.send("Page.navigate", {"url": url})
        self._browser.wait_event("Page.loadEventFired", self.session_id, timeout)

    def evaluate(self, expression: str, timeout: float = 20.0) -> Any:
        """The value of a JavaScript expression (a promise is awaited), as JSON-like data."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript failed: {text}")
        return result["result"].get("value")

    def screenshot(self, width: int, max_height: int = 6000) -> bytes:
        """A PNG of the whole page laid out ``width`` CSS pixels wide."""
        metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics)
        layout = self.send("Page.getLayoutMetrics")
        height = min(int(layout["cssContentSize"]["height"]) + 1, max_height)
        self.send("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
        return base64.b64decode(shot["data"])


class Chromium:
    """Headless Chromium with a fresh profile, spoken to over the DevTools Protocol."""

    def __init__(self, executable: str, timeout: float = 15.0) -> None:
        self._profile = tempfile.mkdtemp(prefix="clinicpress-chromium-")
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self._process = subprocess.Popen(  # noqa: S603  # fixed flags, our own executable path
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._ws = connect(
                self._endpoint(timeout), proxy=None, max_size=None, open_timeout=timeout, compression=None
            )
        except BaseException:
            self.close()
            raise

    def _endpoint(self, timeout: float) -> str:
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrowserError(f"chromium exited with status {self._process.returncode} on start")
            lines = port_file.read_text().split("\n") if port_file.exists() else []
            if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
            time.sleep(0.05)
        raise BrowserError(f"chromium did not open its DevTools port within {timeout:g} s")

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
        timeout: float = 20.0,
    ) -> Any:
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(f"no answer from chromium for {waiting_for}")
        try:
            data: dict[str, Any] = json.loads(self._ws.recv(timeout=remaining))
        except TimeoutError:
            raise BrowserError(f"no answer from chromium for {waiting_for}") from None
        return data

    def wait_event(self, method: str, session_id: str | None, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session_id:
                    self.events.remove(event)
                    return event
            event = self._receive(deadline, method)
            if "method" in event:
                self.events.append(event)

    def new_page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})
        attached = self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        page.send("Page.enable")
        return page

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            # Already gone is fine: the process is terminated below anyway.
            with suppress(Exception):
                self.send("Browser.close", timeout=5)
            ws.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)


@contextmanager
def chromium(executable: str | None = None, timeout: float = 15.0) -> Iterator[Chromium]:
    path = executable or find_chromium()
    if path is None:
        raise BrowserError("no chromium on PATH (Debian: apt-get install chromium)")
    browser = Chromium(path, timeout)
    try:
        yield browser
    finally:
        browser.close()


# --- the README pictures -------------------------------------------------------------------


def render_reference(out: Path) -> dict[str, Path]:
    """Render the reference article's three channels into ``out``; returns web/email/handout paths."""
    from clinicpress.renderers.base import RenderContext
    from clinicpress.renderers.registry import render_article
    from clinicpress.site import load_site
    from clinicpress.sources.loader import load_article

    article = load_article(REFERENCE_ARTICLE)
    site = load_site(REFERENCE_SITE)
    context = RenderContext(published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC), version="0" * 64)
    paths: dict[str, Path] = {}
    for artifact in render_article(article, site, context):
        path = out / artifact.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(artifact.data)
        if artifact.relpath.endswith("index.html"):
            paths["web"] = path
        elif artifact.relpath.endswith(".pdf"):
            paths["handout"] = path
        elif artifact.relpath.endswith(".html"):
            paths["email"] = path
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=IMG_DIR, help="folder for the PNGs (default docs/img)")
    args = parser.parse_args(argv)
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        print("pdftoppm not found (Debian: apt-get install poppler-utils)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clinicpress-shots-") as tmp:
        paths = render_reference(Path(tmp))
        with chromium() as browser:
            page = browser.new_page()
            for name, width in (("web", 1000), ("email", 700)):
                page.goto(paths[name].as_uri())
                (args.out / f"{name}.png").write_bytes(page.screenshot(width, max_height=1800))
        # -r 60: a Letter page at 510 × 660 px, legible in a README without being heavy.
        subprocess.run(  # noqa: S603  # fixed arguments
            [
                pdftoppm,
                "-png",
                "-r",
                "60",
                "-f",
                "1",
                "-l",
                "1",
                "-singlefile",
                str(paths["handout"]),
                str(args.out / "handout-1"),
            ],
            check=True,
        )
    for name in ("web.png", "email.png", "handout-1.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
