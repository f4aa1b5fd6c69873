"""The product's one clock: every "today" and "now" that decides a verdict or a date.

License windows and expiry, review due dates, monitor thresholds, report and
release dates all ask this module, never ``date.today()`` or ``datetime.now()``
directly, so a test (or ``check --as-of``) can say which day it is.

``CLINICPRESS_CLOCK_SHIFT_DAYS=N`` (test-only; an integer, may be negative)
moves the clock N days ahead in this process and in every process that
inherits the environment, as ``CLINICPRESS_FAULT`` does: CI runs the suite a
second time two years ahead to prove no test depends on the real date.

Timers that measure elapsed time (timeouts, pacing, cache ages) keep the real
clock: the shift is constant, so it changes no duration. A ``Retry-After`` given
as an HTTP date is read against this clock (``clinicpress/network/replies.py``;
the shift is 0 outside tests, so a real server's date is compared with real time).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

from clinicpress.errors import InputError

SHIFT_ENV = "CLINICPRESS_CLOCK_SHIFT_DAYS"
_MAX_SHIFT_DAYS = 36_500  # a century either way: far enough for any test, short of datetime's limits


def shift() -> timedelta:
    """The test-only offset from the real clock (zero unless ``CLINICPRESS_CLOCK_SHIFT_DAYS`` is set)."""
    raw = os.environ.get(SHIFT_ENV, "").strip()
    if not raw:
        return timedelta(0)
    try:
        days = int(raw)
    except ValueError as exc:
        raise InputError(None, SHIFT_ENV, f"{raw!r} is not a whole number of days", "e.g. 730") from exc
    if abs(days) > _MAX_SHIFT_DAYS:
        raise InputError(None, SHIFT_ENV, f"{days} days is out of range", f"at most {_MAX_SHIFT_DAYS}")
    return timedelta(days=days)


def now() -> datetime:
    """Now, timezone-aware in UTC."""
    return datetime.now(UTC) + shift()


def local_now() -> datetime:
    """Now, timezone-aware in the machine's zone (the Date header, "published on" lines)."""
    return datetime.now().astimezone() + shift()


def today() -> date:
    """Today's date where the clinic is (the machine's zone): the day verdicts are decided on."""
    return local_now().date()
