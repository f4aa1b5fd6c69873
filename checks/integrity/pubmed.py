"""Read an E-utilities ``esummary.fcgi?db=pubmed&retmode=json`` reply into records. Pure: no I/O.

One reply may summarise several PMIDs: ``result`` holds ``uids`` and one object per uid::

    {"result": {"uids": ["123"], "123": {"uid": "123", "title": "…", "pubdate": "2018 Jul 3",
      "authors": [{"name": "Jones JL", "authtype": "Author"}],
      "pubtype": ["Journal Article", "Retracted Publication"],
      "references": [{"refsource": "Lancet. 2020;…", "reftype": "Retraction in", "pmid": "456"}]}}}

A uid that PubMed cannot summarise carries ``"error"``: its record is ``unknown``. Publication
types say what the work *is* ("Retracted Publication"; "Retraction of Publication" and
"Published Erratum" mean the work is itself a notice); ``references`` (when present) name the
notices about it ("Retraction in", "Erratum in", "Expression of concern in", …).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from clinicpress.checks.integrity.record import Notice, Record

__all__ = ["parse_summary"]

# reftype (normalised) → notice kind: PubMed's comment/correction relations about the work.
_RELATIONS = {
    "retraction in": "retraction",
    "partial retraction in": "partial_retraction",
    "erratum in": "erratum",
    "corrected and republished in": "correction",
    "expression of concern in": "expression_of_concern",
}
_RETRACTED_TYPES = {"retracted publication": "retraction"}
_NOTICE_TYPES = {"retraction of publication", "published erratum", "expression of concern"}
_YEAR = re.compile(r"\b(1[89]\d\d|2[01]\d\d)\b")


def _family(name: str) -> str:
    """``Jones JL`` → ``Jones``; ``van der Berg A`` → ``van der Berg`` (PubMed's "Surname Initials")."""
    parts = name.split()
    if len(parts) > 1 and parts[-1].isupper() and len(parts[-1]) <= 4:
        parts = parts[:-1]
    return " ".join(parts)


def _relations(summary: Mapping[str, Any], pubmed_resolver: str) -> list[Notice]:
    notices: list[Notice] = []
    for field in ("references", "commentscorrections", "commentscorrectionslist"):
        entries = summary.get(field)
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, Mapping):
                continue
            reftype = " ".join(str(entry.get("reftype") or entry.get("type") or "").split()).casefold()
            kind = _RELATIONS.get(reftype)
            if kind is None:
                continue  # "Comment in", "Cites", …: not about the work's standing
            pmid = str(entry.get("pmid") or "").strip()
            notices.append(
                Notice(
                    kind=kind,
                    source="pubmed",
                    url=f"{pubmed_resolver}{pmid}/" if pmid.isdigit() else None,
                    label=" ".join(str(entry.get("refsource") or reftype).split())[:200],
                )
            )
    return notices


def _one(uid: str, summary: object, pubmed_resolver: str) -> Record:
    key, shown = f"pmid:{uid}", f"pmid:{uid}"
    if not isinstance(summary, Mapping):
        return Record(key=key, shown=shown, registry="pubmed", error="PubMed's reply has no summary for it")
    if summary.get("error"):
        text = " ".join(str(summary["error"]).split())[:120]
        return Record(key=key, shown=shown, registry="pubmed", error=text, not_found=True)
    pubtypes = [" ".join(str(t).split()).casefold() for t in summary.get("pubtype") or [] if t]
    notices = _relations(summary, pubmed_resolver)
    for pubtype in pubtypes:
        kind = _RETRACTED_TYPES.get(pubtype)
        if kind and not any(n.kind == kind for n in notices):
            # The notice itself is not named: the work's own PubMed page carries the banner.
            notices.append(
                Notice(
                    kind=kind, source="pubmed", url=f"{pubmed_resolver}{uid}/", label="Retracted Publication"
                )
            )
    authors = summary.get("authors")
    names = [
        _family(str(a.get("name")))
        for a in (authors if isinstance(authors, list) else [])
        if isinstance(a, Mapping) and a.get("name") and a.get("authtype", "Author") == "Author"
    ]
    years = [
        int(m.group(1)) for f in ("pubdate", "epubdate") if (m := _YEAR.search(str(summary.get(f) or "")))
    ]
    title = " ".join(str(summary.get("title") or "").split())
    return Record(
        key=key,
        shown=shown,
        registry="pubmed",
        titles=(title,) if title else (),
        authors=tuple(n for n in names if n),
        years=tuple(dict.fromkeys(years)),
        notices=tuple(notices),
        is_notice=any(t in _NOTICE_TYPES for t in pubtypes),
    )


def parse_summary(reply: object, pmids: Sequence[str], *, pubmed_resolver: str) -> dict[str, Record]:
    """One record per asked PMID; a PMID the reply leaves out is ``unknown``, never clean."""
    result = reply.get("result") if isinstance(reply, Mapping) else None
    records: dict[str, Record] = {}
    for pmid in pmids:
        if not isinstance(result, Mapping):
            why = "PubMed's reply has no result"
            if isinstance(reply, Mapping) and reply.get("error"):
                why = f"PubMed answered an error ({' '.join(str(reply['error']).split())[:120]})"
            records[pmid] = Record(key=f"pmid:{pmid}", shown=f"pmid:{pmid}", registry="pubmed", error=why)
            continue
        records[pmid] = _one(pmid, result.get(pmid), pubmed_resolver)
    return records
