"""Environment and logging clinicpress sets up before Prefect (and WeasyPrint) are imported.

With no server configured, Prefect starts an embedded (ephemeral) API for the
run. Left alone it logs every task and, offline, prints telemetry and
"Error flushing events" tracebacks at shutdown; the user should see
clinicpress's report instead. ``-v`` keeps Prefect's own logs. Values the
user already set in the environment always win.
"""

from __future__ import annotations

import logging
import os

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
