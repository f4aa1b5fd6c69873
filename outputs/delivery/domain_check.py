"""Before a send: does the From domain let receivers trust the mail? SPF, DKIM and DMARC, in DNS.

Three records, each with one verdict:

- **SPF**: one TXT record starting ``v=spf1`` at the From domain. clinicpress sends with the From
  address as the envelope sender (``MAIL FROM``), so SPF is about that domain and aligned with
  From by construction. Whether the record lists the SMTP server's addresses is not checked
  (which addresses the relay sends from is the provider's to say).
- **DKIM**: the public key at ``<selector>._domainkey.<dkim domain>`` is the private key's: a
  probe message is signed with the key file and verified by dkimpy against the record found.
- **DMARC**: a TXT record ``v=DMARC1; p=none|quarantine|reject`` at ``_dmarc.<From domain>``, or
  at ``_dmarc.<organizational domain>`` (RFC 7489 §6.6.3; then ``sp=`` wins), and the DKIM domain
  aligned with the From domain: relaxed (default, ``adkim=r``) when both have the same
  organizational domain, strict (``adkim=s``) when they are equal.

Verdicts: ``ok``; ``missing`` (the record named is not there); ``mismatch`` (there, but wrong:
the key does not match, a bad policy, not aligned, two records where one is allowed);
``unreachable`` (DNS did not answer: a warning, which ``--strict`` makes a block). A missing or
mismatched record blocks the send to subscribers (not the web page).

The organizational domain is kept simple, without the Public Suffix List: the last two labels,
or the last three under a short list of two-label public suffixes (``co.uk``, ``com.au``, …).
A From domain under a public suffix missing from that list may be taken as aligned with a
sibling domain; the receivers, who use the full list, still decide.

Lookups go to ``[newsletter.domain_check] nameservers`` (the system's when empty), with dnspython;
:func:`check_domain` takes the lookup as a function, so the verdicts are tested against a DNS
server on loopback and the evaluation stays pure.
"""

from __future__ import annotations

import email.policy
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import dkim  # dkimpy ships no type information (pyproject: ignore_missing_imports)
import dns.exception
import dns.nameserver
import dns.resolver

from clinicpress.outputs.delivery.dkim_sign import DkimSigner
from clinicpress.settings.newsletter_loop import nameserver_address

__all__ = [
    "DnsUnreachable",
    "DomainReport",
    "Lookup",
    "RecordCheck",
    "RecordStatus",
    "aligned",
    "check_domain",
    "evaluate_dkim",
    "evaluate_dmarc",
    "evaluate_spf",
    "organizational_domain",
    "txt_lookup",
]

# Two-label public suffixes common enough to matter (not the Public Suffix List: see the docstring).
TWO_LABEL_SUFFIXES = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "nhs.uk",
        "com.au", "net.au", "org.au", "edu.au", "gov.au", "co.nz", "org.nz", "net.nz",
        "co.jp", "or.jp", "ne.jp", "com.br", "org.br", "com.mx", "org.mx", "co.in", "org.in",
        "co.za", "org.za", "com.ar", "com.co", "com.tr", "com.cn", "com.hk", "com.sg", "co.il",
        "co.kr", "com.tw",
    }
)  # fmt: skip
DMARC_POLICIES = ("none", "quarantine", "reject")


class RecordStatus(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"
    MISMATCH = "mismatch"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class RecordCheck:
    """One record's verdict: ``record`` is SPF, DKIM or DMARC; ``name`` the DNS name asked."""

    record: str
    name: str
    verdict: RecordStatus
    detail: str

    def line(self) -> str:
        return f"{self.record} ({self.name}): {self.verdict.value}: {self.detail}"


@dataclass(frozen=True)
class DomainReport:
    domain: str
    checks: tuple[RecordCheck, ...]

    @property
    def problems(self) -> tuple[RecordCheck, ...]:
        """What blocks a send: a missing or mismatched record."""
        return tuple(c for c in self.checks if c.verdict in (RecordStatus.MISSING, RecordStatus.MISMATCH))

    @property
    def warnings(self) -> tuple[RecordCheck, ...]:
        """What blocks only with ``--strict``: DNS did not answer."""
        return tuple(c for c in self.checks if c.verdict is RecordStatus.UNREACHABLE)

    def blocks(self, *, strict: bool = False) -> bool:
        return bool(self.problems or (strict and self.warnings))

    def reason(self) -> str:
        """One line naming what blocks (or warns), for a send report's ``stopped``."""
        shown = self.problems or self.warnings
        return f"the From domain {self.domain}: " + "; ".join(c.line() for c in shown)


class DnsUnreachable(Exception):
    """A lookup got no usable answer (timeout, SERVFAIL, no resolver): not the same as no record."""


Lookup = Callable[[str], list[str]]  # a name → its TXT records (each joined); [] when there are none


def txt_lookup(nameservers: Sequence[str], timeout: float) -> Lookup:
    """TXT lookups through ``nameservers`` (``"HOST:PORT"``; the system's when empty), dnspython.

    NXDOMAIN or no TXT record is ``[]``; anything that is not an answer raises ``DnsUnreachable``.
    """
    resolver: dns.resolver.Resolver | None
    why = ""
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*nameserver_address(entry)) for entry in nameservers
        ]
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.exception.DNSException as exc:  # no /etc/resolv.conf
            resolver, why = None, f"no system resolver ({exc})"
    if resolver is not None:
        resolver.lifetime = timeout
        resolver.timeout = timeout
        resolver.cache = None

    def lookup(name: str) -> list[str]:
        if resolver is None:
            raise DnsUnreachable(why)
        try:
            answer = resolver.resolve(name, "TXT", search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.Timeout as exc:
            raise DnsUnreachable(f"no answer within {timeout:g} s") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsUnreachable("every name server failed (SERVFAIL or refused)") from exc
        except dns.exception.DNSException as exc:
            raise DnsUnreachable(f"{type(exc).__name__}: {exc}") from exc
        if answer.rrset is None:
            return []
        return [b"".join(rdata.strings).decode("ascii", "replace") for rdata in answer.rrset]

    return lookup


# -- the evaluation (pure) ----------------------------------------------------------------------


def organizational_domain(domain: str) -> str:
    """The registered domain: the last two labels, or three under a known two-label suffix."""
    labels = domain.lower().rstrip(".").split(".")
    keep = 3 if ".".join(labels[-2:]) in TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def aligned(dkim_domain: str, from_domain: str, mode: str) -> bool:
    """DMARC identifier alignment: strict (``s``) equal, relaxed (``r``) same organizational domain."""
    a, b = dkim_domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if mode == "s":
        return a == b
    return organizational_domain(a) == organizational_domain(b)


def _tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def evaluate_spf(domain: str, txts: Sequence[str]) -> RecordCheck:
    records = [t for t in txts if t.strip().lower() == "v=spf1" or t.strip().lower().startswith("v=spf1 ")]
    if not records:
        return RecordCheck(
            "SPF",
            domain,
            RecordStatus.MISSING,
            'no TXT record "v=spf1 …" (publish the one your mail provider gives)',
        )
    if len(records) > 1:
        return RecordCheck(
            "SPF",
            domain,
            RecordStatus.MISMATCH,
            f"{len(records)} SPF records; receivers accept exactly one (merge them)",
        )
    return RecordCheck("SPF", domain, RecordStatus.OK, records[0].strip())


def _probe() -> bytes:
    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = "probe@example.invalid"
    msg["Subject"] = "clinicpress DKIM probe"
    msg["Date"] = "Thu, 01 Jan 2026 00:00:00 +0000"
    msg.set_content("probe\n")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def evaluate_dkim(signer: DkimSigner, txts: Sequence[str]) -> RecordCheck:
    """Is the key at the selector the signer's? A probe signed with the private key must verify."""
    name = f"{signer.selector.decode()}._domainkey.{signer.domain.decode()}"
    records = [t for t in txts if "p" in _tags(t)]
    if not records:
        return RecordCheck(
            "DKIM",
            name,
            RecordStatus.MISSING,
            'no DKIM key record ("v=DKIM1; k=rsa; p=…" from your key file)',
        )
    if len(records) > 1:
        return RecordCheck(
            "DKIM", name, RecordStatus.MISMATCH, f"{len(records)} key records; publish exactly one"
        )
    tags = _tags(records[0])
    if not tags["p"]:
        return RecordCheck("DKIM", name, RecordStatus.MISMATCH, "the key is revoked (empty p=)")
    if tags.get("k", "rsa").lower() != "rsa":
        return RecordCheck("DKIM", name, RecordStatus.MISMATCH, f"k={tags['k']}; the key file is an RSA key")
    probe = _probe()
    header = signer.signature_of(probe, ("from", "from", "subject", "date"))
    published = records[0].encode("ascii", "replace")

    def dnsfunc(_name: bytes, timeout: float = 5) -> bytes:
        return published

    if not dkim.verify(header + probe, dnsfunc=dnsfunc):
        return RecordCheck(
            "DKIM", name, RecordStatus.MISMATCH, "the published key is not the public half of key_file"
        )
    return RecordCheck("DKIM", name, RecordStatus.OK, f"the key of key_file ({signer.bits}-bit RSA)")


def evaluate_dmarc(
    name: str, txts: Sequence[str], from_domain: str, dkim_domain: str | None, *, at_organization: bool
) -> RecordCheck:
    """The DMARC record found at ``name`` (``at_organization``: the From domain's parent's)."""
    records = [t for t in txts if t.strip().startswith("v=DMARC1")]
    if not records:
        return RecordCheck(
            "DMARC",
            f"_dmarc.{from_domain}",
            RecordStatus.MISSING,
            f'no record "v=DMARC1; p=none" at _dmarc.{from_domain}'
            + (f" or _dmarc.{organizational_domain(from_domain)}" if at_organization else ""),
        )
    if len(records) > 1:
        return RecordCheck(
            "DMARC", name, RecordStatus.MISMATCH, f"{len(records)} DMARC records; receivers ignore them all"
        )
    tags = _tags(records[0])
    policy = tags.get("sp", tags.get("p", "")) if at_organization else tags.get("p", "")
    if policy.lower() not in DMARC_POLICIES:
        return RecordCheck(
            "DMARC",
            name,
            RecordStatus.MISMATCH,
            f"p={policy or '(none)'}; expected p=none, quarantine or reject",
        )
    mode = tags.get("adkim", "r").lower()
    if dkim_domain is not None and not aligned(dkim_domain, from_domain, mode):
        how = "strict: the same domain" if mode == "s" else "relaxed: the same organizational domain"
        return RecordCheck(
            "DMARC",
            name,
            RecordStatus.MISMATCH,
            f"the DKIM domain {dkim_domain} is not aligned with the From domain {from_domain} "
            f"(adkim={mode}, {how})",
        )
    return RecordCheck("DMARC", name, RecordStatus.OK, f"p={policy.lower()}, adkim={mode}")


def _asked(record: str, name: str, lookup: Lookup) -> list[str] | RecordCheck:
    try:
        return lookup(name)
    except DnsUnreachable as exc:
        return RecordCheck(record, name, RecordStatus.UNREACHABLE, f"DNS did not answer: {exc}")


def check_domain(from_address: str, signer: DkimSigner | None, lookup: Lookup) -> DomainReport:
    """SPF, DKIM and DMARC of the From address's domain (DKIM at the signer's selector and domain)."""
    domain = from_address.rsplit("@", 1)[-1].lower().rstrip(".")
    checks: list[RecordCheck] = []

    spf = _asked("SPF", domain, lookup)
    checks.append(spf if isinstance(spf, RecordCheck) else evaluate_spf(domain, spf))

    if signer is None:
        name = f"<selector>._domainkey.{domain}"
        checks.append(
            RecordCheck("DKIM", name, RecordStatus.MISSING, "no [newsletter.dkim]: messages go unsigned")
        )
    else:
        key_name = f"{signer.selector.decode()}._domainkey.{signer.domain.decode()}"
        found = _asked("DKIM", key_name, lookup)
        checks.append(found if isinstance(found, RecordCheck) else evaluate_dkim(signer, found))

    dkim_domain = signer.domain.decode() if signer is not None else None
    name = f"_dmarc.{domain}"
    dmarc = _asked("DMARC", name, lookup)
    at_organization = False
    organization = organizational_domain(domain)
    if (
        not isinstance(dmarc, RecordCheck)
        and not any(t.strip().startswith("v=DMARC1") for t in dmarc)
        and organization != domain
    ):
        name, at_organization = f"_dmarc.{organization}", True
        dmarc = _asked("DMARC", name, lookup)
    checks.append(
        dmarc
        if isinstance(dmarc, RecordCheck)
        else evaluate_dmarc(name, dmarc, domain, dkim_domain, at_organization=at_organization)
    )
    return DomainReport(domain, tuple(checks))
