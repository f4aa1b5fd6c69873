"""Read a Crossref ``GET works/{doi}`` reply (JSON) into a :class:`Record`. Pure: no I/O.

The shapes follow Crossref's documentation ("Get Retraction Watch metadata from Crossref's
API", 2025): a work lists the notices about it in ``message.updated-by``, each like::

    {"updated": {"date-parts": [[2023, 1, 5]], "date-time": "2023-01-05T00:00:00Z", "timestamp": …},
     "DOI": "10.xxxx/notice", "type": "retraction", "label": "Retraction",
     "source": "retraction-watch" | "publisher", "record-id": 12345}

Older records spell the type with hyphens or capitals, omit ``source`` (publisher-deposited
Crossmark) or give only ``date-parts``; all are read. A notice record itself carries
``update-to`` (what it updates): citing a notice is recorded as ``is_notice``. Anything
unreadable becomes ``error`` (the verdict is then ``unknown``), never a clean record.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from clinicpress.checks.integrity.record import Notice, NoticeSource, Record, normalise_kind

__all__ = ["parse_work"]

_TAGS = re.compile(r"<[^>]+>")
_YEAR_FIELDS = ("published-print", "published-online", "issued", "published", "created")


def _text(value: object) -> str:
    """A title as plain text: JATS/HTML tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(_TAGS.sub(" ", str(value))).split())


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _titles(message: Mapping[str, Any]) -> tuple[str, ...]:
    titles = [_text(t) for t in _strings(message.get("title"))]
    subtitles = [_text(s) for s in _strings(message.get("subtitle"))]
    found = list(titles)
    if titles and subtitles:
        found.append(f"{titles[0]}: {subtitles[0]}")
    for extra in ("original-title", "short-title"):
        found.extend(_text(t) for t in _strings(message.get(extra)))
    return tuple(dict.fromkeys(t for t in found if t))


def _authors(message: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    authors = message.get("author")
    for author in authors if isinstance(authors, list) else []:
        if not isinstance(author, Mapping):
            continue
        family = author.get("family") or author.get("name")
        if isinstance(family, str) and family.strip():
            names.append(_text(family))
    return tuple(names)


def _date_of(value: object) -> date | None:
    """A Crossref date object: ``date-parts`` (possibly only a year), else ``date-time``."""
    if not isinstance(value, Mapping):
        return None
    parts = value.get("date-parts")
    if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
        numbers = [p for p in parts[0] if isinstance(p, int) and not isinstance(p, bool)]
        if numbers and len(numbers) == len(parts[0]):
            year, month, day = (*numbers, 1, 1)[:3]
            with contextlib.suppress(ValueError):
                return date(year, month, day)
    stamp = value.get("date-time")
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).date()
    return None


def _years(message: Mapping[str, Any]) -> tuple[int, ...]:
    years: list[int] = []
    for name in _YEAR_FIELDS:
        found = _date_of(message.get(name))
        if found is not None:
            years.append(found.year)
    return tuple(dict.fromkeys(years))


def _source(value: object) -> NoticeSource:
    text = normalise_kind(value)
    if text in ("", "unknown"):
        return "publisher"  # older Crossmark updates have no "source": the publisher deposited them
    if text == "retraction_watch":
        return "retraction-watch"
    if text == "publisher":
        return "publisher"
    return "unknown"


def _notice(entry: Mapping[str, Any]) -> Notice:
    record_id = entry.get("record-id")
    doi = entry.get("DOI") or entry.get("doi")
    label = entry.get("label")
    return Notice(
        kind=normalise_kind(entry.get("type")),
        source=_source(entry.get("source")),
        doi=str(doi).strip() if isinstance(doi, str) and doi.strip() else None,
        date=_date_of(entry.get("updated")),
        record_id=str(record_id) if record_id not in (None, "") else None,
        label=_text(label) if isinstance(label, str) else "",
    )


def parse_work(reply: object, *, key: str, shown: str) -> Record:
    """The record in one ``works/{doi}`` reply; ``error`` set when the reply is not a work."""
    message = reply.get("message") if isinstance(reply, Mapping) else None
    if (
        not isinstance(reply, Mapping)
        or reply.get("status") not in (None, "ok")
        or not isinstance(message, Mapping)
    ):
        return Record(
            key=key, shown=shown, registry="crossref", error="Crossref's reply is not a work record"
        )
    notices: list[Notice] = []
    updated_by = message.get("updated-by")
    if isinstance(updated_by, Mapping):  # one notice not wrapped in a list
        updated_by = [updated_by]
    for entry in updated_by if isinstance(updated_by, list) else []:
        # An entry we cannot read is still a notice: "unknown", never dropped as if clean.
        notices.append(_notice(entry) if isinstance(entry, Mapping) else Notice(kind="unknown"))
    update_to = message.get("update-to")
    return Record(
        key=key,
        shown=shown,
        registry="crossref",
        titles=_titles(message),
        authors=_authors(message),
        years=_years(message),
        notices=tuple(notices),
        is_notice=isinstance(update_to, list) and bool(update_to),
    )
