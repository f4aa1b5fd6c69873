"""Benchmark: full rebuild of N articles × 3 channels, against the floor measured in the same run.

    .venv/bin/python -m bench.catalog.full_rebuild --articles 100 [--workers 2] [--runs 1] [--api-url URL]

Rows (each on the same catalog, same farm, same run):

- floor: the renderers called directly (web, handout, newsletter), no Prefect,
  one process per core (``multiprocessing`` forkserver pool, process start
  and imports included); then the same plus the consistency check.
- pipeline without Prefect: the publish steps as plain calls (load, link
  check, verify, render + consistency check in ``RenderPool``,
  ``publish_release``, registry record): what the flow costs once it uses the pool.
- ``clinicpress publish``: the whole process as a user runs it (Prefect's
  embedded API with its own PREFECT_HOME, or with ``--api-url`` a running
  ``prefect server``, which is then not part of the process tree), peak RSS
  of its process tree.

"Prefect + process start" = the publish run's wall time minus the pipeline's
(the same steps as plain calls, in the same run): interpreter start, imports,
flow and task runs, API calls. An estimate (wall time on a shared machine).
Loopback only; the farm stops by itself.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path

from bench.results import load_average, write_json

from .common import PeakRSS, farm_catalog, prefect_env, prefect_server, run_publish
from .floor import PHASES, run_floor


def _pipeline(
    catalog_site: Path, content: Path, out: Path, workers: int
) -> tuple[dict[str, float], tuple[float, float]]:
    """The publish steps without Prefect, rendering in a RenderPool.

    Returns wall seconds per step and the workers' peak RSS and PSS.
    """
    import os

    from clinicpress.checks.links import check_urls
    from clinicpress.checks.model import Verdict
    from clinicpress.checks.verify import all_urls, verify_article
    from clinicpress.flows.tasks import record_publish
    from clinicpress.outputs.publish import ReadyArticle, publish_release
    from clinicpress.renderers.base import RenderContext
    from clinicpress.renderers.pool import Checked, RenderPool, RenderRun
    from clinicpress.renderers.registry import template_fingerprint
    from clinicpress.renderers.spool import Spool
    from clinicpress.site import load_site
    from clinicpress.sources.loader import discover_articles, load_articles
    from clinicpress.sources.versioning import article_version

    steps: dict[str, float] = {}
    total = time.perf_counter()

    def lap(step: str, start: float) -> None:
        steps[step] = time.perf_counter() - start

    with PeakRSS(os.getpid(), include_root=False) as rss, Spool(out) as spool:
        start = time.perf_counter()
        site = load_site(catalog_site)
        articles = load_articles(discover_articles([content]))
        lap("load", start)
        now = datetime.now().astimezone()
        templates = template_fingerprint()
        versions = [article_version(a, site, templates) for a in articles]
        jobs = [
            (a, site, RenderContext(published_at=now, version=v))
            for a, v in zip(articles, versions, strict=True)
        ]
        # As the flow does: the renders start first and run while the sources are checked.
        start_renders = time.perf_counter()
        with RenderPool(workers, spool=spool.path) as pool, RenderRun(jobs, pool) as renders:
            start = time.perf_counter()
            links = check_urls(all_urls(articles), site.checks.links)
            lap("link check (renders running)", start)
            start = time.perf_counter()
            reports = [verify_article(a, site, links, on=now.date(), strict=False) for a in articles]
            lap("verify (renders running)", start)
            start = time.perf_counter()
            results = renders.results(0, len(jobs))
            lap("renders left after the checks", start)
        steps["render + check (pool), from start"] = time.perf_counter() - start_renders
        ready = [
            ReadyArticle(a, r, v, res.artifacts)
            for a, r, v, res in zip(articles, reports, versions, results, strict=True)
            if isinstance(res, Checked) and not res.problems and r.verdict is not Verdict.BLOCKED
        ]
        start = time.perf_counter()
        release = publish_release(out, ready, site, now)
        lap("publish_release", start)
        start = time.perf_counter()
        if release is not None:
            record_publish.fn(site, out, release, ready, links, now)
        lap("registry record", start)
    steps["total"] = time.perf_counter() - total
    if len(ready) != len(articles):
        print(f"  pipeline: only {len(ready)} of {len(articles)} articles were ready")
    return steps, (rss.peak, rss.peak_pss)


def _server(args: argparse.Namespace, tmp: Path) -> AbstractContextManager[str | None]:
    """The server every run uses: --api-url's, one of our own (--own-server), or none (embedded)."""
    if args.api_url or not args.own_server:
        return nullcontext(args.api_url)
    return prefect_server(tmp / "prefect-home-own")


def main() -> None:
    import os

    from clinicpress.renderers.pool import default_workers

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--runs", type=int, default=1, help="repeat and report medians")
    parser.add_argument("--skip-publish", action="store_true", help="only the floor and the pipeline")
    parser.add_argument(
        "--skip-check-floor", action="store_true", help="no 'floor + consistency check' row (saves a pass)"
    )
    parser.add_argument(
        "--api-url", default=None, help="PREFECT_API_URL of a running prefect server (else the embedded API)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the medians as JSON (bench/suite.py)")
    parser.add_argument(
        "--own-server",
        action="store_true",
        help="without --api-url: start one prefect server for every run instead of the embedded API",
    )
    args = parser.parse_args()
    n = args.articles
    rows: dict[str, list[tuple[float, float, float]]] = {}
    phase_times: dict[str, list[float]] = {p: [] for p in PHASES}
    pipeline_steps: dict[str, list[float]] = {}
    publish_row = "clinicpress publish (flow as is)"
    with (
        tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp,
        farm_catalog(Path(tmp) / "content", n) as (_, cat),
        _server(args, Path(tmp)) as api_url,
    ):
        citations = sum(p.read_text().count("\n  - title:") for p in cat.articles)
        print(
            f"catalog: {n} articles × 3 channels, {citations} citations of {len(cat.urls)} distinct "
            f"sources (loopback), {args.workers} workers, {os.cpu_count()} cores",
            flush=True,
        )
        for run in range(args.runs):
            with PeakRSS(os.getpid(), include_root=False) as rss:
                floor = run_floor(cat.articles, cat.site, args.workers, check=False)
            rows.setdefault("floor: renderers direct, 1 process/core", []).append(
                (floor.seconds, rss.peak, rss.peak_pss)
            )
            print(f"run {run + 1}: floor {floor.seconds:.1f} s", flush=True)
            if not args.skip_check_floor:
                with PeakRSS(os.getpid(), include_root=False) as rss:
                    checked = run_floor(cat.articles, cat.site, args.workers, check=True)
                rows.setdefault("floor + consistency check", []).append(
                    (checked.seconds, rss.peak, rss.peak_pss)
                )
                for phase in PHASES:
                    phase_times[phase].extend(checked.times[phase])
                if checked.failures:
                    print(f"  floor: {checked.failures} article(s) failed the consistency check")
                print(f"run {run + 1}: floor + check {checked.seconds:.1f} s", flush=True)
            steps, (peak, peak_pss) = _pipeline(
                cat.site, cat.content, Path(tmp) / f"out-pipeline-{run}", args.workers
            )
            rows.setdefault("pipeline, no Prefect, RenderPool", []).append((steps["total"], peak, peak_pss))
            for step, seconds in steps.items():
                pipeline_steps.setdefault(step, []).append(seconds)
            print(f"run {run + 1}: pipeline {steps['total']:.1f} s", flush=True)
            if not args.skip_publish:
                out = Path(tmp) / f"out-publish-{run}"
                done = run_publish(cat, out, prefect_env(Path(tmp) / "prefect-home", api_url))
                if done.returncode != 0:
                    print(
                        f"  publish exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
                    )
                found = (out / "handouts").glob("*.pdf") if (out / "handouts").exists() else []
                pdfs = sum(1 for p in found if not p.stem.endswith("-large-print"))  # one per article
                rows.setdefault(publish_row, []).append((done.seconds, done.peak_rss_mb, done.peak_pss_mb))
                print(f"run {run + 1}: publish {done.seconds:.1f} s, {pdfs} handouts published", flush=True)

    floor_s = statistics.median(s for s, _, _ in rows["floor: renderers direct, 1 process/core"])
    print()
    print(f"full rebuild, {n} articles (median of {args.runs} run(s))")
    print(
        f"{'run':<42} {'seconds':>8} {'articles/s':>10} {'peak RSS MB':>12} {'peak PSS MB':>12}"
        f" {'÷ floor':>8}"
    )
    for name, values in rows.items():
        seconds = statistics.median(s for s, _, _ in values)
        peak = statistics.median(p for _, p, _ in values)
        pss = statistics.median(p for _, _, p in values)
        print(
            f"{name:<42} {seconds:>8.1f} {n / seconds:>10.2f} {peak:>12.0f} {pss:>12.0f}"
            f" {floor_s / seconds:>8.2f}"
        )
    print(
        "(÷ floor: throughput as a fraction of the floor's. Memory of the process tree, workers included:\n"
        " RSS summed per process counts the pages the workers share with the forkserver once per process;\n"
        " PSS counts each shared page once)"
    )

    if phase_times["handout"]:  # from the 'floor + consistency check' pass
        print()
        print(f"per article, CPU time in the floor's workers ({len(phase_times['handout'])} renders)")
        print(f"{'phase':<14} {'median ms':>10} {'mean ms':>10} {'share':>7}")
        means = {p: statistics.fmean(v) if v else 0.0 for p, v in phase_times.items()}
        whole = sum(means.values())
        for phase in PHASES:
            samples = phase_times[phase]
            median = statistics.median(samples) * 1000 if samples else 0.0
            print(f"{phase:<14} {median:>10.0f} {means[phase] * 1000:>10.0f} {means[phase] / whole:>7.0%}")

    print()
    print("pipeline without Prefect, by step (median seconds)")
    for step, step_times in pipeline_steps.items():
        print(f"  {step:<36} {statistics.median(step_times):>7.2f}")

    write_json(
        args.json,
        {
            "articles": n,
            "rows": {
                name: {
                    "seconds": statistics.median(s for s, _, _ in values),
                    "peak_rss_mb": statistics.median(p for _, p, _ in values),
                    "peak_pss_mb": statistics.median(p for _, _, p in values),
                }
                for name, values in rows.items()
            },
            "floor_row": "floor: renderers direct, 1 process/core",
            "publish_row": publish_row,
            "runs": args.runs,
            "load": load_average(),
        },
    )
    if publish_row in rows:
        publish_s = statistics.median(s for s, _, _ in rows[publish_row])
        pipeline_s = statistics.median(pipeline_steps["total"])
        print()
        print(f"ratio publish / floor throughput: {floor_s / publish_s:.2f}")
        # Wall time: the render workers are the forkserver's children, so no rusage of ours sees
        # their CPU, and a CPU split of the publish process alone would leave the renders out.
        print(
            f"Prefect + process start (wall, estimate): publish {publish_s:.1f} s − the same steps "
            f"without Prefect {pipeline_s:.1f} s = {publish_s - pipeline_s:.1f} s "
            f"({max(0.0, publish_s - pipeline_s) / publish_s:.0%} of the publish run)"
        )


if __name__ == "__main__":
    main()
