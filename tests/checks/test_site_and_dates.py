"""The site config loader, and the license and review-date checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from conftest import FIXED_DATES_FRONT_MATTER, REFERENCE_SITE, WriteArticle

from clinicpress.checks.dates import check_licenses, check_review
from clinicpress.checks.model import Severity
from clinicpress.errors import SiteConfigError
from clinicpress.site import License, load_site
from clinicpress.sources import load_article


def test_reference_site_loads() -> None:
    site = load_site(REFERENCE_SITE)
    assert site.organization.name == "Serenity Malibu"
    [lic] = site.licenses
    assert (lic.program_id, lic.expires) == ("190655AP", date(2027, 4, 30))
    assert lic.line() == (
        "Licensed by the State Department of Health Care Services. Program ID 190655AP · "
        "valid through April 30, 2027"
    )
    assert site.monitor.failures_before_alert == 2
    assert site.checks.links.allow_private_hosts == []


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINICPRESS_NEWSLETTER__FROM_ADDRESS", "news@example.org")
    assert load_site(REFERENCE_SITE).newsletter.from_address == "news@example.org"


@pytest.mark.parametrize(
    ("replacements", "field", "fragment"),
    [
        ({"expires": "'April 2027'"}, "licenses.0.expires", "a date as YYYY-MM-DD"),
        ({"from_address": '"not an address"'}, "newsletter.from_address", "not an email address"),
        # The renderer's rules, at load: these used to pass `check` and block every article at `publish`.
        (
            {"from_address": '"news(letter)@example.org"'},
            "newsletter.from_address",
            "invalid part before the @",
        ),
        ({"reply_to": '"info@localhost"'}, "newsletter.reply_to", "invalid domain"),
        ({"unsubscribe_url": '"http://example.org/u"'}, "newsletter.unsubscribe_url", "not an https:// URL"),
        ({"unsubscribe_url": '"https://example.org/u,x"'}, "newsletter.unsubscribe_url", "without spaces"),
        ({"base_url": '"ftp://example.org"'}, "organization.base_url", "not an http(s) URL"),
        ({"timeout": "-1"}, "checks.links.timeout", "greater than 0"),
        ({"failures_before_alert": '"two"'}, "monitor.failures_before_alert", "a whole number"),
    ],
)
def test_bad_site_values_name_the_field(
    write_site: Callable[..., Path], replacements: dict[str, str], field: str, fragment: str
) -> None:
    path = write_site(**replacements)
    with pytest.raises(SiteConfigError) as caught:
        load_site(path)
    assert caught.value.field == field
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(str(path))


def test_unknown_site_key_and_bad_toml(tmp_path: Path) -> None:
    text = REFERENCE_SITE.read_text().replace("[monitor]", "[monitor]\ncolour = 'red'")
    (tmp_path / "a.toml").write_text(text)
    with pytest.raises(SiteConfigError, match=r"monitor\.colour: unknown key; expected one of"):
        load_site(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text("[organization\nname = 1")
    with pytest.raises(SiteConfigError, match=r"invalid TOML at line 1"):
        load_site(tmp_path / "b.toml")
    with pytest.raises(SiteConfigError, match="file not found"):
        load_site(tmp_path / "missing.toml")


def _license(expires: date) -> License:
    return License(
        issuer="California Department of Health Care Services", program_id="190655AP", expires=expires
    )


@pytest.mark.parametrize(
    ("on", "severity", "fragment"),
    [
        (date(2026, 11, 27), None, None),  # 154 days left: outside the 150-day window
        (date(2026, 12, 1), Severity.WARNING, "in 150 days"),
        (date(2027, 4, 30), Severity.WARNING, "in 0 days"),  # valid through its last day
        (date(2027, 5, 1), Severity.BLOCKED, "expired on April 30, 2027"),
    ],
)
def test_license_expiry(on: date, severity: Severity | None, fragment: str | None) -> None:
    problems = check_licenses([_license(date(2027, 4, 30))], on, [150, 90, 30])
    if severity is None:
        assert problems == []
    else:
        [problem] = problems
        assert problem.severity is severity
        assert fragment in problem.message
        assert "190655AP" in problem.message


def test_review_overdue_blocks_only_with_a_handout(write_article: WriteArticle) -> None:
    fixed = FIXED_DATES_FRONT_MATTER
    with_handout = load_article(write_article(front_matter=fixed, name="a.md"))  # next review 2027-11-01
    assert check_review(with_handout, date(2027, 11, 1)) == []
    [blocked] = check_review(with_handout, date(2027, 11, 2))
    assert blocked.severity is Severity.BLOCKED
    assert "handout" in blocked.message
    web_only = load_article(write_article(front_matter=fixed + "channels: [web]\n", name="b.md"))
    [warning] = check_review(web_only, date(2027, 11, 2))
    assert warning.severity is Severity.WARNING


def test_check_refuses_a_bad_unsubscribe_url_at_load(write_site: Callable[..., Path], tmp_path: Path) -> None:
    """Exit 2 naming the key, before any check runs: not exit 1 at `publish`'s render."""
    from typer.testing import CliRunner

    from clinicpress.cli import app

    site = write_site(unsubscribe_url='"http://example.org/unsubscribe"')
    article = tmp_path / "a.md"
    article.write_text(f"---\n{FIXED_DATES_FRONT_MATTER}---\nText.\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["check", "--site", str(site), "--out", str(tmp_path / "out"), str(article)]
    )
    assert result.exit_code == 2
    assert "newsletter.unsubscribe_url" in result.stderr
    assert "https://" in result.stderr
