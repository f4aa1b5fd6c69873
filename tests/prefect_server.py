"""A real ``prefect server start`` on a free loopback port, and the processes that talk to it.

Shared by the work-pool and team-path tests: the server gets its own PREFECT_HOME in a
temporary folder, every process started here runs in its own session and is stopped with all
it started (SIGTERM, then SIGKILL after ``STOP_SECONDS``), also when a test fails, and every
wait is bounded.

With ``auth``, the server asks every request for that auth string (Prefect's
``PREFECT_SERVER_API_AUTH_STRING``) and ``Server.env`` and ``client`` send it
(``PREFECT_API_AUTH_STRING``), unless a test leaves it out.

Usage::

    with start_server(tmp_path, auth="team:s3cret") as server:
        with spawn([...], server.env("serve"), cwd, log_path) as process:
            with client(server) as api:
                ...
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

SERVER_START_SECONDS = 180.0  # a cold `prefect server start` takes ~20 s on a busy 2-core machine
STOP_SECONDS = 20.0
# Passed on to every process: the product's clock shift (CI runs the suite again 730 days ahead, and
# the tests' dates are relative to the shifted clock) and the suite's "no background server".
_KEPT = ("CLINICPRESS_CLOCK_SHIFT_DAYS", "CLINICPRESS_LOCAL_SERVER")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without Prefect or clinicpress settings (but ``_KEPT``), plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CLINICPRESS_")) or k in _KEPT
    }
    return {**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def _started_at(pid: int) -> str | None:
    """The process's start time in clock ticks (None: gone): tells a reused PID from ours."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (a runner's flow-run processes run in their own group)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(
                int(stat.parent.name)
            )
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process and all it started; SIGKILL whatever is still there after STOP_SECONDS."""
    tree = [(pid, _started_at(pid)) for pid in [process.pid, *_descendants(process.pid)]]
    for pid, _ in tree:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline and any(_started_at(pid) == started for pid, started in tree):
        process.poll()  # reap our own child so it does not linger as a zombie
        time.sleep(0.2)
    for pid, started in tree:
        if started is not None and _started_at(pid) == started:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    process.wait(timeout=STOP_SECONDS)


@contextmanager
def spawn(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own session (a Ctrl-C of pytest does not reach it half-way), its
    output in ``log``; stopped with everything it started when the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        stop(process)


def tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Server:
    url: str  # the API, e.g. http://127.0.0.1:41234/api
    home: Path
    log: Path
    auth: str | None = None  # the auth string the server asks for (None: it lets everyone in)

    def env(self, name: str, *, login: bool = True, **extra: str) -> dict[str, str]:
        """Environment for one more process talking to this server (with a PREFECT_HOME of its own),
        sending the server's auth string unless ``login`` is False."""
        if self.auth is not None and login:
            extra = {"PREFECT_API_AUTH_STRING": self.auth, **extra}
        return clean_env(self.home.parent / f"home-{name}", PREFECT_API_URL=self.url, **extra)


@contextmanager
def start_server(base: Path, auth: str | None = None) -> Iterator[Server]:
    """``prefect server start`` (no UI) on a free port under ``base``, once ``/api/health`` answers;
    with ``auth``, it asks every request but the health check for that auth string."""
    port = free_port()
    server = Server(
        url=f"http://127.0.0.1:{port}/api", home=base / "home-server", log=base / "server.log", auth=auth
    )
    login = {} if auth is None else {"PREFECT_SERVER_API_AUTH_STRING": auth}
    env = clean_env(server.home, PREFECT_SERVER_UI_ENABLED="false", **login)
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with spawn(command, env, base, server.log) as process:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"prefect server start exited with {process.returncode}\n{tail(server.log)}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/health", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"no /api/health after {SERVER_START_SECONDS:.0f} s\n{tail(server.log)}")
            time.sleep(0.5)
        yield server


@contextmanager
def client(server: Server) -> Iterator[SyncPrefectClient]:
    """A Prefect client on the test server (whatever API this test process otherwise uses)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates = {PREFECT_API_URL: server.url, PREFECT_API_AUTH_STRING: server.auth}
    with temporary_settings(updates=updates), get_client(sync_client=True) as api:
        yield api
