"""Who published a newsletter version and who may approve its send: the two-person rule, pure.

Names are compared as people type them: trimmed, inner spaces collapsed, case ignored. A publish
whose trigger is not known (a deployment run without ``triggered_by``) is recorded as
``unknown``: any named approver may then approve it, and the record shows that the trigger was
not known (there is nobody to compare with).

A name names one person (:func:`name_problem`): "A, B" or "A and B" recorded as who published
would let A approve their own send, since "A" is not "A, B". Names are what people typed, not
a login: they make the rule visible, they do not prove who ran a command.
"""

from __future__ import annotations

import re
import unicodedata

UNKNOWN = "unknown"
MAX_NAME = 200
# What joins two names: punctuation (NFKC folds the full-width forms onto these; the Arabic and
# ideographic commas it leaves alone), or the word "and". Other languages' "y"/"et"/"und" are left
# alone: "Ortega y Gasset" is one person. Credentials ("Jane Doe, MD") go in their own field.
_JOINER = re.compile(r"[,;&/\\+|\u060c\u3001]|\band\b", re.IGNORECASE)


def person(name: str | None) -> str:
    """A name as recorded: trimmed, inner whitespace (newlines too) collapsed to one space."""
    return " ".join((name or "").split())


def name_problem(name: str) -> str | None:
    """Why ``name`` does not name one person (None when it does): blank, ``unknown``, too long, two
    names joined (``A, B``, ``A and B``, ``A & B``, ``A; B``, ``A/B``), or a line break inside."""
    text = unicodedata.normalize("NFKC", name).strip()
    if len(text.splitlines()) > 1:
        return f"{person(text)!r} names more than one person (a line break between names)"
    control = next((c for c in text if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return f"{person(text)!r} contains the control character U+{ord(control):04X}"
    recorded = person(text)
    if not recorded or recorded.casefold() == UNKNOWN:
        return f"{name!r} is not a name"
    if len(recorded) > MAX_NAME:
        return f"a name of at most {MAX_NAME} characters"
    if joiner := _JOINER.search(recorded):
        return f"{recorded!r} names more than one person ({joiner.group()!r} between names)"
    return None


def trigger_problem(name: str | None) -> str | None:
    """Why ``name`` cannot be recorded as who triggered a publish (None when it can): it names one
    person, or says nobody is known (None, blank or ``unknown``, recorded as ``unknown``)."""
    if person(name).casefold() in ("", UNKNOWN):
        return None
    return name_problem(name or "")


def trigger_name(name: str | None) -> str:
    """Who triggered a publish, as the send records it (``unknown`` when not given)."""
    return person(name) or UNKNOWN


def same_person(a: str | None, b: str | None) -> bool:
    # NFKC: "Ａlice" typed on a full-width keyboard is Alice.
    return _key(a) == _key(b)


def _key(name: str | None) -> str:
    return unicodedata.normalize("NFKC", person(name)).casefold()


def approver_problem(approver: str, triggered_by: str | None) -> str | None:
    """Why ``approver`` may not approve a send ``triggered_by`` published; None when they may."""
    if problem := name_problem(approver):
        return problem
    if same_person(approver, triggered_by):
        return f"{person(triggered_by)} published this version: a second person must approve its send"
    return None
