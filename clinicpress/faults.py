"""Named fault points for the fault-injection tests (``tests/flows/test_faults.py``).

A publish passes through every point in ``POINTS``, in that order. With
``CLINICPRESS_FAULT=<point>:raise`` the run raises ``InjectedFault`` there;
with ``<point>:kill`` the process SIGKILLs itself there, as a power cut or an
OOM kill would (no ``finally``, no ``atexit``, no Prefect hook runs). Unset,
a point costs one environment lookup.

``<point>:pause:<dir>`` holds every process that reaches the point (the CLI
process, or a render worker: the variable is inherited) so a test can line
several up there: each creates ``<dir>/<pid>.waiting`` (atomically: a test
that sees it may act on that pid at once) and blocks until ``<dir>/go``
exists, then goes on as if nothing happened (later passes do not block).
A pause with no ``go`` after ``PAUSE_TIMEOUT`` seconds raises
``InjectedFault``: a test that forgot to release never hangs.

``EXTRA_POINTS`` are reached on some paths only (a catalog's spool, a
newsletter with recipients, the moment before the output lock), so the
one-article matrix over ``POINTS`` does not include them.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from clinicpress.errors import ClinicpressError

FAULT_ENV = "CLINICPRESS_FAULT"

# Every step of a publish, in the order a publish reaches them.
POINTS = (
    "load",  # site config and articles read
    "check.links",  # before the sources are checked
    "check.verify",  # dates, licenses, readability, content rules
    "render.web",
    "render.handout",
    "render.newsletter",
    "check.consistency",  # the three channels read back and compared
    "stage",  # every file written into the staging release, before the switch
    "switch",  # the release folder is final, `current` not switched yet
    "switched",  # `current` switched: the new release is live
    "record",  # the registry records what went live
    "newsletter.enqueue",  # before the recipients are enqueued (`pending`)
    "newsletter.enqueued",  # enqueued, nothing sent yet
)
EXTRA_POINTS = (
    "publish.lock",  # rendered and checked, before the output folder's lock is taken
    # A file hard-linked into staging: a catalog's spooled file, every handout's copy under the web
    # root, and a rollback's kept files (more to come after it).
    "stage.link",
    "newsletter.claimed",  # a recipient claimed (committed), before its SMTP transaction
    "rollback.lock",  # a rollback, before the output lock (it decides under it)
    "monitor.record",  # the monitor has read the states, recorded nothing (lines up two runs)
    "unsubscribe.answered",  # the unsubscribe endpoint answered 200 (its suppression committed before)
)
ACTIONS = ("raise", "kill")
PAUSE = "pause"
GO = "go"  # the file in the pause folder that releases every held process
PAUSE_TIMEOUT = 60.0


class InjectedFault(ClinicpressError):
    """Raised at a fault point named in ``CLINICPRESS_FAULT`` (tests only)."""


def fault_point(name: str) -> None:
    """Fail (or pause) here if ``CLINICPRESS_FAULT`` names this point."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, action = spec.partition(":")
    if point != name:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action.startswith(f"{PAUSE}:"):
        _pause(name, Path(action.removeprefix(f"{PAUSE}:")))
        return
    raise InjectedFault(f"fault injected at {name!r} ({FAULT_ENV}={spec})")


def _pause(name: str, folder: Path) -> None:
    go = folder / GO
    if go.exists():
        return  # released already: later passes do not block
    pid = os.getpid()
    # Written under a temporary name, then renamed: the test never sees a half-made marker.
    tmp = folder / f".{pid}.waiting.tmp"
    tmp.write_text(f"{name}\n", encoding="utf-8")
    tmp.rename(folder / f"{pid}.waiting")
    deadline = time.monotonic() + PAUSE_TIMEOUT
    while not go.exists():
        if time.monotonic() >= deadline:
            raise InjectedFault(f"paused at {name!r} for {PAUSE_TIMEOUT:.0f} s and {go} never appeared")
        time.sleep(0.02)
