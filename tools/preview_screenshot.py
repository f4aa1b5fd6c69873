"""Regenerate the README picture of ``clinicpress preview`` from the reference article.

    .venv/bin/python tools/preview_screenshot.py        # writes docs/img/preview.png

Runs a preview on a copy of the reference article and site config (port 0, 127.0.0.1), waits
until the handout is rendered and the sources are checked, and photographs ``/<slug>/`` in
headless Chromium (Debian's ``chromium``, driven as in ``tools/screenshots.py``). Without
internet access the sources show as ``unverified``, as they would for a writer offline.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from screenshots import IMG_DIR, REFERENCE_ARTICLE, REFERENCE_SITE, BrowserError, chromium

from clinicpress.preview.server import Preview

WIDTH = 1600
HEIGHT = 1300


def _wait(preview: Preview, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = preview.state.entries()
        if entries and all(not e.handout_pending and not e.links_pending for e in entries):
            return
        time.sleep(0.1)
    raise TimeoutError(f"the preview did not settle within {timeout:g} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=IMG_DIR / "preview.png", help="the PNG to write")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    with tempfile.TemporaryDirectory(prefix="clinicpress-preview-shot-") as tmp:
        os.chdir(tmp)  # the page shows the paths given: content/…, as a writer would see them
        content = Path("content")
        content.mkdir()
        shutil.copy(REFERENCE_ARTICLE, content / REFERENCE_ARTICLE.name)
        shutil.copy(REFERENCE_SITE, content / "site.toml")
        preview = Preview([content], content / "site.toml", Path("published"), port=0)
        try:
            preview.start()
            preview.serve_in_thread()
            preview.previewer.want(REFERENCE_ARTICLE.stem)  # as opening its page does: render it
            _wait(preview, 90)
            with chromium() as browser:
                page = browser.new_page()
                page.send(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
                )
                page.goto(f"{preview.url}{REFERENCE_ARTICLE.stem}/")
                # The iframes and the page images load after the page's own load event.
                page.evaluate(
                    "new Promise(done => { const wait = () => [...document.images].every(i => i.complete)"
                    " ? setTimeout(done, 300) : setTimeout(wait, 50); wait(); })"
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                # Not Page.screenshot: it resizes the viewport to the page, and the frames are sized in vh.
                shot = page.send("Page.captureScreenshot", {"format": "png"})
                out.write_bytes(base64.b64decode(shot["data"]))
        except BrowserError as exc:
            print(f"chromium: {exc} (Debian: apt-get install chromium)", file=sys.stderr)
            return 2
        finally:
            preview.close()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
