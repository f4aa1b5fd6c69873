"""A local Prefect server that outlives one clinicpress run (README, "The local Prefect server").

With no Prefect server configured, Prefect would start an embedded API inside every
``clinicpress publish``: seconds each time, and the run history and artifacts are gone
when the process ends. Instead the first run starts ``prefect server start`` in the
background on 127.0.0.1 (a free port, its own session, logging to a file) with its home
under the user's Prefect home, and every later run finds it through a state file and a
health check. A lock file serialises first runs, so two of them start one server.

The decisions (is the state file ours and alive, what to do) are pure functions of
facts the I/O functions at the bottom gather. This module never imports Prefect: it
runs before Prefect is imported, so that Prefect reads the URL it sets. It is a little over
400 lines because the decisions and the I/O they decide about are read together; the pure
part is the top half and is unit-tested on its own (tests/flows/test_local_server.py).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import http.client
import importlib.metadata
import importlib.util
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clinicpress.errors import ClinicpressError, InputError

SWITCH_ENV = "CLINICPRESS_LOCAL_SERVER"  # 0: today's embedded API, never a background server
API_URL_ENV = "PREFECT_API_URL"
HOME_DIR = "clinicpress-server"
STATE_FILE, LOCK_FILE, LOG_FILE = "server.json", "server.lock", "server.log"
START_TIMEOUT = 180.0  # the first start migrates a new database: ~10-30 s on a busy 2-core machine
STOP_TIMEOUT = 30.0
HEALTH_TIMEOUT = 2.0
STARTING = "starting a local Prefect server (first run only)…"

_OFF, _ON = {"0", "false", "no", "off"}, {"1", "true", "yes", "on", ""}


class LocalServerError(ClinicpressError):
    """The local Prefect server could not be started, reached or stopped (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class ServerState:
    """What the state file says about the server a run started."""

    pid: int
    port: int
    started_at: float  # seconds since the epoch
    home: str
    prefect: str = ""  # the Prefect version it runs: a server older than the client is replaced

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "api_url": self.api_url}, indent=2) + "\n"


@dataclass(frozen=True)
class Probe:
    """Facts about the process and port a state file names, gathered now."""

    ours_alive: bool  # the pid runs, is no zombie, and is `prefect server start --port <port>`
    healthy: bool  # <api_url>/health answers 200


class Action(enum.Enum):
    USE = "use"  # ours, alive and answering
    WAIT = "wait"  # ours and alive, not answering yet (still starting)
    START = "start"  # no state, or stale (dead pid, a reused pid, the port is someone else's)
    REPLACE = "replace"  # ours and alive, but another Prefect version than the one installed now


# -- pure decisions ----------------------------------------------------------------------------


def switch_on(value: str | None) -> bool:
    """``CLINICPRESS_LOCAL_SERVER``: unset or 1 use the local server, 0 keeps the embedded API."""
    text = (value or "").strip().lower()
    if text in _OFF:
        return False
    if text in _ON:
        return True
    raise InputError(None, SWITCH_ENV, f"{value!r} is not a switch", "0 (embedded API) or 1 (local server)")


def parse_state(text: str) -> ServerState | None:
    """The state file's contents, or None when it is not one (torn, edited, an old format)."""
    try:
        data = json.loads(text)
        state = ServerState(
            pid=int(data["pid"]),
            port=int(data["port"]),
            started_at=float(data["started_at"]),
            home=data["home"],
            prefect=str(data.get("prefect", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None
    ok = state.pid > 1 and 0 < state.port < 65536 and isinstance(state.home, str)
    return state if ok else None


def is_server_command(argv: list[str], port: int) -> bool:
    """Is this command line `prefect server start … --port <port>` (not a process that reused the pid)?"""
    words = [Path(word).name for word in argv]
    if "prefect" not in words or "server" not in words or "start" not in words:
        return False
    return any(a == "--port" and b == str(port) for a, b in itertools.pairwise(argv))


def decide(state: ServerState | None, probe: Probe | None, installed: str | None = None) -> Action:
    """What a run does with the state file it found (the lock held); ``installed``: Prefect's version."""
    if state is None or probe is None or not probe.ours_alive:
        # A dead or reused pid: whatever answers on that port now is not ours, never use it.
        return Action.START
    if installed is not None and state.prefect != installed:
        return Action.REPLACE  # .venv upgraded under a running server: the client may not speak to it
    return Action.USE if probe.healthy else Action.WAIT


def configured_api_url(
    environ: Mapping[str, str], sources: list[tuple[str, Mapping[str, Any]]]
) -> str | None:
    """Where the user configured a Prefect server, if anywhere: the environment, then Prefect's files.

    ``sources`` are Prefect's own settings files, parsed, in its order: the active profile's
    settings, ``prefect.toml`` (``[api] url``) and ``pyproject.toml`` (``[tool.prefect.api] url``)
    of the working directory. An empty value configures nothing.
    """
    if environ.get(API_URL_ENV):
        return API_URL_ENV
    for name, settings in sources:
        api = settings.get("api")
        nested = api.get("url") if isinstance(api, Mapping) else None
        if settings.get(API_URL_ENV) or nested:
            return name
    return None


def active_profile(environ: Mapping[str, str], user_profiles: Mapping[str, Any]) -> str:
    """The Prefect profile in use: ``PREFECT_PROFILE``, else the file's ``active``, else Prefect's."""
    return environ.get("PREFECT_PROFILE") or str(user_profiles.get("active") or "ephemeral")


def server_home(environ: Mapping[str, str]) -> Path:
    """Under the user's Prefect home: one server per user and machine, whatever the site or --out."""
    prefect_home = environ.get("PREFECT_HOME") or "~/.prefect"
    return Path(prefect_home).expanduser() / HOME_DIR


def uptime_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s"


def server_environment(environ: Mapping[str, str], home: Path) -> dict[str, str]:
    """The server's environment: the user's, with its own home and database, and no client settings."""
    env = {key: value for key, value in environ.items() if key != API_URL_ENV}
    env.update(
        {
            "PREFECT_HOME": str(home),  # its SQLite database is <home>/prefect.db
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # needs the internet, fails noisily without
            # The CLI quiets Prefect for its own output; the server's log file should keep warnings.
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        }
    )
    return env


# -- I/O: files, processes, the network ---------------------------------------------------------


def read_state(home: Path) -> ServerState | None:
    try:
        return parse_state((home / STATE_FILE).read_text(encoding="utf-8"))
    except OSError:
        return None


def _write_state(home: Path, state: ServerState) -> None:
    tmp = home / f".{STATE_FILE}.{os.getpid()}"
    tmp.write_text(state.to_json(), encoding="utf-8")
    os.replace(tmp, home / STATE_FILE)  # readers see the old file or the new one, never half


def _remove_state(home: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (home / STATE_FILE).unlink()


def _argv(pid: int) -> list[str] | None:
    """The pid's command line; None if it is gone or a zombie; [] where /proc does not exist."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return []
        return []
    try:
        stat = (proc / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return None  # exited, not reaped yet (e.g. no init reaps in a container)
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except (OSError, IndexError):
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def healthy(api_url: str, timeout: float = HEALTH_TIMEOUT) -> bool:
    # No proxy: the server is on loopback, whatever HTTP_PROXY says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{api_url}/health", timeout=timeout) as response:
            return int(response.status) == 200
    except (OSError, ValueError, http.client.HTTPException):
        return False  # nothing there, or something that is not an HTTP server


def probe(state: ServerState) -> Probe:
    argv = _argv(state.pid)
    # Without /proc (macOS) the pid's liveness stands in for its command line.
    ours = argv is not None and (argv == [] or is_server_command(argv, state.port))
    return Probe(ours_alive=ours, healthy=ours and healthy(state.api_url))


@contextlib.contextmanager
def _locked(home: Path, timeout: float) -> Iterator[None]:
    """The home's lock file, exclusively: one run at a time decides, starts or stops the server."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "a+b") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() > deadline:
                    raise LocalServerError(
                        f"{home / LOCK_FILE}: another clinicpress run has held it for {timeout:.0f} s; "
                        "expected it to finish starting the local Prefect server"
                    ) from exc
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _prefect_command() -> list[str]:
    # The `prefect` script beside this interpreter: the same installation, whatever PATH says.
    script = Path(sys.executable).parent / "prefect"
    return [str(script)] if script.exists() else [sys.executable, "-m", "prefect"]


def _spawn(home: Path) -> ServerState:
    port = _free_port()
    log = home / LOG_FILE
    if log.exists():
        log.replace(home / f"{LOG_FILE}.1")  # keep the last server's log for a post-mortem
    with open(log, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter's prefect, fixed arguments)
            [*_prefect_command(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=server_environment(os.environ, home),
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C and logout leave it
        )
    # It outlives this process by design: Popen must not warn that it is "still running".
    process.returncode = 0
    state = ServerState(
        pid=process.pid, port=port, started_at=time.time(), home=str(home), prefect=installed_prefect()
    )
    _write_state(home, state)  # at once: a run that comes now waits for this server, starts none
    return state


def _reap(pid: int) -> None:
    """Collect the exit status if the server is our own child (a test), so it leaves no zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _wait_healthy(state: ServerState, deadline: float) -> bool:
    """True once it answers; False if it exited; raises at the deadline."""
    while True:
        _reap(state.pid)
        if _argv(state.pid) is None:
            return False
        if healthy(state.api_url):
            return True
        if time.monotonic() > deadline:
            raise LocalServerError(
                f"the local Prefect server (pid {state.pid}) did not answer at {state.api_url} in time; "
                f"see {Path(state.home) / LOG_FILE}, or `clinicpress server stop` and run again"
            )
        time.sleep(0.25)


def _log_tail(home: Path) -> str:
    try:
        lines = (home / LOG_FILE).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "an empty log"


def ensure_server(
    home: Path, say: Callable[[str], None], timeout: float = START_TIMEOUT
) -> tuple[ServerState, bool]:
    """The running local server, started if need be; and whether this call started it."""
    deadline = time.monotonic() + timeout
    with _locked(home, timeout):
        state = read_state(home)
        action = decide(state, probe(state) if state else None, installed_prefect())
        if state is not None and action is Action.USE:
            return state, False
        if state is not None and action is Action.WAIT and _wait_healthy(state, deadline):
            return state, False
        if state is not None and action is Action.REPLACE:
            say(
                f"restarting the local Prefect server: it runs Prefect {state.prefect or '?'}, "
                f"{installed_prefect()} is installed"
            )
            _terminate(state, STOP_TIMEOUT)
        _remove_state(home)  # stale: a dead or reused pid, or a start that never answered
        say(STARTING)
        for _attempt in range(2):  # a second try if another program took the free port first
            state = _spawn(home)
            if _wait_healthy(state, deadline):
                return state, True
            _remove_state(home)
        raise LocalServerError(
            f"the local Prefect server exited while starting ({_log_tail(home)}); see {home / LOG_FILE}"
        )


def use_local_server(
    say: Callable[[str], None], environ: MutableMapping[str, str] | None = None, cwd: Path | None = None
) -> ServerState | None:
    """Before Prefect is imported: point ``PREFECT_API_URL`` at the local server, unless the user
    configured a server (kept as is) or opted out (``CLINICPRESS_LOCAL_SERVER=0``). None then."""
    env = os.environ if environ is None else environ
    if not switch_on(env.get(SWITCH_ENV)):
        return None
    if configured_api_url(env, _prefect_sources(env, cwd or Path.cwd())):
        return None
    if "prefect.context" in sys.modules:
        # Prefect read its settings when imported (its global settings context): a URL set now would
        # reach only part of it. Only a caller that imported Prefect already (a test) gets here.
        return None
    home = server_home(env)
    state, started = ensure_server(home, say)
    if started:
        say(f"local Prefect server ready: UI {state.ui_url}, home {home} (`clinicpress server stop`)")
    env[API_URL_ENV] = state.api_url
    return state


def server_status(home: Path) -> tuple[ServerState | None, bool]:
    """The state file's server and whether it is running (alive, ours and answering)."""
    state = read_state(home)
    return state, state is not None and decide(state, probe(state)) is Action.USE


def stop_server(home: Path, timeout: float = STOP_TIMEOUT) -> ServerState | None:
    """Stop the local server (its process group): the state it had, or None if none was running."""
    with _locked(home, START_TIMEOUT):
        state = read_state(home)
        if state is None or not probe(state).ours_alive:
            _remove_state(home)  # stale or absent: nothing of ours to stop
            return None
        _terminate(state, timeout)
        _remove_state(home)
        return state


def _terminate(state: ServerState, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state.pid, sig)  # the server and anything it started (its own session)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            _reap(state.pid)
            if _argv(state.pid) is None:
                return
            time.sleep(0.1)
    raise LocalServerError(f"the local Prefect server (pid {state.pid}) did not stop even on SIGKILL")


def installed_prefect() -> str:
    """The installed Prefect's version, read from its metadata (importing Prefect takes a second)."""
    try:
        return importlib.metadata.version("prefect")
    except importlib.metadata.PackageNotFoundError:
        return ""


def _toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _prefect_sources(environ: Mapping[str, str], cwd: Path) -> list[tuple[str, Mapping[str, Any]]]:
    """Prefect's settings files that may name a server (read, not imported: Prefect is slow to import)."""
    profiles_path = Path(
        environ.get("PREFECT_PROFILES_PATH")
        or Path(environ.get("PREFECT_HOME") or "~/.prefect").expanduser() / "profiles.toml"
    ).expanduser()
    user = _toml(profiles_path)
    shipped: dict[str, Any] = {}
    spec = importlib.util.find_spec("prefect")  # finds the package without importing it
    if spec is not None and spec.origin is not None:
        shipped = _toml(Path(spec.origin).parent / "settings" / "profiles.toml")
    name = active_profile(environ, user)
    profile = {**shipped.get("profiles", {}).get(name, {}), **user.get("profiles", {}).get(name, {})}
    pyproject = _toml(cwd / "pyproject.toml").get("tool", {}).get("prefect", {})
    return [
        (f"the Prefect profile {name!r} ({profiles_path})", profile),
        (str(cwd / "prefect.toml"), _toml(cwd / "prefect.toml")),
        (str(cwd / "pyproject.toml"), pyproject),
    ]
