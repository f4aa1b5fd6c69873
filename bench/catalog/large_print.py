"""Benchmark: what the large-print handout (issue 26, part 4) adds to a rebuild, against itself off.

    .venv/bin/python -m bench.catalog.large_print --articles 100 [--runs 3] [--own-server | --api-url URL]

The same catalog, farm and Prefect server for both settings, in the same run; each pair of
measurements alternates which setting goes first (the machine is shared: drift hits both):

- ``full rebuild``: ``clinicpress publish`` of the whole catalog as a whole process into a fresh
  ``--out``, ``[handout] large_print`` off (``CLINICPRESS_HANDOUT__LARGE_PRINT=false``) and on
  (the default). Goal: on ≤ 1.6 × off (+60 %).
- ``renderers' floor``: the same catalog through the renderers called directly, one process per
  core (``floor.run_floor``), off and on: the render work alone (CPU seconds in the workers),
  without Prefect or the link check.
- Wall time follows the machine's load (2 shared cores). The floor's CPU seconds do not, and bound
  what the setting adds to a rebuild: a rebuild is the render work plus work the setting does not
  change (process start, Prefect, loading, the link check, the release), so its added fraction is
  at most the floor's. (The publish process's own rusage leaves the render workers out: they are
  the forkserver's children.)
- ``one edited article``: one article's body changes, then ``clinicpress publish`` of the whole
  catalog into each setting's published ``--out`` (one article re-rendered); and that article's
  render + consistency check in this process, off and on (CPU seconds: the work the setting adds).

Loopback only; the farm stops by itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path

from bench.results import load_average, write_json

from .common import farm_catalog, prefect_env, prefect_server, run_publish
from .floor import run_floor
from .generate import Catalog, touch_one

GOAL = 1.6  # issue 26: large print adds under 60 % to a full catalog rebuild
SETTINGS = ("off", "on")
OFF_ENV = "CLINICPRESS_HANDOUT__LARGE_PRINT"


def site_without_large_print(catalog: Catalog) -> Path:
    """The catalog's site.toml with ``[handout] large_print = false``, beside it (not an article)."""
    text = catalog.site.read_text(encoding="utf-8")
    if "\n[handout]\n" not in text:
        raise SystemExit(f"{catalog.site}: no [handout] table to turn large print off in")
    path = catalog.site.with_name("site-no-large-print.toml")
    path.write_text(text.replace("\n[handout]\n", "\n[handout]\nlarge_print = false\n", 1), encoding="utf-8")
    return path


def _env(base: dict[str, str], setting: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k != OFF_ENV}
    if setting == "off":
        env[OFF_ENV] = "false"
    return env


def _order(run: int) -> tuple[str, ...]:
    return SETTINGS if run % 2 == 0 else SETTINGS[::-1]


def _one_render(article_path: Path, sites: dict[str, Path], runs: int) -> dict[str, float]:
    """One article's render + consistency check in this process, per setting (median CPU seconds)."""
    from clinicpress.renderers.base import RenderContext
    from clinicpress.renderers.consistency import consistency_problems
    from clinicpress.renderers.registry import render_article
    from clinicpress.site import load_site
    from clinicpress.sources.loader import load_article

    article = load_article(article_path)
    loaded = {setting: load_site(path) for setting, path in sites.items()}
    context = RenderContext(published_at=datetime.now().astimezone(), version="0" * 64)
    for site in loaded.values():  # warm: imports, templates, fonts
        render_article(article, site, context)
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for run in range(max(3, runs)):
        for setting in _order(run):
            start = time.process_time()
            artifacts = render_article(article, loaded[setting], context)
            if consistency_problems(article, loaded[setting], artifacts):
                raise SystemExit(f"{article_path}: inconsistent artifacts with large print {setting}")
            times[setting].append(time.process_time() - start)
    return {s: statistics.median(t) for s, t in times.items()}


def _server(args: argparse.Namespace, tmp: Path) -> AbstractContextManager[str | None]:
    if args.api_url or not args.own_server:
        return nullcontext(args.api_url)
    return prefect_server(tmp / "prefect-home-own")


def _pdfs(out: Path) -> int:
    folder = out / "handouts"
    return len(list(folder.glob("*.pdf"))) if folder.exists() else 0


def _handouts(out: Path) -> dict[str, int]:
    """Each regular handout's inode: a release writes a re-rendered file anew, links an unchanged one."""
    folder = out / "handouts"
    found = folder.glob("*.pdf") if folder.exists() else []
    return {p.name: p.stat().st_ino for p in found if not p.name.endswith("-large-print.pdf")}


def main() -> None:
    from clinicpress.renderers.pool import default_workers

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1, help="repeat and report medians")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--api-url", default=None, help="PREFECT_API_URL of a running prefect server")
    parser.add_argument("--own-server", action="store_true", help="start one prefect server for every run")
    parser.add_argument("--json", metavar="PATH", help="also write the medians as JSON (bench/suite.py)")
    args = parser.parse_args()
    n = args.articles
    full: dict[str, list[float]] = {s: [] for s in SETTINGS}
    floor: dict[str, list[float]] = {s: [] for s in SETTINGS}
    edited: dict[str, list[float]] = {s: [] for s in SETTINGS}
    with (
        tempfile.TemporaryDirectory(prefix="cp-bench-lp-") as tmp_name,
        farm_catalog(Path(tmp_name) / "content", n) as (_, cat),
        _server(args, Path(tmp_name)) as api_url,
    ):
        tmp = Path(tmp_name)
        sites = {"off": site_without_large_print(cat), "on": cat.site}
        base_env = prefect_env(tmp / "prefect-home", api_url)
        print(f"catalog: {n} articles, {args.workers} workers, {os.cpu_count()} cores", flush=True)
        for run in range(args.runs):
            outs = {s: tmp / f"out-{s}-{run}" for s in SETTINGS}
            for setting in _order(run):
                result = run_floor(cat.articles, sites[setting], args.workers, check=True)
                if result.failures:
                    raise SystemExit(
                        f"floor, large print {setting}: {result.failures} inconsistent article(s)"
                    )
                # CPU seconds in the workers, summed over articles and phases: the render work itself.
                floor[setting].append(sum(sum(times) for times in result.times.values()))
                done = run_publish(cat, outs[setting], _env(base_env, setting))
                if done.returncode != 0:
                    raise SystemExit(
                        f"publish, large print {setting}: exit {done.returncode}\n{done.stderr[-3000:]}"
                    )
                full[setting].append(done.seconds)
                print(
                    f"run {run + 1}, large print {setting}: floor {floor[setting][-1]:.1f} s CPU, publish "
                    f"{done.seconds:.1f} s wall, {_pdfs(outs[setting])} PDFs",
                    flush=True,
                )
            touch_one(cat, run % len(cat.articles))
            for setting in _order(run + 1):
                before = _handouts(outs[setting])
                done = run_publish(cat, outs[setting], _env(base_env, setting))
                if done.returncode != 0:
                    raise SystemExit(f"one edited, large print {setting}: exit {done.returncode}")
                after = _handouts(outs[setting])
                again = sum(1 for name, inode in after.items() if before.get(name) != inode)
                edited[setting].append(done.seconds)
                print(
                    f"run {run + 1}, one edited, large print {setting}: {done.seconds:.2f} s, "
                    f"{again} article(s) rendered again",
                    flush=True,
                )
        one = _one_render(cat.articles[0], sites, args.runs)

    def med(values: dict[str, list[float]]) -> dict[str, float]:
        return {s: statistics.median(v) for s, v in values.items()}

    rows = {
        "full": med(full),
        "floor": med(floor),
        "edited": med(edited),
        "one": one,
    }
    names = {
        "full": "full rebuild (clinicpress publish), wall",
        "floor": "renderers' floor: render + check, CPU in the workers",
        "edited": "one edited article (clinicpress publish, whole process)",
        "one": "one article's render + check, CPU in process",
    }
    print()
    print(f"large print off vs on, {n} articles, median of {args.runs} run(s), load {load_average()}")
    print(f"{'measure':<58} {'off s':>8} {'on s':>8} {'added':>8}")
    for key, row in rows.items():
        print(f"{names[key]:<58} {row['off']:>8.2f} {row['on']:>8.2f} {row['on'] / row['off'] - 1:>+8.0%}")
    write_json(args.json, {"articles": n, "runs": args.runs, "rows": rows, "load": load_average()})


if __name__ == "__main__":
    main()
