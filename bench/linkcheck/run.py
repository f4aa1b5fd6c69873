"""Run the link-checker benchmark: clinicpress vs lychee vs LinkChecker, median of N runs.

    .venv/bin/python -m bench.linkcheck [--runs 3]

Everything is on loopback: a farm process (farm.py) serves every link category, a
generated document (document.py) cites ≥ 2,000 links, and each checker runs as a whole
process the way a user runs it, timed from spawn to exit, with its own peak RSS and CPU
time (os.wait4). Each run resets the farm's counters (503-once, 429-once) before each
checker, and the checkers' order rotates between runs. clinicpress runs with ``--no-cache``
and a fresh ``--out``, and the runner asserts that no link cache was written there. Every
process has a time limit; the farm stops when this script exits (its stdin closes) or
after 10 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.linkcheck.document import CATEGORIES, Category, expected, write_article, write_html, write_site

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
PROCESS_LIMIT = 180.0  # seconds per checker run; killed (and reported) beyond that
CHECKERS = ("clinicpress", "lychee", "LinkChecker")


def coarse_of_status(status: str) -> str:
    return {
        "ok": "pass",
        "redirected": "pass",
        "broken": "fail",
        "refused": "fail",
        "unverified": "warn",
        "bot-blocked": "warn",
        "skipped": "skip",
    }.get(status, "?")


@dataclass
class Measure:
    wall: float
    cpu: float
    peak_mb: float
    exit_code: int
    verdicts: dict[str, str]  # url → what the checker said (clinicpress: status; others: coarse)
    note: str = ""


@dataclass
class Checker:
    name: str
    command: list[str]
    parse: Callable[[Path], dict[str, str]]
    judged_by: str  # "status" or "coarse"
    runs: list[Measure] = field(default_factory=list)


# -- parsing each checker's machine-readable output ----------------------------------------


def parse_clinicpress(out: Path) -> dict[str, str]:
    data = json.loads(out.read_text(encoding="utf-8"))
    return {link["url"]: link["status"] for a in data["articles"] for link in a["links"]}


def parse_lychee(out: Path) -> dict[str, str]:
    data = json.loads(out.read_text(encoding="utf-8"))
    verdicts: dict[str, str] = {}
    for key, coarse in (  # redirect_map only lists hops of URLs that are in success_map too
        ("success_map", "pass"),
        ("excluded_map", "skip"),
        ("timeout_map", "warn"),
        ("error_map", "fail"),
    ):
        for items in (data.get(key) or {}).values():
            for item in items:
                if "url" in item:
                    verdicts[item["url"]] = coarse
    return verdicts


def parse_linkchecker(out: Path) -> dict[str, str]:
    text = out.read_text(encoding="utf-8", errors="replace")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    verdicts: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(body), delimiter=";"):
        url = row.get("urlname") or ""
        if not url or url.startswith("file:"):
            continue
        warning = (row.get("warningstring") or "").lower()
        if row.get("valid") == "False":
            verdicts[url] = "fail"
        elif "anchor" in warning and "not found" in warning:
            verdicts[url] = "warn"  # LinkChecker's AnchorCheck reports a warning, the link stays valid
        else:
            verdicts[url] = "pass"
    return verdicts


# -- running one process ---------------------------------------------------------------------


def measure(command: list[str], cwd: Path, out: Path, env: dict[str, str]) -> tuple[float, float, float, int]:
    """Wall time, CPU seconds, peak RSS (MB) and exit code of one process (and nothing else)."""
    with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, stdout=stdout, stderr=stderr, env=env)
        killer = threading.Timer(PROCESS_LIMIT, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def reset_farm(base: str) -> None:
    with urllib.request.urlopen(f"{base}/__reset", timeout=5) as reply:  # loopback only
        reply.read()


# -- the benchmark ---------------------------------------------------------------------------


def build_checkers(work: Path, port: int) -> tuple[list[Checker], int]:
    article, references = write_article(work, port)
    html = write_html(work, port)
    site = write_site(work, port)
    rc = work / "linkcheckerrc"
    rc.write_text("[checking]\nmaxrequestspersecond=1000\n\n[AnchorCheck]\n", encoding="utf-8")
    clinicpress = [
        str(BIN / "clinicpress"), "check", "--site", str(site), "--format", "json",
        "--out", str(clinicpress_out(work)), "--no-cache",  # every run measures real checking
        str(article),
    ]  # fmt: skip
    lychee = [
        str(BIN / "lychee"),
        "--format", "json", "--verbose", "--no-progress",
        "--max-concurrency", "128", "--host-concurrency", "128", "--host-request-interval", "0s",
        "--timeout", "2", "--max-retries", "1", "--retry-wait-time", "1",
        "--include-fragments",
        str(article),
    ]  # fmt: skip
    linkchecker = [
        str(BIN / "linkchecker"),
        "--config", str(rc), "--check-extern", "--no-status", "--verbose",
        "--threads", "32", "--timeout", "2", "--output", "csv",
        str(html),
    ]  # fmt: skip
    for path in (article, html, site, rc):
        path.chmod(0o644)  # LinkChecker drops root privileges to "nobody": it must read them
    return [
        Checker("clinicpress", clinicpress, parse_clinicpress, "status"),
        Checker("lychee", lychee, parse_lychee, "coarse"),
        Checker("LinkChecker", linkchecker, parse_linkchecker, "coarse"),
    ], references


def clinicpress_out(work: Path) -> Path:
    """clinicpress's --out: emptied before each run, so a link cache written anyway would show."""
    return work / "clinicpress-out"


def assert_no_cache(out: Path) -> None:
    """The run bypassed every cache: it wrote none in its --out (emptied before it), so it read none.

    ``--no-cache`` is always passed; a clinicpress that ignored it would write the link cache (and
    the integrity and facts caches beside it) here, and this fails the benchmark instead of
    timing cache hits.
    """
    folder = out / ".cache"
    written = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    if written:
        raise AssertionError(f"clinicpress check --no-cache wrote caches in {folder}: {written}")


def judge(
    checker: Checker, verdicts: dict[str, str], truth: dict[str, tuple[Category, int]]
) -> dict[str, list[int]]:
    """Per category: [correct, wrong]; a URL missing from the output is wrong (a dropped result)."""
    table = {c.name: [0, 0] for c in CATEGORIES}
    for url, (category, _) in truth.items():
        got = verdicts.get(url)
        want = category.status if checker.judged_by == "status" else category.coarse
        ok = got == want
        table[category.name][0 if ok else 1] += 1
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="clinicpress vs lychee vs LinkChecker on a loopback farm")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (outputs of every run)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="clinicpress-bench-"))
    work.chmod(0o755)
    farm = subprocess.Popen(
        [sys.executable, "-m", "bench.linkcheck.farm"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert farm.stdout is not None
        port = int(farm.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        checkers, references = build_checkers(work, port)
        truth = expected(port)
        env = {**os.environ, "NO_COLOR": "1", "PREFECT_LOGGING_LEVEL": "ERROR"}
        print(f"farm {base} (and 127.0.0.2-5); document: {references} links ({len(truth)} distinct URLs)")
        for run in range(args.runs):
            order = checkers[run % 3 :] + checkers[: run % 3]  # rotate: no checker always goes first
            for checker in order:
                reset_farm(base)  # the counters are shared by every address
                out = work / f"{checker.name}-{run}.out"
                shutil.rmtree(clinicpress_out(work), ignore_errors=True)
                wall, cpu, peak, code = measure(checker.command, work, out, env)
                if checker.name == "clinicpress":
                    assert_no_cache(clinicpress_out(work))
                try:
                    verdicts = checker.parse(out)
                    note = ""
                except (ValueError, KeyError, OSError) as exc:
                    verdicts, note = {}, f"unreadable output ({exc})"
                checker.runs.append(Measure(wall, cpu, peak, code, verdicts, note))
                print(f"  run {run + 1}: {checker.name:<12} {wall:6.2f} s  exit {code}  {note}", flush=True)
        report(checkers, truth, references)
    finally:
        if farm.stdin is not None:
            with contextlib.suppress(OSError):
                farm.stdin.close()
        try:
            farm.wait(timeout=5)
        except subprocess.TimeoutExpired:
            farm.kill()
        if args.keep:
            print(f"outputs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(checkers: list[Checker], truth: dict[str, tuple[Category, int]], references: int) -> None:
    distinct = len(truth)
    print()
    print(f"median of {len(checkers[0].runs)} runs · {references} links, {distinct} distinct URLs")
    columns = ("wall s", "links/s", "CPU s", "peak MB", "correct", "wrong")
    print(f"{'checker':<12} " + " ".join(f"{c:>8}" for c in columns))
    medians: dict[str, float] = {}
    tables: dict[str, dict[str, list[int]]] = {}
    for checker in checkers:
        wall = statistics.median(m.wall for m in checker.runs)
        cpu = statistics.median(m.cpu for m in checker.runs)
        peak = statistics.median(m.peak_mb for m in checker.runs)
        per_run = [judge(checker, m.verdicts, truth) for m in checker.runs]
        wrong_counts = [sum(w for _, w in t.values()) for t in per_run]
        # The run with the median number of wrong verdicts is the one tabulated.
        pick = sorted(range(len(per_run)), key=lambda i: wrong_counts[i])[len(per_run) // 2]
        tables[checker.name] = per_run[pick]
        correct = sum(c for c, _ in per_run[pick].values())
        wrong = sum(w for _, w in per_run[pick].values())
        medians[checker.name] = wall
        cells = (f"{wall:.2f}", f"{references / wall:.0f}", f"{cpu:.2f}", f"{peak:.1f}", correct, wrong)
        print(f"{checker.name:<12} " + " ".join(f"{c:>8}" for c in cells))
        if len(set(wrong_counts)) > 1:
            print(f"{'':<12} (wrong per run: {wrong_counts})")
    print()
    names = [c.name for c in checkers]
    header = f"{'category':<36} {'n':>5} " + " ".join(f"{n + ' ✓/✗':>16}" for n in names)
    print(header)
    for category in CATEGORIES:
        cells = []
        for name in names:
            good, bad = tables[name][category.name]
            cells.append(f"{good:>8}/{bad:<7}")
        expect = f"[{category.status}]"
        print(
            f"{category.name[:24]:<24} {expect:<11} {category.count:>5} "
            + " ".join(f"{c:>16}" for c in cells)
        )
    print("(clinicpress judged by exact status; lychee and LinkChecker by class: pass/fail/warn/skip)")
    print()
    cp = medians["clinicpress"]
    for other in names[1:]:
        print(
            f"clinicpress/{other}: wall time ×{cp / medians[other]:.2f} "
            f"({'faster' if cp < medians[other] else 'slower'}: {medians[other] / cp:.2f}× the {other} speed)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
