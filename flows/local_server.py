"""A local Prefect server that outlives one clinicpress run (docs/operating/servers.md).

With no Prefect server configured, Prefect would start an embedded API inside every
``clinicpress publish``: seconds each time, and the run history and artifacts are gone
when the process ends. Instead the first run starts ``prefect server start`` in the
background on 127.0.0.1 (a free port, its own session, logging to a file) with its home
under the user's Prefect home, and every later run finds it through a state file and a
health check. A lock file serialises first runs, so two of them start one server.

``clinicpress server start --host H --port P`` starts the same server on another address, for a
team. A server that binds beyond loopback must have an auth string (Prefect's
``PREFECT_SERVER_API_AUTH_STRING``): from the environment, else from the owner-only file
``api-auth`` in its home; without one the start is refused (exit 2). On loopback it asks for
one whenever one is set (other users of the machine reach loopback too). Runs on this machine then
send it as ``PREFECT_API_AUTH_STRING``, set before Prefect is imported, so that the flow-run
processes Prefect starts inherit it. The string is never written to the state file, a log or
the terminal: the state file says only whether the server asks for it.

The decisions (is the state file ours and alive, what to do) are pure functions of
facts the I/O functions at the bottom gather. This module never imports Prefect: it
runs before Prefect is imported, so that Prefect reads the URL it sets. It is about 600 lines
because the decisions and the I/O they decide about are read together (the address and the auth
string are decided with the server they start); the pure part is the top half and is unit-tested
on its own (tests/flows/test_local_server.py).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import http.client
import importlib.metadata
import importlib.util
import ipaddress
import itertools
import json
import os
import signal
import socket
import stat
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
RESTARTING = "starting the local Prefect server again (it was stopped; its run history is kept)…"
DATABASE_FILE = "prefect.db"  # the server's SQLite database in its home (PREFECT_HOME)


def starting_message(home: Path) -> str:
    """What a start says: the first ever start in this home, or a start after a stop."""
    return RESTARTING if (home / DATABASE_FILE).exists() else STARTING


LOOPBACK = "127.0.0.1"
# Prefect's own settings: what the server requires of every request, and what every client sends.
SERVER_AUTH_ENV, CLIENT_AUTH_ENV = "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_AUTH_STRING"
AUTH_FILE = "api-auth"  # in the server's home, owner-only: the auth string when the environment has none

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
    host: str = LOOPBACK  # the address it binds (--host)
    auth: bool = False  # it asks every request for the auth string (never stored here)

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{connect_host(self.host)}:{self.port}"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "api_url": self.api_url}, indent=2) + "\n"


@dataclass(frozen=True)
class Bind:
    """Where ``clinicpress server start`` asks the server to listen (port None: a free one)."""

    host: str = LOOPBACK
    port: int | None = None

    def matches(self, state: ServerState) -> bool:
        return self.host == state.host and self.port in (None, state.port)


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
            host=str(data.get("host", LOOPBACK)),  # a state file of before: always loopback
            auth=data.get("auth") is True,
        )
    except (ValueError, KeyError, TypeError):
        return None
    ok = state.pid > 1 and 0 < state.port < 65536 and isinstance(state.home, str) and bool(state.host)
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


def is_loopback(host: str) -> bool:
    """Does a server bound to ``host`` answer only this machine? A host name may resolve anywhere."""
    text = host.strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def connect_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host`` (as it goes in a URL)."""
    text = host.strip().strip("[]")
    if text in ("", "0.0.0.0", "localhost"):  # noqa: S104 (a bind address read, not bound)
        return LOOPBACK
    if text == "::":
        return "[::1]"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text  # a host name
    return f"[{address}]" if address.version == 6 else str(address)


def bind_refusal(host: str, has_auth: bool, home: Path) -> str | None:
    """Why a server must not start on ``host`` (None: it may): beyond loopback, only with a login."""
    if has_auth or is_loopback(host):
        return None
    return (
        f"--host {host}: a Prefect server there lets in anyone who reaches its port (publish, "
        f"sign-off forms), and no auth string is set; set {SERVER_AUTH_ENV} in the environment, or "
        f"write it on one line to {home / AUTH_FILE} (owner-only: chmod 600), then start again"
    )


def server_environment(environ: Mapping[str, str], home: Path, auth: str | None = None) -> dict[str, str]:
    """The server's environment: the user's, with its own home and database, no client settings, and
    the auth string it asks for (``auth``; None: none, whatever the user's environment says)."""
    dropped = (API_URL_ENV, SERVER_AUTH_ENV, CLIENT_AUTH_ENV)
    env = {key: value for key, value in environ.items() if key not in dropped}
    if auth is not None:
        env[SERVER_AUTH_ENV] = auth
    env.update(
        {
            "PREFECT_HOME": str(home),  # its SQLite database is <home>/prefect.db (DATABASE_FILE)
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # needs the internet, fails noisily without
            # The CLI quiets Prefect for its own output; the server's log file should keep warnings.
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        }
    )
    return env


# -- I/O: files, processes, the network ---------------------------------------------------------


def read_auth_file(path: Path) -> str | None:
    """The auth string in ``path`` (None: no such file), only if no one but its owner can read it."""
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())  # of the file opened, not of whatever the path names later
            if not stat.S_ISREG(info.st_mode):
                raise LocalServerError(f"{path}: is not a file; expected one line, the auth string")
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                raise LocalServerError(
                    f"{path}: others can read it or it is not yours (mode {stat.S_IMODE(info.st_mode):04o}); "
                    f"expected a file of your own that only you can read: chmod 600 {path}"
                )
            raw = fh.read(4097)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LocalServerError(f"{path}: cannot be read ({exc.strerror})") from exc
    text = raw.decode("utf-8", errors="replace").strip()
    if not text or len(raw) > 4096 or "\n" in text or "\r" in text:
        raise LocalServerError(f"{path}: expected one line, the auth string (e.g. team:<a long random word>)")
    return text


def server_auth(environ: Mapping[str, str], home: Path) -> str | None:
    """The auth string the server asks for: ``PREFECT_SERVER_API_AUTH_STRING``, else the home's file."""
    return environ.get(SERVER_AUTH_ENV) or read_auth_file(home / AUTH_FILE)


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
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # its database, logs and auth file: the user's
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


def _spawn(home: Path, bind: Bind, auth: str | None, environ: Mapping[str, str]) -> ServerState:
    port = bind.port or _free_port()
    log = home / LOG_FILE
    if log.exists():
        log.replace(home / f"{LOG_FILE}.1")  # keep the last server's log for a post-mortem
    with open(log, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter's prefect, fixed arguments)
            [*_prefect_command(), "server", "start", "--host", bind.host, "--port", str(port)],
            env=server_environment(environ, home, auth),
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C and logout leave it
        )
    # It outlives this process by design: Popen must not warn that it is "still running".
    process.returncode = 0
    state = ServerState(
        pid=process.pid,
        port=port,
        started_at=time.time(),
        home=str(home),
        prefect=installed_prefect(),
        host=bind.host,
        auth=auth is not None,
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


def _check_bind(state: ServerState, bind: Bind | None) -> None:
    if bind is not None and not bind.matches(state):
        raise LocalServerError(
            f"a local Prefect server already runs at {state.ui_url} (bound to {state.host}, "
            f"pid {state.pid}); expected none: `clinicpress server stop` first, then start it again"
        )


def ensure_server(
    home: Path,
    say: Callable[[str], None],
    timeout: float = START_TIMEOUT,
    bind: Bind | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[ServerState, bool]:
    """The running local server, started if need be; and whether this call started it.

    ``bind``: where ``clinicpress server start`` wants it (a server already running elsewhere is
    an error); None: wherever it runs, else on loopback. Beyond loopback it needs an auth string.
    """
    env = os.environ if environ is None else environ
    deadline = time.monotonic() + timeout
    with _locked(home, timeout):
        state = read_state(home)
        action = decide(state, probe(state) if state else None, installed_prefect())
        if state is not None and action in (Action.USE, Action.WAIT):
            _check_bind(state, bind)
            if action is Action.USE or _wait_healthy(state, deadline):
                return state, False
        if state is not None and action is Action.REPLACE:
            bind = bind or Bind(state.host, state.port)  # the same address: a team's clients keep it
        bind = bind or Bind()
        auth = server_auth(env, home)
        if refusal := bind_refusal(bind.host, auth is not None, home):
            raise LocalServerError(refusal)  # before anything is stopped or started
        if state is not None and action is Action.REPLACE:
            say(
                f"restarting the local Prefect server: it runs Prefect {state.prefect or '?'}, "
                f"{installed_prefect()} is installed"
            )
            _terminate(state, STOP_TIMEOUT)
        _remove_state(home)  # stale: a dead or reused pid, or a start that never answered
        say(starting_message(home))
        for _attempt in range(2):  # a second try if another program took the free port first
            state = _spawn(home, bind, auth, env)
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
    state, started = ensure_server(home, say, environ=env)
    if started:
        say(f"local Prefect server ready: UI {state.ui_url}, home {home} (`clinicpress server stop`)")
    env[API_URL_ENV] = state.api_url
    if state.auth:
        # In the environment, so that the flow-run processes Prefect starts (serve) send it too.
        auth = server_auth(env, home) or env.get(CLIENT_AUTH_ENV)
        if not auth:
            raise LocalServerError(
                f"the local Prefect server at {state.ui_url} asks for an auth string and none is set; "
                f"expected {CLIENT_AUTH_ENV} or {SERVER_AUTH_ENV} in the environment, or {home / AUTH_FILE}"
            )
        env[CLIENT_AUTH_ENV] = auth
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


def _listening(state: ServerState) -> bool:
    """Does anything still hold the server's port? Only a refused connection says no: a timeout
    is a listener that does not accept (its backlog full), not a closed port."""
    try:
        with socket.create_connection((connect_host(state.host), state.port), timeout=0.5):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:
        return True


def _terminate(state: ServerState, timeout: float) -> None:
    # Stopped means the port is closed, not only that the pid is gone: `prefect server start`
    # runs uvicorn in a child process, which can outlive the leader and keep answering.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state.pid, sig)  # the server and anything it started (its own session)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            _reap(state.pid)
            if _argv(state.pid) is None and not _listening(state):
                return
            time.sleep(0.1)
    if _argv(state.pid) is None:
        raise LocalServerError(
            f"the local Prefect server (pid {state.pid}) stopped, but port {state.port} still answers; "
            "another process holds it"
        )
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
