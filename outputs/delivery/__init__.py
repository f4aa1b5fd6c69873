"""Newsletter delivery over SMTP: one message per subscriber and article text, never two.

Called only after the release swap has committed (an email cannot be
recalled). Every recipient of a newsletter version has a recorded state in
the registry database (tables ``newsletter_*``, under the registry's schema version)::

    pending ──claim──▶ claimed ──▶ accepted    the server replied 250 to the message data
       ▲                  │    ├─▶ failed      a definite refusal (MAIL, RCPT, DATA or the
       │                  │    │               reply to the data); retried by a later run
       │                  │    │               while attempts < max_send_attempts
       │                  │    └─▶ uncertain   the connection dropped after the message data
       │                  │                    was sent but before the reply: the server may
       │                  │                    have it. Reported, never resent automatically.
       └──────────────────┘  the connection dropped before the message data was complete:
                             provably not sent, back to pending (no recipient's fault).
    pending | failed ──▶ excluded   no longer in the subscribers CSV (unsubscribed)

Rules:

- The claim (pending → claimed, attempts + 1) is committed before any SMTP
  command for that recipient; ``data_started`` is committed after the server's
  354 and before the first byte of the message data.
- A run that finds ``claimed`` rows left by a killed run resolves them before
  sending: without ``data_started`` → pending (the data never left: resend is
  safe); with it → uncertain (the server may have the message).
- A run sends only to pending, and to failed while attempts < max_send_attempts.
  Failed at the cap counts as excluded in the report.
- The recipient list of a version is fixed by its first enqueue (in one
  transaction with the send record); later enqueues add nobody. A new version
  with a new text is a new send; a new version of the text the article's latest send
  carries (a template or site change) continues that send: its row takes the new
  version, its recipients keep their states, so nobody gets one text twice
  (``store.ensure_send``; the move is guarded on the version it read). Removals from
  the CSV are honoured (→ excluded).
- One run per version at a time: a run holds a lease on the send (renewed at
  every claim; a lease whose process is gone on this host, or that expired,
  may be taken over). A second run finds it held and says so.
- Accounting: a run is complete only when candidates = accepted + failed +
  uncertain + excluded (nothing pending or claimed).
- A dropped connection is reopened (bounded, with backoff) and the run goes
  on with the next recipient; when the server stays away the run stops and
  the next run resumes.
- An uncertain recipient leaves that state only by a person's verdict
  (``clinicpress newsletter resolve SLUG EMAIL --sent|--not-sent``).
- With ``[newsletter] approval_required`` a new send is enqueued ``awaiting``
  (with who triggered the publish) and sends to nobody until someone else
  approves it (``clinicpress approve-send``, or the publish flow's form in the
  Prefect UI); the approval is recorded once, then the send runs as any other.

The modules, one job each: ``schema`` (the tables), ``store`` (the SQL of
every transition), ``smtp`` (the wire and the one reconnect loop; no
smtplib, ssl or socket exception leaves it), ``send`` (the state machine),
``lease`` (one run per send), ``report`` (what a send did), ``resolve``
(the manual verdict), ``people`` (the two-person rule, pure), ``approval``
(recording an approval, then the send), ``errors`` (the delivery's
exception branch).

The newsletter's loop (issue 28): ``unsubscribe`` (the signed one-click token),
``unsubscribe_server`` (its endpoint), ``suppression`` (the list every send filters its
recipients through, and the mail events), ``dkim_sign`` (each message signed), ``domain_check``
(SPF, DKIM and DMARC before a send), ``bounces`` (DSN and ARF reports from a mailbox), and
``loop`` (the site's settings read into them, the defaults, a send's numbers).
"""

# The names below load their module on first use (PEP 562): the registry imports
# ``delivery.schema`` at every open, and a publish that sends nothing should not pay for SMTP,
# DKIM (cryptography, dnspython) and the send's state machine (~0.1 s; docs/development/performance.md).
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clinicpress.outputs.delivery.errors import DeliveryError, DeliveryIncomplete, SmtpError
    from clinicpress.outputs.delivery.report import RecipientIssue, SendReport
    from clinicpress.outputs.delivery.resolve import Resolved, resolve, resolve_uncertain
    from clinicpress.outputs.delivery.schema import Approval, State, recipients_table, runs, sends, test_sends
    from clinicpress.outputs.delivery.send import TEST_SUBJECT_PREFIX, send_newsletter
    from clinicpress.outputs.delivery.smtp import Delivery, Outcome, SmtpSession, deliver
    from clinicpress.outputs.delivery.store import DeliveryStore

_HOMES = {
    "errors": ("DeliveryError", "DeliveryIncomplete", "SmtpError"),
    "report": ("RecipientIssue", "SendReport"),
    "resolve": ("Resolved", "resolve", "resolve_uncertain"),
    "schema": ("Approval", "State", "recipients_table", "runs", "sends", "test_sends"),
    "send": ("TEST_SUBJECT_PREFIX", "send_newsletter"),
    "smtp": ("Delivery", "Outcome", "SmtpSession", "deliver"),
    "store": ("DeliveryStore",),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "TEST_SUBJECT_PREFIX",
    "Approval",
    "Delivery",
    "DeliveryError",
    "DeliveryIncomplete",
    "DeliveryStore",
    "Outcome",
    "RecipientIssue",
    "Resolved",
    "SendReport",
    "SmtpError",
    "SmtpSession",
    "State",
    "deliver",
    "recipients_table",
    "resolve",
    "resolve_uncertain",
    "runs",
    "send_newsletter",
    "sends",
    "test_sends",
]
