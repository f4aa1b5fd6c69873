"""Environment and logging clinicpress sets up before Prefect (and WeasyPrint) are imported.

With no server configured, Prefect starts an embedded (ephemeral) API for the
run. Left alone it logs every task and, offline, prints telemetry and
"Error flushing events" tracebacks at shutdown; the user should see
clinicpress's report instead. ``-v`` keeps Prefect's own logs. Values the
user already set in the environment always win.

``cli_flow_run`` turns Prefect's flow-run heartbeats off around the flow a CLI
command runs in its own process (docs/development/performance.md, "Flow-run heartbeats"):
ending a flow run waits up to a second for the heartbeat thread, and a short CLI run sends one heartbeat
at most. ``serve`` keeps them: its unattended runs are what crash detection is for.

``sigterm_as_interrupt``: a server in the foreground (the preview, the unsubscribe endpoint)
stops on SIGTERM as it does on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

_QUIET = {
    "PREFECT_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
}
_ALWAYS = {
    # Telemetry needs the internet and fails noisily without it.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The embedded API can take > 20 s to start on a busy 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def configure_runtime(verbose: bool) -> None:
    """Set Prefect's environment defaults and quiet library loggers; run before ``import prefect``."""
    for key, value in {**_ALWAYS, **({} if verbose else _QUIET)}.items():
        os.environ.setdefault(key, value)
    if not verbose:
        # Libraries Prefect's server uses log on their own loggers.
        # WeasyPrint warns, e.g., when libharfbuzz-subset is missing (slower, still correct PDFs).
        noisy = ("docket", "uvicorn", "alembic", "httpx", "sqlalchemy", "weasyprint", "fontTools", "apprise")
        for name in noisy:
            logging.getLogger(name).setLevel(logging.CRITICAL)


# Either name sets the frequency (Prefect keeps the runner's old name as an alias).
HEARTBEAT_ENV = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


def heartbeats_wanted(environ: Mapping[str, str]) -> bool:
    """Did the user ask for flow-run heartbeats (any frequency set in the environment)?"""
    return any(environ.get(name) for name in HEARTBEAT_ENV)


@contextmanager
def cli_flow_run() -> Iterator[None]:
    """Around a flow run in a CLI process: no flow-run heartbeats, unless the environment sets a frequency.

    Prefect's ``_send_heartbeats`` (prefect/flow_engine.py) joins its thread at the end of every
    synchronous flow run, and that thread sleeps in 1-second steps whatever the frequency (never
    below 30 s): ~1 s per call. The environment cannot say "none" (an integer ≥ 30 or nothing),
    so the setting is Python's, for this call only.
    """
    if heartbeats_wanted(os.environ):
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block, as Ctrl-C does (only the main thread may
    set signal handlers: elsewhere the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
