"""The local Prefect server (flows/local_server.py): the decisions, then one real server's life.

The real server runs on loopback under a temporary PREFECT_HOME and is always stopped (its
process group) by the fixture, whatever the test did. It asks for an auth string (the owner-only
file in its home): the runs on this machine send it, a request without it gets 401.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clinicpress.errors import InputError
from clinicpress.flows import local_server as ls
from clinicpress.flows.local_server import Action, Bind, LocalServerError, Probe, ServerState

ROOT = Path(__file__).resolve().parents[2]
CLINICPRESS = ROOT / ".venv" / "bin" / "clinicpress"
RUN_TIMEOUT = 300  # a first start on a busy 2-core machine: ~10-60 s


def _state(pid: int = 4242, port: int = 4200, prefect: str = "3.9.1") -> ServerState:
    return ServerState(pid=pid, port=port, started_at=1_000.0, home="/h", prefect=prefect)


# -- the decisions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "on"), [(None, True), ("", True), ("1", True), ("yes", True), ("0", False), ("off", False)]
)
def test_switch(value: str | None, on: bool) -> None:
    assert ls.switch_on(value) is on


def test_switch_refuses_garbage() -> None:
    with pytest.raises(InputError, match="CLINICPRESS_LOCAL_SERVER"):
        ls.switch_on("maybe")


def test_state_round_trips_and_junk_is_no_state() -> None:
    state = _state()
    assert ls.parse_state(state.to_json()) == state
    assert json.loads(state.to_json())["api_url"] == "http://127.0.0.1:4200/api"
    for junk in ("", "{", "[]", '{"pid": 1, "port": 4200, "started_at": 0, "home": "/h"}', '{"pid": "x"}'):
        assert ls.parse_state(junk) is None


def test_server_command_is_recognised_by_its_port() -> None:
    argv = ["/v/bin/python", "/v/bin/prefect", "server", "start", "--host", "127.0.0.1", "--port", "4200"]
    assert ls.is_server_command(argv, 4200)
    assert not ls.is_server_command(argv, 4201)  # another server: not the one the state names
    assert not ls.is_server_command(["/usr/bin/python3", "-m", "http.server", "--port", "4200"], 4200)


@pytest.mark.parametrize(
    ("state", "probe", "action"),
    [
        (None, None, Action.START),
        (_state(), Probe(ours_alive=False, healthy=False), Action.START),  # dead pid
        (_state(), Probe(ours_alive=False, healthy=True), Action.START),  # port answered by someone else
        (_state(), Probe(ours_alive=True, healthy=False), Action.WAIT),  # still starting
        (_state(), Probe(ours_alive=True, healthy=True), Action.USE),
    ],
)
def test_decide(state: ServerState | None, probe: Probe | None, action: Action) -> None:
    assert ls.decide(state, probe) is action
    assert ls.decide(state, probe, "3.9.1") is action


def test_a_server_of_another_prefect_version_is_replaced() -> None:
    alive = Probe(ours_alive=True, healthy=True)
    assert ls.decide(_state(prefect="3.8.0"), alive, "3.9.1") is Action.REPLACE
    assert ls.decide(_state(prefect=""), alive, "3.9.1") is Action.REPLACE  # a state file of before
    assert ls.decide(_state(prefect="3.8.0"), Probe(ours_alive=False, healthy=False), "3.9.1") is Action.START


def test_configured_server_is_found_in_the_environment_and_prefects_files() -> None:
    assert ls.configured_api_url({"PREFECT_API_URL": "http://x/api"}, []) == "PREFECT_API_URL"
    assert ls.configured_api_url({"PREFECT_API_URL": ""}, []) is None
    assert ls.configured_api_url({}, [("profile", {"PREFECT_API_URL": "http://x/api"})]) == "profile"
    assert ls.configured_api_url({}, [("prefect.toml", {"api": {"url": "http://x/api"}})]) == "prefect.toml"
    assert ls.configured_api_url({}, [("profile", {"PREFECT_SERVER_EPHEMERAL_ENABLED": "true"})]) is None
    assert ls.active_profile({}, {}) == "ephemeral"
    assert ls.active_profile({}, {"active": "local"}) == "local"
    assert ls.active_profile({"PREFECT_PROFILE": "mine"}, {"active": "local"}) == "mine"


def test_home_is_under_the_users_prefect_home() -> None:
    assert ls.server_home({"PREFECT_HOME": "/p"}) == Path("/p/clinicpress-server")
    assert ls.server_home({}) == Path("~/.prefect/clinicpress-server").expanduser()


def test_server_environment_has_its_own_home_and_no_client_url() -> None:
    env = ls.server_environment({"PREFECT_API_URL": "http://x/api", "PATH": "/bin"}, Path("/h"))
    assert "PREFECT_API_URL" not in env
    assert env["PREFECT_HOME"] == "/h"
    assert env["PATH"] == "/bin"


def test_server_environment_carries_the_auth_string_it_was_given_and_no_other() -> None:
    user = {ls.SERVER_AUTH_ENV: "stale", ls.CLIENT_AUTH_ENV: "for-another-server", "PATH": "/bin"}
    env = ls.server_environment(user, Path("/h"), "team:s3cret")
    assert env[ls.SERVER_AUTH_ENV] == "team:s3cret"
    assert ls.CLIENT_AUTH_ENV not in env
    bare = ls.server_environment(user, Path("/h"))
    assert ls.SERVER_AUTH_ENV not in bare  # what the state file says (no login) is what the server does
    assert ls.CLIENT_AUTH_ENV not in bare


# -- beyond loopback only with a login ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback", "connect"),
    [
        ("127.0.0.1", True, "127.0.0.1"),
        ("127.0.0.2", True, "127.0.0.2"),
        ("localhost", True, "127.0.0.1"),
        ("::1", True, "[::1]"),
        ("0.0.0.0", False, "127.0.0.1"),  # every address: this machine's runs use loopback
        ("::", False, "[::1]"),
        ("192.168.1.20", False, "192.168.1.20"),
        ("fe80::1", False, "[fe80::1]"),
        ("clinic-server", False, "clinic-server"),  # a name may resolve anywhere
    ],
)
def test_loopback_and_where_this_machine_connects(host: str, loopback: bool, connect: str) -> None:
    assert ls.is_loopback(host) is loopback
    assert ls.connect_host(host) == connect


def test_a_bind_beyond_loopback_needs_an_auth_string() -> None:
    home = Path("/h")
    for host in ("127.0.0.1", "localhost", "::1"):
        assert ls.bind_refusal(host, has_auth=False, home=home) is None
    for host in ("0.0.0.0", "::", "10.0.0.5", "clinic-server"):
        assert ls.bind_refusal(host, has_auth=True, home=home) is None
        refusal = ls.bind_refusal(host, has_auth=False, home=home)
        assert refusal is not None
        assert f"--host {host}:" in refusal
        assert ls.SERVER_AUTH_ENV in refusal
        assert str(home / ls.AUTH_FILE) in refusal


def test_state_says_where_it_binds_and_whether_it_asks_for_a_login() -> None:
    state = ServerState(
        pid=4242, port=4200, started_at=1.0, home="/h", prefect="3.9.1", host="0.0.0.0", auth=True
    )
    assert ls.parse_state(state.to_json()) == state
    assert state.api_url == "http://127.0.0.1:4200/api"
    assert "s3cret" not in state.to_json()
    old = '{"pid": 4242, "port": 4200, "started_at": 1000, "home": "/h", "prefect": "3.9.1"}'
    assert ls.parse_state(old) == _state()  # a state file of before: loopback, no login
    assert Bind().matches(_state())
    assert Bind("127.0.0.1", 4200).matches(_state())
    assert not Bind("127.0.0.1", 4300).matches(_state())
    assert not Bind("0.0.0.0", 4200).matches(_state())


def test_the_auth_file_is_read_only_if_only_its_owner_can_read_it(tmp_path: Path) -> None:
    path = tmp_path / ls.AUTH_FILE
    assert ls.read_auth_file(path) is None  # none: no login from the file
    path.write_text("team:s3cret\n", encoding="utf-8")
    for mode in (0o644, 0o640, 0o604):
        path.chmod(mode)
        with pytest.raises(LocalServerError, match=f"chmod 600 {path}") as caught:
            ls.read_auth_file(path)
        assert "s3cret" not in str(caught.value)
    path.chmod(0o600)
    assert ls.read_auth_file(path) == "team:s3cret"
    assert ls.server_auth({}, tmp_path) == "team:s3cret"
    assert ls.server_auth({ls.SERVER_AUTH_ENV: "team:from-env"}, tmp_path) == "team:from-env"
    for junk in ("", "\n", "team:one\nteam:two\n"):
        path.write_text(junk, encoding="utf-8")
        with pytest.raises(LocalServerError, match="expected one line"):
            ls.read_auth_file(path)


def test_server_start_beyond_loopback_without_an_auth_string_is_refused(server_env: dict[str, str]) -> None:
    """Exit 2 with the way to set one, and nothing started. (192.0.2.1 is a documentation address:
    even without the refusal nothing could listen there.)"""
    home = ls.server_home(server_env)
    done = _run(server_env, str(CLINICPRESS), "server", "start", "--host", "192.0.2.1", "--port", "4299")
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, output
    assert "--host 192.0.2.1: a Prefect server there lets in anyone who reaches its port" in output
    assert (
        f"set {ls.SERVER_AUTH_ENV} in the environment, or write it on one line to {home / ls.AUTH_FILE}"
        in output
    )
    assert ls.STARTING not in output
    assert ls.read_state(home) is None


def test_a_start_after_a_stop_does_not_say_first_run_only(tmp_path: Path) -> None:
    assert ls.starting_message(tmp_path) == ls.STARTING  # a new home: the first run
    (tmp_path / ls.DATABASE_FILE).write_bytes(b"")  # a server ran here, and was stopped
    assert ls.starting_message(tmp_path) == ls.RESTARTING
    assert "first run only" not in ls.RESTARTING


def test_uptime_text() -> None:
    assert ls.uptime_text(75) == "1m 15s"
    assert ls.uptime_text(2 * 3600 + 300) == "2h 5m"
    assert ls.uptime_text(86400 + 3600) == "1d 1h 0m"


def test_opted_out_or_configured_starts_nothing(tmp_path: Path) -> None:
    said: list[str] = []
    env = {"PREFECT_HOME": str(tmp_path), "CLINICPRESS_LOCAL_SERVER": "0"}
    assert ls.use_local_server(said.append, env, cwd=tmp_path) is None
    env = {"PREFECT_HOME": str(tmp_path), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    assert ls.use_local_server(said.append, env, cwd=tmp_path) is None
    (tmp_path / "prefect.toml").write_text('[api]\nurl = "http://127.0.0.1:9/api"\n', encoding="utf-8")
    assert ls.use_local_server(said.append, {"PREFECT_HOME": str(tmp_path)}, cwd=tmp_path) is None
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:9/api"
    assert said == []
    assert not (tmp_path / ls.HOME_DIR).exists()


def test_too_late_once_prefect_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect.context  # noqa: F401  (what an in-process caller, e.g. a CliRunner test, has done)

    env = {"PREFECT_HOME": str(tmp_path)}
    assert ls.use_local_server(lambda line: None, env, cwd=tmp_path) is None
    assert "PREFECT_API_URL" not in env


# -- heartbeats: off around a CLI's flow run unless the environment sets a frequency -------------


def test_cli_flow_run_turns_heartbeats_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import get_current_settings

    from clinicpress.runtime import cli_flow_run, heartbeats_wanted

    assert not heartbeats_wanted({})
    assert heartbeats_wanted({"PREFECT_RUNNER_HEARTBEAT_FREQUENCY": "60"})
    for name in ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)
    before = get_current_settings().flows.heartbeat_frequency
    with cli_flow_run():
        assert get_current_settings().flows.heartbeat_frequency is None
    assert get_current_settings().flows.heartbeat_frequency == before
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")
    with cli_flow_run():
        assert get_current_settings().flows.heartbeat_frequency == before  # the user's setting stands


# -- the probes, without a Prefect server ------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[int]:
    """Something else on a loopback port that answers /api/health with 200: its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_a_healthy_port_is_not_enough(impostor: int) -> None:
    assert ls.healthy(f"http://127.0.0.1:{impostor}/api")
    # A dead pid, and a live pid that is not a prefect server (this test): both stale.
    for pid in (_dead_pid(), os.getpid()):
        probe = ls.probe(_state(pid=pid, port=impostor))
        assert probe == Probe(ours_alive=False, healthy=False)
        assert ls.decide(_state(pid=pid, port=impostor), probe) is Action.START


def test_stop_with_no_server_or_a_stale_state_says_not_running(tmp_path: Path) -> None:
    home = tmp_path / ls.HOME_DIR
    assert ls.stop_server(home) is None
    home.mkdir(parents=True, exist_ok=True)
    (home / ls.STATE_FILE).write_text(_state(pid=_dead_pid()).to_json(), encoding="utf-8")
    assert ls.server_status(home)[1] is False
    assert ls.stop_server(home) is None
    assert not (home / ls.STATE_FILE).exists()


# A stand-in for `prefect server start`: the leader (named like one, in its own session) starts a
# child that holds the port and ignores SIGTERM, as a uvicorn child can outlive its leader.
_LINGERING_CHILD = (
    "import signal, socket, sys\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(8)\n"
    "open(sys.argv[2], 'w').write('ready')\n"
    "signal.pause()\n"
)
_LEADER = (
    "import subprocess, sys\n"
    "subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[7], sys.argv[2]]).wait()\n"
)


def test_stop_returns_only_when_the_port_is_closed(tmp_path: Path) -> None:
    home = tmp_path / ls.HOME_DIR
    home.mkdir()
    port = ls._free_port()
    ready = tmp_path / "ready"
    argv = [sys.executable, "-c", _LEADER, _LINGERING_CHILD, str(ready), "prefect", "server", "start"]
    leader = subprocess.Popen([*argv, "--port", str(port)], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the child's handshake: it listens once the file exists
        assert ready.exists()
        state = ServerState(pid=leader.pid, port=port, started_at=time.time(), home=str(home))
        (home / ls.STATE_FILE).write_text(state.to_json(), encoding="utf-8")
        assert ls.stop_server(home, timeout=1.0) == state
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(timeout=30)


# -- one real server: first runs (concurrent), reuse, status, stop ----------------------------

FIRST_RUN = (
    "import sys\n"
    "from clinicpress.flows.local_server import use_local_server\n"
    "state = use_local_server(say=lambda line: print(line, file=sys.stderr))\n"
    "print(state.pid if state else 'none')\n"
)


@pytest.fixture
def server_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a run with nothing configured, its Prefect home in tmp_path; whatever
    server the test starts there is stopped at the end (its process group), bounded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != ls.SWITCH_ENV}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    home = ls.server_home(env)
    try:
        yield env
    finally:
        state = ls.read_state(home)
        with contextlib.suppress(Exception):
            ls.stop_server(home, timeout=20)
        if state is not None:  # whatever happened above: nothing left behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(state.pid, signal.SIGKILL)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )


def _basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def test_local_server_life(server_env: dict[str, str], impostor: int, tmp_path: Path) -> None:
    home = ls.server_home(server_env)
    status = _run(server_env, str(CLINICPRESS), "server", "status")
    assert status.returncode == 1, status
    assert "not running" in status.stdout

    # An auth string in the owner-only file of its home: the server asks for it, runs here send it.
    home.mkdir(parents=True)
    auth = f"me:{secrets.token_urlsafe(24)}"
    (home / ls.AUTH_FILE).write_text(auth + "\n", encoding="utf-8")
    (home / ls.AUTH_FILE).chmod(0o600)
    said: list[str] = []

    # A stale state file: a dead pid, and its port now answered by something else.
    stale = _state(pid=_dead_pid(), port=impostor)
    (home / ls.STATE_FILE).write_text(stale.to_json(), encoding="utf-8")

    # Two first runs at once: one server, started by one of them; the other waits for it.
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_RUN],
            env=server_env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=RUN_TIMEOUT) for proc in starts]
    assert [proc.returncode for proc in starts] == [0, 0], outputs
    pids = {out.strip() for out, _ in outputs}
    assert len(pids) == 1, outputs
    assert sum(ls.STARTING in err for _, err in outputs) == 1, outputs
    state = ls.read_state(home)
    assert state is not None
    assert str(state.pid) in pids
    assert (state.pid, state.port) != (stale.pid, stale.port)
    assert Path(state.home) == home
    assert state.prefect == ls.installed_prefect() != ""
    assert (home / "prefect.db").exists()  # its database lives in its home
    assert state.auth
    assert state.host == "127.0.0.1"
    said += [text for pair in outputs for text in pair]

    # Its starters have exited: it runs on, in its own session.
    assert os.getsid(state.pid) == state.pid
    # A real command reuses it at once (same pid, no start line), and its flow run stays on it.
    out = tmp_path / "out"
    monitor = _run(server_env, str(CLINICPRESS), "monitor", "--out", str(out))
    assert monitor.returncode == 0, monitor
    assert ls.STARTING not in monitor.stderr
    assert ls.read_state(home) == state
    # Without the auth string, or with a wrong one, the server answers nothing but its health.
    for headers in ({}, _basic(f"me:{secrets.token_urlsafe(24)}")):
        refused = httpx.post(f"{state.api_url}/flow_runs/filter", json={}, headers=headers, timeout=30)
        assert refused.status_code == 401, refused.text
    runs = httpx.post(f"{state.api_url}/flow_runs/filter", json={}, headers=_basic(auth), timeout=30).json()
    assert [run["name"] for run in runs], "the monitor flow run is in the server's history"

    status = _run(server_env, str(CLINICPRESS), "server", "status")
    assert status.returncode == 0, status
    assert f"pid {state.pid}" in status.stdout
    assert state.ui_url in status.stdout
    assert "bound to 127.0.0.1; asks for the auth string" in status.stdout
    # `server start` finds it running; on another address it says to stop it first.
    again = _run(server_env, str(CLINICPRESS), "server", "start")
    assert again.returncode == 0, again
    assert f"already running: {state.ui_url}" in again.stdout
    elsewhere = _run(server_env, str(CLINICPRESS), "server", "start", "--port", str(ls._free_port()))
    assert elsewhere.returncode == 2, elsewhere
    assert "`clinicpress server stop` first" in " ".join(elsewhere.stderr.split())
    said += [monitor.stdout, monitor.stderr, status.stdout, again.stdout, elsewhere.stderr]
    for text in [*said, (home / ls.STATE_FILE).read_text(), (home / ls.LOG_FILE).read_text(errors="replace")]:
        assert auth not in text

    stop = _run(server_env, str(CLINICPRESS), "server", "stop")
    assert stop.returncode == 0, stop
    assert f"stopped (pid {state.pid})" in stop.stdout
    deadline = time.monotonic() + 10
    while ls._argv(state.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ls._argv(state.pid) is None
    assert not (home / ls.STATE_FILE).exists()
    again = _run(server_env, str(CLINICPRESS), "server", "stop")
    assert again.returncode == 0
    assert "not running" in again.stdout
    assert _run(server_env, str(CLINICPRESS), "server", "status").returncode == 1
