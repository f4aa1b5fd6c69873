"""Verified at the authority (issue 25): licenses against DHCS's list, reviewers against NPPES.

Every verdict goes through real HTTP on 127.0.0.1 (tests/authority_standin.py, which serves the
services' real shapes) and the project's one fetch (``vetted_get``); the pure parts (check digit,
names, dates, quoting, transitions) are also tested alone. Everyone here is fictional.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from authority_standin import (
    EPOCH_EXPIRES,
    NPIS,
    PROGRAMS,
    TEXT_EXPIRES,
    AuthorityStandin,
    epoch_ms,
    facility,
    person,
)
from pydantic import BaseModel, ValidationError

from clinicpress import clock
from clinicpress.checks.authority.cache import AuthorityCache
from clinicpress.checks.authority.http import vetted_get
from clinicpress.checks.authority.license import (
    LicenseAnswer,
    LicenseCheck,
    judge_license,
    license_problems,
    lookup_licenses,
    parse_expiry,
    parse_layer,
    query_params,
    where_clause,
)
from clinicpress.checks.authority.names import names_match
from clinicpress.checks.authority.npi import (
    NpiAnswer,
    ReviewerCheck,
    judge_reviewer,
    lookup_npis,
    reviewer_problems,
)
from clinicpress.checks.authority.transitions import license_transition, reviewer_transition
from clinicpress.checks.model import Severity, Verdict, verdict_of
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.settings.registries import (
    DHCS_LAYER_QUERY_URL,
    NPPES_API_URL,
    LicenseRegistrySettings,
    Npi,
    ReviewerRegistrySettings,
    npi_check_digit,
    npi_problem,
)
from clinicpress.site import License

LINKS = LinkCheckSettings(allow_private_hosts=["127.0.0.1"], timeout=5.0, retries=1)
DAY = date(2026, 12, 7)  # the example day
DHCS = "California Department of Health Care Services"


@pytest.fixture
def standin() -> Iterator[AuthorityStandin]:
    with AuthorityStandin() as running:
        yield running


@pytest.fixture
def on_day(pin_clock: Callable[[date], None]) -> str:
    pin_clock(DAY)
    return DAY.isoformat()


def lic(program_id: str, expires: date, issuer: str = DHCS) -> License:
    return License(kind="licensed", issuer=issuer, program_id=program_id, expires=expires)


def check_licenses(
    url: str, *licenses: License, cache: AuthorityCache | None = None, links: LinkCheckSettings = LINKS
) -> list[LicenseCheck]:
    settings = LicenseRegistrySettings(url=url)

    async def go() -> list[tuple[License, LicenseAnswer]]:
        async with vetted_get(links, backoff=0) as get:
            return await lookup_licenses(licenses, settings, get, cache=cache)

    return [judge_license(typed, answer) for typed, answer in asyncio.run(go())]


def lookup(url: str, *npis: str, cache: AuthorityCache | None = None) -> dict[str, NpiAnswer]:
    settings = ReviewerRegistrySettings(url=url)

    async def go() -> dict[str, NpiAnswer]:
        async with vetted_get(LINKS, backoff=0) as get:
            return await lookup_npis(npis, settings, get, cache=cache)

    return asyncio.run(go())


def reviewer(
    url: str, npi: str, name: str, credentials: str | None = "MD", *, state: str | None = "CA"
) -> ReviewerCheck:
    return judge_reviewer(name, credentials, npi, lookup(url, npi)[npi], state=state)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- settings ---------------------------------------------------------------------------------------


def test_registry_settings_default_to_the_public_services_and_are_on() -> None:
    license_registry, reviewer_registry = LicenseRegistrySettings(), ReviewerRegistrySettings()
    assert license_registry.enabled
    assert reviewer_registry.enabled
    assert license_registry.url == DHCS_LAYER_QUERY_URL
    assert license_registry.url.startswith("https://services7.arcgis.com/")
    assert "SUD_Recovery_Treatment_Facilities/FeatureServer/0/query" in license_registry.url
    assert reviewer_registry.url == NPPES_API_URL == "https://npiregistry.cms.hhs.gov/api/"
    assert license_registry.cache_max_age_hours == reviewer_registry.cache_max_age_hours == 24


@pytest.mark.parametrize(
    ("model", "values", "expected"),
    [
        (LicenseRegistrySettings, {"enabeld": True}, "extra"),
        (LicenseRegistrySettings, {"url": "https://example.org/FeatureServer/0"}, "query endpoint"),
        (LicenseRegistrySettings, {"url": "https://example.org/0/query?where=1=1"}, "query or a fragment"),
        (LicenseRegistrySettings, {"url": "ftp://example.org/0/query"}, "http(s)"),
        (LicenseRegistrySettings, {"cache_max_age_hours": -1}, "greater than or equal"),
        (ReviewerRegistrySettings, {"url": "https://npi.example/api/\n"}, "control"),
        (ReviewerRegistrySettings, {"url": "https://npi.example/api/?version=2.1"}, "query or a fragment"),
    ],
)
def test_registry_settings_refuse_what_cannot_be_asked(
    model: type[BaseModel], values: dict[str, object], expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        model(**values)


# -- the NPI check digit (pure) ---------------------------------------------------------------------


def test_cms_example_npi_has_a_valid_check_digit_and_every_other_last_digit_fails() -> None:
    assert npi_check_digit("123456789") == 3  # CMS's documented example: 1234567893
    assert npi_problem("1234567893") is None
    for digit in "012456789":
        assert "check digit" in (npi_problem("123456789" + digit) or "")


def test_a_transposition_is_caught_and_the_message_says_what_was_expected() -> None:
    assert npi_problem("2134567893") is not None  # two digits swapped
    assert npi_problem("123456789") == "is not 10 digits"
    assert npi_problem("12345678a3") == "is not 10 digits"
    assert npi_problem("１２３４５６７８９３") == "is not 10 digits"  # full-width digits are not ASCII

    class Signed(BaseModel):
        npi: Npi

    assert Signed(npi=" 1234567893 ").npi == "1234567893"
    with pytest.raises(ValidationError, match=r"fails the NPI check digit.*10-digit NPI like 1234567893"):
        Signed(npi="1234567890")


# -- DHCS: request and answer (pure) ----------------------------------------------------------------


def test_the_query_quotes_the_program_id_as_an_sql_string_literal() -> None:
    assert where_clause("190655AP") == "Application_Number='190655AP'"
    assert where_clause("O'1' OR '1'='1") == "Application_Number='O''1'' OR ''1''=''1'"
    assert query_params("190655AP") == {
        "where": "Application_Number='190655AP'",
        "outFields": "*",
        "returnGeometry": "false",
        "f": "json",
    }
    with pytest.raises(ValueError, match="control"):
        where_clause("1906\n55AP")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4/30/2027", date(2027, 4, 30)),
        ("04/30/2027", date(2027, 4, 30)),
        (" 12/1/2026 ", date(2026, 12, 1)),
        (epoch_ms(date(2026, 4, 30)), date(2026, 4, 30)),  # 07:00 UTC: midnight in California
        (epoch_ms(date(2026, 4, 30), hour_utc=0), date(2026, 4, 30)),  # midnight UTC
        (float(epoch_ms(date(2026, 4, 30))), date(2026, 4, 30)),
        (True, None),
        (None, None),
        (-1, None),
        ("2027-04-30", None),
        ("30/4/2027", None),
        ("2/30/2027", None),
        ("4/30/2027 12:00:00 AM", None),
    ],
)
def test_the_expiry_is_read_as_text_or_as_an_arcgis_date(value: object, expected: date | None) -> None:
    assert parse_expiry(value) == expected


def test_an_empty_answer_means_not_listed_only_from_a_layer_that_names_its_fields() -> None:
    now = datetime(2026, 12, 7, 18, tzinfo=UTC)
    listed_nothing = parse_layer({"fields": [{"name": "Application_Number"}], "features": []}, "X", now)
    assert listed_nothing.answered
    assert listed_nothing.listed == ()
    assert not parse_layer({"features": []}, "X", now).answered  # a proxy's or another layer's nothing
    other_row = {"Application_Number": "Y", "Lic_Expiration_Date": "4/30/2027"}
    unfiltered = {"fields": [{"name": "Application_Number"}], "features": [{"attributes": other_row}]}
    assert parse_layer(unfiltered, "Y", now).listed  # the row itself is readable…
    assert not parse_layer(unfiltered, "X", now).answered  # …but it is no answer about X


# -- DHCS: every verdict over HTTP ------------------------------------------------------------------


def test_listed_with_the_same_expiry_is_ok_and_shows_the_states_record(
    standin: AuthorityStandin, on_day: str
) -> None:
    [found] = check_licenses(standin.dhcs_url, lic(PROGRAMS["text"], TEXT_EXPIRES))
    assert found.status == "ok"
    assert found.listed_expires == TEXT_EXPIRES
    assert found.record is not None
    assert (found.record.name, found.record.address_line()) == (
        "LOOPBACK RECOVERY HOUSE",
        "100 FIXTURE LANE, MALIBU 90265",
    )
    assert found.record.kind == "LICENSED AND CERTIFIED"
    assert found.message == (
        "DHCS lists 900001AP: LOOPBACK RECOVERY HOUSE, 100 FIXTURE LANE, MALIBU 90265; "
        f"LICENSED AND CERTIFIED; valid through April 30, 2027 (read {on_day})"
    )
    assert license_problems([found]) == []
    assert found.as_json() == {
        "program_id": "900001AP",
        "status": "ok",
        "listed_expires": "2027-04-30",
        "read_at": found.read_at.isoformat(timespec="seconds") if found.read_at else None,
    }
    assert found.read_at is not None
    assert found.read_at.astimezone().date() == DAY


def test_an_arcgis_date_expiry_is_read_and_compared(standin: AuthorityStandin, on_day: str) -> None:
    [found] = check_licenses(standin.dhcs_url, lic(PROGRAMS["epoch"], EPOCH_EXPIRES))
    assert (found.status, found.listed_expires) == ("ok", EPOCH_EXPIRES)


def test_listed_with_another_expiry_blocks_and_prints_what_the_state_lists(
    standin: AuthorityStandin, on_day: str
) -> None:
    [found] = check_licenses(standin.dhcs_url, lic(PROGRAMS["epoch"], date(2027, 4, 30)))
    assert (found.status, found.listed_expires) == ("mismatch", date(2026, 4, 30))
    [problem] = license_problems([found])
    assert problem.severity is Severity.BLOCKED
    assert problem.check == "license_registry"
    assert problem.message == (
        "license 900002AP: site.toml says April 30, 2027; DHCS lists April 30, 2026 (read 2026-12-07)"
    )


def test_not_listed_blocks(standin: AuthorityStandin, on_day: str) -> None:
    [found] = check_licenses(standin.dhcs_url, lic(PROGRAMS["unlisted"], TEXT_EXPIRES))
    assert found.status == "delisted"
    assert found.as_json()["listed_expires"] is None
    [problem] = license_problems([found])
    assert problem.severity is Severity.BLOCKED
    assert problem.message == (
        "900003AP is not in DHCS's list of licensed and certified facilities (read 2026-12-07)"
    )


def test_a_program_id_with_a_quote_is_found_because_the_query_escapes_it(standin: AuthorityStandin) -> None:
    [found] = check_licenses(standin.dhcs_url, lic(PROGRAMS["quoted"], date(2027, 4, 30)))
    assert found.status == "ok", found.message


@pytest.mark.parametrize(
    ("program", "why", "tries"),
    [
        ("error", "DHCS's service answered with an error (400: Unable to complete operation.", 1),
        ("broken", "HTTP 503", 2),  # a 5xx is asked again once ([checks.links] retries), then given up
        ("odd", "no list of features", 1),
    ],
)
def test_no_answer_is_unverified_with_a_warning_never_ok(
    standin: AuthorityStandin, program: str, why: str, tries: int
) -> None:
    [found] = check_licenses(standin.dhcs_url, lic(PROGRAMS[program], TEXT_EXPIRES))
    assert found.status == "unverified"
    assert (found.listed_expires, found.read_at) == (None, None)
    [problem] = license_problems([found])
    assert problem.severity is Severity.WARNING
    assert why in problem.message
    assert problem.message.endswith("; unverified")
    assert verdict_of([problem]) is Verdict.WARNING
    assert verdict_of([problem], strict=True) is Verdict.BLOCKED
    assert standin.hits("dhcs", PROGRAMS[program]) == tries


def test_listed_twice_with_other_expiries_is_unverified_unless_none_matches(
    standin: AuthorityStandin,
) -> None:
    [ambiguous] = check_licenses(standin.dhcs_url, lic(PROGRAMS["twice"], date(2027, 4, 30)))
    assert ambiguous.status == "unverified"
    assert "lists it 2 times, expiring April 30, 2026 and April 30, 2027" in ambiguous.message
    [wrong] = check_licenses(standin.dhcs_url, lic(PROGRAMS["twice"], date(2028, 4, 30)))
    assert wrong.status == "mismatch"
    assert "DHCS lists April 30, 2026 and April 30, 2027" in wrong.message


def test_offline_every_license_is_unverified_in_one_line() -> None:
    url = f"http://127.0.0.1:{closed_port()}/arcgis/rest/services/X/FeatureServer/0/query"
    found = check_licenses(url, lic("900001AP", TEXT_EXPIRES), lic("900002AP", EPOCH_EXPIRES))
    assert [c.status for c in found] == ["unverified", "unverified"]
    assert all(c.network for c in found)
    [line] = license_problems(found)
    assert line.severity is Severity.WARNING
    assert (
        line.message == "network down: DHCS's list could not be read; licenses 900001AP, 900002AP unverified"
    )
    [single] = license_problems(found[:1])
    assert single.message.startswith("license 900001AP: DHCS's list could not be read (")


def test_licenses_not_issued_by_dhcs_are_not_looked_up(standin: AuthorityStandin) -> None:
    found = check_licenses(
        standin.dhcs_url,
        lic(PROGRAMS["text"], TEXT_EXPIRES, issuer="State Department of Health Care Services (DHCS)"),
        lic("CDSS-1", TEXT_EXPIRES, issuer="California Department of Social Services"),
    )
    assert [c.program_id for c in found] == [PROGRAMS["text"]]
    assert standin.hits("dhcs", "CDSS-1") == 0


def test_an_authority_that_redirects_is_not_followed(standin: AuthorityStandin) -> None:
    [found] = check_licenses(standin.moved_url, lic(PROGRAMS["text"], TEXT_EXPIRES))
    assert found.status == "unverified"
    assert "HTTP 301: redirects to" in found.message
    assert "not followed" in found.message
    assert standin.hits("dhcs", PROGRAMS["text"]) == 0


def test_a_private_registry_host_is_refused_unless_allowed(standin: AuthorityStandin) -> None:
    [found] = check_licenses(standin.dhcs_url, lic(PROGRAMS["text"], TEXT_EXPIRES), links=LinkCheckSettings())
    assert found.status == "unverified"
    assert "not allowed" in found.message
    assert standin.hits("dhcs", PROGRAMS["text"]) == 0


# -- the cache ----------------------------------------------------------------------------------------


def test_answers_are_cached_with_the_day_they_were_read_and_failures_are_asked_again(
    standin: AuthorityStandin, tmp_path: Path
) -> None:
    cache = AuthorityCache(tmp_path / "authority.sqlite", "dhcs")
    typed = [
        lic(PROGRAMS["text"], TEXT_EXPIRES),
        lic(PROGRAMS["unlisted"], TEXT_EXPIRES),
        lic(PROGRAMS["error"], TEXT_EXPIRES),
    ]
    first = check_licenses(standin.dhcs_url, *typed, cache=cache)
    second = check_licenses(standin.dhcs_url, *typed, cache=cache)
    assert [c.status for c in second] == [c.status for c in first] == ["ok", "delisted", "unverified"]
    assert [c.read_at for c in second] == [c.read_at for c in first]  # when DHCS said it, not when reused
    assert standin.hits("dhcs", PROGRAMS["text"]) == 1
    assert standin.hits("dhcs", PROGRAMS["unlisted"]) == 1
    assert standin.hits("dhcs", PROGRAMS["error"]) == 2  # no answer is never kept
    check_licenses(standin.dhcs_url, *typed[:1])  # monitor: no cache, always asks
    assert standin.hits("dhcs", PROGRAMS["text"]) == 2


def test_a_cached_answer_is_not_reused_for_another_endpoint_or_once_expired(
    standin: AuthorityStandin, tmp_path: Path
) -> None:
    now = [1_000_000.0]
    cache = AuthorityCache(tmp_path / "a.sqlite", "dhcs", max_age_hours=1, clock=lambda: now[0])
    typed = lic(PROGRAMS["text"], TEXT_EXPIRES)
    check_licenses(standin.dhcs_url, typed, cache=cache)
    with AuthorityStandin() as other:
        check_licenses(other.dhcs_url, typed, cache=cache)
        assert other.hits("dhcs", PROGRAMS["text"]) == 1
    now[0] += 3601
    check_licenses(standin.dhcs_url, typed, cache=cache)
    assert standin.hits("dhcs", PROGRAMS["text"]) == 2


def test_each_registry_keeps_its_own_max_age_in_the_shared_file(
    standin: AuthorityStandin, tmp_path: Path
) -> None:
    now = [1_000_000.0]
    path = tmp_path / "authority.sqlite"
    dhcs = AuthorityCache(path, "dhcs", max_age_hours=100, clock=lambda: now[0])
    npi = AuthorityCache(path, "npi", max_age_hours=1, clock=lambda: now[0])
    check_licenses(standin.dhcs_url, lic(PROGRAMS["text"], TEXT_EXPIRES), cache=dhcs)
    now[0] += 2 * 3600
    lookup(standin.nppes_url, NPIS["active"], cache=npi)  # writing clears npi's expired rows only
    check_licenses(standin.dhcs_url, lic(PROGRAMS["text"], TEXT_EXPIRES), cache=dhcs)
    assert standin.hits("dhcs", PROGRAMS["text"]) == 1


# -- NPPES: every verdict over HTTP ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "name", "credentials"),
    [
        ("active", "Avery Testwell", "MD"),  # number as a string (newer answers)
        ("active", "Dr. Avery Q. Testwell, M.D.", "M.D., MPH"),
        ("active-int", "Rowan Placeholder", "DO"),  # number as an integer (older answers)
    ],
)
def test_an_active_reviewer_of_that_name_is_ok(
    standin: AuthorityStandin, on_day: str, which: str, name: str, credentials: str
) -> None:
    found = reviewer(standin.nppes_url, NPIS[which], name, credentials)
    assert found.status == "ok", found.problems
    assert found.problems == ()
    assert found.as_json() == {"npi": NPIS[which], "status": "ok"}
    assert reviewer_problems([found]) == []
    assert [q["version"] for q in standin.queries] == [["2.1"]]


def test_an_npi_not_in_the_registry_blocks(standin: AuthorityStandin, on_day: str) -> None:
    found = reviewer(standin.nppes_url, NPIS["unknown"], "Avery Testwell")
    assert found.status == "not-found"
    [problem] = found.problems
    assert problem.severity is Severity.BLOCKED
    assert problem.message == f"NPI {NPIS['unknown']} is not in the NPI registry (read 2026-12-07)"


@pytest.mark.parametrize(
    ("which", "said"), [("status-d", "status D"), ("deactivated", "CMS deactivated NPI")]
)
def test_a_deactivated_npi_blocks(standin: AuthorityStandin, which: str, said: str) -> None:
    found = reviewer(standin.nppes_url, NPIS[which], "Jordan Stale")
    assert found.status == "inactive"
    [problem] = found.problems
    assert problem.severity is Severity.BLOCKED
    assert said in problem.message
    assert NPIS[which] in problem.message


def test_another_name_blocks_naming_both(standin: AuthorityStandin) -> None:
    found = reviewer(standin.nppes_url, NPIS["active"], "Jordan Testwell")
    assert found.status == "name-mismatch"
    [problem] = found.problems
    assert problem.severity is Severity.BLOCKED
    assert (
        f"NPI {NPIS['active']} is registered to AVERY QUINN TESTWELL; the review names Jordan Testwell"
        in (problem.message)
    )


def test_an_organizations_npi_is_not_a_reviewer(standin: AuthorityStandin) -> None:
    found = reviewer(standin.nppes_url, NPIS["organization"], "Avery Testwell")
    assert found.status == "name-mismatch"
    assert "belongs to LOOPBACK RECOVERY HOUSE LLC, not to a person" in found.problems[0].message


def test_another_credential_or_no_license_in_the_clinics_state_warns(standin: AuthorityStandin) -> None:
    found = reviewer(standin.nppes_url, NPIS["np-nevada"], "Sam Fixture", "MD")
    assert found.status == "ok"
    messages = [p.message for p in found.problems]
    assert all(p.severity is Severity.WARNING for p in found.problems)
    assert len(messages) == 2
    assert messages[0].startswith(
        f"the review says MD; the NPI registry lists NP for NPI {NPIS['np-nevada']}"
    )
    assert messages[1].startswith(
        f"no taxonomy of NPI {NPIS['np-nevada']} (SAM FIXTURE) carries a license in CA"
    )
    assert "Nurse Practitioner, Psych/Mental Health in NV" in messages[1]
    assert reviewer(standin.nppes_url, NPIS["np-nevada"], "Sam Fixture", "NP", state="NV").problems == ()


def test_a_registry_without_a_credential_warns_when_one_is_printed(standin: AuthorityStandin) -> None:
    standin.set_person(NPIS["active"], person(NPIS["active"], "AVERY", "TESTWELL", credential=""))
    found = reviewer(standin.nppes_url, NPIS["active"], "Avery Testwell", "MD")
    assert [p.message.split(";")[0] for p in found.problems] == [
        f"the NPI registry lists no credential for NPI {NPIS['active']} (AVERY TESTWELL)"
    ]
    assert reviewer(standin.nppes_url, NPIS["active"], "Avery Testwell", None).problems == ()


@pytest.mark.parametrize(
    ("which", "why"),
    [
        ("errors", "answered with an error: Service temporarily unavailable, try again later (field number"),
        ("broken", "HTTP 500"),
    ],
)
def test_no_answer_from_the_npi_registry_is_unverified(
    standin: AuthorityStandin, which: str, why: str
) -> None:
    found = reviewer(standin.nppes_url, NPIS[which], "Avery Testwell")
    assert found.status == "unverified"
    [problem] = found.problems
    assert problem.severity is Severity.WARNING
    assert why in problem.message


def test_an_npi_failing_its_check_digit_is_never_sent(standin: AuthorityStandin) -> None:
    answer = lookup(standin.nppes_url, "9000000000")["9000000000"]
    assert not answer.answered
    assert "check digit" in (answer.error or "")
    assert standin.queries == []


def test_npi_answers_are_cached_and_failures_asked_again(standin: AuthorityStandin, tmp_path: Path) -> None:
    cache = AuthorityCache(tmp_path / "authority.sqlite", "npi")
    kinds = ("active", "unknown", "deactivated", "errors")
    for _ in range(2):
        found = lookup(standin.nppes_url, *(NPIS[k] for k in kinds), cache=cache)
    assert [found[NPIS[k]].answered for k in kinds] == [True, True, True, False]
    assert [standin.hits("nppes", NPIS[k]) for k in kinds] == [1, 1, 1, 2]  # no answer is never kept


def test_offline_every_reviewer_is_unverified_in_one_line() -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/"
    answers = lookup(url, NPIS["active"], NPIS["active-int"])
    checks = [judge_reviewer("A B", None, n, a, state="CA") for n, a in answers.items()]
    assert [c.status for c in checks] == ["unverified", "unverified"]
    [line] = reviewer_problems(checks)
    npis = f"{NPIS['active']}, {NPIS['active-int']}"
    assert line.message == f"network down: the NPI registry could not be read; NPIs {npis} unverified"


# -- names (pure) -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("printed", "first", "last"),
    [
        ("Avery Testwell", "AVERY", "TESTWELL"),
        ("avery TESTWELL", "Avery", "Testwell"),
        ("Avery Quinn Testwell", "AVERY", "TESTWELL"),
        ("Avery Q. Testwell", "AVERY", "TESTWELL"),
        ("Dr. Avery Testwell", "AVERY", "TESTWELL"),
        ("Avery Testwell, MD", "AVERY", "TESTWELL"),
        ("Avery Testwell Jr.", "AVERY", "TESTWELL"),
        ("Avery Testwell III, M.D.", "AVERY", "TESTWELL"),
        ("José Núñez", "JOSE", "NUNEZ"),
        ("Zoë Ångström", "ZOE", "ANGSTROM"),
        ("Inés Fixture", "INES MARIA", "FIXTURE"),  # the registry's first name field has two names
        ("Rowan O'Placeholder", "ROWAN", "OPLACEHOLDER"),
        ("Rowan Smith-Jones", "ROWAN", "SMITH JONES"),
        ("Rowan de la Fixture", "ROWAN", "DELAFIXTURE"),
        ("Mary Ann Fixture", "MARY-ANN", "FIXTURE"),
        ("Maryann Fixture", "MARY-ANN", "FIXTURE"),
        ("Anh Do", "ANH", "DO"),  # a last name that looks like a credential is still the last name
        ("Anh Do, MD", "ANH", "DO"),
        ("Anh Ma Do", "ANH", "DO"),  # a middle name that looks like a credential, too
    ],
)
def test_names_match_case_accents_middle_names_and_suffixes_aside(
    printed: str, first: str, last: str
) -> None:
    assert names_match(printed, first, last)


@pytest.mark.parametrize(
    ("printed", "first", "last"),
    [
        ("Jordan Testwell", "AVERY", "TESTWELL"),
        ("Avery Testwells", "AVERY", "TESTWELL"),
        ("Avery", "AVERY", "TESTWELL"),
        ("Testwell", "AVERY", "TESTWELL"),
        ("A. Testwell", "AVERY", "TESTWELL"),
        ("Avery Testwell", "AVERY", ""),
        ("Avery Testwell Smith", "AVERY", "TESTWELL"),
        ("Anh", "ANH", "DO"),
    ],
)
def test_names_that_differ_do_not_match(printed: str, first: str, last: str) -> None:
    assert not names_match(printed, first, last)


# -- monitor transitions (pure) ---------------------------------------------------------------------


def _answer(*rows: dict[str, object], day: date = DAY) -> LicenseAnswer:
    data = {"fields": [{"name": "Application_Number"}], "features": [{"attributes": r} for r in rows]}
    return parse_layer(data, "900001AP", datetime.combine(day, time(12)).astimezone())  # noon, here


def test_license_changes_alert_once_and_name_what_changed() -> None:
    before = _answer(facility("900001AP", expires="4/30/2027"))
    assert license_transition(None, before) is None  # first snapshot: nothing to compare
    assert license_transition(before, before) is None
    moved = _answer(facility("900001AP", expires="4/30/2026", address="200 OTHER ROAD"))
    change = license_transition(before, moved)
    assert change is not None
    assert change.kind == "license.changed"
    assert "expiry April 30, 2027 → April 30, 2026" in change.message
    assert "address 100 FIXTURE LANE, MALIBU 90265 → 200 OTHER ROAD, MALIBU 90265" in change.message
    renamed = _answer(facility("900001AP", expires="4/30/2027", name="NEW NAME HOUSE"))
    assert (
        "name LOOPBACK RECOVERY HOUSE → NEW NAME HOUSE"
        in (license_transition(before, renamed) or change).message
    )
    assert license_transition(moved, moved) is None


def test_delisting_alerts_once_and_no_answer_is_never_a_transition() -> None:
    listed = _answer(facility("900001AP", expires="4/30/2027"))
    gone = _answer()
    delisted = license_transition(listed, gone)
    assert delisted is not None
    assert delisted.kind == "license.delisted"
    assert delisted.message == (
        "900001AP is no longer in DHCS's list of licensed and certified facilities (read 2026-12-07)"
    )
    assert license_transition(gone, gone) is None
    unanswered = LicenseAnswer(program_id="900001AP", error="HTTP 503")
    assert license_transition(listed, unanswered) is None
    assert license_transition(gone, listed) is not None  # listed again: a change worth telling


def _reviewer(status: str) -> ReviewerCheck:
    return ReviewerCheck.model_validate({"npi": NPIS["active"], "status": status})


def test_a_published_reviewer_going_inactive_alerts_once_naming_the_articles() -> None:
    seen: Sequence[str] = ("ketamine-therapy", "naloxone-at-home")
    alert = reviewer_transition(None, _reviewer("inactive"), seen)
    assert alert is not None
    assert alert.kind == "reviewer.inactive"
    assert alert.message.endswith("printed in: ketamine-therapy, naloxone-at-home")
    assert reviewer_transition("ok", _reviewer("not-found"), seen) is not None
    assert reviewer_transition("inactive", _reviewer("not-found"), seen) is None
    assert reviewer_transition("ok", _reviewer("unverified"), seen) is None
    assert reviewer_transition("ok", _reviewer("ok"), seen) is None


def test_read_day_is_the_clinics_day_of_the_answer() -> None:
    checked = judge_license(lic("900001AP", TEXT_EXPIRES), _answer(day=DAY))
    assert checked.message.endswith("(read 2026-12-07)")
    utc_evening = parse_layer({"features": [], "fields": [{"name": "Application_Number"}]}, "X", clock.now())
    assert judge_license(lic("X", TEXT_EXPIRES), utc_evening).message.endswith(f"(read {clock.today()})")
