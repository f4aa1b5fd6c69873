"""A reviewer against the NPI registry: the NPPES NPI Registry API, version 2.1 (issue 25).

Pure: :func:`query_params` builds the request, :func:`parse_registry` reads the answer,
:func:`judge_reviewer` gives the verdict (names compared by ``names.py``);
:func:`lookup_npis` is the I/O (through a ``JsonGet``, and a cache for check/publish).

Answer shapes (the API's answers as its consumers record them; tests/authority_standin.py
serves them): ``{"result_count": N, "results": [{"number", "enumeration_type": "NPI-1",
"basic": {"first_name", "last_name", "middle_name", "credential", "status": "A",
"enumeration_date", "name_prefix", "name_suffix"}, "taxonomies": [{"code", "desc", "primary",
"state", "license", "taxonomy_group"}], …}]}``; ``number`` is an integer in older answers and a
string in newer ones. Not in the registry: ``{"result_count": 0, "results": []}``. Some errors
are HTTP 200 with ``{"Errors": [{"description", "field", "number"}]}``; among them a
deactivated NPI (``"CMS deactivated NPI …. The provider can no longer use this NPI."``), which
is the registry saying so: ``inactive``. Any other error, or a shape we do not know: unverified.

What this proves (docs/writing/verified.md): the NPI exists, is active, and is registered
to a person of the name printed. The registry is self-reported: it does not show that this
clinician read this article.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from clinicpress import clock
from clinicpress.checks.authority.cache import AuthorityCache, fingerprint
from clinicpress.checks.authority.http import JsonGet, Reply
from clinicpress.checks.authority.license import read_day
from clinicpress.checks.authority.names import credentials as credentials_of
from clinicpress.checks.authority.names import name_tokens, names_match
from clinicpress.checks.model import Check, Problem, Severity
from clinicpress.settings.registries import ReviewerRegistrySettings, npi_check_digit, npi_problem

__all__ = [
    "API_VERSION",
    "NpiAnswer",
    "NpiRecord",
    "ReviewerCheck",
    "ReviewerStatus",
    "Taxonomy",
    "answer_from",
    "judge_reviewer",
    "lookup_npis",
    "name_tokens",
    "names_match",
    "npi_check_digit",
    "npi_problem",
    "parse_registry",
    "query_params",
    "reviewer_problems",
]

API_VERSION = "2.1"
CHECK = Check.REVIEWER_REGISTRY  # Problem.check, and the JSON key of check --format json
ReviewerStatus = Literal["ok", "not-found", "inactive", "name-mismatch", "unverified"]

_DEACTIVATED = re.compile(r"\bdeactivated\b", re.IGNORECASE)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Taxonomy(_Frozen):
    code: str = ""
    desc: str = ""
    primary: bool = False
    state: str = ""
    license: str = ""


class NpiRecord(_Frozen):
    """The parts of one NPI record the verdict reads (as the registry spells them)."""

    number: str
    enumeration_type: str = ""  # NPI-1: a person; NPI-2: an organization
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    organization_name: str = ""
    credential: str = ""
    status: str = ""  # "A": active
    enumeration_date: str = ""
    taxonomies: tuple[Taxonomy, ...] = ()

    def person(self) -> str:
        """The registered name as printed by the registry: ``JANE Q DOE``."""
        return " ".join(p for p in (self.first_name, self.middle_name, self.last_name) if p)


class NpiAnswer(_Frozen):
    """What the registry answered about one NPI, or why there is no answer."""

    npi: str
    read_at: datetime | None = None  # None: no answer
    record: NpiRecord | None = None  # None with an answer: not in the registry (or deactivated)
    deactivated: str | None = None  # the registry's words when it reports the NPI deactivated
    error: str | None = None
    network: bool = False

    @property
    def answered(self) -> bool:
        return self.error is None and self.read_at is not None


class ReviewerCheck(_Frozen):
    """The verdict on one reviewer's NPI, with every problem it raises (warnings included)."""

    npi: str
    status: ReviewerStatus
    read_at: datetime | None = None
    record: NpiRecord | None = None
    problems: tuple[Problem, ...] = ()
    network: bool = False

    def as_json(self) -> dict[str, Any]:
        """``"reviewer_registry"`` of one article in ``check --format json`` (docs/architecture.md)."""
        return {"npi": self.npi, "status": self.status}


# -- the request --------------------------------------------------------------------------------


def query_params(npi: str) -> dict[str, str]:
    """The API query for one NPI (whose check digit was verified at load)."""
    return {"version": API_VERSION, "number": npi}


# -- the answer ---------------------------------------------------------------------------------


def _text(value: object) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    text = " ".join(str(value).split())
    return "" if text == "--" else text  # the registry's placeholder for "none"


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: object) -> str | None:
    """``results[].number``: an integer in older answers, a string in newer ones."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None


def _taxonomies(value: object) -> tuple[Taxonomy, ...] | None:
    if value is None:
        return ()
    if not isinstance(value, list):
        return None
    found: list[Taxonomy] = []
    for item in value:
        if not isinstance(item, Mapping):
            return None
        primary = item.get("primary")
        found.append(
            Taxonomy(
                code=_text(item.get("code")),
                desc=_text(item.get("desc")),
                primary=primary is True or (isinstance(primary, str) and primary.upper() in ("Y", "TRUE")),
                state=_text(item.get("state")).upper(),
                license=_text(item.get("license")),
            )
        )
    return tuple(found)


def _errors(errors: object, npi: str, read_at: datetime) -> NpiAnswer:
    items = [e for e in errors if isinstance(e, Mapping)] if isinstance(errors, list) else []
    said = [_text(e.get("description")) for e in items]
    for text in said:
        if _DEACTIVATED.search(text):  # the registry says it: an answer, not a failure
            return NpiAnswer(npi=npi, read_at=read_at, deactivated=_clip(text))
    parts = []
    for item, text in zip(items, said, strict=True):
        where = ", ".join(
            f"{label} {value}"
            for label, value in (("field", _text(item.get("field"))), ("error", _text(item.get("number"))))
            if value
        )
        parts.append(f"{text} ({where})" if where else text)
    shown = "; ".join(p for p in parts if p) or "no description"
    return NpiAnswer(npi=npi, error=_clip(f"the NPI registry answered with an error: {shown}"))


def parse_registry(data: object, npi: str, read_at: datetime) -> NpiAnswer:
    """The registry's reply to :func:`query_params` (``npi``), read at ``read_at``; never raises."""

    def unknown(why: str) -> NpiAnswer:
        return NpiAnswer(npi=npi, error=_clip(why))

    if not isinstance(data, Mapping):
        return unknown("the NPI registry's answer is not an object")
    if "Errors" in data:
        return _errors(data["Errors"], npi, read_at)
    count = data.get("result_count")
    results = data.get("results", [])
    if isinstance(count, bool) or not isinstance(count, int) or not isinstance(results, list):
        return unknown("the NPI registry's answer has no result_count (an answer of a shape we do not know)")
    if count == 0 and not results:
        return NpiAnswer(npi=npi, read_at=read_at)
    mine = [r for r in results if isinstance(r, Mapping) and _number(r.get("number")) == npi]
    if not mine:
        return unknown(f"the NPI registry answered without a record for {npi}")
    result = mine[0]
    basic = result.get("basic")
    taxonomies = _taxonomies(result.get("taxonomies"))
    if not isinstance(basic, Mapping) or taxonomies is None:
        return unknown(f"the NPI registry's record of {npi} has no basic part or unreadable taxonomies")
    status = _text(basic.get("status")).upper()
    if not status:
        return unknown(f"the NPI registry's record of {npi} has no status")
    record = NpiRecord(
        number=npi,
        enumeration_type=_text(result.get("enumeration_type")),
        first_name=_text(basic.get("first_name")),
        middle_name=_text(basic.get("middle_name")),
        last_name=_text(basic.get("last_name")),
        organization_name=_text(basic.get("organization_name")),
        credential=_text(basic.get("credential")),
        status=status,
        enumeration_date=_text(basic.get("enumeration_date")),
        taxonomies=taxonomies,
    )
    return NpiAnswer(npi=npi, read_at=read_at, record=record)


def answer_from(reply: Reply, npi: str, read_at: datetime) -> NpiAnswer:
    if not reply.answered:
        return NpiAnswer(npi=npi, error=reply.error or "no answer", network=reply.network)
    return parse_registry(reply.data, npi, read_at)


# -- the verdict --------------------------------------------------------------------------------


def judge_reviewer(
    name: str, credentials: str | None, npi: str, answer: NpiAnswer, *, state: str | None
) -> ReviewerCheck:
    """The verdict on a review signed ``name`` (``credentials``) with ``npi``. Pure.

    ``state``: the clinic's state (two letters): a taxonomy must carry a license there (None:
    not judged).
    """

    def blocked(status: ReviewerStatus, message: str) -> ReviewerCheck:
        problem = Problem(check=CHECK, severity=Severity.BLOCKED, message=message)
        return ReviewerCheck(
            npi=npi, status=status, read_at=answer.read_at, record=answer.record, problems=(problem,)
        )

    if not answer.answered or answer.read_at is None:
        message = f"NPI {npi} of {name}: the NPI registry could not be read ({answer.error}); unverified"
        problem = Problem(check=CHECK, severity=Severity.WARNING, message=message)
        return ReviewerCheck(npi=npi, status="unverified", problems=(problem,), network=answer.network)
    read = read_day(answer.read_at)
    if answer.deactivated is not None:
        return blocked("inactive", f"NPI {npi} of {name} is deactivated: {answer.deactivated} (read {read})")
    record = answer.record
    if record is None:
        return blocked("not-found", f"NPI {npi} is not in the NPI registry (read {read})")
    if record.status != "A":
        return blocked(
            "inactive",
            f"NPI {npi} of {name} is not active in the NPI registry (status {record.status}; read {read})",
        )
    if record.enumeration_type == "NPI-2" or not (record.first_name and record.last_name):
        held = record.organization_name or "an organization"
        return blocked(
            "name-mismatch",
            f"NPI {npi} belongs to {held}, not to a person; the review names {name} (read {read})",
        )
    if not names_match(name, record.first_name, record.last_name):
        return blocked(
            "name-mismatch",
            f"NPI {npi} is registered to {record.person()}; the review names {name} (read {read})",
        )
    warnings: list[str] = []
    if credentials and credentials.strip():
        registered = credentials_of(record.credential)
        if not registered:
            warnings.append(
                f"the NPI registry lists no credential for NPI {npi} ({record.person()}); "
                f"the review says {credentials}"
            )
        elif not registered & credentials_of(credentials):
            warnings.append(
                f"the review says {credentials}; the NPI registry lists {record.credential} for NPI {npi} "
                f"({record.person()})"
            )
    if state and not any(t.state == state.upper() and t.license for t in record.taxonomies):
        listed = ", ".join(f"{t.desc or t.code} in {t.state or 'no state'}" for t in record.taxonomies)
        warnings.append(
            f"no taxonomy of NPI {npi} ({record.person()}) carries a license in {state.upper()}"
            + (f" (the registry lists: {listed})" if listed else "")
        )
    return ReviewerCheck(
        npi=npi,
        status="ok",
        read_at=answer.read_at,
        record=record,
        problems=tuple(
            Problem(check=CHECK, severity=Severity.WARNING, message=f"{w} (read {read})") for w in warnings
        ),
    )


def reviewer_problems(checks: Sequence[ReviewerCheck]) -> list[Problem]:
    """Every problem of ``checks``, in order; one line when the registry could not be reached at all."""
    unreached = [c for c in checks if c.status == "unverified" and c.network]
    if len(unreached) > 1 and len(unreached) == len(checks):
        npis = ", ".join(c.npi for c in unreached)
        message = f"network down: the NPI registry could not be read; NPIs {npis} unverified"
        return [Problem(check=CHECK, severity=Severity.WARNING, message=message)]
    return [problem for item in checks for problem in item.problems]


# -- the lookup (I/O) ---------------------------------------------------------------------------


def _cached(cache: AuthorityCache | None, npis: Sequence[str], mark: str) -> dict[str, NpiAnswer]:
    if cache is None:
        return {}
    found: dict[str, NpiAnswer] = {}
    for text in cache.get_many([f"npi:{n}" for n in npis], mark).values():
        try:
            answer = NpiAnswer.model_validate_json(text)
        except (ValidationError, ValueError):
            continue
        if answer.answered:
            found[answer.npi] = answer
    return found


async def lookup_npis(
    npis: Sequence[str],
    settings: ReviewerRegistrySettings,
    get: JsonGet,
    *,
    cache: AuthorityCache | None = None,
) -> dict[str, NpiAnswer]:
    """The registry's answer for every distinct NPI, one request each (``cache`` None: monitor).

    An NPI that fails its check digit is never sent (it is exit 2 at load; here it is unverified).
    """
    wanted = list(dict.fromkeys(npis))
    mark = fingerprint("npi", settings.url)
    answers = _cached(cache, wanted, mark)

    async def ask(npi: str) -> NpiAnswer:
        problem = npi_problem(npi)
        if problem is not None:
            return NpiAnswer(npi=npi, error=f"{npi} {problem}")
        return answer_from(await get(settings.url, query_params(npi)), npi, clock.now())

    fresh = await asyncio.gather(*(ask(n) for n in wanted if n not in answers))
    answers.update((a.npi, a) for a in fresh)
    if cache is not None:
        cache.put_many({f"npi:{a.npi}": a.model_dump_json() for a in fresh if a.answered}, mark)
    return {n: answers[n] for n in wanted}
