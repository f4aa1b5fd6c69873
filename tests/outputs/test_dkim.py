"""DKIM signing (issue 28, part 2): every newsletter message signed so that it verifies.

The promises: a recipient's message, signed with the key file, verifies with dkimpy against the
public key the selector publishes, also after it crossed a real SMTP server; any change to a
signed header (the one-click link above all) or to the body, or a header of a signed name added
on the way, fails verification; the key file is refused unless only its owner can read it.
"""

from __future__ import annotations

import email.policy
import shutil
import smtplib
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from dkimkeys import key_record, new_key, private_pem
from requirements import need
from smtpserver import SMTPTestServer

from clinicpress.errors import InputError, SiteConfigError
from clinicpress.outputs.delivery.dkim_sign import SIGNED_HEADERS, DkimSigner
from clinicpress.outputs.delivery.smtp import Outcome, deliver
from clinicpress.outputs.delivery.unsubscribe import unsubscribe_link
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.newsletter import MessageTemplate, personalise, render_message_template
from clinicpress.settings.newsletter_loop import read_private_key_file
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article

SELECTOR, DOMAIN = "news2026", "serenitymaliburehab.com"
SECRET = "s3cr3t-" + "0123456789abcdef" * 3
READER = "reader@example.net"
PUBLISHED_AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def signer(key: rsa.RSAPrivateKey) -> DkimSigner:
    return DkimSigner(SELECTOR, DOMAIN, private_pem(key))


@pytest.fixture(scope="module")
def template(article: Article, site: SiteConfig) -> MessageTemplate:
    return render_message_template(article, site, RenderContext(published_at=PUBLISHED_AT, version="1" * 64))


def _dns(record: str) -> tuple[list[bytes], object]:
    """A dnsfunc for dkim.verify that answers the test key, and the names it was asked."""
    asked: list[bytes] = []

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        asked.append(name)
        return record.encode("ascii")

    return asked, dnsfunc


def _message(template: MessageTemplate, site: SiteConfig) -> EmailMessage:
    link = unsubscribe_link(site.newsletter.unsubscribe_url, READER, SECRET, slug="ketamine-therapy")
    return personalise(template, to=READER, unsubscribe_url=link)


def _wire(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def test_a_signed_newsletter_verifies_against_the_published_key(
    signer: DkimSigner, key: rsa.RSAPrivateKey, template: MessageTemplate, site: SiteConfig
) -> None:
    msg = signer.sign(_message(template, site))
    asked, dnsfunc = _dns(key_record(key))
    assert dkim.verify(_wire(msg), dnsfunc=dnsfunc)
    assert asked == [f"{SELECTOR}._domainkey.{DOMAIN}.".encode()]
    tags = dict(
        part.strip().split("=", 1) for part in str(msg["DKIM-Signature"]).replace(" ", "").split(";") if part
    )
    assert tags["a"] == "rsa-sha256"
    assert tags["c"] == "relaxed/relaxed"
    assert (tags["d"], tags["s"]) == (DOMAIN, SELECTOR)
    signed = tags["h"].split(":")
    for name in SIGNED_HEADERS:  # each named, and once more than it occurs (oversigned)
        assert signed.count(name.lower()) == len(msg.get_all(name) or []) + 1, name
    assert "list-unsubscribe" in signed
    assert "list-unsubscribe-post" in signed


def test_a_signed_newsletter_verifies_after_a_real_smtp_server(
    signer: DkimSigner, key: rsa.RSAPrivateKey, template: MessageTemplate, site: SiteConfig
) -> None:
    msg = signer.sign(_message(template, site))
    with SMTPTestServer() as server, smtplib.SMTP(server.host, server.port, timeout=10) as conn:
        conn.ehlo()
        result = deliver(conn, template.from_address, READER, msg, lambda: None)
        assert result.outcome is Outcome.ACCEPTED
        (received,) = server.accepted
    _, dnsfunc = _dns(key_record(key))
    assert dkim.verify(received.data, dnsfunc=dnsfunc)


def _relink(data: bytes) -> bytes:
    """The message with another one-click link in List-Unsubscribe (however the header is written)."""
    msg = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    msg.replace_header("List-Unsubscribe", "<https://evil.example/unsubscribe?t=x>")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def _tampered() -> dict[str, Callable[[bytes], bytes]]:
    def body_word(data: bytes) -> bytes:
        head, sep, body = data.partition(b"\r\n\r\n")
        return head + sep + body.replace(b"Ketamine", b"Ketamime", 1)

    return {
        "the one-click link changed": _relink,
        "the body changed": body_word,
        "the subject changed": lambda d: d.replace(b"\r\nSubject: ", b"\r\nSubject: FREE ", 1),
        "a second List-Unsubscribe added": lambda d: b"List-Unsubscribe: <https://evil.example/u>\r\n" + d,
        "a second From added": lambda d: b"From: Security <security@evil.example>\r\n" + d,
        "a second Reply-To added": lambda d: b"Reply-To: phish@evil.example\r\n" + d,
        "List-Unsubscribe-Post removed": lambda d: d.replace(
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"", 1
        ),
    }


@pytest.mark.parametrize("how", list(_tampered()))
def test_a_tampered_message_fails_verification(
    how: str, signer: DkimSigner, key: rsa.RSAPrivateKey, template: MessageTemplate, site: SiteConfig
) -> None:
    data = _wire(signer.sign(_message(template, site)))
    _, dnsfunc = _dns(key_record(key))
    assert dkim.verify(data, dnsfunc=dnsfunc)
    changed = _tampered()[how](data)
    assert changed != data
    assert not dkim.verify(changed, dnsfunc=dnsfunc)


def test_another_key_at_the_selector_fails_verification(
    signer: DkimSigner, template: MessageTemplate, site: SiteConfig
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    _, dnsfunc = _dns(key_record(other))
    assert not dkim.verify(_wire(signer.sign(_message(template, site))), dnsfunc=dnsfunc)


def test_a_relay_that_refolds_headers_or_trims_spaces_does_not_break_it(
    signer: DkimSigner, key: rsa.RSAPrivateKey, template: MessageTemplate, site: SiteConfig
) -> None:
    data = _wire(signer.sign(_message(template, site)))
    head, sep, body = data.partition(b"\r\n\r\n")
    # What relaxed/relaxed forgives: a header refolded, its name's case, runs of spaces, and
    # whitespace at the ends of body lines.
    head = head.replace(b"\r\nSubject: Ketamine ", b"\r\nSUBJECT:   Ketamine\r\n\t ", 1)
    body = body.replace(b"\r\n", b"  \r\n", 5)
    changed = head + sep + body
    _, dnsfunc = _dns(key_record(key))
    assert changed != data
    assert dkim.verify(changed, dnsfunc=dnsfunc)


def test_the_per_recipient_link_stays_a_plain_header(template: MessageTemplate, site: SiteConfig) -> None:
    data = _wire(_message(template, site))
    head = data.partition(b"\r\n\r\n")[0].decode("ascii")
    (line,) = [h for h in head.replace("\r\n ", " ").split("\r\n") if h.startswith("List-Unsubscribe:")]
    assert "=?" not in line
    assert "?t=" in line


def test_a_message_is_signed_once(signer: DkimSigner, template: MessageTemplate, site: SiteConfig) -> None:
    msg = signer.sign(_message(template, site))
    with pytest.raises(ValueError, match="already"):
        signer.sign(msg)


# -- the key file -------------------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path, key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "dkim.pem"
    path.write_text(private_pem(key))
    path.chmod(0o600)
    return path


def test_the_key_is_read_from_an_owner_only_file(key_file: Path, key: rsa.RSAPrivateKey) -> None:
    pem = read_private_key_file(Path("dkim.pem"), config=key_file.parent / "site.toml", field="k")
    assert DkimSigner(SELECTOR, DOMAIN, pem).bits == 2048


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604])
def test_a_key_file_others_can_open_is_refused(key_file: Path, mode: int) -> None:
    key_file.chmod(mode)
    with pytest.raises(SiteConfigError, match=f"mode {mode:04o}") as caught:
        read_private_key_file(
            key_file, config=key_file.parent / "site.toml", field="newsletter.dkim.key_file"
        )
    assert "PRIVATE KEY-----\n" not in str(caught.value)
    assert "newsletter.dkim.key_file" in str(caught.value)


def test_a_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dkim.pem"
    path.write_text("v=DKIM1; k=rsa; p=MIIB...\n")  # the public record, pasted by mistake
    path.chmod(0o600)
    with pytest.raises(SiteConfigError, match="not a PEM private key"):
        read_private_key_file(path, config=tmp_path / "site.toml", field="newsletter.dkim.key_file")


def test_a_broken_key_is_bad_input() -> None:
    with pytest.raises(InputError, match="not an RSA private key"):
        DkimSigner(SELECTOR, DOMAIN, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_a_key_receivers_ignore_is_refused(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        need("openssl", "the openssl command makes a 768-bit key (apt-get install -y openssl)")
    short = tmp_path / "short.pem"
    subprocess.run(
        [openssl, "genrsa", "-out", str(short), "768"], check=True, capture_output=True, timeout=30
    )
    with pytest.raises(InputError, match="768 bits"):
        DkimSigner(SELECTOR, DOMAIN, short.read_text(), key_file=short)
