"""Secrets at load (issue 23, part 2): where the SMTP password may come from, no login in clear
text, alert URLs checked with apprise; a refusal is exit 2 naming the place, never the secret.

Through the CLI as typed (``clinicpress releases``: it loads the site config and nothing more), in
this process; the alert URL refusal also in a process of its own, where nothing captures logging
and Python's last-resort handler would print what apprise logs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from clinicpress.cli import app
from clinicpress.site import load_site

runner = CliRunner()
SECRET = "hunter2-Zq8v"  # a test value, searched for in every output
ENV = "CLINICPRESS_NEWSLETTER__SMTP__PASSWORD"
TELEGRAM = "tgram://123456789:AAHxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/42"
GOOD_URLS = [
    TELEGRAM,
    "pover://USERKEYuserkeyuserkeyuserkeyus@APPTOKENapptokenapptokenapptok",
    "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general",
    f"json://alerts:{SECRET}@hooks.example.org/clinicpress",
    f"mailtos://ops:{SECRET}@example.org?to=oncall@example.org",
]


def _site(write_site: Callable[..., Path], smtp: str = "", urls: list[str] | None = None) -> Path:
    site = write_site()
    text = site.read_text(encoding="utf-8")
    if smtp:
        text = text.replace(
            "[checks]\n", f'[newsletter.smtp]\nhost = "smtp.example.org"\n{smtp}\n\n[checks]\n', 1
        )
    if urls is not None:
        listed = ", ".join(f'"{url}"' for url in urls)
        text = text.replace("urls = []", f"urls = [{listed}]", 1)
    site.write_text(text, encoding="utf-8")
    return site


def _load(site: Path, tmp_path: Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["releases", "--site", str(site), "--out", str(tmp_path / "out")])
    return result.exit_code, result.stdout, result.stderr


def _refused(site: Path, tmp_path: Path, *says: str) -> str:
    code, stdout, stderr = _load(site, tmp_path)
    assert code == 2, stdout + stderr
    [line] = stderr.strip().splitlines()  # one line, no traceback
    for part in says:
        assert part in line, line
    assert SECRET not in stdout + stderr
    return line


def _accepted(site: Path, tmp_path: Path) -> None:
    code, stdout, stderr = _load(site, tmp_path)
    assert code == 0, stdout + stderr
    assert SECRET not in stdout + stderr


@pytest.fixture(autouse=True)
def _no_password_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


def test_a_password_key_in_site_toml_is_refused_naming_the_key(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = _site(write_site, f'username = "news"\npassword = "{SECRET}"')
    line = _refused(site, tmp_path, "newsletter.smtp.password", "does not belong in site.toml", ENV)
    assert "password_file" in line  # where a password goes instead


def test_a_password_file_others_can_read_is_refused_naming_file_and_mode(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text(SECRET + "\n")
    site = _site(write_site, 'username = "news"\npassword_file = "smtp-password"')  # relative to site.toml
    for mode, who in ((0o644, "its group and everyone"), (0o640, "its group"), (0o604, "everyone")):
        secret.chmod(mode)
        _refused(site, tmp_path, "newsletter.smtp.password_file", str(secret), f"mode {mode:04o}", who)
    secret.chmod(0o600)
    _accepted(site, tmp_path)
    smtp = load_site(site).newsletter.smtp
    assert smtp is not None
    assert smtp.password is not None
    assert smtp.password.get_secret_value() == SECRET  # the line end dropped
    assert SECRET not in repr(load_site(site))


def test_a_missing_or_multi_line_password_file_is_refused(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = _site(write_site, 'username = "news"\npassword_file = "smtp-password"')
    _refused(site, tmp_path, "newsletter.smtp.password_file", "no such file")
    secret = tmp_path / "smtp-password"
    secret.write_text(f"{SECRET}\nsecond line\n")
    secret.chmod(0o600)
    _refused(site, tmp_path, "newsletter.smtp.password_file", "more than one line")


def test_the_password_from_the_environment_is_accepted_and_wins(
    write_site: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, SECRET)
    site = _site(write_site, 'username = "news"')
    _accepted(site, tmp_path)
    smtp = load_site(site).newsletter.smtp
    assert smtp is not None
    assert smtp.password is not None
    assert smtp.password.get_secret_value() == SECRET
    # With a password_file too, the environment wins (as for every key) and the file is not read.
    named = _site(write_site, 'username = "news"\npassword_file = "absent"')
    _accepted(named, tmp_path)
    monkeypatch.setenv(ENV, "")  # an empty variable is not a password: the file is read
    _refused(named, tmp_path, "newsletter.smtp.password_file", "no such file")


def test_a_login_over_a_connection_that_is_not_encrypted_is_refused(
    write_site: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, SECRET)
    site = _site(write_site, 'security = "none"\nusername = "news"')
    _refused(site, tmp_path, "newsletter.smtp", 'security = "none"', "clear text")
    _accepted(_site(write_site, 'security = "none"'), tmp_path)  # a local relay without a login
    _accepted(_site(write_site, 'security = "tls"\nport = 465\nusername = "news"'), tmp_path)


def test_a_bad_alert_url_is_refused_by_its_index_without_echoing_it(
    write_site: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A Pushover URL without its application token.
    bad = f"pover://{SECRET}"
    site = _site(write_site, urls=[GOOD_URLS[0], GOOD_URLS[3], bad, "nosuchservice://abc"])
    _refused(site, tmp_path, "alerts.urls[2]", "apprise cannot use this URL", "(and 1 more problem)")
    # apprise logs a URL it cannot load, masking some tokens ("h...v") and not others (this one):
    # what it logs while the URL is checked is dropped.
    clear = "abc123secret"
    _refused(_site(write_site, urls=[f"nosuchservice://{clear}@example.org"]), tmp_path, "alerts.urls[0]")
    assert clear not in caplog.text
    assert SECRET not in caplog.text
    unknown = _site(write_site, urls=[f"nosuchservice://{SECRET}@example.org"])
    _refused(unknown, tmp_path, "alerts.urls[0]")
    not_a_list = write_site()
    not_a_list.write_text(not_a_list.read_text().replace("urls = []", f'urls = "{TELEGRAM}"'))
    _refused(not_a_list, tmp_path, "alerts.urls", "a valid list")
    assert TELEGRAM.split("/")[2] not in _load(not_a_list, tmp_path)[2]


def test_the_traceback_of_verbose_does_not_print_the_url(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = _site(write_site, urls=[f"pover://{SECRET}"])
    result = runner.invoke(app, ["releases", "-v", "--site", str(site), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr  # the pydantic error chained under ours, without its input
    assert SECRET not in result.stdout + result.stderr


def test_an_alert_url_from_the_environment_is_checked_too(
    write_site: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINICPRESS_ALERTS__URLS", f'["{GOOD_URLS[1]}", "pover://{SECRET}"]')
    _refused(_site(write_site), tmp_path, "alerts.urls[1]")


def test_telegram_pushover_slack_json_and_mailtos_urls_are_accepted(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = _site(write_site, urls=GOOD_URLS)
    _accepted(site, tmp_path)
    assert load_site(site).alerts.urls == GOOD_URLS


def test_the_sample_site_config_loads() -> None:
    assert load_site(ROOT / "content" / "site.toml").alerts.urls == []


def test_in_a_process_of_its_own_nothing_prints_the_url(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    """No test runner's logging here: apprise's "Unparseable URL …" would reach stderr."""
    site = _site(write_site, urls=[f"nosuchservice://{SECRET}@example.org", f"pover://{SECRET}"])
    env = {k: v for k, v in os.environ.items() if k != ENV}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "clinicpress",
            "releases",
            "--site",
            str(site),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "alerts.urls[0]" in done.stderr
    assert SECRET not in done.stdout + done.stderr
