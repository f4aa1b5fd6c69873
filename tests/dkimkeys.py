"""A DKIM key pair for tests: the private key as a PEM file holds it, the public one as DNS publishes it.

Shared by tests/outputs/test_dkim.py, test_domain_check.py and test_newsletter_loop.py.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["key_record", "new_key", "private_pem"]


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def key_record(key: rsa.RSAPrivateKey) -> str:
    """The TXT record a clinic publishes at <selector>._domainkey.<domain>."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
