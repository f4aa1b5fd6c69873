"""What a registry (Crossref, PubMed) says about one cited work: the pure data the verdict reads.

A :class:`Record` is built by a parser from one reply (``crossref.py``, ``pubmed.py``) or by
the client when no usable reply came (``error`` set: the verdict is then ``unknown``, never
``clean``). Records are plain, frozen and JSON-round-trippable: they are cached and handed
between Prefect tasks.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Notice", "Record", "normalise_kind"]

NoticeSource = Literal["publisher", "retraction-watch", "pubmed", "unknown"]


def normalise_kind(value: object) -> str:
    """``Expression-of-Concern``, ``expression of concern`` → ``expression_of_concern``."""
    text = str(value or "").strip().casefold()
    return re.sub(r"[\s\-_/]+", "_", text).strip("_") or "unknown"


class Notice(BaseModel):
    """One update notice about the cited work: a retraction, a correction, a concern, …"""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(description="Normalised update type: retraction, correction, expression_of_concern, …")
    source: NoticeSource = "unknown"  # who reported it
    doi: str | None = None
    url: str | None = None  # where the notice is, when there is no DOI (a PubMed record)
    date: dt.date | None = None
    record_id: str | None = None  # Retraction Watch's record id
    label: str = ""  # as the registry spells it ("Retraction", "Erratum in")

    @property
    def reference(self) -> str | None:
        """The notice as a report names it: its DOI, else its URL."""
        return f"doi:{self.doi}" if self.doi else self.url


class Record(BaseModel):
    """The registered metadata of one DOI or PMID, or why there is none."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="Identifier.key: doi:10.… (casefolded) or pmid:123")
    shown: str = Field(description="The identifier as a report prints it: doi:10.… or pmid:123")
    registry: Literal["crossref", "pubmed"]
    titles: tuple[str, ...] = ()  # the registered title, with variants (subtitle, original title)
    authors: tuple[str, ...] = ()  # family names, in order
    years: tuple[int, ...] = ()  # publication years the registry gives (print, online, issued)
    notices: tuple[Notice, ...] = ()
    is_notice: bool = False  # the cited work is itself a retraction/correction notice
    error: str | None = None  # no usable answer: one line saying why
    not_found: bool = False  # the registry answered that it does not know the identifier
    network: bool = False  # the registry could not be reached at all (DNS/connect)

    @property
    def answered(self) -> bool:
        return self.error is None
