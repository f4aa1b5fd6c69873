"""Mutation testing of the modules that hold the Guarantees' mechanisms (cosmic-ray), in a scratch copy.

    .venv/bin/python tools/mutation.py                 # every target; `make mutation`
    .venv/bin/python tools/mutation.py release spool   # some targets
    .venv/bin/python tools/mutation.py --sample 30     # at most 30 mutants per module, evenly spread
    .venv/bin/python tools/mutation.py --before        # without the tests written to kill mutants
    .venv/bin/python tools/mutation.py --rerun-survivors   # after adding tests: only the survivors again
    .venv/bin/python tools/mutation.py --report        # print the scores of the last run, run nothing

docs/mutation.md has the scores, the survivors and why each is left.

cosmic-ray mutates files in place, so it never runs in this tree (others work here): the working files
(tracked and untracked, as they are now) are copied into a git worktree (default ../mut, ``--scratch``),
where ``clinicpress/<stage>`` symlinks lay the top-level folders out as installed, and every test runs
there with ``PYTHONPATH=<scratch>`` so ``clinicpress`` resolves to the copy, also in the CLI and Prefect
processes the tests start.

Scope (2 shared cores): per module, only the functions that hold a mechanism (``functions``), a chosen
set of operators (``OPERATORS``: negated and boundary comparisons, swapped arithmetic, dropped or added
``not``, flipped constants, and/or, changed numbers, loops that never run, replaced exceptions, removed
decorators) and a narrow, fast test selection; no mutant is filtered by pragma. Mutants inside type
annotations are equivalent (never evaluated, ``from __future__ import annotations``) and left out.
A test that hangs fails after ``--per-test-timeout`` seconds (pytest-timeout), a whole run after
``timeout``: a hang counts as killed.
Before any mutant runs, the selection must pass on the unmutated copy (else the module is not scored).
Past 400 lines: the targets table (each module's functions and test selection) is most of it, and a
driver split in two files would only be read together.
"""

from __future__ import annotations

import argparse
import ast
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

REPO = Path(__file__).resolve().parent.parent
STAGES = ("sources", "checks", "renderers", "outputs", "flows")

# Operators kept (cosmic-ray names; a mutant whose operator is not listed is skipped).
_CMP = ["Eq_NotEq", "NotEq_Eq", "Is_IsNot", "IsNot_Is", "Lt_LtE", "LtE_Lt", "Gt_GtE", "GtE_Gt"]
_CMP += ["Lt_GtE", "GtE_Lt", "Gt_LtE", "LtE_Gt"]
# Not Div_Mul: in this code ``/`` joins paths, and every such mutant dies at the first test.
_BIN = ["Add_Sub", "Sub_Add", "FloorDiv_Mul", "BitOr_BitAnd", "BitAnd_BitOr"]
_BIN += ["RShift_LShift", "LShift_RShift"]
OPERATORS = frozenset(
    [f"core/ReplaceComparisonOperator_{c}" for c in _CMP]
    + [f"core/ReplaceBinaryOperator_{b}" for b in _BIN]
    + [
        f"core/{name}"
        for name in (
            "ReplaceUnaryOperator_Delete_Not",
            "ReplaceUnaryOperator_USub_UAdd",
            "AddNot",
            "ReplaceTrueWithFalse",
            "ReplaceFalseWithTrue",
            "ReplaceAndWithOr",
            "ReplaceOrWithAnd",
            "ReplaceBreakWithContinue",
            "ReplaceContinueWithBreak",
            "NumberReplacer",
            "ZeroIterationForLoop",
            "ExceptionReplacer",
            "RemoveDecorator",
        )
    ]
)


@dataclass(frozen=True)
class Target:
    path: str  # the module, relative to the repository
    tests: list[str]  # pytest arguments: files, -k expressions
    functions: tuple[str, ...] = ()  # qualified names whose lines are mutated; () for the whole module
    timeout: float = 300.0  # seconds for one mutant's whole test run
    numbers: bool = False  # NumberReplacer too (where a number is a rule: thresholds, counts, bit masks)


_RELEASE_TESTS = [
    "tests/outputs/test_publish_release.py",
    "tests/outputs/test_release.py",
    # Not the tests there that start a Prefect test server (over a minute on a loaded machine, past the
    # per-test timeout): the rollbacks they drive through the CLI are called directly in the first file.
    "tests/outputs/test_rollback.py::test_rollback_with_nothing_published",
    "tests/outputs/test_rollback.py::test_releases_and_import_refuse_options_they_would_ignore",
]
_NET_TESTS = [
    "tests/checks/test_address_rules.py",
    "tests/checks/test_rebinding.py",
    "tests/checks/test_https.py",
    "tests/checks/test_links.py",
    # Their assertions are on wall-clock time: they fail on a loaded machine and would "kill" mutants.
    *(
        arg
        for name in (
            "test_per_host_override_of_interval_and_concurrency",
            "test_min_interval_between_requests_to_one_host",
            "test_405_on_head_falls_back_to_get",
            "test_slow_response_is_unverified",
            "test_429_asking_for_an_hour_is_not_waited_for",
            "test_gzip_bomb_is_read_only_up_to_the_cap",
        )
        for arg in ("--deselect", f"tests/checks/test_links.py::{name}")
    ),
]
_DELIVERY_TESTS = ["tests/outputs/test_delivery_store.py", "tests/outputs/test_delivery.py"]

_MONITOR_PURE = (  # the transitions as pure functions; not the CLI and Prefect runs of test_monitor.py
    "test_source_alerts_once_after_the_threshold_and_once_on_recovery",
    "test_flapping_and_unverified_sources_page_no_one",
    "test_broken_since_is_the_first_failed_run",
    "test_moved_source_alerts_once",
    "test_license_buckets",
    "test_license_alerts_once_per_threshold_with_a_clock_we_control",
    "test_review_falls_due_once",
)

TARGETS: dict[str, Target] = {
    "release": Target(
        "outputs/release.py",
        _RELEASE_TESTS,
        functions=(
            "Release.__enter__",
            "Release.__exit__",
            "Release._fresh_target",
            "Release.link",
            "Release.remove",
            "Release.commit",
            "Release._check_stable_paths",
            "_lock",
            "switch_live",
            "release_ids",
            "rollback_site",
            "_safe_relpath",
            "live_release",
            "_versions_in",
            "remove_stale_staging",
            "prune_releases",
        ),
    ),
    "publish": Target(
        "outputs/publish.py",
        _RELEASE_TESTS,  # not test_concurrency.py: 84 s a run (two CLI publishes and sends)
        functions=("_previous_files", "publish_release", "rollback_article"),
    ),
    "send": Target(
        "outputs/delivery/send.py",
        _DELIVERY_TESTS,
        functions=("recorded", "_Run.run", "_Run._send_all", "_Run._attempt", "_Run._fail_unsendable"),
    ),
    "store": Target(
        "outputs/delivery/store.py",
        _DELIVERY_TESTS,
        functions=(
            "eligible",
            "DeliveryStore.ensure_send",
            "DeliveryStore.acquire",
            "DeliveryStore._renew",
            "DeliveryStore.release",
            "DeliveryStore.recover",
            "DeliveryStore.sync_list",
            "DeliveryStore.eligible",
            "DeliveryStore.claim",
            "DeliveryStore.mark",
        ),
    ),
    "transitions": Target(
        "checks/transitions.py",
        [
            "tests/checks/test_transitions.py",
            *(f"tests/outputs/test_monitor.py::{t}" for t in _MONITOR_PURE),
            "tests/checks/test_integrity.py::test_integrity_transitions_alert_once_per_new_notice",
        ],
        numbers=True,
    ),
    "addresses": Target("clinicpress/network/addresses.py", _NET_TESTS, numbers=True),
    "resolver": Target("clinicpress/network/resolver.py", _NET_TESTS),
    "fetch": Target("clinicpress/network/fetch.py", ["tests/checks/test_fetch.py"]),
    "replies": Target("clinicpress/network/replies.py", ["tests/checks/test_fetch.py"]),
    "spool": Target(
        "renderers/spool.py",
        [
            "tests/renderers/test_spool.py",
            "tests/renderers/test_pool.py",
            "tests/renderers/test_catalog.py",
        ],
    ),
}


# -- the scratch copy -------------------------------------------------------------------------------------
def _git(*args: str, cwd: Path) -> str:
    git = shutil.which("git") or "git"
    return subprocess.run([git, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout  # noqa: S603


def _working_files(root: Path) -> set[str]:
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=root).split("\0")
    return {f for f in listed if f and (root / f).is_file() and not (root / f).is_symlink()}


def prepare_scratch(scratch: Path, only: frozenset[str] | None = None) -> None:
    """A worktree holding this tree's working files as they are now (never this tree itself).

    ``only``: copy just these files (a re-run of survivors keeps the code its mutants were made from).
    """
    if scratch.resolve() == REPO or REPO in scratch.resolve().parents:
        sys.exit(f"refusing to mutate inside {REPO}: choose a --scratch outside it")
    if not (scratch / ".git").exists():
        _git("worktree", "add", "--detach", str(scratch), "HEAD", cwd=REPO)
    ours = _working_files(REPO)
    if only is not None:
        ours = {rel for rel in ours if rel in only}
    for rel in ours:
        src, dst = REPO / rel, scratch / rel
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    for rel in _working_files(scratch) - ours if only is None else ():
        if not rel.startswith(".mutation/"):
            (scratch / rel).unlink()
    for stage in STAGES:  # clinicpress.<stage> as installed (pyproject's package-dir)
        link = scratch / "clinicpress" / stage
        if not link.is_symlink():
            link.symlink_to(Path("..") / stage)
    for cache in scratch.rglob("__pycache__"):  # a stale .pyc must never stand in for a mutant
        shutil.rmtree(cache, ignore_errors=True)


# -- one target -------------------------------------------------------------------------------------------
def _lines(path: Path, functions: tuple[str, ...]) -> set[int] | None:
    if not functions:
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, ast.AST] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                found[name] = child
                walk(child, f"{name}.")

    walk(tree, "")
    missing = [f for f in functions if f not in found]
    if missing:
        sys.exit(f"{path}: no function {', '.join(missing)} (update TARGETS in tools/mutation.py)")
    lines: set[int] = set()
    for name in functions:
        node = found[name]
        lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))  # type: ignore[attr-defined]
    return lines


# The tests written to kill survivors (issue 18); ``--before`` leaves them out to score the suite as it was.
MUTANT_TESTS = frozenset(
    [
        "tests/outputs/test_publish_release.py",
        "tests/checks/test_address_rules.py",
        "tests/outputs/test_delivery_store.py",
        "tests/checks/test_transitions.py",
        "tests/renderers/test_spool.py",
    ]
)
BEFORE = False  # set by --before


def _annotations(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the type annotations are: with ``from __future__ import annotations`` they are never
    evaluated, so a mutant inside one (``X | None`` → ``X & None``) is equivalent by construction."""
    spans = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        notes: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            notes.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            notes.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        for note in notes:
            if note is not None:
                end = (note.end_lineno or note.lineno, note.end_col_offset or 0)
                spans.append(((note.lineno, note.col_offset), end))
    return spans


def _in_annotation(pos: tuple[int, int], spans: list[tuple[tuple[int, int], tuple[int, int]]]) -> bool:
    return any(start <= pos < end for start, end in spans)


def _test_command(target: Target, scratch: Path, per_test: int) -> str:
    tests = [
        t
        for t in target.tests
        if not t.endswith(".py") or ((scratch / t).exists() and not (BEFORE and t in MUTANT_TESTS))
    ]
    pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", f"--timeout={per_test}"]
    return " ".join(pytest + [f"'{t}'" if " " in t else t for t in tests])


def _config(name: str, target: Target, scratch: Path, per_test: int) -> Path:
    cfg = scratch / ".mutation" / f"{name}.toml"
    cfg.parent.mkdir(exist_ok=True)
    command = _test_command(target, scratch, per_test).replace("\\", "\\\\").replace('"', '\\"')
    cfg.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{target.path}"\n'
        f"timeout = {target.timeout}\n"
        "excluded-modules = []\n"
        f'test-command = "{command}"\n\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n',
        encoding="utf-8",
    )
    return cfg


def _env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(scratch), PYTHONDONTWRITEBYTECODE="1")
    return env


def _skip_out_of_scope(db: WorkDB, lines: set[int] | None, numbers: bool, path: Path) -> None:
    operators = OPERATORS if numbers else OPERATORS - {"core/NumberReplacer"}
    spans = _annotations(path)
    for item in list(db.pending_work_items):
        for mutation in item.mutations:
            outside = lines is not None and mutation.start_pos[0] not in lines
            outside = outside or _in_annotation(tuple(mutation.start_pos), spans)
            if mutation.operator_name not in operators or outside:
                why = (
                    "operator not in the set" if mutation.operator_name not in OPERATORS else "outside scope"
                )
                db.set_result(item.job_id, WorkResult(output=why, worker_outcome=WorkerOutcome.SKIPPED))
                break


def _sample(db: WorkDB, keep: int) -> None:
    """Keep ``keep`` mutants spread evenly over the module (by position); skip the rest."""
    pending = sorted(db.pending_work_items, key=lambda item: tuple(item.mutations[0].start_pos))
    if keep <= 0 or len(pending) <= keep:
        return
    chosen = {pending[i * len(pending) // keep].job_id for i in range(keep)}
    for item in pending:
        if item.job_id not in chosen:
            db.set_result(item.job_id, WorkResult(output="sampled out", worker_outcome=WorkerOutcome.SKIPPED))


def _cosmic(scratch: Path, *args: str) -> None:
    cosmic = Path(sys.executable).with_name("cosmic-ray")
    subprocess.run([str(cosmic), *args], cwd=scratch, env=_env(scratch), check=True)  # noqa: S603


def run_target(
    name: str,
    target: Target,
    scratch: Path,
    per_test: int,
    rerun: bool,
    sample: int = 0,
    unsample: bool = False,
) -> None:
    cfg = _config(name, target, scratch, per_test)
    session = scratch / ".mutation" / f"{name}.sqlite"
    print(f"== {name}: {target.path}\n   {_test_command(target, scratch, per_test)}", flush=True)
    started = time.monotonic()
    command = shlex.split(_test_command(target, scratch, per_test))
    env = _env(scratch)
    baseline = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if baseline.returncode != 0:
        print(f"   the unmutated copy fails its selection: {name} not scored\n{baseline.stdout[-3000:]}")
        return
    print(f"   baseline passes ({time.monotonic() - started:.0f} s)", flush=True)
    if rerun and session.exists():
        with use_db(str(session), WorkDB.Mode.open) as db:
            again = [
                item.job_id
                for item, result in db.completed_work_items
                if _survived(result) or (unsample and result.output == "sampled out")
            ]
            _clear(db, again)
    else:
        session.unlink(missing_ok=True)
        _cosmic(scratch, "init", str(cfg), str(session))
        with use_db(str(session), WorkDB.Mode.open) as db:
            path = scratch / target.path
            _skip_out_of_scope(db, _lines(path, target.functions), target.numbers, path)
            _sample(db, sample)
    _cosmic(scratch, "exec", str(cfg), str(session))
    print(f"   done in {time.monotonic() - started:.0f} s", flush=True)


def _clear(db: WorkDB, job_ids: list[str]) -> None:
    """Forget the results of these jobs, so ``exec`` runs them again."""
    from cosmic_ray.work_db import WorkResultStorage

    with db._session_maker.begin() as session:  # cosmic-ray has no public call for this
        session.query(WorkResultStorage).filter(WorkResultStorage.job_id.in_(job_ids)).delete()


def _survived(result: WorkResult) -> bool:
    return result.worker_outcome == WorkerOutcome.NORMAL and result.test_outcome == TestOutcome.SURVIVED


# -- the scores -------------------------------------------------------------------------------------------
def report(names: list[str], scratch: Path) -> int:
    print(f"\n{'module':<13} {'killed':>6} / {'total':<5} {'score':>6}  (timeouts, not run)")
    survived_any = False
    details: list[str] = []
    for name in names:
        session = scratch / ".mutation" / f"{name}.sqlite"
        if not session.exists():
            print(f"{name:<13} not run")
            continue
        with use_db(str(session), WorkDB.Mode.open) as db:
            done = {item.job_id: (item, result) for item, result in db.completed_work_items}
            pending = sum(1 for _ in db.pending_work_items)
        spans = _annotations(scratch / TARGETS[name].path)
        notes = {j for j, (i, _) in done.items() if _in_annotation(tuple(i.mutations[0].start_pos), spans)}
        ran = {j: ir for j, ir in done.items() if ir[1].worker_outcome != WorkerOutcome.SKIPPED}
        scored = [ir for j, ir in ran.items() if j not in notes]
        sampled_out = sum(1 for _, r in done.values() if r.output == "sampled out")
        killed = [(i, r) for i, r in scored if r.is_killed or r.test_outcome == TestOutcome.INCOMPETENT]
        timeouts = sum(1 for _, r in killed if (r.output or "").strip() == "timeout")
        survivors = [(i, r) for i, r in scored if _survived(r)]
        total = len(scored)
        score = f"{100 * len(killed) / total:.0f} %" if total else "-"
        sampled = f", sampled: {sampled_out} left out" if sampled_out else ""
        sampled += f", {len(set(ran) & notes)} in annotations left out" if set(ran) & notes else ""
        print(f"{name:<13} {len(killed):>6} / {total:<5} {score:>6}  ({timeouts}, {pending}{sampled})")
        for item, result in sorted(survivors, key=lambda ir: ir[0].mutations[0].start_pos):
            survived_any = True
            m = item.mutations[0]
            diff = [
                line
                for line in (result.diff or "").splitlines()
                if line[:1] in "+-" and not line.startswith(("+++", "---"))
            ]
            details.append(f"  {name} {m.module_path}:{m.start_pos[0]} {m.operator_name} #{m.occurrence}")
            details.extend(f"      {line.strip()}" for line in diff)
    if details:
        print("\nsurvivors:")
        print("\n".join(details))
    return 1 if survived_any else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--scratch", type=Path, default=REPO.parent / "mut")
    parser.add_argument("--per-test-timeout", type=int, default=60)
    parser.add_argument("--rerun-survivors", action="store_true")
    parser.add_argument("--report", action="store_true", help="print the last scores; run nothing")
    parser.add_argument("--before", action="store_true", help="without the tests written to kill mutants")
    parser.add_argument("--sample", type=int, default=0, help="at most N mutants per module, evenly spread")
    parser.add_argument("--unsample", action="store_true", help="also run what the last run sampled out")
    args = parser.parse_args()
    global BEFORE
    BEFORE = args.before
    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    scratch = args.scratch.resolve()
    if not args.report:
        prepare_scratch(scratch, MUTANT_TESTS if args.rerun_survivors or args.unsample else None)
        for name in names:
            run_target(
                name,
                TARGETS[name],
                scratch,
                args.per_test_timeout,
                args.rerun_survivors or args.unsample,
                args.sample,
                args.unsample,
            )
    report(names, scratch)
    return 0  # survivors are for reading (docs/mutation.md), not a failure


if __name__ == "__main__":
    sys.exit(main())
