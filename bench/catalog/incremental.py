"""Benchmark: no-op rebuild and one-changed rebuild of a published catalog.

    .venv/bin/python -m bench.catalog.incremental --articles 100 [--runs 3] [--api-url URL] [--no-served]

Rows of the table (each the median of ``--runs``, with how many articles were
rendered again):

- ``no-op (whole process)`` / ``one changed (whole process)``: a whole
  ``clinicpress publish`` process (interpreter start, imports, Prefect
  start-up included) with nothing changed, then after one article's body
  changed. Setup (not timed): one full publish.
- ``no-op (served process)`` / ``one changed (served process)``: what a
  ``clinicpress serve`` deployment does. A real ``prefect server`` runs on
  a free loopback port (its own PREFECT_HOME); ONE child process calls the
  ``publish`` flow once as setup on the catalog the whole-process runs
  published (a first call in the process, every article live already: not
  timed, its time printed), then, each run, a no-op flow call and, after one
  article's body changed, a one-changed flow call.

Which articles were rendered again is read from the release folder, not
from the CLI's wording: a release writes a re-rendered file as a new inode
and keeps an unchanged one as a hard link of the live release.

For the served no-op, a breakdown: the same steps called directly (no
Prefect) in that warm process (load, link check with the cache, verify,
versions, live_versions, record-live, report text); "Prefect overhead" =
the no-op flow call minus their sum.

Goals (issue 6), printed as met / not met: no-op of 1,000 articles ≤ 3 s;
one-changed ≤ 3 s plus one article's render (the floor: one article
rendered and checked in one fresh process).

Needs incremental publishing (skip articles whose version is already live);
before it exists, both rebuilds re-render everything and the table says so.
With ``--api-url`` both modes use that running ``prefect server``; without,
each whole-process run starts Prefect's embedded API (8-15 s of its
numbers) and the served mode starts its own server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.results import load_average, write_json

from .common import ROOT, farm_catalog, prefect_env, prefect_server, run_publish
from .generate import Catalog, touch_one

GOAL_SECONDS = 3.0
GOAL_ARTICLES = 1000
RESULT_MARK = "RESULT "  # the child's last stdout line: this, then its results as JSON
STEPS = (
    "load",
    "link check (cache)",
    "verify",
    "versions",
    "live_versions",
    "record-live",
    "report text",
)

Timed = list[tuple[float, int]]  # (seconds, articles re-rendered) per run


def _inodes(out: Path) -> dict[str, int]:
    # One inode per article: its large-print PDF is rendered in the same job as its handout.
    folder = out / "handouts"
    pdfs = folder.glob("*.pdf") if folder.exists() else []
    return {p.name: p.stat().st_ino for p in pdfs if not p.stem.endswith("-large-print")}


def _rerendered(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(1 for k, v in after.items() if before.get(k) != v)


def _catalog_json(cat: Catalog) -> str:
    return json.dumps(
        {
            "content": str(cat.content),
            "site": str(cat.site),
            "articles": [str(p) for p in cat.articles],
            "urls": cat.urls,
        }
    )


def _inner(spec: str, out: str, runs: int) -> None:
    """Runs in the served child: setup publish, warm no-op / one-changed flow calls, the no-op's steps."""
    from clinicpress.runtime import configure_runtime

    configure_runtime(verbose=False)
    from clinicpress.checks.cache import open_cache
    from clinicpress.checks.links import check_batch, merge_batches, plan_batches
    from clinicpress.checks.model import Verdict
    from clinicpress.checks.report_text import links_table
    from clinicpress.checks.verify import all_urls, verify_article
    from clinicpress.flows.publish import PublishResult, publish_flow, summary_markdown
    from clinicpress.flows.tasks import record_unrecorded_live
    from clinicpress.outputs.release import live_versions
    from clinicpress.renderers.fingerprint import template_fingerprint
    from clinicpress.site import load_site
    from clinicpress.sources.loader import discover_articles, load_articles
    from clinicpress.sources.versioning import article_version

    data = json.loads(Path(spec).read_text(encoding="utf-8"))
    cat = Catalog(
        Path(data["content"]), Path(data["site"]), [Path(p) for p in data["articles"]], data["urls"]
    )
    out_dir = Path(out)

    def call() -> tuple[float, int, PublishResult]:
        before = _inodes(out_dir)
        start = time.perf_counter()
        result = publish_flow(paths=[str(cat.content)], site_path=str(cat.site), out_dir=out)
        seconds = time.perf_counter() - start
        return seconds, _rerendered(before, _inodes(out_dir)), result

    setup, setup_count, result = call()
    if result.blocked:
        blocked = [o.report.slug for o in result.outcomes if o.report.verdict is Verdict.BLOCKED]
        raise SystemExit(f"setup publish blocked {len(blocked)} article(s): {blocked[:5]}")
    print(f"served setup: first flow call in the process {setup:.1f} s, {setup_count} rendered", flush=True)
    noop: Timed = []
    changed: Timed = []
    last_noop = result
    for run in range(runs):
        seconds, count, last_noop = call()
        noop.append((seconds, count))
        print(f"served run {run + 1}: no-op {seconds:.2f} s, {count} re-rendered", flush=True)
        touch_one(cat, run % len(cat.articles))
        seconds, count, _ = call()
        changed.append((seconds, count))
        print(f"served run {run + 1}: one changed {seconds:.2f} s, {count} re-rendered", flush=True)

    # The no-op flow's steps, called directly (no Prefect) in this warm process; everything is live now.
    steps: dict[str, list[float]] = {s: [] for s in STEPS}
    not_live: list[int] = []  # articles the direct steps found not live (0: a true no-op)
    for _ in range(runs):
        t = time.perf_counter()
        site = load_site(cat.site)
        articles = load_articles(discover_articles([str(cat.content)]))
        steps["load"].append(time.perf_counter() - t)
        now = datetime.now().astimezone()
        t = time.perf_counter()
        cache = open_cache(out_dir, site.checks.links)
        urls = all_urls(articles)
        batches = [check_batch(batch, site.checks.links, cache) for batch in plan_batches(urls)]
        links = merge_batches(batches, urls=urls)
        steps["link check (cache)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        reports = [verify_article(a, site, links, on=now.date(), strict=False) for a in articles]
        steps["verify"].append(time.perf_counter() - t)
        t = time.perf_counter()
        templates = template_fingerprint()
        versions = {
            a.key: article_version(a, site, templates)
            for a, r in zip(articles, reports, strict=True)
            if r.verdict is not Verdict.BLOCKED
        }
        steps["versions"].append(time.perf_counter() - t)
        t = time.perf_counter()
        live = live_versions(out_dir)
        steps["live_versions"].append(time.perf_counter() - t)
        unchanged = [
            (a, versions[a.key]) for a in articles if a.key in versions and live.get(a.key) == versions[a.key]
        ]
        not_live.append(len(articles) - len(unchanged))
        t = time.perf_counter()
        record_unrecorded_live.fn(site, Path(out), unchanged, now)
        steps["record-live"].append(time.perf_counter() - t)
        t = time.perf_counter()
        links_table(reports)
        summary_markdown(last_noop)
        steps["report text"].append(time.perf_counter() - t)
    results: dict[str, Any] = {
        "setup": setup,
        "setup_rendered": setup_count,
        "noop": noop,
        "changed": changed,
        "steps": steps,
        "not_live": not_live,
    }
    print(RESULT_MARK + json.dumps(results), flush=True)


def _served(cat: Catalog, tmp: Path, out: Path, runs: int, api_url: str | None) -> dict[str, Any]:
    """The served-process measurement: a prefect server and one child process calling the flow.

    ``out`` is the catalog the whole-process runs published: the child's first call (its setup,
    untimed) finds every article live, as a deployment that has run before does.
    """
    spec = tmp / "catalog.json"
    spec.write_text(_catalog_json(cat), encoding="utf-8")
    home = tmp / "prefect-home-served"
    server: AbstractContextManager[str] = nullcontext(api_url) if api_url else prefect_server(home)
    stderr_path = tmp / "served.stderr"
    with server as api:
        print(f"served: prefect server at {api}", flush=True)
        args = [sys.executable, "-m", "bench.catalog.incremental", "--runs", str(runs)]
        args += ["--inner", str(spec), str(out)]
        with open(stderr_path, "w", encoding="utf-8") as stderr:
            child = subprocess.Popen(
                args,
                env=prefect_env(home, api),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
            last = ""
            try:
                assert child.stdout is not None
                for line in child.stdout:  # progress lines as they come; the results line last
                    line = line.rstrip("\n")
                    if line.startswith(RESULT_MARK):
                        last = line
                    elif line:
                        print(line, flush=True)
                child.wait(timeout=60)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
    if child.returncode != 0 or not last:
        tail = stderr_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"served child failed ({child.returncode}):\n{tail}")
    results: dict[str, Any] = json.loads(last.removeprefix(RESULT_MARK))
    return results


def _median(values: Timed) -> tuple[float, float]:
    return statistics.median(s for s, _ in values), statistics.median(c for _, c in values)


def _verdict(seconds: float, limit: float) -> str:
    return f"{seconds:.2f} s, {'met' if seconds <= limit else 'not met'}"


def _server(args: argparse.Namespace, tmp: Path) -> AbstractContextManager[str | None]:
    """The server every run uses: --api-url's, one of our own (--own-server), or none (embedded)."""
    if args.api_url or not args.own_server:
        return nullcontext(args.api_url)
    return prefect_server(tmp / "prefect-home-own")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--api-url", default=None, help="PREFECT_API_URL of a running prefect server")
    parser.add_argument(
        "--served",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure inside one running process against a prefect server (default: yes)",
    )
    parser.add_argument("--inner", nargs=2, metavar=("CATALOG_JSON", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="PATH", help="also write the medians as JSON (bench/suite.py)")
    parser.add_argument(
        "--own-server",
        action="store_true",
        help="without --api-url: start one prefect server for every run instead of the embedded API",
    )
    args = parser.parse_args()
    if args.inner:
        _inner(*args.inner, runs=args.runs)
        return
    from .floor import run_floor  # not in the served child: it imports the renderers

    n = args.articles
    noop: Timed = []
    changed: Timed = []
    served: dict[str, Any] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp,
        farm_catalog(Path(tmp) / "content", n) as (_, cat),
        _server(args, Path(tmp)) as api_url,
    ):
        env = prefect_env(Path(tmp) / "prefect-home", api_url)
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
            rerendered = _rerendered(before, _inodes(out))
            noop.append((done.seconds, rerendered))
            print(f"run {run + 1}: no-op {done.seconds:.1f} s, {rerendered} re-rendered", flush=True)
            touch_one(cat, run % n)
            before = _inodes(out)
            done = run_publish(cat, out, env)
            rerendered = _rerendered(before, _inodes(out))
            changed.append((done.seconds, rerendered))
            print(f"run {run + 1}: one changed {done.seconds:.1f} s, {rerendered} re-rendered", flush=True)
        if args.served:
            served = _served(cat, Path(tmp), out, args.runs, api_url)

    rows: list[tuple[str, Timed]] = [
        ("no-op (whole process)", noop),
        ("one changed (whole process)", changed),
    ]
    if served is not None:
        rows += [
            ("no-op (served process)", served["noop"]),
            ("one changed (served process)", served["changed"]),
        ]
    print()
    api = "running prefect server" if args.api_url or args.own_server else "embedded Prefect API"
    print(f"incremental rebuilds, {n} articles, whole process: {api} (median of {args.runs})")
    if served is not None:
        print(
            f"served process: setup publish (the flow's first call) {served['setup']:.1f} s, not in the table"
        )
    print(f"{'rebuild':<32} {'seconds':>8} {'re-rendered':>12}")
    for name, values in rows:
        seconds, count = _median(values)
        print(f"{name:<32} {seconds:>8.2f} {count:>12.0f}")
    print(f"one article's render + check (floor, 1 process, cold): {one.seconds:.2f} s")

    if served is not None:
        flow = _median(served["noop"])[0]
        steps = {s: statistics.median(v) for s, v in served["steps"].items()}
        print()
        print(f"served no-op, by step (the steps called directly in the warm process, median of {args.runs})")
        print(f"{'step':<44} {'seconds':>8}")
        print(f"{'no-op flow call (served process)':<44} {flow:>8.3f}")
        for step in STEPS:
            print(f"{'  ' + step:<44} {steps[step]:>8.3f}")
        print(f"{'  Prefect overhead (flow call − steps)':<44} {flow - sum(steps.values()):>8.3f}")
        stray = max(served["not_live"])
        if stray > 0:
            print(f"note: the direct steps found {stray} article(s) not live: not a pure no-op")

    print()
    scale = "" if n == GOAL_ARTICLES else f"; stated for {GOAL_ARTICLES:,} articles, this run has {n}"
    print(f"goals (issue 6{scale})")
    changed_limit = GOAL_SECONDS + one.seconds
    for mode, i in (("whole process", 0), ("served process", 2)):
        if i >= len(rows):
            continue
        noop_s = _median(rows[i][1])[0]
        changed_s = _median(rows[i + 1][1])[0]
        print(f"  no-op ≤ {GOAL_SECONDS:.0f} s, {mode}: {_verdict(noop_s, GOAL_SECONDS)}")
        print(
            f"  one changed ≤ {GOAL_SECONDS:.0f} s + one article's render"
            f" ({changed_limit:.2f} s), {mode}: {_verdict(changed_s, changed_limit)}"
        )
    write_json(
        args.json,
        {
            "articles": n,
            "rows": {name: {"seconds": _median(v)[0], "rerendered": _median(v)[1]} for name, v in rows},
            "one_render": one.seconds,
            "runs": args.runs,
            "load": load_average(),
        },
    )
    for name, values in rows:
        count = _median(values)[1]
        expected = 1 if name.startswith("one changed") else 0
        if count != expected:
            print(f"note: {name} re-rendered {count:.0f} article(s), not {expected}: publish does not skip")
            print("      unchanged versions (or something else changed them); the seconds above include that")


if __name__ == "__main__":
    main()
