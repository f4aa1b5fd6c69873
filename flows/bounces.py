"""The ``bounces`` flow: read the site's bounce mailbox and suppress what it reports (issue 28, part 3).

Thin: ``[newsletter.bounces]`` names the mailbox (a Maildir folder, or an IMAP URL whose password
is in ``CLINICPRESS_BOUNCES__IMAP_PASSWORD`` in the served process's environment); reading it is
``outputs/delivery/loop.py``'s ``read_mailbox``, the same as ``clinicpress newsletter bounces``.
``clinicpress serve`` runs it on ``[newsletter.bounces] schedule``. Two runs at once are harmless:
the mailbox is only read, and an event already recorded is not recorded again.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from clinicpress.flows.json_flow import flow
from clinicpress.outputs.delivery.loop import configured_mailbox, read_mailbox
from clinicpress.outputs.registry import registry_url
from clinicpress.site import DEFAULT_SITE_PATH, load_site

DEFAULT_OUT_DIR = Path("published")


class BouncesResult(BaseModel):
    messages: int = 0
    reports: int = 0
    recorded: int = 0  # new events
    suppressed: list[str] = Field(default_factory=list)  # "<address> (<how>)", made or strengthened
    lines: list[str] = Field(default_factory=list)  # what `clinicpress newsletter bounces` prints


@flow(name="bounces", validate_parameters=True)
def bounces_flow(
    site_path: str = str(DEFAULT_SITE_PATH), out_dir: str = str(DEFAULT_OUT_DIR)
) -> BouncesResult:
    """Read bounces (RFC 3464) and complaints (RFC 5965) from ``[newsletter.bounces]`` and suppress
    their addresses."""
    site = load_site(site_path)
    maildir, imap = configured_mailbox(site.newsletter, Path(site_path))
    summary = read_mailbox(registry_url(site, Path(out_dir)), maildir=maildir, imap=imap)
    return BouncesResult(
        messages=summary.messages,
        reports=summary.reports,
        recorded=summary.recorded,
        suppressed=[f"{address} ({how})" for address, how in summary.suppressed],
        lines=summary.lines(),
    )
