"""A test that needs a real component (PostgreSQL, Chromium, axe-core, openssl, libyaml) and
cannot find it: skipped on a developer's machine, failed under ``CI=true``.

A skip in CI would let ``.ci/run`` pass with the guarantee untested (issue 18, item 6), so
there the missing component is an error of the CI machine, and says what to install.

Usage::

    if shutil.which("openssl") is None:
        need("openssl", "the openssl command makes the test certificate (apt-get install -y openssl)")
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["in_ci", "need"]


def in_ci() -> bool:
    """True under ``CI=true`` (what GitHub Actions, GitLab CI and ``.ci/run``'s callers set)."""
    return os.environ.get("CI") == "true"


def need(component: str, reason: str) -> NoReturn:
    """``component`` is missing: fail under ``CI=true``, else skip; ``reason`` says how to get it."""
    __tracebackhide__ = True  # reports name the test's line, not this one
    message = f"{component} is required: {reason}"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)
