"""The lease: one run per send at a time, and when a run that holds it may be taken over.

A run holds the send's lease (``<host>:<pid>:<run id>`` until a time) from
start to end, renewing it at every claim. Another run may take it over when
it expired or, on the same host, when its process is gone (killed).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path


def owner_name(run_id: str) -> str:
    """Who holds a lease: enough to tell, on this host, whether its process still lives."""
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


def lease_ttl(smtp_timeout: float) -> float:
    """Longer than the longest gap between two renewals (a reconnect is ~5 SMTP round trips)."""
    return 10 * smtp_timeout + 60


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def lease_dead(
    owner: str | None,
    until: datetime | None,
    at: datetime,
    *,
    host: str,
    pid: int,
    alive: Callable[[int], bool] = pid_alive,
) -> bool:
    """Whether a send's lease may be taken over by process ``pid`` on ``host`` at ``at``."""
    if owner is None or until is None or until < at:
        return True
    owner_host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if owner_host != host or not pid_text.isdigit() or int(pid_text) == pid:
        # Another host: only expiry tells. Our own pid: another thread of ours may hold it.
        return False
    return not alive(int(pid_text))
