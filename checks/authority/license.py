"""A DHCS license against the state's record: DHCS's ArcGIS layer of licensed and certified
SUD recovery and treatment facilities (issue 25; docs/writing/verified.md).

The layer has no status column and no history: a program is current when it is listed, and
what it lists is the record. Pure: :func:`query_params` builds the request, :func:`parse_layer`
reads the answer, :func:`judge_license` gives the verdict; :func:`lookup_licenses` is the I/O
(through a :class:`~clinicpress.checks.authority.http.JsonGet`, and a cache for check/publish).

Answer shapes (ArcGIS REST API, "Query (Feature Service/Layer)" and "featureSet object"):
``{"fields": [{"name", "type", …}], "features": [{"attributes": {…}}]}``; a date field
(``esriFieldTypeDate``) is epoch milliseconds in UTC, and DHCS's ``Lic_Expiration_Date`` has
been published as ``M/D/YYYY`` text: both are read. An error is HTTP 200 with
``{"error": {"code": 400, "message": …, "details": […]}}``. Anything else is no answer:
``unverified``, never ok. "Not listed" needs evidence that the layer asked is DHCS's: an empty
``features`` list from a reply whose ``fields`` name ``Application_Number``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from clinicpress import clock
from clinicpress.checks.authority.cache import AuthorityCache, fingerprint
from clinicpress.checks.authority.http import JsonGet, Reply
from clinicpress.checks.model import Check, Problem, Severity
from clinicpress.settings.registries import LicenseRegistrySettings
from clinicpress.site import License, format_date

__all__ = [
    "AUTHORITY",
    "LicenseAnswer",
    "LicenseCheck",
    "LicenseStatus",
    "StateRecord",
    "answer_from",
    "issued_by_dhcs",
    "judge_license",
    "license_problems",
    "lookup_licenses",
    "parse_expiry",
    "parse_layer",
    "query_params",
    "read_day",
    "where_clause",
]

AUTHORITY = "DHCS"
CHECK = Check.LICENSE_REGISTRY  # Problem.check, and the JSON key of check --format json
LicenseStatus = Literal["ok", "mismatch", "delisted", "unverified"]

_MDY = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*")
# Epoch milliseconds a license expiry can sensibly carry: 1970 to 2200.
_MAX_EPOCH_MS = 7_258_118_400_000


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateRecord(_Frozen):
    """One row of DHCS's layer, as listed (text as DHCS publishes it, usually upper case)."""

    program_id: str  # Application_Number
    expires: date  # Lic_Expiration_Date
    name: str = ""  # Facility_Name
    legal_entity: str = ""  # Legal_Entity_Name
    address: str = ""  # Facility_Address1
    city: str = ""  # Facility_City
    zip: str = ""  # Facility_Zip
    kind: str = ""  # Type_of_Application (licensed and/or certified)
    program_code: str = ""  # Program_Code

    def address_line(self) -> str:
        place = " ".join(part for part in (self.city, self.zip) if part)
        return ", ".join(part for part in (self.address, place) if part)

    def describe(self) -> str:
        """``NAME, ADDRESS, CITY ZIP; TYPE; valid through April 30, 2027``."""
        head = ", ".join(part for part in (self.name, self.address_line()) if part)
        parts = [head, self.kind, f"valid through {format_date(self.expires)}"]
        return "; ".join(part for part in parts if part)


class LicenseAnswer(_Frozen):
    """What DHCS answered about one program id: its rows (none: not listed), or why no answer.

    Kept as is in the cache and, by monitor, in the registry's snapshots (the layer has none).
    """

    program_id: str
    read_at: datetime | None = None  # when DHCS answered; None: no answer
    listed: tuple[StateRecord, ...] = ()
    error: str | None = None  # no usable answer: why (a sentence fragment)
    network: bool = False  # no answer because nothing could be reached

    @property
    def answered(self) -> bool:
        return self.error is None and self.read_at is not None


class LicenseCheck(_Frozen):
    """The verdict on one license at the authority."""

    program_id: str
    status: LicenseStatus
    listed_expires: date | None = None
    read_at: datetime | None = None
    record: StateRecord | None = None  # the state's record, when exactly one row is listed
    message: str = ""  # one line: the problem, or (ok) what the state lists
    network: bool = False

    def as_json(self) -> dict[str, Any]:
        """One entry of ``"license_registry"`` in ``check --format json`` (docs/architecture.md)."""
        return {
            "program_id": self.program_id,
            "status": self.status,
            "listed_expires": self.listed_expires.isoformat() if self.listed_expires else None,
            "read_at": self.read_at.isoformat(timespec="seconds") if self.read_at else None,
        }


# -- the request --------------------------------------------------------------------------------


def where_clause(program_id: str) -> str:
    """``Application_Number='190655AP'``: a standard SQL string literal (a quote is doubled)."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in program_id):
        raise ValueError(f"{program_id!r} contains control characters")
    return "Application_Number='" + program_id.replace("'", "''") + "'"


def query_params(program_id: str) -> dict[str, str]:
    """The layer query for one program id: every field, no geometry, JSON."""
    return {"where": where_clause(program_id), "outFields": "*", "returnGeometry": "false", "f": "json"}


def issued_by_dhcs(lic: License) -> bool:
    """Whether DHCS issued ``lic`` (only those are in DHCS's list)."""
    return lic.issued_by_dhcs()


# -- the answer ---------------------------------------------------------------------------------


def parse_expiry(value: object) -> date | None:
    """``M/D/YYYY`` text, or an ArcGIS date (epoch milliseconds, UTC); None for anything else."""
    if isinstance(value, bool):  # a bool is an int to Python, never a date to ArcGIS
        return None
    if isinstance(value, int | float):
        if not 0 <= value <= _MAX_EPOCH_MS:
            return None
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)).date()
    if isinstance(value, str) and (match := _MDY.fullmatch(value)):
        month, day, year = (int(group) for group in match.groups())
        try:
            return date(year, month, day)
        except ValueError:
            return None
    return None


def _text(value: object) -> str:
    if value is None or isinstance(value, bool):
        return ""
    return " ".join(str(value).split()) if isinstance(value, str | int | float) else ""


def _same_id(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _arcgis_error(error: object) -> str:
    if not isinstance(error, Mapping):
        return "DHCS's service answered with an error"
    parts = [_text(error.get("message"))]
    details = error.get("details")
    if isinstance(details, list):
        parts += [_text(d) for d in details]
    said = "; ".join(dict.fromkeys(p for p in parts if p))
    code = error.get("code")
    shown = f"{code}: {said}" if isinstance(code, int) and not isinstance(code, bool) else said
    return _clip(f"DHCS's service answered with an error ({shown})" if shown else "DHCS's service erred")


def _names_the_layer(data: Mapping[str, Any]) -> bool:
    fields = data.get("fields")
    return isinstance(fields, list) and any(
        isinstance(f, Mapping) and f.get("name") == "Application_Number" for f in fields
    )


def parse_layer(data: object, program_id: str, read_at: datetime) -> LicenseAnswer:
    """DHCS's reply to :func:`query_params` (``program_id``), read at ``read_at``; never raises."""

    def unknown(why: str) -> LicenseAnswer:
        return LicenseAnswer(program_id=program_id, error=_clip(why))

    if not isinstance(data, Mapping):
        return unknown("DHCS's answer is not a feature set")
    if "error" in data:
        return unknown(_arcgis_error(data["error"]))
    features = data.get("features")
    if not isinstance(features, list):
        return unknown("DHCS's answer has no list of features (an answer of a shape we do not know)")
    rows: list[StateRecord] = []
    for feature in features:
        attributes = feature.get("attributes") if isinstance(feature, Mapping) else None
        if not isinstance(attributes, Mapping):
            return unknown("a feature in DHCS's answer has no attributes")
        listed_id = attributes.get("Application_Number")
        if not isinstance(listed_id, str) or not _same_id(listed_id, program_id):
            # The layer did not apply our filter: this is not an answer about program_id.
            return unknown(f"DHCS answered with another program's row ({_text(listed_id) or 'no id'})")
        raw_expiry = attributes.get("Lic_Expiration_Date")
        expires = parse_expiry(raw_expiry)
        if expires is None:
            return unknown(f"DHCS lists {program_id} with an expiry we cannot read ({_text(raw_expiry)!r})")
        rows.append(
            StateRecord(
                program_id=listed_id.strip(),
                expires=expires,
                name=_text(attributes.get("Facility_Name")),
                legal_entity=_text(attributes.get("Legal_Entity_Name")),
                address=_text(attributes.get("Facility_Address1")),
                city=_text(attributes.get("Facility_City")),
                zip=_text(attributes.get("Facility_Zip")),
                kind=_text(attributes.get("Type_of_Application")),
                program_code=_text(attributes.get("Program_Code")),
            )
        )
    if not rows and not _names_the_layer(data):
        return unknown("DHCS's answer lists nothing and does not name the layer's fields (not its layer?)")
    return LicenseAnswer(program_id=program_id, read_at=read_at, listed=tuple(rows))


def answer_from(reply: Reply, program_id: str, read_at: datetime) -> LicenseAnswer:
    """The answer one GET gave (``read_at``: when it came back)."""
    if not reply.answered:
        return LicenseAnswer(program_id=program_id, error=reply.error or "no answer", network=reply.network)
    return parse_layer(reply.data, program_id, read_at)


# -- the verdict --------------------------------------------------------------------------------


def read_day(read_at: datetime) -> str:
    """The day an answer was read, where the clinic is: ``2026-12-07``."""
    return read_at.astimezone().date().isoformat()


def judge_license(lic: License, answer: LicenseAnswer) -> LicenseCheck:
    """The verdict on ``lic`` (as typed in site.toml) given DHCS's ``answer``. Pure."""
    pid = lic.program_id
    if not answer.answered or answer.read_at is None:
        return LicenseCheck(
            program_id=pid,
            status="unverified",
            message=f"license {pid}: DHCS's list could not be read ({answer.error}); unverified",
            network=answer.network,
        )
    read = read_day(answer.read_at)
    if not answer.listed:
        return LicenseCheck(
            program_id=pid,
            status="delisted",
            read_at=answer.read_at,
            message=f"{pid} is not in {AUTHORITY}'s list of licensed and certified facilities (read {read})",
        )
    expiries = sorted({row.expires for row in answer.listed})
    listed = " and ".join(format_date(day) for day in expiries)
    single = answer.listed[0] if len(answer.listed) == 1 else None
    if lic.expires not in expiries:
        return LicenseCheck(
            program_id=pid,
            status="mismatch",
            listed_expires=expiries[0] if len(expiries) == 1 else None,
            read_at=answer.read_at,
            record=single,
            message=(
                f"license {pid}: site.toml says {format_date(lic.expires)}; "
                f"{AUTHORITY} lists {listed} (read {read})"
            ),
        )
    if len(expiries) > 1:  # the typed date is one of several: which one is the license's is unknown
        return LicenseCheck(
            program_id=pid,
            status="unverified",
            read_at=answer.read_at,
            message=f"license {pid}: {AUTHORITY} lists it {len(answer.listed)} times, expiring {listed} "
            f"(read {read}); unverified",
        )
    record = single or answer.listed[0]
    return LicenseCheck(
        program_id=pid,
        status="ok",
        listed_expires=expiries[0],
        read_at=answer.read_at,
        record=record,
        message=f"{AUTHORITY} lists {pid}: {record.describe()} (read {read})",
    )


def license_problems(checks: Sequence[LicenseCheck]) -> list[Problem]:
    """mismatch/delisted block, unverified warns; one line when DHCS could not be reached at all."""
    unreached = [c for c in checks if c.status == "unverified" and c.network]
    problems: list[Problem] = []
    if len(unreached) > 1 and len(unreached) == len(checks):
        ids = ", ".join(c.program_id for c in unreached)
        return [
            Problem(
                check=CHECK,
                severity=Severity.WARNING,
                message=f"network down: {AUTHORITY}'s list could not be read; licenses {ids} unverified",
            )
        ]
    for item in checks:
        if item.status in ("mismatch", "delisted"):
            problems.append(Problem(check=CHECK, severity=Severity.BLOCKED, message=item.message))
        elif item.status == "unverified":
            problems.append(Problem(check=CHECK, severity=Severity.WARNING, message=item.message))
    return problems


# -- the lookup (I/O) ---------------------------------------------------------------------------


def _key(program_id: str) -> str:
    return f"dhcs:{program_id.strip().casefold()}"


def _cached(cache: AuthorityCache | None, ids: Sequence[str], mark: str) -> dict[str, LicenseAnswer]:
    if cache is None:
        return {}
    found: dict[str, LicenseAnswer] = {}
    for key, text in cache.get_many([_key(i) for i in ids], mark).items():
        try:
            answer = LicenseAnswer.model_validate_json(text)
        except (ValidationError, ValueError):
            continue
        if answer.answered:
            found[key] = answer
    return found


async def lookup_licenses(
    licenses: Sequence[License],
    settings: LicenseRegistrySettings,
    get: JsonGet,
    *,
    cache: AuthorityCache | None = None,
) -> list[tuple[License, LicenseAnswer]]:
    """DHCS's answer for every license it issued (others are skipped), one request per program.

    ``cache`` None (monitor): every program is read again.
    """
    ours = [lic for lic in licenses if issued_by_dhcs(lic)]
    ids = list(dict.fromkeys(lic.program_id for lic in ours))
    mark = fingerprint("dhcs", settings.url)
    answers = _cached(cache, ids, mark)
    todo = [pid for pid in ids if _key(pid) not in answers]

    async def ask(pid: str) -> LicenseAnswer:
        try:
            params = query_params(pid)
        except ValueError as exc:
            return LicenseAnswer(program_id=pid, error=f"the program id cannot be queried ({exc})")
        reply = await get(settings.url, params)
        return answer_from(reply, pid, clock.now())

    fresh = await asyncio.gather(*(ask(pid) for pid in todo))
    answers.update((_key(a.program_id), a) for a in fresh)
    if cache is not None:
        cache.put_many({_key(a.program_id): a.model_dump_json() for a in fresh if a.answered}, mark)
    return [(lic, answers[_key(lic.program_id)]) for lic in ours]
