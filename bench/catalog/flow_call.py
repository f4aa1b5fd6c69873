"""Benchmark: what a flow call costs, by heartbeat setting, and whole CLI processes against a server.

    .venv/bin/python -m bench.catalog.flow_call [--runs 3] [--skip-cli]

Starts ``prefect server`` on a free loopback port (its own PREFECT_HOME), then measures:

- in one running process, an empty flow (one task that does nothing) called warm with
  Prefect's flow-run heartbeats at their default (180 s), off (None, Python's setting: the
  environment cannot say None), at the shortest frequency Prefect accepts (30 s), and as an
  ``async`` flow with heartbeats on (Prefect does not join the heartbeat thread of an async run);
- whole processes: the same empty flow as a script (the baseline of issue 16), heartbeats on and
  off; ``clinicpress publish`` of one article (5 sources on a loopback farm), a no-op and one
  edited, with the CLI's default (heartbeats off, ``cli_flow_run``) and with
  ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY=180`` in the environment (on).

With ``--make-publish``: what ``make publish`` does again and again with nothing configured
(``clinicpress publish`` of content/ into a temporary --out, its local Prefect server in a
temporary PREFECT_HOME, started by an untimed first run and stopped at the end), against
``clinicpress check`` of the same and today's embedded API (``CLINICPRESS_LOCAL_SERVER=0``).

Prints medians, the load average before and after, and ratios against the empty-flow process
measured in the same run. Goals (issue 16): publish one edited article ≤ 1.3× the empty-flow
process, a no-op ≤ 1.1×; a flow call in a running process ≤ 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import load_average, write_json

from .common import ROOT, farm_catalog, prefect_env, prefect_server, run_publish

MODES = ("default (180 s)", "off (None)", "30 s (the minimum)", "async flow, default")

# The baseline process: an empty one-task flow, as any Prefect user would write it.
EMPTY_FLOW_SCRIPT = """
import sys
from prefect import flow, task

@task
def nothing() -> None:
    return None

@flow(name="empty")
def empty() -> None:
    nothing()

if sys.argv[1] == "off":
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        empty()
else:
    empty()
"""


def _inner(runs: int) -> None:
    """In a child process: warm empty-flow calls per heartbeat mode, printed as JSON."""
    from prefect import flow, task
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    @task(name="nothing")
    def nothing() -> None:
        return None

    @flow(name="empty")
    def empty() -> None:
        nothing()

    @flow(name="empty-async")
    async def empty_async() -> None:
        nothing()

    def timed(call: object) -> list[float]:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            call()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return times

    empty()  # the first call of a new flow registers it: not timed
    asyncio.run(empty_async())
    results = {MODES[0]: timed(empty)}
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        results[MODES[1]] = timed(empty)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        results[MODES[2]] = timed(empty)
    results[MODES[3]] = timed(lambda: asyncio.run(empty_async()))
    print(json.dumps(results))


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _seconds(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{args[:3]} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return seconds


def _stop_leftover(state: Path) -> None:
    """The local server this benchmark started, if `server stop` left it running (a loaded machine)."""
    try:
        pid = int(json.loads(state.read_text(encoding="utf-8"))["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError):
        return
    if b"prefect" in cmdline and b"server" in cmdline:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)  # its own session: the server and its children
        print(f"stopped the local server (pid {pid}) that `clinicpress server stop` left running")


def make_publish(runs: int) -> dict[str, object]:
    """`make publish` again with nothing configured: the local server vs check vs the embedded API."""
    clinicpress = str(ROOT / ".venv" / "bin" / "clinicpress")
    with tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp:
        env = {
            k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "CLINICPRESS_LOCAL_SERVER")
        }
        env["PREFECT_HOME"] = str(Path(tmp) / "prefect-home")
        out = ["--out", str(Path(tmp) / "out")]
        times: dict[str, list[float]] = {}
        try:
            first = _seconds([clinicpress, "publish", *out], env)
            print(f"first run (starts the local server): {first:.2f} s", flush=True)
            for run in range(runs):
                for label, args, extra in (
                    ("clinicpress publish again (the local server)", ["publish"], {}),
                    ("clinicpress check (the baseline)", ["check"], {}),
                    (
                        "clinicpress publish, embedded API (LOCAL_SERVER=0)",
                        ["publish"],
                        {"CLINICPRESS_LOCAL_SERVER": "0"},
                    ),
                ):
                    times.setdefault(label, []).append(_seconds([clinicpress, *args, *out], {**env, **extra}))
                print(f"run {run + 1} done (load {_load()})", flush=True)
        finally:
            subprocess.run(
                [clinicpress, "server", "stop"], env=env, capture_output=True, timeout=120, check=False
            )
            _stop_leftover(Path(env["PREFECT_HOME"]) / "clinicpress-server" / "server.json")
    base = statistics.median(times["clinicpress check (the baseline)"])
    print(f"load average after: {_load()}")
    print(f"\nmake publish with nothing configured, medians of {runs}; ratio: ÷ clinicpress check")
    for label, values in times.items():
        print(f"{label:<60} {statistics.median(values):>8.2f} {statistics.median(values) / base:>6.2f}")
    print("goal: the second and later runs ≤ 3 s")
    medians = {label: statistics.median(values) for label, values in times.items()}
    return {"first": first, "medians": medians, "runs": runs, "load": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-cli", action="store_true", help="only the flow calls and empty processes")
    parser.add_argument(
        "--make-publish", action="store_true", help="`make publish` again, nothing configured"
    )
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="PATH", help="also write the medians as JSON (bench/suite.py)")
    args = parser.parse_args()
    if args.inner:
        _inner(args.runs)
        return
    print(f"load average before: {_load()}", flush=True)
    if args.make_publish:
        write_json(args.json, make_publish(args.runs))
        return
    rows: list[tuple[str, float]] = []
    with (
        tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp,
        farm_catalog(Path(tmp) / "content", 1) as (_, cat),
    ):
        home = Path(tmp) / "prefect-home"
        with prefect_server(home) as api:
            env = prefect_env(home, api)
            env.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
            inner = subprocess.run(
                [sys.executable, "-m", "bench.catalog.flow_call", "--runs", str(args.runs), "--inner"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if inner.returncode != 0:
                raise SystemExit(f"in-process run failed:\n{inner.stderr[-3000:]}")
            calls = json.loads(inner.stdout.strip().splitlines()[-1])
            for mode in MODES:
                rows.append(
                    (
                        f"empty flow call in a running process, heartbeats {mode}",
                        statistics.median(calls[mode]),
                    )
                )

            script = Path(tmp) / "empty_flow.py"
            script.write_text(EMPTY_FLOW_SCRIPT, encoding="utf-8")
            procs: dict[str, list[float]] = {"on": [], "off": []}
            cli: dict[str, list[float]] = {}
            on_env = {**env, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "180"}
            article = cat.articles[0]
            original = article.read_text(encoding="utf-8")
            out = Path(tmp) / "out"
            if not args.skip_cli:
                run_publish(cat, out, env, paths=[article])  # the first publish: not timed
            # Interleaved, so that a change of load hits every measure alike.
            for run in range(args.runs):
                for mode in procs:
                    procs[mode].append(_seconds([sys.executable, str(script), mode], env))
                if args.skip_cli:
                    continue
                for label, cli_env in (
                    ("heartbeats off (the CLI's default)", env),
                    ("heartbeats on", on_env),
                ):
                    done = run_publish(cat, out, cli_env, paths=[article])
                    if done.returncode != 0:
                        raise SystemExit(f"publish failed:\n{done.stdout}\n{done.stderr[-3000:]}")
                    cli.setdefault(f"clinicpress publish, no-op, {label}", []).append(done.seconds)
                    article.write_text(original + f"\nEdited ({label}) in run {run + 1}.\n", encoding="utf-8")
                    done = run_publish(cat, out, cli_env, paths=[article])
                    if done.returncode != 0 or "published" not in done.stdout:
                        raise SystemExit(f"publish failed:\n{done.stdout}\n{done.stderr[-3000:]}")
                    cli.setdefault(f"clinicpress publish, one edited, {label}", []).append(done.seconds)
                print(f"run {run + 1} done (load {_load()})", flush=True)
    base = statistics.median(procs["on"])
    rows.append(("empty one-task flow process, heartbeats on (the baseline)", base))
    rows.append(("empty one-task flow process, heartbeats off", statistics.median(procs["off"])))
    rows += [(label, statistics.median(times)) for label, times in cli.items()]
    print(f"load average after: {_load()}")
    print(f"\nmedians of {args.runs}, a running prefect server on loopback; ratio: ÷ the baseline")
    print(f"{'measure':<78} {'seconds':>8} {'ratio':>6}")
    for label, seconds in rows:
        ratio = "" if "running process" in label else f"{seconds / base:>6.2f}"
        print(f"{label:<78} {seconds:>8.2f} {ratio}")
    print("goals: one edited ≤ 1.30, no-op ≤ 1.10 (× the baseline); a flow call in a running process ≤ 0.5 s")
    if os.environ.get("CP_BENCH_JSON"):
        print(json.dumps({"rows": rows, "calls": calls, "procs": procs, "cli": cli}))
    write_json(args.json, {"rows": dict(rows), "baseline": base, "runs": args.runs, "load": load_average()})


if __name__ == "__main__":
    main()
