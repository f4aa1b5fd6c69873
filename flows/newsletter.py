"""The publish flow's newsletter step: each live version's send, and the second person's approval.

After the release switch, ``publish_flow`` sends (or resumes) each live version's newsletter with
``send_newsletter_task``; with ``[newsletter] approval_required`` a new send waits for someone
other than the person who triggered the publish (``outputs/delivery/approval.py``). When the run
was started from a deployment (the Prefect UI, ``prefect deployment run``), ``ask_for_approval``
pauses it with a form (name; approve or not); the answer goes through the same checks and the
same record as ``clinicpress approve-send``, then the same send task runs. A CLI run never
pauses (the command must not block): it says the send waits, and how to approve it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Running
from pydantic import Field

from clinicpress.errors import ClinicpressError
from clinicpress.outputs.delivery import SendReport, send_newsletter
from clinicpress.outputs.delivery.approval import approve_version
from clinicpress.outputs.subscribers import Subscriber
from clinicpress.renderers.base import RenderContext
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article
from clinicpress.workspace import PublishOptions

APPROVAL_POLL_SECONDS = 5  # how soon a paused run notices the form was sent


@task(name="send-newsletter", cache_policy=NO_CACHE)
def send_newsletter_task(
    article: Article,
    version: str,
    site: SiteConfig,
    out_dir: Path,
    published_at: datetime,
    recipients: list[Subscriber],
    options: PublishOptions,
) -> SendReport:
    """Only after the swap committed: an email cannot be recalled (docs/architecture.md).

    ``options.strict`` (publish --strict): DNS that does not answer the From domain's check stops
    the send; ``options.test_to``: one [TEST] message to that address only.
    """
    assert site.newsletter.smtp is not None
    context = RenderContext(published_at=published_at, version=version)
    return send_newsletter(
        article,
        site,
        context,
        out_dir,
        recipients=recipients,
        smtp=site.newsletter.smtp,
        test_to=options.test_to,
        triggered_by=options.triggered_by,
        strict=options.strict,
    )


@task(name="approve-newsletter", cache_policy=NO_CACHE)
def approve_task(site: SiteConfig, out_dir: Path, slug: str, version: str, approver: str) -> str | None:
    """Record the form's approval, as ``clinicpress approve-send`` does; the refusal, or None."""
    try:
        approve_version(site, out_dir, slug, version, approver)
    except ClinicpressError as exc:  # the same refusals as the CLI's (and a registry that fails)
        return str(exc)
    return None


class SendApproval(RunInput):
    """The form a paused publish shows in the Prefect UI (a bool, not a one-value enum: see
    docs/reviewing/two-people.md)."""

    approver: str = Field(
        title="Your name", description="Someone other than the person who published these articles"
    )
    approve: bool = Field(
        default=False,
        title="Approve and send now",
        description="Off: the sends keep waiting (clinicpress approve-send SLUG --by NAME approves later)",
    )


def started_from_deployment() -> bool:
    """A deployment's own run (UI, ``prefect deployment run``), where a person can answer a form.

    Not a CLI run, and not a batch of ``publish --work-pool`` (a subflow its parent waits for).
    """
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    return run is not None and run.deployment_id is not None and run.parent_task_run_id is None


def _form_text(waiting: list[SendReport], refused: str | None, seconds: int) -> str:
    lines = ["**Newsletter sends waiting for a second person's approval**", ""]
    for report in waiting:
        lines.append(
            f"- `{report.slug}` (version `{report.version[:12]}`): {report.candidates} recipient(s), "
            f"published by **{report.triggered_by or 'unknown'}**"
        )
    lines += [
        "",
        "Someone other than the person who published: enter your name and switch on *Approve and "
        f"send now*. Left off, or unanswered within {seconds // 60} minute(s), the sends keep "
        "waiting for `clinicpress approve-send SLUG --by NAME`.",
    ]
    if refused:
        lines += ["", f"**Not approved:** {refused}"]
    return "\n".join(lines)


def _running_again() -> None:
    """After an unanswered pause: the run goes on (the release is live), not Failed by the server."""
    context = FlowRunContext.get()
    assert context is not None
    assert context.flow_run is not None
    with get_client(sync_client=True) as client:
        # The server refuses to leave a Paused state whose timeout passed; force it.
        client.set_flow_run_state(context.flow_run.id, Running(), force=True)


def ask_for_approval(
    reports: list[SendReport],
    site: SiteConfig,
    out_dir: Path,
    wait_seconds: int,
    send_again: Callable[[SendReport], SendReport],
) -> list[SendReport]:
    """Pause for the approval form while sends wait (deployment runs only); the reports after.

    ``send_again`` runs a send once more (after an approval it sends; before, it reports the
    wait). A refused answer (the trigger's own name, say) shows the form again, with why, until
    ``wait_seconds`` have passed.
    """
    waiting = [r for r in reports if r.awaiting]
    if not waiting or wait_seconds <= 0 or not started_from_deployment():
        return reports
    logger = get_run_logger()
    deadline = time.monotonic() + wait_seconds
    refused: str | None = None
    latest = {(r.slug, r.version): r for r in reports}
    while waiting and (left := int(deadline - time.monotonic())) > 0:
        form = SendApproval.with_initial_data(description=_form_text(waiting, refused, wait_seconds))
        try:
            answer = pause_flow_run(
                wait_for_input=form, timeout=left, poll_interval=min(APPROVAL_POLL_SECONDS, left)
            )
        except FlowPauseTimeout:
            _running_again()
            logger.warning("no approval within %d s: the newsletter sends keep waiting", wait_seconds)
            break
        if not answer.approve:
            logger.info("%s did not approve: the newsletter sends keep waiting", answer.approver)
            break
        problems = [approve_task(site, out_dir, r.slug, r.version, answer.approver) for r in waiting]
        refused = "; ".join(p for p in problems if p) or None
        if refused:
            logger.warning("approval refused: %s", refused)
        # Sent now if approved (by this form, or meanwhile by the CLI: it sends nothing twice).
        for report in waiting:
            latest[(report.slug, report.version)] = send_again(report)
        waiting = [r for r in latest.values() if r.awaiting]
    return list(latest.values())
