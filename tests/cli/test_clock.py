"""The product's one clock: ``check --as-of``, the test-only shift, and the sample license over time.

Every day here is pinned (``--as-of`` or ``pin_clock``), so these tests pass on any real date.
The sample's sources are excluded from the link check: no test reaches the internet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from conftest import REFERENCE_ARTICLE, ROOT, site_text

from clinicpress import clock
from clinicpress.errors import InputError

SAMPLE_EXPIRES = "2027-04-30"  # content/site.toml: program 190655AP


@pytest.fixture
def sample_site(tmp_path: Path) -> Path:
    """The sample site with its real license date; sources skipped (offline, and not what is tested)."""
    text = site_text(expires=SAMPLE_EXPIRES)
    text = text.replace("[checks.links]\n", '[checks.links]\nexclude = [".*"]\n', 1)
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _check(site: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "clinicpress", "check", "--site", str(site), "--out", str(out)]
    return subprocess.run(
        [*command, *args, str(REFERENCE_ARTICLE)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_check_as_of_after_expiry_blocks_naming_the_license(sample_site: Path, tmp_path: Path) -> None:
    result = _check(sample_site, tmp_path / "out", "--as-of", "2027-05-01")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "190655AP" in result.stdout
    assert "expired on April 30, 2027" in result.stdout
    assert "(as of 2027-05-01)" in result.stdout


def test_check_as_of_inside_the_window_warns_and_exits_0(sample_site: Path, tmp_path: Path) -> None:
    result = _check(sample_site, tmp_path / "out", "--as-of", "2027-01-15", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["as_of"] == "2027-01-15"
    [article] = report["articles"]
    assert article["verdict"] == "warning"
    [license_problem] = [p for p in article["problems"] if p["check"] == "license"]
    assert license_problem["severity"] == "warning"
    assert "in 105 days" in license_problem["message"]


def test_check_as_of_refuses_a_bad_date(sample_site: Path, tmp_path: Path) -> None:
    result = _check(sample_site, tmp_path / "out", "--as-of", "May 1st")
    assert result.returncode == 2
    assert "--as-of" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_shift_reaches_every_cli_process(
    sample_site: Path, tmp_path: Path, pin_clock: Callable[[date], None]
) -> None:
    """The day the original bug appeared: the sample license enters its 150-day window."""
    pin_clock(date(2026, 12, 2))
    result = _check(sample_site, tmp_path / "out", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["as_of"] == "2026-12-02"
    [problem] = [p for p in report["articles"][0]["problems"] if p["check"] == "license"]
    assert "in 149 days" in problem["message"]


def test_publish_has_no_as_of(sample_site: Path, tmp_path: Path) -> None:
    """publish and monitor always use the real clock: --as-of is a check-only question."""
    result = subprocess.run(
        [sys.executable, "-m", "clinicpress", "publish", "--as-of", "2027-05-01", str(REFERENCE_ARTICLE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert "No such option" in result.stderr


@pytest.mark.parametrize(("raw", "expected"), [("", 0), ("730", 730), ("-3", -3), (" 45 ", 45)])
def test_shift_reads_whole_days(monkeypatch: pytest.MonkeyPatch, raw: str, expected: int) -> None:
    monkeypatch.setenv(clock.SHIFT_ENV, raw)
    assert clock.shift().days == expected


@pytest.mark.parametrize("raw", ["two years", "1.5", "99999999"])
def test_a_bad_shift_is_an_input_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(clock.SHIFT_ENV, raw)
    with pytest.raises(InputError, match=clock.SHIFT_ENV):
        clock.today()


def test_now_and_today_agree(pin_clock: Callable[[date], None]) -> None:
    pin_clock(date(2030, 6, 1))
    assert clock.today() == date(2030, 6, 1)
    assert clock.local_now().date() == date(2030, 6, 1)
    assert abs((clock.now() - clock.local_now()).total_seconds()) < 5
