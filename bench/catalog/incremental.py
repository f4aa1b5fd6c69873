"""Benchmark: no-op rebuild and one-changed rebuild of a published catalog.

    .venv/bin/python -m bench.catalog.incremental --articles 100 [--runs 3] [--api-url URL]

Publishes the catalog once (setup, not timed), then times, as whole
``clinicpress publish`` processes: a rebuild with nothing changed, and a
rebuild after one article's body changed. Which articles were rendered
again is read from the release folder, not from the CLI's wording: a
release writes a re-rendered file as a new inode and keeps an unchanged one
as a hard link of the live release. Goals (issue 6): no-op of 1,000
articles ≤ 3 s; one-changed ≤ 3 s plus one article's render.

Needs incremental publishing (skip articles whose version is already live);
before it exists, both rebuilds re-render everything and the table says so.
With ``--api-url`` the runs use a running ``prefect server``; without, each
run starts Prefect's embedded API (8-15 s of every number here).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from .common import farm_catalog, prefect_env, run_publish
from .floor import run_floor
from .generate import touch_one


def _inodes(out: Path) -> dict[str, int]:
    folder = out / "handouts"
    return {p.name: p.stat().st_ino for p in folder.glob("*.pdf")} if folder.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--api-url", default=None, help="PREFECT_API_URL of a running prefect server")
    args = parser.parse_args()
    n = args.articles
    noop: list[tuple[float, int]] = []
    changed: list[tuple[float, int]] = []
    with (
        tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp,
        farm_catalog(Path(tmp) / "content", n) as (_, cat),
    ):
        env = prefect_env(Path(tmp) / "prefect-home", args.api_url)
        out = Path(tmp) / "out"
        start = time.perf_counter()
        first = run_publish(cat, out, env)
        if first.returncode != 0:
            raise SystemExit(f"setup publish failed ({first.returncode}):\n{first.stdout}\n{first.stderr}")
        print(f"setup: full publish of {n} articles in {time.perf_counter() - start:.1f} s", flush=True)
        one = run_floor(cat.articles[:1], cat.site, 1, check=True)  # one article's render + check, cold
        for run in range(args.runs):
            before = _inodes(out)
            done = run_publish(cat, out, env)
            rerendered = sum(1 for k, v in _inodes(out).items() if before.get(k) != v)
            noop.append((done.seconds, rerendered))
            print(f"run {run + 1}: no-op {done.seconds:.1f} s, {rerendered} re-rendered", flush=True)
            touch_one(cat, run % n)
            before = _inodes(out)
            done = run_publish(cat, out, env)
            rerendered = sum(1 for k, v in _inodes(out).items() if before.get(k) != v)
            changed.append((done.seconds, rerendered))
            print(f"run {run + 1}: one changed {done.seconds:.1f} s, {rerendered} re-rendered", flush=True)
    print()
    api = "running prefect server" if args.api_url else "embedded Prefect API"
    print(f"incremental rebuilds, {n} articles, {api} (median of {args.runs})")
    print(f"{'rebuild':<28} {'seconds':>8} {'re-rendered':>12}")
    for name, values in (("no-op", noop), ("one changed", changed)):
        seconds = statistics.median(s for s, _ in values)
        count = statistics.median(c for _, c in values)
        print(f"{name:<28} {seconds:>8.1f} {count:>12.0f}")
    print(f"one article's render + check (floor, 1 process, cold): {one.seconds:.1f} s")
    if statistics.median(c for _, c in noop) > 0:
        print("note: the no-op rebuild re-rendered articles: publish does not skip unchanged versions yet")


if __name__ == "__main__":
    main()
