"""Benchmark: rollback of a 1,000-article site, whole and one article.

    .venv/bin/python bench/rollback.py [--articles 1000] [--runs 3]

Builds two releases of N articles (web page, handout, email + preview,
report: realistic file counts, small files) with the real release writer,
then times `rollback_site` (one symlink switch) and `rollback_article` (a new
release: hard-linked copy of the live tree plus one article's files). The
baseline, measured in the same run, is writing one release of the whole site
(`publish_release` of N articles): rollback should be a small fraction of it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinicpress.outputs.publish import rollback_article  # noqa: E402
from clinicpress.outputs.release import Release, rollback_site  # noqa: E402
from clinicpress.site import load_site  # noqa: E402


def _release(out: Path, articles: int, version: str) -> float:
    start = time.perf_counter()
    with Release(out, keep=10) as release:
        for n in range(articles):
            slug = f"article-{n:04d}"
            files = [
                f"web/{slug}/index.html",
                f"handouts/{slug}.pdf",
                f"newsletter/{slug}.eml",
                f"newsletter/{slug}.html",
            ]
            for relpath in files:
                release.write(relpath, f"{relpath} {version}\n".encode() * 200)
            report = {
                "slug": slug,
                "title": f"Article {n}",
                "summary": "A summary.",
                "published": "2025-06-02",
                "last_reviewed": "2026-11-26",
                "published_at": "2026-11-27T00:00:00+00:00",
                "version": f"{version}{n:060d}",
                "channels": {"web": files[:1], "handout": files[1:2], "newsletter": files[2:]},
            }
            release.write(f"reports/{slug}.json", json.dumps(report).encode())
        release.commit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    site = load_site(ROOT / "content" / "site.toml")
    writes, wholes, ones = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            _release(out, args.articles, "a")
            writes.append(_release(out, args.articles, "b"))
            start = time.perf_counter()
            rollback_site(out)
            wholes.append(time.perf_counter() - start)
            _release(out, args.articles, "c")  # live again: c; the article's previous version is b
            start = time.perf_counter()
            rollback_article(out, "article-0500", site, datetime.now(UTC))
            ones.append(time.perf_counter() - start)
    write, whole, one = (statistics.median(x) for x in (writes, wholes, ones))
    print(f"site of {args.articles} articles, {args.articles * 5} files (median of {args.runs})")
    print(f"{'measure':<44} {'seconds':>9} {'÷ baseline':>11}")
    print(f"{'write one whole release (baseline)':<44} {write:>9.3f} {1:>11.2f}")
    print(f"{'rollback, whole site (one switch)':<44} {whole:>9.4f} {whole / write:>11.4f}")
    print(f"{'rollback, one article (a new release)':<44} {one:>9.3f} {one / write:>11.3f}")


if __name__ == "__main__":
    main()
