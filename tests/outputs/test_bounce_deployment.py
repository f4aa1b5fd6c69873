"""The scheduled bounce reading (issue 28, part 3): ``clinicpress serve`` serves a ``bounces``
deployment on ``[newsletter.bounces] schedule`` when the site names a mailbox, and its flow reads
that mailbox (a Maildir here, relative to site.toml) into the suppression list."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from clinicpress.errors import SiteConfigError
from clinicpress.outputs.delivery.suppression import SuppressionStore
from clinicpress.site import load_site

MAIL = Path(__file__).resolve().parent.parent / "fixtures" / "mail"


def with_mailbox(write_site: Callable[..., Path], table: str) -> Path:
    path = write_site()
    path.write_text(path.read_text() + f"\n[newsletter.bounces]\n{table}\n")
    return path


def test_the_bounces_deployment_is_served_on_its_schedule_only_when_a_mailbox_is_set(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from clinicpress.flows.deployments import build_deployments

    plain = {d.name for d in build_deployments(write_site(name="plain.toml"), tmp_path / "out")}
    assert plain == {"publish", "monitor", "review"}

    site = with_mailbox(write_site, 'maildir = "bounces"\nschedule = "*/20 * * * *"')
    deployments = {d.name: d for d in build_deployments(site, tmp_path / "out")}
    bounces = deployments["bounces"]
    [schedule] = bounces.schedules
    assert schedule.schedule.cron == "*/20 * * * *"
    assert bounces.parameters == {
        "site_path": str(site.resolve()),
        "out_dir": str((tmp_path / "out").resolve()),
    }


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('maildir = "b"\nimap = "imaps://u@127.0.0.1/INBOX"', "exactly one of maildir or imap"),
        ("schedule = '0 * * * *'", "exactly one of maildir or imap"),
        ('imap = "imaps://u:secret@127.0.0.1/INBOX"', "CLINICPRESS_BOUNCES__IMAP_PASSWORD"),
        ('imap = "https://127.0.0.1/INBOX"', "imaps://USER@HOST"),
    ],
)
def test_a_bad_mailbox_is_refused_at_load(write_site: Callable[..., Path], table: str, says: str) -> None:
    with pytest.raises(SiteConfigError, match=r"newsletter\.bounces") as caught:
        load_site(with_mailbox(write_site, table))
    assert says in str(caught.value)
    assert "secret" not in str(caught.value)  # a password in the URL is never echoed


@pytest.mark.usefixtures("prefect_harness")
def test_the_bounces_flow_suppresses_what_the_configured_maildir_reports(
    write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from clinicpress.flows.bounces import bounces_flow
    from clinicpress.outputs.registry import registry_url

    folder = tmp_path / "bounces"  # beside site.toml: the setting is relative to it
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True)
    for name in ("dsn-user-unknown.eml", "arf-optional-fields.eml", "dsn-policy.eml"):
        shutil.copy(MAIL / name, folder / "new" / f"1.{name}:2,")
    site = with_mailbox(write_site, 'maildir = "bounces"')
    out = tmp_path / "out"

    result = bounces_flow(site_path=str(site), out_dir=str(out))
    assert result.messages == 3
    assert sorted(result.suppressed) == ["reader@example.net (hard-bounce)", "third@example.com (complaint)"]
    with SuppressionStore(registry_url(load_site(site), out)) as store:
        assert store.is_suppressed("reader@example.net")
        assert store.is_suppressed("third@example.com")
    again = bounces_flow(site_path=str(site), out_dir=str(out))
    assert (again.recorded, again.suppressed) == (0, [])  # read twice, recorded once
