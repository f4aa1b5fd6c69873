"""DKIM-signing each newsletter message (RFC 6376) with dkimpy: rsa-sha256, relaxed/relaxed.

rsa-sha256, not ed25519-sha256: every receiver verifies RSA, while Ed25519 (RFC 8463) is verified
by few (Gmail does not) and would need PyNaCl besides. A key of at least 1024 bits is required
(receivers ignore shorter ones); 2048 is what to make (``openssl genrsa -out dkim.pem 2048``).

Relaxed canonicalisation for headers and body: a relay that refolds a header or trims trailing
spaces does not break the signature. The signed headers are the ones a reader or a mail client
acts on, ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` among them (a one-click link nobody
can swap), each signed once more than it occurs ("oversigned"), so a header of that name added
on the way (a second From, a forged Reply-To or unsubscribe link) fails verification.

The signature is computed over the exact bytes ``smtp.deliver`` sends (the message with CRLF line
ends) and added to the message as its ``DKIM-Signature`` header; the email package may refold
that header when it writes the message, which relaxed canonicalisation and DKIM's rules for
``b=`` (whitespace ignored) allow.

Cost: dkimpy computes RSA in pure Python (~10 ms per message for a 2048-bit key on this kind of
machine, two modular exponentiations): signing, not SMTP, bounds a signed send's rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

import dkim  # dkimpy ships no type information (pyproject: ignore_missing_imports)
import dkim.crypto

from clinicpress.errors import InputError, RenderError

__all__ = ["MIN_KEY_BITS", "SIGNED_HEADERS", "DkimSigner", "signed_header_names"]

MIN_KEY_BITS = 1024
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
)
CANONICALIZE = (b"relaxed", b"relaxed")
ALGORITHM = b"rsa-sha256"
KEY_FIELD = "newsletter.dkim.key_file"


def _wire(msg: EmailMessage) -> bytes:
    """The message as ``smtp.deliver`` sends it, before dot-stuffing: CRLF line ends."""
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def signed_header_names(msg: EmailMessage) -> list[str]:
    """``h=``: each of SIGNED_HEADERS once per occurrence plus once more (absent ones once: signed as
    absent, so none can be added)."""
    names: list[str] = []
    for name in SIGNED_HEADERS:
        names.extend([name.lower()] * (len(msg.get_all(name) or []) + 1))
    return names


class DkimSigner:
    """Signs messages for ``domain`` with the key published at ``<selector>._domainkey.<domain>``."""

    def __init__(
        self, selector: str, domain: str, private_key_pem: str, *, key_file: Path | str = ""
    ) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self.key = private_key_pem.encode("ascii")
        where = str(key_file) or None
        try:
            bits = int(dkim.crypto.parse_pem_private_key(self.key)["modulus"]).bit_length()
        except (dkim.crypto.UnparsableKeyError, KeyError, ValueError, IndexError, TypeError) as exc:
            raise InputError(
                where, KEY_FIELD, "is not an RSA private key dkimpy can read", "a PEM RSA key"
            ) from exc
        if bits < MIN_KEY_BITS:
            raise InputError(
                where,
                KEY_FIELD,
                f"the key has {bits} bits",
                f"at least {MIN_KEY_BITS} (2048: openssl genrsa 2048)",
            )
        self.bits = bits

    def signature_of(self, data: bytes, headers: Sequence[str]) -> bytes:
        """The ``DKIM-Signature: …`` header line (folded, CRLF-terminated) for the raw message ``data``
        (CRLF line ends), signing ``headers`` (lowercase names, repeated to oversign)."""
        try:
            return bytes(
                dkim.sign(
                    data,
                    self.selector,
                    self.domain,
                    self.key,
                    canonicalize=CANONICALIZE,
                    signature_algorithm=ALGORITHM,
                    include_headers=[name.encode("ascii") for name in headers],
                )
            )
        except dkim.DKIMException as exc:  # this message cannot be signed: it is not sent unsigned
            raise RenderError(f"DKIM signing failed: {exc}") from exc

    def signature(self, msg: EmailMessage) -> str:
        """The ``DKIM-Signature`` header's value for ``msg`` as it is now, on one line."""
        if msg["From"] is None:
            raise ValueError("a message without From cannot be DKIM-signed")
        header = self.signature_of(_wire(msg), signed_header_names(msg))
        name, _, value = header.decode("ascii").partition(":")
        assert name == "DKIM-Signature"
        # Unfolded (CRLF dropped, the folding space kept): the email package refuses line breaks.
        return value.replace("\r\n", "").replace("\n", "").strip()

    def sign(self, msg: EmailMessage) -> EmailMessage:
        """Add the ``DKIM-Signature`` header to ``msg`` (in place; returned for chaining)."""
        if msg["DKIM-Signature"] is not None:
            raise ValueError("the message is already DKIM-signed")
        msg["DKIM-Signature"] = self.signature(msg)
        return msg
