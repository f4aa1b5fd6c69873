"""What the catalog benchmarks share: the farm, process-tree RSS, `clinicpress publish`, a prefect server."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from httpfarm import HTTPFarm, Reply  # noqa: E402  (the tests' loopback server)

from .generate import Catalog, make_catalog  # noqa: E402

CLINICPRESS = ROOT / ".venv" / "bin" / "clinicpress"
PAPER = b"<html><head><title>Paper</title></head><body>A paper.</body></html>"


@contextmanager
def farm_catalog(folder: Path, articles: int) -> Iterator[tuple[HTTPFarm, Catalog]]:
    """A catalog in ``folder`` whose every source answers 200 on a loopback farm."""
    with HTTPFarm() as farm:
        catalog = make_catalog(folder, articles, farm.base.rstrip("/"))
        for url in catalog.urls:
            farm.route(url.removeprefix(farm.base.rstrip("/")), Reply(200, body=PAPER))
        yield farm, catalog


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _proc_kb(path: str, field: str) -> int:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rss_kb(pid: int) -> int:
    return _proc_kb(f"/proc/{pid}/status", "VmRSS:")


def _pss_kb(pid: int) -> int:
    """Proportional set size: each shared page counted once across the processes sharing it."""
    return _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:")


def _tree(root: int, include_root: bool) -> list[int]:
    tree = _children()
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(tree.get(pid, []))
    if not include_root:
        pids.remove(root)
    return pids


def tree_rss_mb(root: int, include_root: bool = True) -> float:
    """Resident memory of ``root`` and all its descendants now, in MB (shared pages counted per process)."""
    return sum(_rss_kb(p) for p in _tree(root, include_root)) / 1024


def tree_pss_mb(root: int, include_root: bool = True) -> float:
    """The memory the tree really holds now, in MB: pages the workers share with the forkserver
    (WeasyPrint, imported once) are counted once, not once per process as in ``tree_rss_mb``."""
    return sum(_pss_kb(p) for p in _tree(root, include_root)) / 1024


class PeakRSS:
    """Samples the memory of a process tree every 0.2 s in a thread; ``peak`` (RSS) and ``peak_pss`` in MB."""

    def __init__(self, root: int, include_root: bool = True) -> None:
        self.root, self.include_root, self.peak, self.peak_pss = root, include_root, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.root, self.include_root))
            self.peak_pss = max(self.peak_pss, tree_pss_mb(self.root, self.include_root))
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float  # the whole tree: clinicpress, Prefect's embedded API, any workers
    peak_pss_mb: float  # the same tree, shared pages counted once
    cpu_seconds: float  # user + system of the process and the children it waited for
    returncode: int
    stdout: str
    stderr: str


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),  # our own database: other runs on this machine do not interfere
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    else:
        env.pop("PREFECT_API_URL", None)
        # Prefect's embedded API, as the benchmarks say: not a local server that outlives them.
        env["CLINICPRESS_LOCAL_SERVER"] = "0"
    return env


def run_publish(
    catalog: Catalog, out: Path, env: dict[str, str], *extra: str, paths: list[Path] | None = None
) -> Run:
    """``clinicpress publish`` as a whole process, timed, with the peak RSS of its process tree."""
    args = [str(CLINICPRESS), "publish", "--site", str(catalog.site), "--out", str(out), *extra]
    args += [str(p) for p in paths] if paths else [str(catalog.content)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with PeakRSS(proc.pid) as rss:
        stdout, stderr = proc.communicate(timeout=7200)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(seconds, rss.peak, rss.peak_pss, cpu, proc.returncode, stdout, stderr)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def prefect_server(home: Path, timeout: float = 180.0) -> Iterator[str]:
    """A real ``prefect server`` on a free loopback port with its own PREFECT_HOME; yields its API URL.

    Waits at most ``timeout`` seconds for ``/health``; always stopped on exit (its
    process group: the server and anything it started). Its log is ``home/server.log``.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env={**prefect_env(home), "PREFECT_API_URL": ""},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise SystemExit(f"prefect server exited ({server.returncode}):\n{tail}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"prefect server did not start in {timeout:.0f} s (log: {log_path})")
            time.sleep(0.5)
        yield api
    finally:
        _stop_group(server)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group led by ``proc`` (started with ``start_new_session``), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the leader if it is stuck, and anything left in its group
    proc.wait(timeout=10)
