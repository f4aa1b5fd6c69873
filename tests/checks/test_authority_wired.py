"""The authority lookups wired in (issue 25): ``check``, ``publish`` and ``monitor`` ask DHCS and
the NPI registry (here tests/authority_standin.py on 127.0.0.1, serving the real shapes), and the
three channels print the statute's license line (HSC §11831.12).

Dates are relative to the product's clock: the stand-in lists the license with the expiry the
test site carries (``LICENSE_EXPIRES``), so the date check itself never blocks.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pypdf
import pytest
from authority_standin import NPIS, PROGRAMS, AuthorityStandin, facility, person
from conftest import LICENSE_EXPIRES, MINIMAL_FRONT_MATTER, TODAY, WriteArticle, site_text
from requirements import need
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner
from webhook import Receiver

from clinicpress.cli import app
from clinicpress.errors import RegistryError
from clinicpress.outputs.registry import Registry
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.catalog import render_catalog
from clinicpress.renderers.handout import render_handout_pdf
from clinicpress.renderers.newsletter import render_newsletter_text
from clinicpress.renderers.web import render_web_html
from clinicpress.site import SiteConfig, format_date, load_site
from clinicpress.sources import Article

runner = CliRunner()
PID = PROGRAMS["text"]
LOOKUP = "https://www.dhcs.ca.gov/provgovpart/Pages/Licensed-and-Certified-SUD-Facilities.aspx"


def _mdy(day: date) -> str:
    return f"{day.month}/{day.day}/{day.year}"


@pytest.fixture
def standin() -> Iterator[AuthorityStandin]:
    with AuthorityStandin() as running:
        # The test site's license, listed as the site says (text M/D/YYYY, as DHCS has published it).
        running.set_facility(PID, facility(PID, expires=_mdy(LICENSE_EXPIRES)))
        yield running


def _site(tmp_path: Path, standin: AuthorityStandin, **replacements: str) -> Path:
    path = tmp_path / "site.toml"
    settings = {
        "program_id": f'"{PID}"',
        "allow_private_hosts": '["127.0.0.1"]',
        "timeout": "2.0",
        "retries": "0",
        **replacements,
    }
    text = site_text(authority="\n" + standin.site_toml_lines(), **settings)
    # [archive] and [checks.integrity]: nothing of theirs to look up on loopback.
    text = text.replace("enabled = true", "enabled = false")
    path.write_text(text, encoding="utf-8")
    return path


def _article(
    write_article: WriteArticle, npi: str | None = NPIS["active"], name: str = "Avery Testwell"
) -> Path:
    reviewer = f'reviewed_by: {{name: {name}, credentials: MD, npi: "{npi}"}}\n' if npi else ""
    return write_article(front_matter=MINIMAL_FRONT_MATTER + reviewer)


def _check_json(site: Path, out: Path, article: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["check", "--site", str(site), "--out", str(out), "--format", "json", *extra, str(article)]
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    [report] = json.loads(result.stdout)["articles"]
    return result.exit_code, report


# -- check --------------------------------------------------------------------------------------------


def test_check_json_carries_the_state_and_the_npi_registry(
    tmp_path: Path, write_article: WriteArticle, standin: AuthorityStandin
) -> None:
    code, report = _check_json(_site(tmp_path, standin), tmp_path / "out", _article(write_article))
    assert code == 0, report["problems"]
    [lic] = report["license_registry"]
    assert (lic["program_id"], lic["status"], lic["listed_expires"]) == (
        PID,
        "ok",
        LICENSE_EXPIRES.isoformat(),
    )
    assert lic["read_at"] is not None
    assert report["reviewer_registry"] == {"npi": NPIS["active"], "status": "ok"}
    assert report["verdict"] == "ok"
    assert (standin.hits("dhcs", PID), standin.hits("nppes", NPIS["active"])) == (1, 1)


def test_check_text_shows_the_states_record_and_the_day_it_was_read(
    tmp_path: Path, write_article: WriteArticle, standin: AuthorityStandin
) -> None:
    args = ["check", "--site", str(_site(tmp_path, standin)), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, str(_article(write_article))])
    assert result.exit_code == 0, result.output
    [line] = [ln for ln in result.stdout.splitlines() if "license_registry" in ln]
    assert f"DHCS lists {PID}: LOOPBACK RECOVERY HOUSE" in line
    assert f"valid through {format_date(LICENSE_EXPIRES)}" in line
    assert "(read " in line


def test_disabled_lookups_ask_nobody_and_say_so_in_json(
    tmp_path: Path, write_article: WriteArticle, standin: AuthorityStandin
) -> None:
    site = tmp_path / "site.toml"
    site.write_text(site_text(program_id=f'"{PID}"').replace("enabled = true", "enabled = false"))
    _, report = _check_json(site, tmp_path / "out", _article(write_article))
    assert (report["license_registry"], report["reviewer_registry"]) == ([], None)
    assert standin.hits("dhcs", PID) == standin.hits("nppes", NPIS["active"]) == 0


def test_an_npi_that_fails_its_check_digit_is_exit_2_before_any_request(
    tmp_path: Path, write_article: WriteArticle, standin: AuthorityStandin
) -> None:
    typo = NPIS["active"][:9] + str((int(NPIS["active"][9]) + 1) % 10)
    args = ["check", "--site", str(_site(tmp_path, standin)), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, str(_article(write_article, npi=typo))])
    assert result.exit_code == 2, result.output
    assert "check digit" in result.output
    assert standin.hits("nppes", typo) == 0


def test_unverified_warns_and_strict_blocks(
    tmp_path: Path, write_article: WriteArticle, standin: AuthorityStandin
) -> None:
    site = _site(tmp_path, standin, program_id=f'"{PROGRAMS["broken"]}"')  # 503, every time
    article = _article(write_article, npi=None)
    code, report = _check_json(site, tmp_path / "out", article)
    assert (code, report["verdict"], report["license_registry"][0]["status"]) == (0, "warning", "unverified")
    [problem] = [p for p in report["problems"] if p["check"] == "license_registry"]
    assert problem["severity"] == "warning"
    code, report = _check_json(site, tmp_path / "out", article, "--strict")
    assert (code, report["verdict"]) == (1, "blocked")


# -- publish ------------------------------------------------------------------------------------------

BLOCKING = {
    "mismatch": ("license", "site.toml says"),
    "delisted": ("license", "is not in DHCS's list"),
    "not-found": ("reviewer", "is not in the NPI registry"),
    "inactive": ("reviewer", "is deactivated"),
}


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("case", list(BLOCKING))
def test_publish_is_blocked_by_the_authority(
    case: str, tmp_path: Path, write_article: WriteArticle, standin: AuthorityStandin
) -> None:
    npi = NPIS["active"]
    if case == "mismatch":
        standin.set_facility(PID, facility(PID, expires=_mdy(LICENSE_EXPIRES.replace(day=1))))
    elif case == "delisted":
        standin.set_facility(PID)
    elif case == "not-found":
        npi = NPIS["unknown"]
    else:
        npi = NPIS["deactivated"]
    out = tmp_path / "out"
    args = ["publish", "--site", str(_site(tmp_path, standin)), "--out", str(out)]
    result = runner.invoke(app, [*args, str(_article(write_article, npi=npi))])
    assert result.exit_code == 1, result.output
    assert "blocked — nothing published" in result.stdout
    assert BLOCKING[case][1] in result.stdout
    assert not (out / "web").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_publish_strict_blocks_an_unverified_license(
    tmp_path: Path, write_article: WriteArticle, standin: AuthorityStandin
) -> None:
    out = tmp_path / "out"
    site = _site(tmp_path, standin, program_id=f'"{PROGRAMS["broken"]}"')
    args = ["publish", "--strict", "--site", str(site), "--out", str(out)]
    result = runner.invoke(app, [*args, str(_article(write_article, npi=None))])
    assert result.exit_code == 1, result.output
    assert "unverified" in result.stdout
    assert not (out / "web").exists()


# -- monitor ------------------------------------------------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.mark.usefixtures("prefect_harness")
def test_monitor_alerts_each_authority_transition_once(
    tmp_path: Path, write_article: WriteArticle, standin: AuthorityStandin, webhook: Receiver
) -> None:
    from clinicpress.flows.monitor import monitor_flow
    from clinicpress.flows.publish import publish_flow

    site = _site(tmp_path, standin)
    site.write_text(site.read_text().replace("urls = []", f'urls = ["{webhook.url}"]\nretries = 0'))
    out = tmp_path / "out"
    published = publish_flow(paths=[str(_article(write_article))], site_path=str(site), out_dir=str(out))
    assert published.outcomes[0].published

    def run() -> list[str]:
        return [a.kind for a in monitor_flow(site_path=str(site), out_dir=str(out), today=TODAY).alerts]

    runs = [run()]  # the first snapshot: nothing to compare with
    renewed = LICENSE_EXPIRES.replace(year=LICENSE_EXPIRES.year + 2)
    standin.set_facility(PID, facility(PID, expires=_mdy(renewed)))
    standin.set_person(NPIS["active"], person(NPIS["active"], "AVERY", "TESTWELL", status="D"))
    runs += [run(), run()]
    standin.set_facility(PID)  # no longer listed
    runs += [run(), run()]
    assert runs == [[], ["license.changed", "reviewer.inactive"], [], ["license.delisted"], []]
    titles = [post["title"] for post in webhook.posts]
    assert titles == [
        f"[clinicpress] DHCS changed its record of license {PID}",
        f"[clinicpress] Reviewer NPI {NPIS['active']} is no longer active",
        f"[clinicpress] License {PID} is no longer listed by DHCS",
    ]
    assert f"expiry {format_date(LICENSE_EXPIRES)} → {format_date(renewed)}" in webhook.posts[0]["message"]
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        kept = registry.latest_snapshots("dhcs")
    assert kept[PID].status == "not-listed"
    # Every answer read went through the stand-in, none from a cache: five runs, five reads.
    assert standin.hits("dhcs", PID) == 1 + 5


# -- the license line -------------------------------------------------------------------------------

CONTEXT = RenderContext(published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC), version="0" * 64)


def _with_license(site: SiteConfig, **update: Any) -> SiteConfig:
    lic = site.licenses[0].model_copy(update={"lookup_url": LOOKUP, **update})
    return site.model_copy(update={"licenses": [lic]})


@pytest.mark.parametrize("kind", ["licensed", "certified"])
def test_every_channel_prints_the_statutes_license_line(
    kind: str, site: SiteConfig, article: Article
) -> None:
    site = _with_license(site, kind=kind)
    lic = site.licenses[0]
    verb = "Licensed" if kind == "licensed" else "Certified"
    statement = f"{verb} by the State Department of Health Care Services."
    particulars = [lic.program_id, format_date(lic.expires)]

    html = render_web_html(article, site, CONTEXT)
    [footer] = re.findall(r'<p class="license">(.*?)</p>', html)
    assert f'<a class="license-lookup" href="{LOOKUP}">{statement}</a>' in footer
    assert all(part in footer for part in particulars)

    [index] = [a for a in render_catalog([], site, CONTEXT.published_at) if a.relpath == "web/index.html"]
    assert f'<a class="license-lookup" href="{LOOKUP}">{statement}</a>' in index.data.decode()

    pdf = pypdf.PdfReader(BytesIO(render_handout_pdf(article, site)))
    handout = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)
    assert statement in handout
    assert all(part in handout for part in particulars)

    email = " ".join(render_newsletter_text(article, site).split())
    assert statement in email
    assert all(part in email for part in particulars)


def test_a_license_not_from_dhcs_keeps_its_issuer(site: SiteConfig) -> None:
    lic = _with_license(site, issuer="Nevada Division of Public and Behavioral Health").licenses[0]
    assert lic.line().startswith(
        "Licensed by the Nevada Division of Public and Behavioral Health. Program ID"
    )


def test_the_sample_site_keeps_both_lookups_on() -> None:
    sample = load_site(Path(__file__).resolve().parents[2] / "content" / "site.toml")
    assert sample.checks.license_registry.enabled
    assert sample.checks.reviewer_registry.enabled


# -- the registry: schema 7 → 8 -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    url = os.environ.get("CLINICPRESS_TEST_POSTGRES_URL", "")
    if not url:
        need("PostgreSQL", "set CLINICPRESS_TEST_POSTGRES_URL (e.g. $(tools/ci-postgres.sh)) to run")
    # A schema of its own: other tests may use the same database at the same time.
    schema = "authority_upgrade"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


def test_a_version_7_registry_gains_authority_snapshots_and_suppressions(registry_url: str) -> None:
    from clinicpress.outputs.registry import SCHEMA_VERSION, Snapshot

    # Today's schema, taken back to what version 7 had.
    with Registry(registry_url) as registry, registry.engine.begin() as conn:
        for table in ("authority_snapshots", "suppressions", "mail_events"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("UPDATE schema_info SET version = 7"))
    with Registry(registry_url) as upgraded:
        tables = set(inspect(upgraded.engine).get_table_names())
        assert {"authority_snapshots", "suppressions", "mail_events"} <= tables
        with upgraded.engine.connect() as conn:
            assert conn.execute(text("SELECT version FROM schema_info")).scalar() == SCHEMA_VERSION >= 8
        read = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
        first = Snapshot("dhcs", PID, read, "listed", '{"a": 1}')
        upgraded.save_snapshots([first, Snapshot("dhcs", PID, read.replace(hour=10), "not-listed", "{}")])
        upgraded.save_snapshots([Snapshot("npi", NPIS["active"], read, "ok", "{}")])
        assert upgraded.latest_snapshots("dhcs")[PID].status == "not-listed"
        assert list(upgraded.latest_snapshots("npi")) == [NPIS["active"]]
        with pytest.raises(RegistryError):  # only the two registries
            upgraded.save_snapshots([Snapshot("cms", PID, read, "ok", "{}")])


def test_review_with_an_npi_that_fails_its_check_digit_is_exit_2(tmp_path: Path) -> None:
    typo = NPIS["active"][:9] + str((int(NPIS["active"][9]) + 1) % 10)
    args = ["review", "a-slug", "--by", "Avery Testwell", "--credentials", "MD", "--approve", "--npi", typo]
    out = tmp_path / "out"
    result = runner.invoke(app, [*args, "--site", str(tmp_path / "site.toml"), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "--npi" in result.output
    assert "check digit" in result.output
    assert not out.exists()


def test_a_reviewer_listed_in_site_toml_is_looked_up_by_name(
    tmp_path: Path, write_article: WriteArticle, standin: AuthorityStandin
) -> None:
    site = _site(tmp_path, standin)
    listed = (
        f'\n[[review.reviewers]]\nname = "Avery Testwell"\ncredentials = "MD"\nnpi = "{NPIS["active"]}"\n'
    )
    site.write_text(site.read_text() + listed)
    article = write_article(
        front_matter=MINIMAL_FRONT_MATTER + "reviewed_by: {name: Avery Testwell, credentials: MD}\n"
    )
    _, report = _check_json(site, tmp_path / "out", article)
    assert report["reviewer_registry"] == {"npi": NPIS["active"], "status": "ok"}
    site.write_text(site.read_text().replace(f'npi = "{NPIS["active"]}"', f'npi = "{NPIS["active"][:9]}0"'))
    result = runner.invoke(app, ["check", "--site", str(site), "--out", str(tmp_path / "out"), str(article)])
    assert result.exit_code == 2, result.output  # a typo in [review] reviewers: at load


def test_a_sign_off_keeps_the_npi_it_was_recorded_with(tmp_path: Path) -> None:
    """``review --npi`` checks the number, and the registry keeps it with the record (schema 9): the
    reviewer the channels print is then looked up by that NPI."""
    from clinicpress.checks.signoff import Decision, ReviewRecord
    from clinicpress.outputs.reviews import load_reviews, record_review
    from clinicpress.sources.article import Reviewer

    site_path = tmp_path / "site.toml"
    site_path.write_text(site_text(), encoding="utf-8")
    site, out = load_site(site_path), tmp_path / "out"
    record = ReviewRecord(
        slug="a-slug",
        content_hash="0" * 64,
        reviewer=Reviewer(name="Avery Testwell", credentials="MD", npi=NPIS["active"]),
        reviewed_on=TODAY,
        recorded_at=datetime(2026, 1, 5, tzinfo=UTC),
        decision=Decision.APPROVED,
        comment="",
        text="A claim.",
    )
    record_review(site, out, record)
    [kept] = load_reviews(site, out)
    assert kept.reviewer.npi == NPIS["active"]
