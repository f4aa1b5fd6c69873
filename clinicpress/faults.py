"""Named fault points for the fault-injection tests (``tests/test_faults.py``).

A publish passes through every point in ``POINTS``, in that order. With
``CLINICPRESS_FAULT=<point>:raise`` the run raises ``InjectedFault`` there;
with ``<point>:kill`` the process SIGKILLs itself there, as a power cut or an
OOM kill would (no ``finally``, no ``atexit``, no Prefect hook runs). Unset,
a point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

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
ACTIONS = ("raise", "kill")


class InjectedFault(ClinicpressError):
    """Raised at a fault point named in ``CLINICPRESS_FAULT`` (tests only)."""


def fault_point(name: str) -> None:
    """Fail here if ``CLINICPRESS_FAULT`` names this point."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, action = spec.partition(":")
    if point != name:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(f"fault injected at {name!r} ({FAULT_ENV}={spec})")
