"""Who published a newsletter version and who may approve its send: the two-person rule, pure.

Names are compared as people type them: trimmed, inner spaces collapsed, case ignored. A publish
whose trigger is not known (a deployment run without ``triggered_by``) is recorded as
``unknown``: any named approver may then approve it, and the record shows that the trigger was
not known (there is nobody to compare with).
"""

from __future__ import annotations

UNKNOWN = "unknown"


def person(name: str | None) -> str:
    """A name as recorded: trimmed, inner whitespace (newlines too) collapsed to one space."""
    return " ".join((name or "").split())


def trigger_name(name: str | None) -> str:
    """Who triggered a publish, as the send records it (``unknown`` when not given)."""
    return person(name) or UNKNOWN


def same_person(a: str | None, b: str | None) -> bool:
    return person(a).casefold() == person(b).casefold()


def approver_problem(approver: str, triggered_by: str | None) -> str | None:
    """Why ``approver`` may not approve a send ``triggered_by`` published; None when they may."""
    name = person(approver)
    if not name or name.casefold() == UNKNOWN:
        return f"{approver!r} is not a name"
    if len(name) > 200:
        return "a name of at most 200 characters"
    if same_person(name, triggered_by):
        return f"{person(triggered_by)} published this version: a second person must approve its send"
    return None
