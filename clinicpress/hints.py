"""The command lines that hints print: ``clinicpress …`` with the options of the run that prints them.

A hint works as printed or it misleads: after ``check --site clinic/site.toml --out pub``, a
``clinicpress review …`` without them records the sign-off in the default registry, and the
article stays blocked (issue 24). So no message spells a command by hand: :func:`command`
writes it, with the run's ``--site``/``--out`` when they are not the defaults, every word
quoted as a shell reads it (:func:`shlex.quote`).

The CLI records the run's options where it parses them (``cli/common.py``, the options'
callback), so every command that takes them records them, and their end forgets them. The
flows a command runs see them in its process: Prefect runs a flow in the caller's thread and
copies the context into its task threads. Code run outside a command (a deployment's flow
run) records its own with :func:`using`, or prints hints with the defaults.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

PROGRAM = "clinicpress"
# The options that say where a run works, in the order a hint prints them.
WHERE_FLAGS = ("--site", "--out")

_where: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("clinicpress_hint_options", default=())


class Placeholder(str):
    """A word the reader fills in or chooses (``NAME``, ``--sent|--not-sent``): printed as it is."""

    __slots__ = ()


def command(*words: str, where: bool = True) -> str:
    """``clinicpress WORDS`` and this run's ``--site``/``--out`` (``where=False``: a command that
    takes neither, such as ``server stop``)."""
    options = [part for flag, value in _where.get() for part in (flag, value)] if where else []
    shown = [PROGRAM, *words, *options]
    return " ".join(word if isinstance(word, Placeholder) else shlex.quote(word) for word in shown)


def remember(flag: str, value: str | None) -> Callable[[], None]:
    """This run's ``flag`` (None: its default, which hints leave out); returns what forgets it."""
    if flag not in WHERE_FLAGS:
        raise ValueError(f"{flag}: not one of {', '.join(WHERE_FLAGS)}")
    given = {f: v for f, v in _where.get() if f != flag}
    if value is not None:
        given[flag] = value
    token = _where.set(tuple((f, given[f]) for f in WHERE_FLAGS if f in given))
    return lambda: _where.reset(token)


def start_command() -> None:
    """A command starts with no options recorded: one whose parsing failed never closed its context,
    so its options would otherwise stay for the next command run in the same process (tests, a shell)."""
    _where.set(())


@contextmanager
def using(**options: str | None) -> Iterator[None]:
    """Hints printed inside carry these options: ``using(site=…, out=…)``; None: the default."""
    forget = [remember(f"--{name}", value) for name, value in options.items()]
    try:
        yield
    finally:
        for undo in reversed(forget):
            undo()
