"""The DKIM signer as it computes (issue 28, part 5): dkimpy's canonicalisation, OpenSSL's RSA.

``outputs/delivery/dkim_sign.py`` no longer calls ``dkim.sign`` (RSA in pure Python, ~10 ms a
message): it canonicalises with dkimpy's public ``CanonicalizationPolicy``, picks and hashes the
signed fields itself, and signs the digest with ``cryptography``. The promises: every signature it
makes verifies with ``dkim.verify`` against the key a DNS server on loopback publishes
(tests/dnsserver.py), and it is byte for byte the signature ``dkim.sign`` makes of the same message
at the same second (PKCS #1 v1.5 is deterministic), for the real newsletter and for messages with
folded, repeated, oversigned and absent headers, odd whitespace and bodies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import dkim
import dkim.canonicalization
import dns.nameserver
import dns.resolver
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from dkimkeys import key_record, new_key, private_pem
from dnsserver import DNSTestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinicpress.outputs.delivery.dkim_sign import DkimSigner, select_fields, split_message
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.newsletter import personalise, render_message_template
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article

SELECTOR, DOMAIN = "news2026", "serenitymaliburehab.com"
RELAXED = (b"relaxed", b"relaxed")


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def signer(key: rsa.RSAPrivateKey) -> DkimSigner:
    return DkimSigner(SELECTOR, DOMAIN, private_pem(key))


@pytest.fixture(scope="module")
def dnsfunc(key: rsa.RSAPrivateKey) -> Iterator[Callable[..., bytes]]:
    """dkim.verify's key lookup, asked of a real DNS server on 127.0.0.1 that publishes the key."""
    with DNSTestServer() as server:
        server.txt[f"{SELECTOR}._domainkey.{DOMAIN}"] = [key_record(key)]
        resolver = dns.resolver.Resolver(configure=False)
        host, port = server.nameserver.rsplit(":", 1)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, int(port))]
        resolver.cache = None

        def lookup(name: bytes, timeout: float = 5) -> bytes:
            answer = resolver.resolve(name.decode("ascii"), "TXT", search=False, lifetime=timeout)
            return b"".join(b"".join(rdata.strings) for rdata in answer)

        yield lookup


def dkimpy_signature(data: bytes, key: rsa.RSAPrivateKey, names: list[str]) -> bytes:
    return bytes(
        dkim.sign(
            data,
            SELECTOR.encode(),
            DOMAIN.encode(),
            private_pem(key).encode(),
            canonicalize=RELAXED,
            include_headers=[n.encode() for n in names],
        )
    )


def b_tag(header: bytes) -> bytes:
    """The b= value of a DKIM-Signature header line, whitespace removed."""
    unfolded = re.sub(rb"\s+", b"", header.partition(b":")[2])
    return unfolded.rpartition(b";b=")[2]


def t_tag(header: bytes) -> int:
    found = re.search(rb"[;\s]t=(\d+)", header)
    assert found is not None
    return int(found.group(1))


def same_as_dkimpy(signer: DkimSigner, key: rsa.RSAPrivateKey, data: bytes, names: list[str]) -> bytes:
    """Our header for ``data``, after checking its b= is dkim.sign's for the same second."""
    theirs = dkimpy_signature(data, key, names)
    ours = signer.signature_of(data, names, at=t_tag(theirs))
    assert b_tag(ours) == b_tag(theirs)
    return ours


def test_the_newsletter_signature_is_dkimpys_and_verifies_through_dns(
    signer: DkimSigner,
    key: rsa.RSAPrivateKey,
    dnsfunc: Callable[..., bytes],
    article: Article,
    site: SiteConfig,
) -> None:
    from datetime import UTC, datetime

    template = render_message_template(
        article, site, RenderContext(published_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC), version="1" * 64)
    )
    msg = personalise(template, to="reader@example.net", unsubscribe_url=site.newsletter.unsubscribe_url)
    data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    names = ["from", "from", "to", "to", "list-unsubscribe", "list-unsubscribe", "reply-to"]
    header = same_as_dkimpy(signer, key, data, names)
    assert dkim.verify(header + data, dnsfunc=dnsfunc)
    signed = signer.sign(msg)  # the way a send signs: the header set on the message, then written
    assert dkim.verify(signed.as_bytes(policy=signed.policy.clone(linesep="\r\n")), dnsfunc=dnsfunc)


# Never a second From: dkimpy refuses to verify such a message whoever signed it (RFC 6376 §5.4).
_name = st.sampled_from(["To", "Subject", "X-Note", "Reply-To", "list-unsubscribe"])
_word = st.text(alphabet="abcXYZ09<>@.;=,-_ ", min_size=0, max_size=30)
_field = st.tuples(_name, st.lists(_word, min_size=1, max_size=3))  # a value folded over 1–3 lines
_body = st.lists(st.text(alphabet="ab \t.=", max_size=40), max_size=6)


def _message(fields: list[tuple[str, list[str]]], body: list[str]) -> bytes:
    lines = [b"From: Clinic <news@serenitymaliburehab.com>"]
    for name, parts in fields:
        first, *rest = parts
        lines.append(f"{name}: {first}".encode())
        lines += [f"\t {part}".encode() for part in rest]  # continuation lines
    return b"\r\n".join(lines) + b"\r\n\r\n" + "\r\n".join(body).encode() + (b"\r\n" if body else b"")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.lists(_field, max_size=6),
    body=_body,
    names=st.lists(
        st.sampled_from(["to", "subject", "x-note", "reply-to", "list-unsubscribe", "date"]), max_size=8
    ),
)
def test_any_message_is_signed_as_dkimpy_signs_it_and_verifies(
    signer: DkimSigner,
    key: rsa.RSAPrivateKey,
    dnsfunc: Callable[..., bytes],
    fields: list[tuple[str, list[str]]],
    body: list[str],
    names: list[str],
) -> None:
    data = _message(fields, body)
    header = same_as_dkimpy(signer, key, data, ["from", "from", *names])
    assert dkim.verify(header + data, dnsfunc=dnsfunc)


def test_a_changed_signed_header_or_body_fails(signer: DkimSigner, dnsfunc: Callable[..., bytes]) -> None:
    data = _message([("To", ["reader@example.net"]), ("Subject", ["Naloxone", "at home"])], ["Text."])
    header = signer.signature_of(data, ["from", "from", "to", "to", "subject"])
    assert dkim.verify(header + data, dnsfunc=dnsfunc)
    assert not dkim.verify(header + data.replace(b"reader@", b"other@"), dnsfunc=dnsfunc)
    assert not dkim.verify(header + data.replace(b"Text.", b"Text!"), dnsfunc=dnsfunc)
    added = data.replace(b"To:", b"To: evil@example.com\r\nTo:", 1)  # oversigned: one more fails
    assert not dkim.verify(header + added, dnsfunc=dnsfunc)


def test_fields_are_picked_bottom_up_and_absent_ones_sign_nothing() -> None:
    fields, body = split_message(b"A: 1\r\nB: x\r\n y\r\nA: 2\r\n\r\nbody\r\n")
    assert fields == [(b"A", b" 1\r\n"), (b"B", b" x\r\n y\r\n"), (b"A", b" 2\r\n")]
    assert body == b"body\r\n"
    lower = [(name.lower(), value) for name, value in fields]
    assert select_fields(lower, [b"a", b"a", b"a", b"c", b"b"]) == [lower[2], lower[0], lower[1]]


def test_only_dkimpys_public_names_are_used() -> None:
    assert "CanonicalizationPolicy" in dkim.canonicalization.__all__
