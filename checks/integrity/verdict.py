"""From a :class:`Record` to an integrity status, the notice to name, and the problems. Pure.

=========================================================  ===========  ========
what the registry says                                     status       problem
=========================================================  ===========  ========
retraction, partial retraction, withdrawal, removal        retracted    blocked
expression of concern                                      concern      warning
correction, erratum, corrigendum, addendum, new version …  corrected    warning
a notice type we do not know                               unknown      warning
no usable answer (404, 5xx, bad JSON, network down)        unknown      warning
nothing                                                    clean        —
=========================================================  ===========  ========

The most severe notice decides the status and the notice named in the report; every
distinct notice that matters is its own problem, so a correction after a concern is not lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clinicpress.checks.integrity.record import Notice, Record
from clinicpress.checks.model import Check, Integrity, Problem, Severity

__all__ = ["CHECK", "Integrity", "IntegrityVerdict", "classify", "judge"]

CHECK = Check.INTEGRITY

RETRACTED_KINDS = frozenset({"retraction", "partial_retraction", "withdrawal", "removal"})
CONCERN_KINDS = frozenset({"expression_of_concern"})
CORRECTED_KINDS = frozenset(
    {"correction", "erratum", "corrigendum", "addendum", "clarification", "new_version", "new_edition"}
)
# Worst first: the status of a record with several notices.
_RANK: dict[Integrity, int] = {"retracted": 4, "concern": 3, "unknown": 2, "corrected": 1, "clean": 0}
_WORDS = {
    "retraction": "retracted",
    "partial_retraction": "partially retracted",
    "withdrawal": "withdrawn",
    "removal": "removed",
    "expression_of_concern": "under an expression of concern",
}
_WHO = {"publisher": "the publisher", "retraction-watch": "Retraction Watch", "pubmed": "PubMed"}


def classify(kind: str) -> Integrity:
    """The status one notice type implies; a type we do not know is ``unknown``, never clean."""
    if kind in RETRACTED_KINDS:
        return "retracted"
    if kind in CONCERN_KINDS:
        return "concern"
    if kind in CORRECTED_KINDS:
        return "corrected"
    return "unknown"


@dataclass(frozen=True)
class IntegrityVerdict:
    status: Integrity
    notice: str | None  # the deciding notice's DOI (doi:10.…) or URL
    problems: tuple[Problem, ...]


def _describe(notices: Sequence[Notice]) -> str:
    """One notice as a sentence part: ``retracted (notice doi:…, dated …, reported by …)``."""
    first = notices[0]
    words = first.kind.replace("_", " ")
    what = _WORDS.get(first.kind) or f"has {'an' if words[:1] in 'aeiou' else 'a'} {words}"
    if first.kind not in _WORDS and classify(first.kind) == "unknown":
        what = f"has a notice of a type we do not know ({first.label or words})"
    details: list[str] = []
    if first.reference:
        details.append(f"notice {first.reference}")
    when = min((n.date for n in notices if n.date), default=None)
    if when:
        details.append(f"dated {when.isoformat()}")
    ids = sorted({n.record_id for n in notices if n.record_id and n.source == "retraction-watch"})
    who = sorted(
        _WHO[n.source] + (f" (record {', '.join(ids)})" if n.source == "retraction-watch" and ids else "")
        for n in {n.source: n for n in notices if n.source in _WHO}.values()
    )
    if who:
        details.append(f"reported by {' and '.join(who)}")
    if first.label and first.source == "pubmed":
        details.append(first.label)
    return f"{what} ({', '.join(details)})" if details else what


def _grouped(notices: Sequence[Notice]) -> list[list[Notice]]:
    """Notices about one event (same kind class and notice DOI/URL) reported twice are one."""
    groups: dict[tuple[str, str], list[Notice]] = {}
    for notice in notices:
        key = (
            classify(notice.kind) + ("" if notice.kind != "partial_retraction" else "-partial"),
            (notice.reference or notice.kind).casefold(),
        )
        groups.setdefault(key, []).append(notice)
    return sorted(groups.values(), key=lambda g: -_RANK[classify(g[0].kind)])


def judge(record: Record, *, where: str) -> IntegrityVerdict:
    """The verdict on one record; ``where`` names the source in messages (``source 2``)."""
    subject = f"{where} {record.shown}"
    if not record.answered:
        if record.not_found:
            registry = "Crossref" if record.registry == "crossref" else "PubMed"
            message = f"{subject}: not registered at {registry} ({record.error}); check the identifier"
        else:
            message = f"{subject}: integrity unknown — {record.error}"
        return IntegrityVerdict(
            "unknown", None, (Problem(check=CHECK, severity=Severity.WARNING, message=message),)
        )
    if not record.notices:
        return IntegrityVerdict("clean", None, ())
    groups = _grouped(record.notices)
    problems: list[Problem] = []
    for group in groups:
        status = classify(group[0].kind)
        if status == "retracted":
            severity = Severity.BLOCKED
            advice = "; replace this source"
        elif status == "unknown":
            severity = Severity.WARNING
            advice = "; a person must read the notice"
        else:
            severity = Severity.WARNING
            advice = "; read the notice and check the claim still holds"
        problems.append(
            Problem(check=CHECK, severity=severity, message=f"{subject}: {_describe(group)}{advice}")
        )
    worst = groups[0]
    return IntegrityVerdict(classify(worst[0].kind), worst[0].reference, tuple(problems))
