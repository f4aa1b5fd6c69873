"""Progress of long work, reported by the flows and shown by the CLI.

The flows run in the CLI's process, so a module-level reporter is enough:
the CLI installs one (a rich progress bar on a terminal), everything else
gets the silent default.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def start(self, phase: str, total: int) -> None: ...

    def advance(self, phase: str, amount: int = 1) -> None: ...


class _Silent:
    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, phase: str, amount: int = 1) -> None:
        pass


_reporter: Reporter = _Silent()


def use(reporter: Reporter | None) -> None:
    """Install a reporter (None restores the silent one)."""
    global _reporter
    _reporter = reporter if reporter is not None else _Silent()


def start(phase: str, total: int) -> None:
    _reporter.start(phase, total)


def advance(phase: str, amount: int = 1) -> None:
    _reporter.advance(phase, amount)
