"""The delivery's branch of the exception tree (under ``clinicpress.errors.ClinicpressError``).

DeliveryError
├── DeliveryIncomplete   a send ended with recipients still pending or claimed
├── LeaseLost            another run took the send over: this run stops at once
└── SmtpError            the SMTP server, as ``smtp.py`` maps smtplib, ssl and socket errors
    ├── SmtpFatal        no retry fixes it (no STARTTLS, login refused, untrusted certificate)
    └── SmtpGone         the server stayed away past the reconnect budget: the next run resumes
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clinicpress.errors import ClinicpressError

if TYPE_CHECKING:
    from clinicpress.outputs.delivery.report import SendReport


class DeliveryError(ClinicpressError):
    """The newsletter could not be sent as asked (SMTP settings, the delivery records)."""


class DeliveryIncomplete(DeliveryError):
    """A send ended with recipients still pending or claimed; the report has the counts."""

    def __init__(self, report: SendReport) -> None:
        self.report = report
        super().__init__(report.summary())


class LeaseLost(DeliveryError):
    """Another run took this send over (ours looked dead): stop at once."""


class SmtpError(DeliveryError):
    """The SMTP server could not be used; the message says why (and the cause is kept)."""


class SmtpFatal(SmtpError):
    """An SMTP problem no retry fixes (no STARTTLS, bad credentials, untrusted certificate)."""


class SmtpGone(SmtpError):
    """The server could not be reached, or kept dropping connections, past the reconnect budget."""
