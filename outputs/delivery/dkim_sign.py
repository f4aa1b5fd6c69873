"""DKIM-signing each newsletter message (RFC 6376): rsa-sha256, relaxed/relaxed.

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

Who computes what, and why (issue 28, part 5). ``dkim.sign`` computes RSA in pure Python: ~10–12 ms
per message for a 2048-bit key on this kind of machine, which alone capped a signed send near 80
messages/s per core; dkimpy has no public way to hand it another signer. So the steps are split:

- canonicalisation is dkimpy's, through its public API (``dkim.canonicalization.
  CanonicalizationPolicy``: ``canonicalize_headers``, ``canonicalize_body``);
- the rest of RFC 6376 §3.7 is here and short: split the header block into fields, pick the signed
  fields bottom-up (§5.4.2), hash them and the signature header with an empty ``b=``;
- the RSASSA-PKCS1-v1_5 signature over that SHA-256 digest is OpenSSL's, through ``cryptography``
  (~1 ms), the same bytes dkimpy's arithmetic makes (PKCS #1 v1.5 signatures are deterministic).

Every signature the tests make is verified with ``dkim.verify`` (tests/outputs/test_dkim*.py),
and against ``dkim.sign``'s own signature of the same message and timestamp.

``t=`` is the real time in seconds, as dkimpy stamps it: receivers compare it with their own clock
(a signature from the future is refused), so it is a timer in clock.py's sense, not a verdict date.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy  # dkimpy ships no type information

from clinicpress.errors import InputError, RenderError

__all__ = [
    "MIN_KEY_BITS",
    "SIGNED_HEADERS",
    "DkimSigner",
    "select_fields",
    "signed_header_names",
    "split_message",
]

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
CANONICAL = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
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


Field = tuple[bytes, bytes]  # (name, value): the value with its folding and final CRLF, as on the wire


def split_message(data: bytes) -> tuple[list[Field], bytes]:
    """The header fields and the body of a message with CRLF line ends (RFC 5322 §2.2.3: a line that
    starts with a space or a tab continues the field above)."""
    head, blank, body = data.partition(b"\r\n\r\n")
    if not blank and head.endswith(b"\r\n"):
        head = head[:-2]  # headers only, no body
    fields: list[Field] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + line + b"\r\n")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or line[:1] in (b" ", b"\t"):
            raise RenderError(f"DKIM signing failed: not a header field: {line[:60]!r}")
        fields.append((name, value + b"\r\n"))
    return fields, body


def select_fields(fields: Sequence[Field], names: Sequence[bytes]) -> list[Field]:
    """RFC 6376 §5.4.2: for each name of ``h=`` in order, the last field of that name not taken yet
    (bottom-up); a name with no field left is signed as absent (nothing hashed). Names lowercase."""
    chosen: list[Field] = []
    below: dict[bytes, int] = {}  # per name: the index under which the next one is looked for
    for name in names:
        index = below.get(name, len(fields))
        while index > 0:
            index -= 1
            if fields[index][0] == name:
                chosen.append(fields[index])
                break
        below[name] = index
    return chosen


class DkimSigner:
    """Signs messages for ``domain`` with the key published at ``<selector>._domainkey.<domain>``."""

    def __init__(
        self, selector: str, domain: str, private_key_pem: str, *, key_file: Path | str = ""
    ) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        where = str(key_file) or None
        try:
            key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
            raise InputError(
                where, KEY_FIELD, "is not an RSA private key that can be read", "a PEM RSA key"
            ) from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InputError(where, KEY_FIELD, "is not an RSA private key", "a PEM RSA key")
        if key.key_size < MIN_KEY_BITS:
            raise InputError(
                where,
                KEY_FIELD,
                f"the key has {key.key_size} bits",
                f"at least {MIN_KEY_BITS} (2048: openssl genrsa 2048)",
            )
        self.key = key
        self.bits = key.key_size

    def signature_of(self, data: bytes, headers: Sequence[str], *, at: int | None = None) -> bytes:
        """The ``DKIM-Signature: …`` header line (folded between tags, CRLF-terminated) for the raw
        message ``data`` (CRLF line ends), signing ``headers`` (lowercase names, repeated to
        oversign). ``at``: the ``t=`` timestamp (default: now)."""
        names = [name.lower().encode("ascii") for name in headers]
        if b"from" not in names:
            raise RenderError("DKIM signing failed: From must be signed (RFC 6376 §5.4)")
        fields, body = split_message(data)
        body_hash = hashlib.sha256(CANONICAL.canonicalize_body(body)).digest()
        tags = [
            (b"v", b"1"),
            (b"a", ALGORITHM),
            (b"c", CANONICAL.to_c_value()),
            (b"d", self.domain),
            (b"i", b"@" + self.domain),
            (b"q", b"dns/txt"),
            (b"s", self.selector),
            (b"t", str(int(time.time()) if at is None else at).encode("ascii")),
            (b"h", b" : ".join(names)),  # as dkimpy writes it
            (b"bh", base64.b64encode(body_hash)),
            (b"b", b""),
        ]
        # Folded between tags: relaxed canonicalisation reads ";\r\n " as the "; " hashed below.
        unsigned = b";\r\n ".join(name + b"=" + value for name, value in tags)
        digest = hashlib.sha256()
        for name, value in select_fields(CANONICAL.canonicalize_headers(fields), names):
            digest.update(name + b":" + value)
        # The signature header itself, with b= empty and without its final CRLF (§3.7).
        ((name, value),) = CANONICAL.canonicalize_headers([(b"DKIM-Signature", b" " + unsigned + b"\r\n")])
        digest.update(name + b":" + value.rstrip(b"\r\n"))
        signature = self.key.sign(digest.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        return b"DKIM-Signature: " + unsigned + base64.b64encode(signature) + b"\r\n"

    def signature(self, msg: EmailMessage) -> str:
        """The ``DKIM-Signature`` header's value for ``msg`` as it is now, on one line."""
        if msg["From"] is None:
            raise ValueError("a message without From cannot be DKIM-signed")
        header = self.signature_of(_wire(msg), signed_header_names(msg))
        name, _, value = header.decode("ascii").partition(":")
        assert name == "DKIM-Signature"
        # Unfolded (CRLF dropped, the folding space kept): the email package refuses line breaks.
        return value.replace("\r\n", "").strip()

    def sign(self, msg: EmailMessage) -> EmailMessage:
        """Add the ``DKIM-Signature`` header to ``msg`` (in place; returned for chaining)."""
        if msg["DKIM-Signature"] is not None:
            raise ValueError("the message is already DKIM-signed")
        msg["DKIM-Signature"] = self.signature(msg)
        return msg
