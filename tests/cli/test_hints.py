"""Every command a hint prints works as printed (issue 24, part 2).

The CLI runs in a clinic folder of its own, with ``--site`` and ``--out`` that are not the
defaults (and hold spaces, so quoting counts). Each test takes the command a hint printed, splits
it as a shell would, fills in its placeholders and runs it: it must act on the same site and
output folder (a sign-off recorded in the default registry would leave the article blocked).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_FRONT_MATTER, ROOT, site_text
from smtpserver import SMTPTestServer
from typer.testing import CliRunner

from clinicpress.cli import app
from clinicpress.hints import Placeholder, command, using

runner = CliRunner()
SLUG = "test-article"  # MINIMAL_FRONT_MATTER's title
FILL = {"NAME": "Ana Ruiz", "CRED": "MD"}


@dataclass(frozen=True)
class Clinic:
    """The folder the CLI runs in (relative paths, as typed there): content/ holds the site config."""

    root: Path
    site: Path
    out: Path
    article: Path

    @property
    def where(self) -> list[str]:
        return ["--site", str(self.site), "--out", str(self.out)]


@pytest.fixture
def clinic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Clinic:
    root = tmp_path / "the clinic"
    (root / "content").mkdir(parents=True)
    # Beside the articles, as `review` expects, but not content/site.toml: not the default --site.
    site = root / "content" / "clinic site.toml"
    site.write_text(site_text(timeout="2.0", retries="0") + "\n[review]\nrequired = true\n", encoding="utf-8")
    (root / "content" / "a.md").write_text(
        f"---\n{MINIMAL_FRONT_MATTER}---\nPlain words.\n", encoding="utf-8"
    )
    monkeypatch.chdir(root)
    return Clinic(root, Path("content/clinic site.toml"), Path("pub lished"), Path("content/a.md"))


def _hints(pattern: str, text: str) -> list[str]:
    found = re.findall(pattern, text, flags=re.MULTILINE)
    assert found, f"no hint matching {pattern!r} in:\n{text}"
    return found


def _follow(hint: str, **fill: str) -> Any:
    """Run a printed command as a person would: split as the shell does, placeholders filled in."""
    argv = shlex.split(hint)
    assert argv[0] == "clinicpress", hint
    return runner.invoke(app, [{**FILL, **fill}.get(word, word) for word in argv[1:]])


def _nothing_at_the_defaults(clinic: Clinic) -> None:
    assert not (clinic.root / "published").exists()  # the default --out: no registry, no release
    assert not (clinic.root / "content" / "site.toml").exists()


# -- the helper ------------------------------------------------------------------------------------


def test_a_hint_is_quoted_for_the_shell_and_carries_the_run_options() -> None:
    assert command("review", "a b", "--by", "NAME") == "clinicpress review 'a b' --by NAME"
    with using(site="my clinic/site.toml", out=None):
        hint = command("newsletter", "resolve", "a", "x@example.org", Placeholder("--sent|--not-sent"))
        assert (
            hint
            == "clinicpress newsletter resolve a x@example.org --sent|--not-sent --site 'my clinic/site.toml'"
        )
        assert command("server", "stop", where=False) == "clinicpress server stop"
    assert command("publish") == "clinicpress publish"  # outside the run: nothing left behind


def test_a_command_forgets_its_options_when_it_ends(clinic: Clinic) -> None:
    default_out = runner.invoke(app, ["releases", "--site", str(clinic.site)])
    assert default_out.exit_code == 0, default_out.output
    # Only what differs from the default is printed: this run's --out is the default one.
    assert default_out.stdout.strip() == (
        f"no releases in published (run clinicpress publish --site '{clinic.site}')"
    )
    assert command("publish") == "clinicpress publish"


def test_a_command_whose_parsing_failed_leaves_no_options_for_the_next(clinic: Clinic) -> None:
    # --site is recorded as it is parsed; the unknown option then fails the parsing, and click never
    # closes that context: the next command in this process must not inherit the --site.
    failed = runner.invoke(app, ["releases", "--site", str(clinic.site), "--no-such-option"])
    assert failed.exit_code == 2
    runner.invoke(app, ["server", "status"])  # any command: it starts with nothing recorded
    assert command("publish") == "clinicpress publish"


# -- check: the sign-off hint ----------------------------------------------------------------------

REVIEW_HINT = r"→ (clinicpress review .*) \(after reviewing this text\)$"


def test_the_review_hint_of_check_records_the_sign_off_where_check_reads_it(clinic: Clinic) -> None:
    check = [*clinic.where, str(clinic.article)]
    blocked = runner.invoke(app, ["check", *check])
    assert blocked.exit_code == 1, blocked.output
    [hint] = _hints(REVIEW_HINT, blocked.stdout)
    assert hint == (
        f"clinicpress review {SLUG} --by NAME --credentials CRED --approve "
        f"--site '{clinic.site}' --out '{clinic.out}'"
    )
    done = _follow(hint)
    assert done.exit_code == 0, done.output
    assert "approved by Ana Ruiz, MD" in done.stdout
    signed = runner.invoke(app, ["check", *check])
    assert signed.exit_code == 0, signed.output  # the article is no longer blocked
    _nothing_at_the_defaults(clinic)


# -- publish, releases, rollback: a real Prefect run -------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_the_hints_around_a_publish_work_as_printed(clinic: Clinic) -> None:
    nothing = runner.invoke(app, ["releases", *clinic.where])
    assert nothing.exit_code == 0, nothing.output
    [publish] = _hints(r"\(run (clinicpress publish .*)\)$", nothing.stdout)

    # Run as printed (every article in content/): blocked by the sign-off, which the flow's check
    # names with a command that carries this run's options too.
    blocked = _follow(publish)
    assert blocked.exit_code == 1, blocked.output
    [review] = _hints(REVIEW_HINT, blocked.stdout)
    assert _follow(review).exit_code == 0

    published = _follow(publish)
    assert published.exit_code == 0, published.output
    assert (clinic.root / clinic.out / "web" / SLUG / "index.html").is_file()

    rollback = runner.invoke(app, ["rollback", SLUG, *clinic.where])
    assert rollback.exit_code == 2, rollback.output  # one version only: nothing to roll back to
    [releases] = _hints(r"\(see (clinicpress releases .*)\)$", rollback.stderr)
    listing = _follow(releases)
    assert listing.exit_code == 0, listing.output
    assert f"1 article(s): {SLUG}@" in listing.stdout
    _nothing_at_the_defaults(clinic)


@pytest.fixture
def smtp() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as server:
        yield server


@pytest.mark.usefixtures("prefect_harness")
def test_the_approve_send_hint_sends_the_newsletter(clinic: Clinic, smtp: SMTPTestServer) -> None:
    readers = ["ann@example.org", "bob@example.org"]
    (clinic.root / "readers.csv").write_text("email\n" + "".join(f"{r}\n" for r in readers))
    site = clinic.root / clinic.site
    text = site.read_text(encoding="utf-8").replace("required = true", "required = false")
    site.write_text(
        text.replace(
            'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"',
            'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"\n'
            f'subscribers = "{clinic.root / "readers.csv"}"\napproval_required = true\n\n'
            f'[newsletter.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\ntimeout = 5',
        ),
        encoding="utf-8",
    )
    published = runner.invoke(app, ["publish", "--by", "Alice", *clinic.where, str(clinic.article)])
    assert published.exit_code == 0, published.output
    assert smtp.received == []
    # Each place that names the command names the same one, with this run's options.
    hints = set(_hints(r"(clinicpress approve-send .*)$", published.stdout))
    assert hints == {f"clinicpress approve-send {SLUG} --by NAME --site '{clinic.site}' --out '{clinic.out}'"}
    approved = _follow(hints.pop(), NAME="Bob")
    assert approved.exit_code == 0, approved.output
    assert sorted(r for message in smtp.accepted for r in message.rcpt_tos) == readers
    _nothing_at_the_defaults(clinic)


# -- import -----------------------------------------------------------------------------------------


def test_the_import_hint_runs_the_check_that_says_it(clinic: Clinic) -> None:
    page = ROOT / "tests" / "fixtures" / "import" / "ketamine-therapy-substance-abuse.html"
    imported = runner.invoke(app, ["import", str(page), *clinic.where])
    assert imported.exit_code == 0, imported.output
    [(hint, says)] = re.findall(r"^until then `(clinicpress check .*)` says: (.*)$", imported.stdout, re.M)
    checked = _follow(hint)
    assert checked.exit_code == 2, checked.output
    assert f"error: {says}" in checked.stderr.splitlines()  # the file, as the hint said
    _nothing_at_the_defaults(clinic)
