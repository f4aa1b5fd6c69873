"""Benchmark: one article, as a whole process and inside a running process, by phase.

    .venv/bin/python -m bench.catalog.one_article [--runs 3]

Starts ``prefect server`` on a free loopback port (its own PREFECT_HOME),
then measures on the reference-derived catalog's first article (5 sources
on a loopback farm):

- ``clinicpress publish ARTICLE`` as a whole process against that server;
- the ``publish`` flow called again and again inside one process that has
  already run it once (what a served deployment does).

Before every timed call the article's body is edited, so each call renders
and publishes a new version (an unchanged article is skipped as live
already: that is the no-op rebuild, ``bench.catalog.incremental``);
- in that same warm process, each phase called directly without Prefect
  (load, link check, verify, web, handout, newsletter, consistency,
  publish_release, registry record). "Prefect overhead" = the warm flow
  call minus the sum of the phases;
- in that same process, an empty flow (one task that does nothing) called
  warm: what any flow call costs against this server, whatever it does;
- both again with Prefect's flow-run heartbeats off: ending a flow run
  waits for the heartbeat thread's 1-second sleep, most of an empty call.

Goal (issue 6): one article inside a running process ≤ 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from .common import ROOT, farm_catalog, prefect_env, prefect_server, run_publish

PHASES = (
    "load",
    "link check",
    "verify",
    "web",
    "handout",
    "newsletter",
    "consistency",
    "publish_release",
    "registry record",
)


def _inner(article: str, site_path: str, out: str, runs: int) -> None:
    """Runs in a child process: the warm flow calls and the direct phases, printed as JSON."""
    from clinicpress.runtime import configure_runtime

    configure_runtime(verbose=False)
    from clinicpress.checks.links import check_urls
    from clinicpress.checks.verify import all_urls, verify_article
    from clinicpress.flows.publish import publish_flow
    from clinicpress.flows.tasks import record_publish
    from clinicpress.outputs.publish import ReadyArticle, publish_release
    from clinicpress.renderers.base import Artifact, RenderContext
    from clinicpress.renderers.consistency import consistency_problems
    from clinicpress.renderers.registry import RENDERERS, template_fingerprint
    from clinicpress.site import load_site
    from clinicpress.sources.loader import load_articles
    from clinicpress.sources.versioning import article_version

    start = time.perf_counter()
    publish_flow(paths=[article], site_path=site_path, out_dir=out)
    first = time.perf_counter() - start
    original = Path(article).read_text(encoding="utf-8")

    def edited_calls(label: str) -> list[float]:
        times = []
        for run in range(runs):
            # A content edit, as an editor makes one: a new version, so the call renders and publishes
            # (an unchanged article would be skipped as live already, and time only the no-op).
            Path(article).write_text(original + f"\nEdited ({label}) in run {run + 1}.\n", encoding="utf-8")
            start = time.perf_counter()
            result = publish_flow(paths=[article], site_path=site_path, out_dir=out)
            times.append(time.perf_counter() - start)
            if not result.outcomes[0].published:
                raise SystemExit(f"run {run + 1}: the edited article was not published: {result.outcomes[0]}")
        return times

    flow_times = edited_calls("heartbeats on")
    # The same calls with Prefect's flow-run heartbeats off: stopping the heartbeat thread at the end
    # of a flow waits for its 1-second sleep (prefect/flow_engine.py, _send_heartbeats).
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        quiet_times = edited_calls("heartbeats off")
        empty_quiet = _empty_flow_calls(runs)
    phases: dict[str, list[float]] = {p: [] for p in PHASES}
    for _ in range(runs):
        t = time.perf_counter()
        site = load_site(site_path)
        [art] = load_articles([Path(article)])
        phases["load"].append(time.perf_counter() - t)
        t = time.perf_counter()
        links = check_urls(all_urls([art]), site.checks.links)
        phases["link check"].append(time.perf_counter() - t)
        now = datetime.now().astimezone()
        t = time.perf_counter()
        report = verify_article(art, site, links, on=now.date(), strict=False)
        phases["verify"].append(time.perf_counter() - t)
        version = article_version(art, site, template_fingerprint())
        context = RenderContext(published_at=now, version=version)
        artifacts: list[Artifact] = []
        for channel, renderer in RENDERERS.items():
            t = time.perf_counter()
            artifacts.extend(renderer.render(art, site, context))
            phases[channel.value].append(time.perf_counter() - t)
        t = time.perf_counter()
        consistency_problems(art, site, artifacts)
        phases["consistency"].append(time.perf_counter() - t)
        ready = [ReadyArticle(art, report, version, artifacts)]
        t = time.perf_counter()
        release = publish_release(Path(out), ready, site, now)
        phases["publish_release"].append(time.perf_counter() - t)
        t = time.perf_counter()
        if release is not None:
            record_publish.fn(site, Path(out), release, ready, links, now)
        phases["registry record"].append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "first": first,
                "flow": flow_times,
                "phases": phases,
                "empty": _empty_flow_calls(runs),
                "flow_no_heartbeats": quiet_times,
                "empty_no_heartbeats": empty_quiet,
            }
        )
    )


def _empty_flow_calls(runs: int) -> list[float]:
    """Prefect's own floor in this process: a flow of one task that does nothing, called warm."""
    from prefect import flow, task

    @task(name="nothing")
    def nothing() -> None:
        return None

    @flow(name="empty")
    def empty() -> None:
        nothing()

    empty()  # the first call of a new flow registers it: not timed
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        empty()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--inner", nargs=3, metavar=("ARTICLE", "SITE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        article, site_path, out = args.inner
        _inner(article, site_path, out, runs=args.runs)
        return
    with (
        tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp,
        farm_catalog(Path(tmp) / "content", 1) as (_, cat),
    ):
        home = Path(tmp) / "prefect-home"
        with prefect_server(home) as api:
            env = prefect_env(home, api)
            article = cat.articles[0]
            whole = []
            original = article.read_text(encoding="utf-8")
            for run in range(args.runs):
                # An edit per run: a new version each time, rendered and published (not a no-op).
                article.write_text(original + f"\nEdited by the CLI run {run + 1}.\n", encoding="utf-8")
                done = run_publish(cat, Path(tmp) / "out-cli", env, paths=[article])
                if done.returncode != 0:
                    raise SystemExit(f"publish failed:\n{done.stdout}\n{done.stderr}")
                whole.append(done.seconds)
                print(f"run {run + 1}: whole process {done.seconds:.2f} s", flush=True)
            start = time.perf_counter()
            inner_args = [str(article), str(cat.site), str(Path(tmp) / "out-warm")]
            inner = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.catalog.one_article",
                    "--runs",
                    str(args.runs),
                    "--inner",
                    *inner_args,
                ],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if inner.returncode != 0:
                raise SystemExit(f"in-process run failed:\n{inner.stdout}\n{inner.stderr[-3000:]}")
            data = json.loads(inner.stdout.strip().splitlines()[-1])
            print(f"in-process child done in {time.perf_counter() - start:.1f} s", flush=True)
    flow = statistics.median(data["flow"])
    phases = {p: statistics.median(v) for p, v in data["phases"].items()}
    work = sum(phases.values())
    print()
    print(f"one article ({len(cat.urls)} sources on loopback), running prefect server, median of {args.runs}")
    print(f"{'measure':<44} {'seconds':>8}")
    print(f"{'clinicpress publish, whole process':<44} {statistics.median(whole):>8.2f}")
    print(f"{'flow call in a process, first call':<44} {data['first']:>8.2f}")
    print(f"{'flow call in a running process (warm)':<44} {flow:>8.2f}")
    for phase in PHASES:
        print(f"{'  ' + phase:<44} {phases[phase]:>8.3f}")
    print(f"{'  Prefect overhead (warm call − phases)':<44} {flow - work:>8.3f}")
    empty = statistics.median(data["empty"])
    print(f"{'an empty flow call (1 task), same process':<44} {empty:>8.2f}")
    print("(the empty flow is Prefect's floor for any flow call against this server: no publish as a")
    print(" flow run can take less)")
    print(f"{'with flow-run heartbeats off (PREFECT_FLOWS_HEARTBEAT_FREQUENCY None):':<44}")
    quiet = statistics.median(data["flow_no_heartbeats"])
    print(f"{'  flow call in a running process (warm)':<44} {quiet:>8.2f}")
    print(f"{'  an empty flow call (1 task)':<44} {statistics.median(data['empty_no_heartbeats']):>8.2f}")


if __name__ == "__main__":
    main()
