"""The From domain's check before a send (issue 28, part 2): SPF, DKIM and DMARC, asked of a real
DNS server on 127.0.0.1 (dnslib, tests/dnsserver.py) through the nameservers setting.

The promises: every verdict is the record's, named (``missing``, ``mismatch``, ``ok``); a missing
or mismatched record blocks the send; DNS that does not answer is ``unreachable``, a warning that
only ``--strict`` turns into a block; the DKIM key published must be the key file's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from dkimkeys import key_record, new_key, private_pem
from dnsserver import DNSTestServer, closed_port

from clinicpress.outputs.delivery.dkim_sign import DkimSigner
from clinicpress.outputs.delivery.domain_check import (
    DomainReport,
    RecordStatus,
    aligned,
    check_domain,
    organizational_domain,
    txt_lookup,
)

DOMAIN = "clinic.example"
FROM = f"news@{DOMAIN}"
SELECTOR = "news2026"
KEY_NAME = f"{SELECTOR}._domainkey.{DOMAIN}"
SPF = "v=spf1 include:_spf.mail.example -all"
DMARC = "v=DMARC1; p=none; rua=mailto:dmarc@clinic.example"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def signer(key: rsa.RSAPrivateKey) -> DkimSigner:
    return DkimSigner(SELECTOR, DOMAIN, private_pem(key))


@pytest.fixture
def dns(key: rsa.RSAPrivateKey) -> Iterator[DNSTestServer]:
    """A DNS server on loopback holding a domain that is set up right; each test breaks one thing."""
    with DNSTestServer() as server:
        server.txt[DOMAIN] = [SPF, "google-site-verification=abc123"]
        server.txt[KEY_NAME] = [key_record(key)]
        server.txt[f"_dmarc.{DOMAIN}"] = [DMARC]
        yield server


def _check(dns: DNSTestServer, signer: DkimSigner | None, from_address: str = FROM) -> DomainReport:
    return check_domain(from_address, signer, txt_lookup([dns.nameserver], timeout=5.0))


def _verdicts(report: DomainReport) -> dict[str, RecordStatus]:
    return {check.record: check.verdict for check in report.checks}


def test_a_domain_set_up_right_passes(dns: DNSTestServer, signer: DkimSigner) -> None:
    report = _check(dns, signer)
    assert _verdicts(report) == {"SPF": RecordStatus.OK, "DKIM": RecordStatus.OK, "DMARC": RecordStatus.OK}
    assert not report.blocks(strict=True)
    asked = {name for name, _ in dns.queries}
    assert asked == {f"{DOMAIN}.", f"{KEY_NAME}.", f"_dmarc.{DOMAIN}."}  # all of it from our server


def test_a_domain_without_dmarc_blocks_naming_the_record(dns: DNSTestServer, signer: DkimSigner) -> None:
    del dns.txt[f"_dmarc.{DOMAIN}"]
    report = _check(dns, signer)
    assert report.blocks()
    (problem,) = report.problems
    assert (problem.record, problem.verdict, problem.name) == (
        "DMARC",
        RecordStatus.MISSING,
        f"_dmarc.{DOMAIN}",
    )
    assert f"_dmarc.{DOMAIN}" in report.reason()
    assert "v=DMARC1; p=none" in report.reason()


def test_a_txt_record_that_is_not_dmarc_is_no_dmarc(dns: DNSTestServer, signer: DkimSigner) -> None:
    dns.txt[f"_dmarc.{DOMAIN}"] = ["some-verification=1"]
    assert _verdicts(_check(dns, signer))["DMARC"] is RecordStatus.MISSING


def test_a_subdomain_finds_dmarc_at_its_organizational_domain(dns: DNSTestServer, signer: DkimSigner) -> None:
    dns.txt[f"news.{DOMAIN}"] = [SPF]
    dns.txt[f"_dmarc.{DOMAIN}"] = ["v=DMARC1; p=reject; sp=quarantine"]
    report = _check(dns, signer, f"letters@news.{DOMAIN}")
    assert _verdicts(report) == {"SPF": RecordStatus.OK, "DKIM": RecordStatus.OK, "DMARC": RecordStatus.OK}
    (dmarc,) = [c for c in report.checks if c.record == "DMARC"]
    assert dmarc.name == f"_dmarc.{DOMAIN}"
    assert "p=quarantine" in dmarc.detail  # sp= applies below the organizational domain


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ("v=DMARC1; p=monitor", "p=monitor"),
        ("v=DMARC1; rua=mailto:d@clinic.example", "p=(none)"),
        ("v=DMARC1; p=none; adkim=s", "not aligned"),
    ],
)
def test_a_dmarc_record_that_does_not_work_is_a_mismatch(
    dns: DNSTestServer, key: rsa.RSAPrivateKey, record: str, why: str
) -> None:
    parent_signer = DkimSigner(SELECTOR, DOMAIN, private_pem(key))
    dns.txt[f"news.{DOMAIN}"] = [SPF]
    dns.txt[f"_dmarc.news.{DOMAIN}"] = [record]
    report = _check(dns, parent_signer, f"letters@news.{DOMAIN}")  # d=clinic.example, From news.…
    (problem,) = report.problems
    assert (problem.record, problem.verdict) == ("DMARC", RecordStatus.MISMATCH)
    assert why in problem.detail


def test_two_dmarc_records_are_a_mismatch(dns: DNSTestServer, signer: DkimSigner) -> None:
    dns.txt[f"_dmarc.{DOMAIN}"] = [DMARC, "v=DMARC1; p=reject"]
    assert _verdicts(_check(dns, signer))["DMARC"] is RecordStatus.MISMATCH


def test_a_dkim_domain_of_another_organization_is_not_aligned(
    dns: DNSTestServer, key: rsa.RSAPrivateKey
) -> None:
    provider = DkimSigner(SELECTOR, "mailprovider.example", private_pem(key))
    dns.txt[f"{SELECTOR}._domainkey.mailprovider.example"] = [key_record(key)]
    report = _check(dns, provider)
    (problem,) = report.problems
    assert problem.record == "DMARC"
    assert "mailprovider.example is not aligned" in problem.detail


def test_a_domain_without_spf_blocks(dns: DNSTestServer, signer: DkimSigner) -> None:
    dns.txt[DOMAIN] = ["google-site-verification=abc123"]
    report = _check(dns, signer)
    (problem,) = report.problems
    assert (problem.record, problem.verdict, problem.name) == ("SPF", RecordStatus.MISSING, DOMAIN)


def test_two_spf_records_are_a_mismatch(dns: DNSTestServer, signer: DkimSigner) -> None:
    dns.txt[DOMAIN] = [SPF, "v=spf1 mx -all"]
    assert _verdicts(_check(dns, signer))["SPF"] is RecordStatus.MISMATCH


def test_an_unpublished_dkim_key_blocks(dns: DNSTestServer, signer: DkimSigner) -> None:
    del dns.txt[KEY_NAME]
    (problem,) = _check(dns, signer).problems
    assert (problem.record, problem.verdict, problem.name) == ("DKIM", RecordStatus.MISSING, KEY_NAME)


def test_a_published_key_that_is_not_the_key_files_is_a_mismatch(
    dns: DNSTestServer, signer: DkimSigner
) -> None:
    dns.txt[KEY_NAME] = [key_record(rsa.generate_private_key(public_exponent=65537, key_size=1024))]
    (problem,) = _check(dns, signer).problems
    assert (problem.record, problem.verdict) == ("DKIM", RecordStatus.MISMATCH)
    assert "not the public half of key_file" in problem.detail


def test_a_revoked_key_is_a_mismatch(dns: DNSTestServer, signer: DkimSigner) -> None:
    dns.txt[KEY_NAME] = ["v=DKIM1; k=rsa; p="]
    (problem,) = _check(dns, signer).problems
    assert "revoked" in problem.detail


def test_a_key_behind_a_cname_and_split_in_strings_is_found(dns: DNSTestServer) -> None:
    big = rsa.generate_private_key(public_exponent=65537, key_size=4096)  # a record over 255 bytes
    dns.cname[KEY_NAME] = "news2026.dkim.mailprovider.example"
    dns.txt["news2026.dkim.mailprovider.example"] = [key_record(big)]
    del dns.txt[KEY_NAME]
    report = _check(dns, DkimSigner(SELECTOR, DOMAIN, private_pem(big)))
    assert _verdicts(report)["DKIM"] is RecordStatus.OK


def test_no_dkim_settings_is_a_missing_dkim(dns: DNSTestServer) -> None:
    report = _check(dns, None)
    (problem,) = report.problems
    assert (problem.record, problem.verdict) == ("DKIM", RecordStatus.MISSING)
    assert "[newsletter.dkim]" in problem.detail


def test_dns_that_fails_is_a_warning_that_strict_makes_a_block(
    dns: DNSTestServer, signer: DkimSigner
) -> None:
    dns.servfail.add(f"_dmarc.{DOMAIN}")
    report = _check(dns, signer)
    assert _verdicts(report)["DMARC"] is RecordStatus.UNREACHABLE
    assert report.problems == ()
    assert not report.blocks()
    assert report.blocks(strict=True)


def test_dns_that_is_down_is_unreachable_not_missing(signer: DkimSigner) -> None:
    lookup = txt_lookup([f"127.0.0.1:{closed_port()}"], timeout=0.3)
    report = check_domain(FROM, signer, lookup)
    assert set(_verdicts(report).values()) == {RecordStatus.UNREACHABLE}
    assert not report.blocks()
    assert report.blocks(strict=True)


@pytest.mark.parametrize(
    ("domain", "organization"),
    [
        ("clinic.example", "clinic.example"),
        ("news.clinic.example", "clinic.example"),
        ("a.b.clinic.example", "clinic.example"),
        ("news.clinic.co.uk", "clinic.co.uk"),
        ("Clinic.Example.", "clinic.example"),
    ],
)
def test_the_organizational_domain(domain: str, organization: str) -> None:
    assert organizational_domain(domain) == organization


def test_alignment_relaxed_and_strict() -> None:
    assert aligned("clinic.example", "news.clinic.example", "r")
    assert not aligned("clinic.example", "news.clinic.example", "s")
    assert aligned("news.clinic.example", "NEWS.clinic.example", "s")
    assert not aligned("clinic.co.uk", "other.co.uk", "r")
