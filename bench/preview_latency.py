"""How long a writer waits in `clinicpress preview`: save → updated web page, save → updated handout.

Drives a real preview of the reference article over HTTP on loopback (its sources skipped: the
link check is not what is timed here, and it runs in the background anyway). Prints medians and
maxima; the issue's goal is the web page within 1 s of a save, the handout when it is ready.

    .venv/bin/python bench/preview_latency.py [EDITS] [--json PATH]
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from clinicpress.preview.server import Preview

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results import load_average, write_json  # noqa: E402  (run as a script)

SLUG = "ketamine-therapy-substance-abuse"


def _workspace(tmp: Path) -> tuple[Path, Path]:
    content = tmp / "content"
    content.mkdir()
    article = content / f"{SLUG}.md"
    shutil.copy(ROOT / "content" / f"{SLUG}.md", article)
    site = (ROOT / "content" / "site.toml").read_text(encoding="utf-8")
    (content / "site.toml").write_text(
        site.replace("[checks.links]\n", '[checks.links]\nexclude = [".*"]\n', 1)
    )
    return article, content / "site.toml"


def _ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms (n={len(values)})"
    )


def main(edits: int, json_path: str | None = None) -> None:
    tmp = Path(tempfile.mkdtemp())
    try:
        article, site = _workspace(tmp)
        preview = Preview([article.parent], site, tmp / "published", port=0)
        preview.start()
        preview.serve_in_thread()
        base = f"{preview.url}{SLUG}/"

        def get(path: str) -> bytes:
            with urllib.request.urlopen(base + path, timeout=10) as reply:
                data: bytes = reply.read()
                return data

        def handout_version() -> int:
            return int(json.loads(get("version"))["handout"])

        original = article.read_text(encoding="utf-8")
        deadline = time.monotonic() + 60
        while handout_version() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        web: list[float] = []
        handout: list[float] = []
        for number in range(edits):
            marker = f"Edit number {number} at {time.time():.3f}."
            before = handout_version()
            saved = time.monotonic()
            article.write_text(
                original.replace("\n\nKetamine", f"\n\n{marker} Ketamine", 1), encoding="utf-8"
            )
            while marker.encode() not in get("web"):
                time.sleep(0.005)
            web.append(time.monotonic() - saved)
            while handout_version() == before:
                time.sleep(0.005)
            handout.append(time.monotonic() - saved)
            time.sleep(0.3)
        preview.close()
        print(f"save → web page updated:                  {_ms(web)}")
        print(f"save → handout (PDF + page images) ready: {_ms(handout)}")
        write_json(
            json_path,
            {
                "web": statistics.median(web),
                "handout": statistics.median(handout),
                "edits": edits,
                "load": load_average(),
            },
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    json_at = args[args.index("--json") + 1] if "--json" in args else None
    counts = [a for a in args if a.isdigit()]
    main(int(counts[0]) if counts else 10, json_at)
