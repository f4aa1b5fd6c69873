"""`make bench`: every benchmark of issue 16, medians of 3, ONE table of ratios (bench/results.md).

    .venv/bin/python -m bench.suite [--runs 3] [--articles 1000] [--full-articles 1000] [--readme]
    .venv/bin/python -m bench.suite --quick            # the harness on small sizes (minutes, not an hour)
    .venv/bin/python -m bench.suite --readme-only      # the docs' Performance table from bench/results.md

Each benchmark runs as its own process (it starts its own loopback farm and Prefect server) and
writes its medians as JSON (``--json``); this collects them into one table: clinicpress against
a baseline measured in the same run (lychee, an empty one-task flow process, ``clinicpress
check``, the renderers' floor), each row with its goal and the load average when it ran. The
table goes to ``bench/results.md``; with ``--readme`` also into the docs site's Performance page
(docs/development/performance.md), between its markers. A benchmark that fails is a row saying
so; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import load_average

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.md"
README = ROOT / "docs" / "development" / "performance.md"  # the docs site's Performance page
BEGIN = "<!-- bench/suite.py: generated table (make bench); edit bench/suite.py, not this -->"
END = "<!-- bench/suite.py: end of the generated table -->"

Data = dict[str, Any]
FOOTER = [
    "A new `clinicpress publish` process does not load, parse or grade an unchanged article again: "
    "each file's loaded article, each body's links and its readability grade are kept by content hash "
    "in `<out>/.cache/facts.sqlite` (`checks/facts_cache.py`; a changed body, or a change to the code "
    "or libraries that compute them, is a miss; `--no-cache` or `CLINICPRESS_FACTS_CACHE=0` turns it "
    "off). A publish process imports no FastAPI (`flows/json_flow.py`), and no newsletter delivery code "
    "when nothing is sent; textstat (with nltk, ~0.3 s) only when a grade is not cached; "
    "`clinicpress check` imports no SQLAlchemy before a registry exists. The commands, the per-step "
    "breakdowns and the log of earlier rounds: "
    "[Performance history](performance-history.md).",
    "",
    "Why the goals marked not met are not (measured with `py-spy` on the commit above; "
    "`bench/README.md` has the profiles):",
    "",
    "- **Link check, CPU and wall.** The process's floor, `clinicpress check` of an article citing "
    "nothing (interpreter, imports, loading, grading its prose), is itself about twice lychee's whole "
    "run; then each link costs about 1.2 ms of Python (aiohttp's request, httpx's request and response "
    "objects, reading each page for a soft-404 title) where lychee's whole run is about 0.2 ms a "
    "link. The check runs in one thread and is CPU-bound on this machine, so its wall time follows "
    "its CPU time.",
    "- **`make publish` again and the whole-process catalog rows.** An empty one-task flow process "
    "(Prefect's import, its client, its engine: the baseline of the publish rows) already takes most "
    "of the 3 s before clinicpress does anything; what clinicpress adds is its CLI, reading the "
    "registry (SQLAlchemy) and, for a catalog, loading 1,000 articles from the facts cache. A served "
    "process (`clinicpress serve`) meets both catalog goals.",
    "- **The publish ratios** compare the CLI as it ships (flow-run heartbeats off: see "
    '"Flow-run heartbeats" below) with an empty flow process as Prefect runs it by default (heartbeats on), '
    "the baseline issue 16 measured; the heartbeats-on rows are clinicpress like for like.",
]


@dataclass(frozen=True)
class Step:
    name: str
    args: list[str]  # after `python`


@dataclass(frozen=True)
class Row:
    measure: str
    result: str
    baseline: str
    ratio: str
    goal: str
    verdict: str
    load: str


def steps(args: argparse.Namespace) -> list[Step]:
    runs = str(args.runs)
    found = [
        Step("linkcheck", ["-m", "bench.linkcheck_mixed", "--runs", runs]),
        Step("flow_call", ["-m", "bench.catalog.flow_call", "--runs", runs]),
        Step("make_publish", ["-m", "bench.catalog.flow_call", "--make-publish", "--runs", runs]),
        Step(
            "incremental",
            [
                "-m",
                "bench.catalog.incremental",
                "--articles",
                str(args.articles),
                "--runs",
                runs,
                "--own-server",
            ],
        ),
        Step("preview", ["bench/preview_latency.py", str(args.edits)]),
        Step(
            "newsletter_send",
            ["-m", "bench.newsletter_send", "--recipients", str(args.recipients), "--runs", runs],
        ),
    ]
    if args.full_articles > 0:
        full = ["-m", "bench.catalog.full_rebuild", "--articles", str(args.full_articles), "--runs", runs]
        found.append(Step("full_rebuild", [*full, "--skip-check-floor", "--own-server"]))
    if args.large_print_articles > 0:
        large = ["-m", "bench.catalog.large_print", "--articles", str(args.large_print_articles)]
        found.append(Step("large_print", [*large, "--runs", runs, "--own-server"]))
    return [s for s in found if not args.only or s.name in args.only]


def run_step(step: Step, folder: Path) -> tuple[Data | None, str]:
    """One benchmark as a process, its output shown as it comes; (its JSON, a note)."""
    out = folder / f"{step.name}.json"
    print(f"\n=== {step.name}: python {' '.join(step.args)} (load {load_average()})", flush=True)
    started = time.monotonic()
    done = subprocess.run([sys.executable, *step.args, "--json", str(out)], cwd=ROOT, check=False)
    took = time.monotonic() - started
    print(f"=== {step.name}: exit {done.returncode} after {took:.0f} s", flush=True)
    if done.returncode != 0 or not out.exists():
        return None, f"failed (exit {done.returncode})"
    data: Data = json.loads(out.read_text(encoding="utf-8"))
    return data, ""


def _x(value: float) -> str:
    return f"{value:.2f}×"


def _s(value: float) -> str:
    return f"{value:.2f} s"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _load(data: Data) -> str:
    return f"{data.get('load', float('nan')):.1f}"


def linkcheck_rows(d: Data) -> list[Row]:
    cp, ly, floor = (d["medians"][k] for k in ("clinicpress", "lychee", "cp 0 links"))
    right = d["right"]
    total = d["total"]
    rows = []
    for key, label, goal, limit in (
        ("wall", "wall", "≤ 0.6×", 0.6),
        ("cpu", "CPU", "≤ 3×", 3.0),
        ("peak_mb", "peak memory", "—", None),
    ):
        unit = " MB" if key == "peak_mb" else " s"
        ratio = cp[key] / ly[key]
        rows.append(
            Row(
                f"link check, plain mixed farm ({total} links), {label}",
                f"{cp[key]:.2f}{unit}"
                + (f" (right {right['clinicpress']}/{total})" if key == "wall" else ""),
                f"lychee {ly[key]:.2f}{unit}"
                + (f" (right {right['lychee']}/{total})" if key == "wall" else ""),
                _x(ratio),
                goal,
                _met(ratio <= limit) if limit else "—",
                _load(d),
            )
        )
    rows.append(
        Row(
            "`clinicpress check` of an article citing nothing (the process's floor), CPU",
            _s(floor["cpu"]),
            f"lychee {_s(ly['cpu'])}",
            _x(floor["cpu"] / ly["cpu"]),
            "—",
            "—",
            _load(d),
        )
    )
    return rows


def flow_call_rows(d: Data) -> list[Row]:
    rows_in = d["rows"]
    base = d["baseline"]
    out: list[Row] = []
    goals = {"no-op": (1.1, "≤ 1.1×"), "one edited": (1.3, "≤ 1.3×")}
    for label, seconds in rows_in.items():
        if "running process" in label:
            off = "off" in label and "async" not in label
            goal = "≤ 0.5 s" if off else "—"
            verdict = _met(seconds <= 0.5) if off else "—"
            out.append(Row(label, _s(seconds), "—", "—", goal, verdict, _load(d)))
        elif label.startswith("empty one-task flow process, heartbeats off"):
            # Like for like with the CLI's default (heartbeats off): the baseline without them.
            out.append(
                Row(label, _s(seconds), f"with heartbeats {_s(base)}", _x(seconds / base), "—", "—", _load(d))
            )
        elif label.startswith("clinicpress publish"):
            kind = "no-op" if "no-op" in label else "one edited"
            limit, goal = goals[kind]
            ratio = seconds / base
            default = "CLI's default" in label
            out.append(
                Row(
                    label + " (whole process, 1 article)",
                    _s(seconds),
                    f"empty one-task flow process {_s(base)}",
                    _x(ratio),
                    goal if default else "—",
                    _met(ratio <= limit) if default else "—",
                    _load(d),
                )
            )
    return out


def make_publish_rows(d: Data) -> list[Row]:
    med = d["medians"]
    check = med.get("clinicpress check (the baseline)", float("nan"))
    rows = []
    for label, seconds in med.items():
        if label.startswith("clinicpress check"):
            continue
        again = "local server" in label
        rows.append(
            Row(
                f"`make publish` again, nothing configured: {label}",
                _s(seconds),
                f"`clinicpress check` {_s(check)}",
                _x(seconds / check),
                "≤ 3 s" if again else "—",
                _met(seconds <= 3.0) if again else "—",
                _load(d),
            )
        )
    return rows


def incremental_rows(d: Data) -> list[Row]:
    n = d["articles"]
    one = d["one_render"]
    rows = []
    for label, value in d["rows"].items():
        seconds = value["seconds"]
        changed = label.startswith("one changed")
        limit = 3.0 + one if changed else 3.0
        goal = f"≤ 3 s + one render ({_s(limit)})" if changed else "≤ 3 s"
        rows.append(
            Row(
                f"{label}, {n:,} articles ({value['rerendered']:.0f} re-rendered)",
                _s(seconds),
                f"one article's render + check {_s(one)}" if changed else "—",
                "—",
                goal,
                _met(seconds <= limit) + ("" if n >= 1000 else f" (at {n} articles)"),
                _load(d),
            )
        )
    return rows


def full_rebuild_rows(d: Data) -> list[Row]:
    n = d["articles"]
    floor = d["rows"][d["floor_row"]]
    publish = d["rows"].get(d["publish_row"])
    if publish is None:
        return []
    ratio = floor["seconds"] / publish["seconds"]
    return [
        Row(
            f"full rebuild, {n:,} articles, throughput ÷ the renderers' floor",
            _s(publish["seconds"]),
            f"floor {_s(floor['seconds'])}",
            f"{ratio:.2f}",
            "≥ 0.80",
            _met(ratio >= 0.8),
            _load(d),
        ),
        Row(
            f"peak memory of the publish process tree, {n:,} articles (PSS; RSS summed)",
            f"{publish['peak_pss_mb']:.0f} MB ({publish['peak_rss_mb']:.0f} MB)",
            f"floor {floor['peak_pss_mb']:.0f} MB ({floor['peak_rss_mb']:.0f} MB)",
            _x(publish["peak_pss_mb"] / floor["peak_pss_mb"]),
            "≤ 400 MB",
            _met(publish["peak_pss_mb"] <= 400),
            _load(d),
        ),
    ]


def preview_rows(d: Data) -> list[Row]:
    return [
        Row(
            "preview: save → updated web page",
            _s(d["web"]),
            "—",
            "—",
            "≤ 1 s",
            _met(d["web"] <= 1.0),
            _load(d),
        ),
        Row("preview: save → updated handout", _s(d["handout"]), "—", "—", "—", "—", _load(d)),
    ]


def large_print_rows(d: Data) -> list[Row]:
    """Issue 26: the large-print handout on, against the same run with it off."""
    n = d["articles"]
    labels = {
        "full": f"full rebuild, {n:,} articles (`clinicpress publish`), wall",
        "floor": f"the renderers' floor, {n:,} articles: render + check, CPU in the workers",
        "edited": f"one edited article of {n:,}, whole process, wall",
        "one": "one article's render + check, CPU in process",
    }
    rows = []
    for key, label in labels.items():
        on, off = d["rows"][key]["on"], d["rows"][key]["off"]
        ratio = on / off
        # The floor's CPU ratio bounds the rebuild's (the rest of a rebuild does not change) and,
        # unlike wall time, does not follow the load of a shared machine.
        goal = key in ("full", "floor")
        rows.append(
            Row(
                f"large-print handout on: {label}",
                _s(on),
                f"large print off {_s(off)}",
                f"{_x(ratio)} ({ratio - 1:+.0%})",
                "≤ 1.60× (+60 %)" if goal else "—",
                _met(ratio <= 1.6) if goal else "—",
                _load(d),
            )
        )
    return rows


def newsletter_send_rows(d: Data) -> list[Row]:
    """Issue 28, part 5: a send to a loopback SMTP sink, DKIM on (bench/newsletter_send.py)."""
    n, med = d["recipients"], d["medians"]
    signed, unsigned, floor = med["signed"], med["unsigned"], med["floor"]
    wire = f"smtplib alone, nothing recorded {floor['rate']:.0f}/s"
    return [
        Row(
            f"newsletter send, {n:,} subscribers, DKIM on ({d['verified']} signatures checked with dkimpy)",
            f"{signed['rate']:.0f} messages/s ({_s(signed['wall'])})",
            wire,
            _x(signed["rate"] / floor["rate"]),
            "≥ 300 messages/s",
            _met(signed["rate"] >= 300) + ("" if n >= 10_000 else f" (at {n:,})"),
            _load(d),
        ),
        Row(
            f"newsletter send, {n:,} subscribers, DKIM off",
            f"{unsigned['rate']:.0f} messages/s, CPU {signed['cpu'] / n * 1000:.2f} ms/message signed, "
            f"{unsigned['cpu'] / n * 1000:.2f} unsigned",
            wire,
            _x(unsigned["rate"] / floor["rate"]),
            "—",
            "—",
            _load(d),
        ),
        Row("DKIM signing alone, CPU per message", f"{d['sign_ms']:.2f} ms", "—", "—", "—", "—", _load(d)),
    ]


BUILDERS: dict[str, Callable[[Data], list[Row]]] = {
    "linkcheck": linkcheck_rows,
    "flow_call": flow_call_rows,
    "make_publish": make_publish_rows,
    "incremental": incremental_rows,
    "full_rebuild": full_rebuild_rows,
    "preview": preview_rows,
    "newsletter_send": newsletter_send_rows,
    "large_print": large_print_rows,
}


def table(results: dict[str, tuple[Data | None, str]]) -> list[str]:
    lines = [
        "| measure | clinicpress | baseline, same run | ratio | goal | met? | load |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (data, note) in results.items():
        try:
            rows = BUILDERS[name](data) if data is not None else []
        except (KeyError, TypeError, ZeroDivisionError, ValueError) as exc:
            rows, note = [], f"unreadable results ({type(exc).__name__}: {exc})"
        if not rows:
            rows = [Row(f"{name}", note or "no rows", "—", "—", "—", "—", "—")]
        for r in rows:
            cells = (r.measure, r.result, r.baseline, r.ratio, r.goal, r.verdict, r.load)
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if dirty.strip() else "")


def results_text(results: dict[str, tuple[Data | None, str]], args: argparse.Namespace, loads: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        f"Generated by `make bench` (`bench/suite.py`) on {when}, commit {_commit()}, "
        f"{os.cpu_count()} cores, load average {loads}. Medians of {args.runs} run(s); the catalog rows "
        f"at {args.articles:,} articles"
        + (f", the full rebuild at {args.full_articles:,}" if args.full_articles > 0 else "")
        + ". Ratios are against the baseline measured in the same run (the machine may be shared: "
        "compare ratios, and see the load column).",
        "",
    ]
    return "\n".join(head + table(results) + ["", *FOOTER]) + "\n"


def write_readme(text: str, readme: Path = README) -> None:
    """Put ``text`` between the markers of the Performance page (nothing else changes)."""
    current = readme.read_text(encoding="utf-8")
    if current.count(BEGIN) != 1 or current.count(END) != 1:
        raise SystemExit(f"{readme}: expected one pair of markers:\n{BEGIN}\n{END}")
    before, rest = current.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{BEGIN}\n{text.rstrip()}\n{END}{after}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--articles", type=int, default=1000, help="catalog size of the incremental rows")
    parser.add_argument(
        "--full-articles", type=int, default=1000, help="catalog size of the full rebuild (0: skip it)"
    )
    parser.add_argument("--edits", type=int, default=10, help="saves timed in the preview")
    parser.add_argument("--recipients", type=int, default=10_000, help="subscribers of the newsletter send")
    parser.add_argument(
        "--large-print-articles",
        type=int,
        default=100,
        help="catalog size of the large-print rows (each rebuilt with it off and on; 0: skip them)",
    )
    parser.add_argument("--only", nargs="*", choices=sorted(BUILDERS), help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run: checks the harness")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the table goes")
    parser.add_argument(
        "--readme", action="store_true", help="also write the table into the docs' Performance page"
    )
    parser.add_argument(
        "--readme-only",
        action="store_true",
        help="the Performance page from --results; run nothing",
    )
    args = parser.parse_args(argv)
    if args.readme_only:
        write_readme(args.results.read_text(encoding="utf-8"))
        print(f"{README.relative_to(ROOT)}: Performance table from {args.results}")
        return 0
    if args.quick:
        args.runs, args.articles, args.full_articles, args.edits = 1, 20, 10, 3
        args.large_print_articles = min(args.large_print_articles, 10)
        args.recipients = min(args.recipients, 300)
        if args.results == RESULTS:  # bench/results.md keeps the last real run
            args.results = Path(tempfile.gettempdir()) / "clinicpress-bench-quick.md"
    start_load = load_average()
    results: dict[str, tuple[Data | None, str]] = {}
    with tempfile.TemporaryDirectory(prefix="cp-suite-") as tmp:
        for step in steps(args):
            results[step.name] = run_step(step, Path(tmp))
    text = results_text(results, args, f"{start_load} at the start, {load_average()} at the end")
    args.results.write_text(text, encoding="utf-8")
    print("\n" + text)
    print(f"written to {args.results}")
    if args.readme and args.quick:
        print("--quick: the Performance page is left as it is (small sizes, one run)")
    elif args.readme:
        write_readme(text)
        print("and into README.md (Performance)")
    return 0 if all(data is not None for data, _ in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
