"""The send state machine: which recipients to send, claim each, send it, record the outcome.

``send_newsletter`` is the entry point (after the release swap committed).
The decisions are pure functions (``recorded``: what an SMTP outcome makes
of a recipient); the records are ``store.py``'s, the wire ``smtp.py``'s.
"""

from __future__ import annotations

import dataclasses
import functools
import smtplib
import ssl
import uuid
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from clinicpress import clock
from clinicpress.errors import ClinicpressError, InputError
from clinicpress.faults import fault_point
from clinicpress.outputs.delivery.dkim_sign import DkimSigner
from clinicpress.outputs.delivery.errors import DeliveryError, SmtpError, SmtpGone
from clinicpress.outputs.delivery.lease import lease_ttl, owner_name
from clinicpress.outputs.delivery.loop import (
    LinkMaker,
    domain_check_wanted,
    domain_report,
    missing_secret,
    signer_for,
)
from clinicpress.outputs.delivery.people import trigger_name
from clinicpress.outputs.delivery.report import RecipientIssue, SendReport
from clinicpress.outputs.delivery.schema import Approval, State
from clinicpress.outputs.delivery.smtp import Delivery, Outcome, SmtpSession, deliver
from clinicpress.outputs.delivery.store import DeliveryStore, Queued
from clinicpress.outputs.delivery.suppression import SuppressionStore
from clinicpress.outputs.registry import registry_url
from clinicpress.outputs.release import version_text
from clinicpress.outputs.subscribers import Subscriber, address_problem
from clinicpress.postal import check_postal_address
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.newsletter import MessageTemplate, personalise, render_message_template
from clinicpress.site import SiteConfig, Smtp
from clinicpress.sources.article import Article, Channel
from clinicpress.sources.versioning import content_hash

TEST_SUBJECT_PREFIX = "[TEST] "

# What each outcome makes of a claimed recipient.
STATE_AFTER = {
    Outcome.ACCEPTED: State.ACCEPTED,
    Outcome.REFUSED: State.FAILED,
    Outcome.UNKNOWN: State.UNCERTAIN,  # the server may have it: never resent automatically
    Outcome.NOT_SENT: State.PENDING,  # provably not sent: the same recipient again
}


def recorded(result: Delivery, at: datetime) -> dict[str, Any]:
    """The columns to record for a claimed recipient's outcome, ``at`` that moment."""
    state = STATE_AFTER[result.outcome]
    if state is State.ACCEPTED:
        return {"state": state, "smtp_response": result.detail, "last_error": None, "finished_at": at}
    if state is State.PENDING:  # not finished: released for the next attempt
        return {"state": state, "data_started": False, "run_id": None, "last_error": result.detail}
    return {"state": state, "last_error": result.detail, "finished_at": at}


def send_newsletter(
    article: Article,
    site: SiteConfig,
    context: RenderContext,
    out_dir: Path | str,
    *,
    recipients: Sequence[Subscriber],
    smtp: Smtp,
    test_to: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    reconnects: int = 3,
    reconnect_delay: float = 0.5,
    db_url: str | None = None,
    triggered_by: str | None = None,
    strict: bool = False,
) -> SendReport:
    """Send this article version's newsletter to every recipient not yet sent to.

    Call only after the release swap committed. With ``test_to`` one message
    with "[TEST] " in the subject goes to that address only, recorded apart
    (no subscriber is marked sent). Never raises for SMTP trouble: the report
    says what happened; call ``report.raise_if_incomplete()`` to make an
    incomplete send an error.

    ``triggered_by`` (who published it) is recorded with the send. With ``[newsletter]
    approval_required`` a new send waits, sending to nobody, until someone else approves it
    (``approval.py``); the report says so (``report.awaiting``).

    The newsletter's loop (issue 28; defaults in ``loop.py``): a suppressed address (unsubscribed,
    bounced, complained) is never sent to, whatever the CSV lists; each message carries its
    recipient's signed one-click link and, with ``[newsletter.dkim]``, a DKIM signature; a send to
    subscribers waits (recorded, pending) while the unsubscribe secret is missing or the From
    domain's SPF, DKIM or DMARC record is missing or wrong (DNS that does not answer only with
    ``strict``).
    """
    if Channel.NEWSLETTER not in article.channels:
        raise DeliveryError(f"{article.key}: the article has no newsletter channel; nothing to send")
    url = db_url or registry_url(site, Path(out_dir))
    signer = signer_for(site.newsletter)  # once per send: the key is parsed here
    session = SmtpSession(smtp, ssl_context, reconnects=reconnects, reconnect_delay=reconnect_delay)
    with DeliveryStore(url) as store:
        if test_to is not None:
            return _test_send(store, session, article, site, context, test_to, signer)
        with SuppressionStore(url) as suppression:
            # Before the send is enqueued or synced: a suppressed address is no candidate of a new
            # version, and leaves (excluded) a version's list it was on.
            recipients, _suppressed = suppression.without_suppressed(recipients)
        run = _Run(store, session, article, site, context, recipients, triggered_by)
        run.signer, run.strict, run.out_dir = signer, strict, Path(out_dir)
        return run.run()


class _Run:
    """One run over one send: holds its lease from start to end."""

    def __init__(
        self,
        store: DeliveryStore,
        session: SmtpSession,
        article: Article,
        site: SiteConfig,
        context: RenderContext,
        recipients: Sequence[Subscriber],
        triggered_by: str | None = None,
    ) -> None:
        self.store = store
        self.session = session
        self.article = article
        self.site = site
        self.context = context
        self.recipients = recipients
        self.max_attempts = site.newsletter.max_send_attempts
        self.run_id = uuid.uuid4().hex
        self.owner = owner_name(self.run_id)
        self.ttl = lease_ttl(session.settings.timeout)
        self.sent = 0
        self.triggered_by = trigger_name(triggered_by)
        required = site.newsletter.approval_required
        self.approval = Approval.AWAITING if required else Approval.NOT_REQUIRED
        self.signer: DkimSigner | None = None
        self.strict = False
        self.out_dir: Path | None = None  # the releases whose reports know an older send's text
        self.continued_from: str | None = None  # the version whose send of this text this run continued
        self.links = LinkMaker.of(site.newsletter.unsubscribe_url, site.newsletter, article.key)

    def run(self) -> SendReport:
        report = self._run()
        # Said once, by the run that moved the send: why a new version sent nobody anything.
        return dataclasses.replace(report, continued_from=self.continued_from)

    def _run(self) -> SendReport:
        fault_point("newsletter.enqueue")
        slug = self.article.key
        send = self.store.ensure_send(
            slug,
            self.context.version,
            self.article.title,
            self.context.published_at,
            self.recipients,
            text=content_hash(self.article),  # a new version of the same text continues its send
            text_of=lambda version: version_text(self.out_dir, slug, version) if self.out_dir else None,
            triggered_by=self.triggered_by,
            approval=self.approval,
        )
        send_id, published_at = send.id, send.published_at
        self.continued_from = send.continued_from
        fault_point("newsletter.enqueued")
        if send.approval is Approval.AWAITING:
            # The gate: nobody is sent anything until a second person approves (approval.py).
            return self.store.report(send_id, self.max_attempts, sent=0)
        postal = check_postal_address(self.site.organization.postal_address)
        if not postal.complete:
            # CAN-SPAM: no send without the sender's street address. The send stays recorded and
            # pending: the next publish after the address is completed sends it.
            return self.store.report(
                send_id, self.max_attempts, sent=0, stopped=f"not sent: {postal.reason()}"
            )
        # RFC 8058: the one-click POST must say who; the same shape as the postal gate.
        if no_secret := missing_secret(self.site.newsletter, [s.unsubscribe_url for s in self.recipients]):
            return self.store.report(send_id, self.max_attempts, sent=0, stopped=f"not sent: {no_secret}")
        busy = self.store.acquire(send_id, self.owner, self.ttl)
        if busy is not None:
            return self.store.report(send_id, self.max_attempts, sent=0, busy=busy)
        self.store.start_run(self.run_id, send_id, self.owner)
        stopped: str | None = None
        try:
            self.store.recover(send_id)
            self.store.sync_list(send_id, {s.key for s in self.recipients})
            queue = self.store.eligible(send_id, self.max_attempts)
            if queue and (blocked := self._domain_blocks()):
                stopped = f"not sent: {blocked}"
            elif queue:
                # Every recipient's message carries the Date of the first enqueue, whichever run sends it.
                context = RenderContext(published_at=published_at, version=self.context.version)
                template = render_message_template(self.article, self.site, context)
                stopped = self._send_all(send_id, template, queue)
        except BaseException:
            # Mid-transaction a polite QUIT would wait for a reply that may never come.
            self.session.drop()
            raise
        finally:
            self.session.close()
            try:
                report = self.store.report(send_id, self.max_attempts, sent=self.sent, stopped=stopped)
                self.store.finish_run(self.run_id, report)
            finally:
                self.store.release(send_id, self.owner)
        return report

    def _domain_blocks(self) -> str | None:
        """Why the From domain stops the send (SPF, DKIM or DMARC named), or None. Asked only when
        something is left to send: a finished send's resume costs no DNS lookup."""
        news = self.site.newsletter
        if not domain_check_wanted(news):
            return None
        report = domain_report(news.from_address, news, self.signer)
        return report.reason() if report.blocks(strict=self.strict) else None

    def _send_all(self, send_id: int, template: MessageTemplate, queue: list[Queued]) -> str | None:
        """Send to the queue in order; the reason the run stopped early, or None."""
        for recipient in queue:
            try:
                msg = _message(
                    template, recipient.address, self.links, self.signer, recipient.unsubscribe_url
                )
            except ClinicpressError as exc:  # e.g. this recipient's message is too large
                self._fail_unsendable(send_id, recipient, str(exc))
                continue
            try:
                self.session.transaction(functools.partial(self._attempt, send_id, recipient, template, msg))
            except SmtpGone as exc:
                return f"{exc}; the next run resumes"
            except SmtpError as exc:
                return str(exc)
        return None

    def _attempt(
        self,
        send_id: int,
        recipient: Queued,
        template: MessageTemplate,
        msg: EmailMessage,
        conn: smtplib.SMTP,
    ) -> Delivery | None:
        """Claim, one SMTP transaction, record its outcome; None when no longer eligible."""
        claimed = self.store.claim(
            send_id,
            recipient.id,
            self.run_id,
            self.owner,
            self.ttl,
            self.max_attempts,
            str(msg["Message-ID"]),
        )
        if not claimed:
            return None  # unsubscribed meanwhile
        fault_point("newsletter.claimed")
        started = functools.partial(self.store.mark, recipient.id, self.run_id, data_started=True)
        result = deliver(conn, template.from_address, recipient.address, msg, started)
        self.store.mark(recipient.id, self.run_id, **recorded(result, clock.now()))
        if result.outcome is Outcome.ACCEPTED:
            self.sent += 1
        return result

    def _fail_unsendable(self, send_id: int, recipient: Queued, why: str) -> None:
        """A message that cannot be made for this recipient fails without a connection."""
        if self.store.claim(send_id, recipient.id, self.run_id, self.owner, self.ttl, self.max_attempts, ""):
            at = clock.now()
            self.store.mark(recipient.id, self.run_id, state=State.FAILED, last_error=why, finished_at=at)


def _message(
    template: MessageTemplate,
    to: str,
    links: LinkMaker,
    signer: DkimSigner | None,
    own_link: str | None = None,
    subject_prefix: str = "",
) -> EmailMessage:
    """One recipient's message: their one-click link, then the DKIM signature over it all."""
    link = links.link(to, own_link)
    msg = personalise(template, to=to, unsubscribe_url=link, subject_prefix=subject_prefix)
    return signer.sign(msg) if signer is not None else msg


def _test_send(
    store: DeliveryStore,
    session: SmtpSession,
    article: Article,
    site: SiteConfig,
    context: RenderContext,
    test_to: str,
    signer: DkimSigner | None = None,
) -> SendReport:
    """One "[TEST] " message to one address, recorded apart from the subscribers."""
    problem = address_problem(test_to)
    if problem:
        raise InputError(None, "--test-to", f"{test_to[:80]!r} {problem}", "an address like name@example.org")
    template = render_message_template(article, site, context)
    # Signed and linked as a subscriber's would be (without a secret: the site's bare link).
    links = LinkMaker.of(site.newsletter.unsubscribe_url, site.newsletter, article.key)
    msg = _message(template, test_to, links, signer, subject_prefix=TEST_SUBJECT_PREFIX)
    message_id = str(msg["Message-ID"])
    test_id = store.start_test_send(article.key, context.version, test_to, message_id)
    result: Delivery | None = None
    stopped: str | None = None
    try:
        # A test message is never resent automatically, so no data_started marker is needed.
        result = session.transaction(
            lambda conn: deliver(conn, template.from_address, test_to, msg, lambda: None)
        )
    except SmtpError as exc:
        stopped = str(exc)
    finally:
        session.close()
    state = State.FAILED if result is None else STATE_AFTER[result.outcome]
    detail = stopped or (result.detail if result else "")
    accepted = state is State.ACCEPTED
    store.finish_test_send(
        test_id,
        state=state,
        smtp_response=detail if accepted else None,
        last_error=None if accepted else detail,
    )
    issue = RecipientIssue(test_to, state, 1, message_id, detail, None)
    return SendReport(
        slug=article.key,
        version=context.version,
        test=True,
        candidates=1,
        pending=0,
        claimed=0,
        accepted=int(accepted),
        failed=int(state is State.FAILED),
        uncertain=int(state is State.UNCERTAIN),
        excluded=0,
        sent=int(accepted),
        uncertain_recipients=(issue,) if state is State.UNCERTAIN else (),
        failed_recipients=(issue,) if state is State.FAILED else (),
        stopped=stopped,
    )
