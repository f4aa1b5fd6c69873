"""A loopback stand-in for DHCS's facilities layer and the NPPES NPI Registry API (tests only).

Shapes as the services give them (never guessed; sources in checks/authority/license.py and
npi.py): the ArcGIS "Query (Feature Service/Layer)" feature set (``fields``, ``features[]``
``.attributes``; an ``esriFieldTypeDate`` is epoch milliseconds, UTC; DHCS's expiry has been
published as ``M/D/YYYY`` text), ArcGIS's HTTP 200 error form
``{"error": {"code", "message", "details"}}``; the NPPES v2.1 answer (``result_count``,
``results[].number`` a string in newer answers and an integer in older ones, ``basic``,
``taxonomies[]`` with ``code``, ``desc``, ``primary``, ``state``, ``license``), its
``{"result_count": 0, "results": []}`` for an unknown NPI and its HTTP 200
``{"Errors": [{"description", "field", "number"}]}`` (version, malformed NPI, deactivated NPI).

Everyone here is fictional: program ids ``9000…AP`` and names like "Loopback Recovery House";
NPIs start with 9 (CMS issues NPIs starting with 1 or 2) with a valid check digit, and people
are "Avery Testwell", "Rowan Placeholder"… The DHCS ``Type_of_Application`` value is the
kind of text the layer carries; DHCS does not document its vocabulary.

Paths::

    /dhcs/arcgis/rest/services/SUD_Recovery_Treatment_Facilities/FeatureServer/0/query
    /nppes/api/?version=2.1&number=N
    /moved/arcgis/rest/services/…/FeatureServer/0/query   301 to the DHCS path (never to be followed)

Usage::

    with AuthorityStandin() as standin:
        standin.dhcs_url, standin.nppes_url
        standin.set_facility("900001AP", facility("900001AP", expires="4/30/2028"))
        standin.hits("dhcs", "900001AP")
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

DHCS_PATH = "/dhcs/arcgis/rest/services/SUD_Recovery_Treatment_Facilities/FeatureServer/0/query"
NPPES_PATH = "/nppes/api/"
MOVED_PATH = "/moved/arcgis/rest/services/SUD_Recovery_Treatment_Facilities/FeatureServer/0/query"


def epoch_ms(day: date, hour_utc: int = 7) -> int:
    """An ArcGIS date: epoch milliseconds, UTC (07:00 UTC is midnight in California in summer)."""
    return int(datetime(day.year, day.month, day.day, hour_utc, tzinfo=UTC).timestamp() * 1000)


def check_digit(first_nine: str) -> str:
    """The NPI check digit, computed here independently of the product (CMS's worked method:
    double every other digit from the right, add 24 for the 80840 prefix)."""
    total = 24
    for position, char in enumerate(reversed(first_nine)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit // 10 + digit % 10
    return str((10 - total % 10) % 10)


def fictional_npi(first_nine: str) -> str:
    assert first_nine.startswith("9"), "fictional NPIs start with 9: CMS issues 1 and 2"
    return first_nine + check_digit(first_nine)


# -- DHCS -------------------------------------------------------------------------------------------

PROGRAMS = {
    "text": "900001AP",  # listed, expiry as M/D/YYYY text
    "epoch": "900002AP",  # listed, expiry as an ArcGIS date
    "unlisted": "900003AP",  # not in the list
    "quoted": "O'900004AP",  # listed; found only if the quote is escaped in the where clause
    "twice": "900005AP",  # listed twice with different expiries
    "error": "900400AP",  # HTTP 200 with ArcGIS's error form
    "broken": "900503AP",  # HTTP 503, every time
    "odd": "900777AP",  # HTTP 200, a shape that is not a feature set
}
TEXT_EXPIRES = date(2027, 4, 30)
EPOCH_EXPIRES = date(2026, 4, 30)

_FIELDS = [
    {"name": "OBJECTID", "type": "esriFieldTypeOID", "alias": "OBJECTID", "sqlType": "sqlTypeOther"},
    *(
        {"name": name, "type": "esriFieldTypeString", "alias": name, "sqlType": "sqlTypeOther", "length": 256}
        for name in (
            "Application_Number", "Facility_Name", "Legal_Entity_Name", "Facility_Address1",
            "Facility_City", "Facility_Zip", "Type_of_Application", "Program_Code",
        )
    ),
]  # fmt: skip


def facility(
    program_id: str,
    *,
    expires: str | int,
    name: str = "LOOPBACK RECOVERY HOUSE",
    address: str = "100 FIXTURE LANE",
    city: str = "MALIBU",
    zip_code: str = "90265",
    object_id: int = 1,
) -> dict[str, Any]:
    """The attributes of one row of the layer (``expires``: ``"M/D/YYYY"`` or epoch ms)."""
    return {
        "OBJECTID": object_id,
        "Application_Number": program_id,
        "Facility_Name": name,
        "Legal_Entity_Name": "LOOPBACK HEALTH LLC",
        "Facility_Address1": address,
        "Facility_Address2": None,
        "Facility_City": city,
        "Facility_State": "CA",
        "Facility_Zip": zip_code,
        "Facility_Phone": "(555) 010-0100",
        "CountyName": "Los Angeles",
        "Program_Code": "RES",
        "Type_of_Application": "LICENSED AND CERTIFIED",
        "Lic_Expiration_Date": expires,
        "Treatment_Capacity": 6,
        "Total_Capacity": 6,
    }


def default_facilities() -> dict[str, list[dict[str, Any]]]:
    p = PROGRAMS
    return {
        p["text"]: [
            facility(p["text"], expires=f"{TEXT_EXPIRES.month}/{TEXT_EXPIRES.day}/{TEXT_EXPIRES.year}")
        ],
        p["epoch"]: [facility(p["epoch"], expires=epoch_ms(EPOCH_EXPIRES), object_id=2)],
        p["quoted"]: [facility(p["quoted"], expires="4/30/2027", object_id=4)],
        p["twice"]: [
            facility(p["twice"], expires="4/30/2027", object_id=5),
            facility(p["twice"], expires="4/30/2026", object_id=6),
        ],
    }


def feature_set(rows: list[dict[str, Any]], *, date_field: bool) -> dict[str, Any]:
    """A query reply as a hosted feature layer gives it (``returnGeometry=false``)."""
    expiry = {
        "name": "Lic_Expiration_Date",
        "type": "esriFieldTypeDate" if date_field else "esriFieldTypeString",
        "alias": "Lic_Expiration_Date",
        "sqlType": "sqlTypeOther",
        **({"length": 8} if date_field else {"length": 256}),
    }
    return {
        "objectIdFieldName": "OBJECTID",
        "uniqueIdField": {"name": "OBJECTID", "isSystemMaintained": True},
        "globalIdFieldName": "",
        "geometryType": "esriGeometryPoint",
        "spatialReference": {"wkid": 4326, "latestWkid": 4326},
        "fields": [*_FIELDS, expiry],
        "features": [{"attributes": row} for row in rows],
    }


def arcgis_error(message: str, *details: str, code: int = 400) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": list(details)}}


_WHERE = re.compile(r"Application_Number='((?:[^']|'')*)'")


# -- NPPES ------------------------------------------------------------------------------------------

NPIS = {
    "active": fictional_npi("900000000"),  # Avery Q Testwell, M.D., CA license; number as a string
    "active-int": fictional_npi("900000001"),  # Rowan Placeholder, DO; an older answer: number an integer
    "status-d": fictional_npi("900000002"),  # a record whose basic.status is not "A"
    "deactivated": fictional_npi("900000003"),  # the registry's Errors form for a deactivated NPI
    "unknown": fictional_npi("900000004"),  # not in the registry
    "errors": fictional_npi("900000005"),  # another HTTP 200 Errors answer
    "broken": fictional_npi("900000006"),  # HTTP 500, every time
    "np-nevada": fictional_npi("900000007"),  # Sam Fixture, NP, licensed in NV only
    "organization": fictional_npi("900000008"),  # an NPI-2: an organization
}


def taxonomy(
    desc: str, code: str, state: str | None, license_number: str | None, *, primary: bool = True
) -> dict[str, Any]:
    return {
        "code": code,
        "taxonomy_group": "",
        "desc": desc,
        "state": state,
        "license": license_number,
        "primary": primary,
    }


def person(
    number: str,
    first: str,
    last: str,
    *,
    middle: str = "",
    credential: str = "M.D.",
    status: str = "A",
    taxonomies: list[dict[str, Any]] | None = None,
    older: bool = False,
) -> dict[str, Any]:
    """One NPI-1 ``results[]`` entry; ``older``: the integer ``number`` of older answers."""
    basic: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "middle_name": middle,
        "credential": credential,
        "sole_proprietor": "NO",
        "gender": "F",
        "enumeration_date": "2015-03-02",
        "last_updated": "2024-01-10",
        "status": status,
        "name_prefix": "--",
        "name_suffix": "--",
    }
    taxes = taxonomies if taxonomies is not None else [
        taxonomy("Psychiatry & Neurology, Addiction Medicine", "2084A0401X", "CA", "A000001")
    ]  # fmt: skip
    if older:
        basic["name"] = f"{last} {first}"
        taxes = [{k: v for k, v in t.items() if k != "taxonomy_group"} for t in taxes]
    return {
        "created_epoch": 1425254400 if older else "1425254400000",
        "enumeration_type": "NPI-1",
        "last_updated_epoch": 1704844800 if older else "1704844800000",
        "number": int(number) if older else number,
        "addresses": [
            {
                "country_code": "US",
                "country_name": "United States",
                "address_purpose": "LOCATION",
                "address_type": "DOM",
                "address_1": "100 FIXTURE LANE",
                "city": "MALIBU",
                "state": "CA",
                "postal_code": "902650000",
                "telephone_number": "555-010-0100",
            }
        ],
        "practiceLocations": [],
        "basic": basic,
        "taxonomies": taxes,
        "identifiers": [],
        "endpoints": [],
        "other_names": [],
    }


def organization(number: str, name: str) -> dict[str, Any]:
    return {
        "created_epoch": "1425254400000",
        "enumeration_type": "NPI-2",
        "last_updated_epoch": "1704844800000",
        "number": number,
        "addresses": [],
        "practiceLocations": [],
        "basic": {
            "organization_name": name,
            "organizational_subpart": "NO",
            "enumeration_date": "2015-03-02",
            "last_updated": "2024-01-10",
            "status": "A",
        },
        "taxonomies": [taxonomy("Rehabilitation, Substance Use Disorder Unit", "273R00000X", "CA", None)],
        "identifiers": [],
        "endpoints": [],
        "other_names": [],
    }


def default_people() -> dict[str, dict[str, Any]]:
    n = NPIS
    return {
        n["active"]: person(n["active"], "AVERY", "TESTWELL", middle="QUINN"),
        n["active-int"]: person(n["active-int"], "ROWAN", "PLACEHOLDER", credential="DO", older=True),
        n["status-d"]: person(n["status-d"], "JORDAN", "STALE", status="D"),
        n["np-nevada"]: person(
            n["np-nevada"],
            "SAM",
            "FIXTURE",
            credential="NP",
            taxonomies=[taxonomy("Nurse Practitioner, Psych/Mental Health", "363LP0808X", "NV", "NV-0001")],
        ),
        n["organization"]: organization(n["organization"], "LOOPBACK RECOVERY HOUSE LLC"),
    }


def nppes_errors(description: str, field: str, number: str) -> dict[str, Any]:
    return {"Errors": [{"description": description, "field": field, "number": number}]}


# -- the server -------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: AuthorityStandin


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 5
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        status, body = self.server.standin.answer(self.path)
        self.send_response(status)
        if status == 301:  # the moved layer: sends the client to the real one
            self.send_header("Location", DHCS_PATH + self.path[len(MOVED_PATH) :])
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class AuthorityStandin:
    """DHCS's layer and the NPI registry on one loopback port; requests are counted."""

    def __init__(self) -> None:
        self.facilities = default_facilities()
        self.people = default_people()
        self.queries: list[dict[str, list[str]]] = []
        self._hits: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> AuthorityStandin:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def dhcs_url(self) -> str:
        return self.base + DHCS_PATH

    @property
    def moved_url(self) -> str:
        return self.base + MOVED_PATH

    @property
    def nppes_url(self) -> str:
        return self.base + NPPES_PATH

    def site_toml_lines(self) -> str:
        """The site.toml tables that point both lookups here (and allow 127.0.0.1)."""
        return (
            f'[checks.license_registry]\nurl = "{self.dhcs_url}"\n\n'
            f'[checks.reviewer_registry]\nurl = "{self.nppes_url}"\n'
        )

    def set_facility(self, program_id: str, *rows: dict[str, Any]) -> None:
        """What the layer lists for ``program_id`` from now on (no rows: not listed)."""
        with self._lock:
            self.facilities[program_id] = list(rows)

    def set_person(self, npi: str, result: dict[str, Any] | None) -> None:
        with self._lock:
            if result is None:
                self.people.pop(npi, None)
            else:
                self.people[npi] = result

    def hits(self, service: str, key: str) -> int:
        """Requests for ``key`` (a program id or an NPI) at ``service`` ("dhcs" or "nppes")."""
        with self._lock:
            return self._hits[(service, key)]

    # -- answers ----------------------------------------------------------------------------
    def answer(self, raw: str) -> tuple[int, bytes]:
        parts = urlsplit(raw)
        query = parse_qs(parts.query, keep_blank_values=True)
        with self._lock:
            self.queries.append(query)
            if parts.path == DHCS_PATH:
                status, reply = self._dhcs(query)
            elif parts.path == NPPES_PATH:
                status, reply = self._nppes(query)
            elif parts.path == MOVED_PATH:
                status, reply = 301, {"error": "moved"}
            else:
                status, reply = 404, {"error": "not found"}
        return status, json.dumps(reply).encode()

    def _dhcs(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        where = query.get("where", [""])[0]
        match = _WHERE.fullmatch(where)
        wanted = {"outFields": ["*"], "returnGeometry": ["false"], "f": ["json"]}
        if match is None or any(query.get(k) != v for k, v in wanted.items()):
            # What ArcGIS answers to a query it cannot run: HTTP 200 with its error form.
            return 200, arcgis_error(
                "Cannot perform query. Invalid query parameters.", "'where' parameter is invalid"
            )
        program_id = match.group(1).replace("''", "'")
        self._hits[("dhcs", program_id)] += 1
        if program_id == PROGRAMS["error"]:
            return 200, arcgis_error("Unable to complete operation.", "Service is temporarily unavailable")
        if program_id == PROGRAMS["broken"]:
            return 503, {"error": "Service Unavailable"}
        if program_id == PROGRAMS["odd"]:
            return 200, {"count": 1, "layers": []}
        rows = self.facilities.get(program_id, [])
        dated = any(isinstance(row.get("Lic_Expiration_Date"), int) for row in rows)
        return 200, feature_set(rows, date_field=dated)

    def _nppes(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        if query.get("version") != ["2.1"]:
            return 200, nppes_errors("Unsupported Version", "version", "17")
        number = query.get("number", [""])[0]
        if len(number) != 10 or not number.isdigit():
            return 200, nppes_errors("NPI must be 10 digits", "number", "06")
        self._hits[("nppes", number)] += 1
        if number == NPIS["deactivated"]:
            return 200, nppes_errors(
                f"CMS deactivated NPI {number}. The provider can no longer use this NPI. Our public "
                "registry does not display provider information about NPIs that are not in service.",
                "number",
                "15",
            )
        if number == NPIS["errors"]:
            return 200, nppes_errors("Service temporarily unavailable, try again later", "number", "99")
        if number == NPIS["broken"]:
            return 500, {"message": "Internal Server Error"}
        result = self.people.get(number)
        if result is None:
            return 200, {"result_count": 0, "results": []}
        return 200, {"result_count": 1, "results": [result]}
