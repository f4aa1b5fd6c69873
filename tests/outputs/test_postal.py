"""A newsletter that can legally go out (issue 24 part 6): no send to subscribers without the
sender's street address (CAN-SPAM); the ``.eml`` outbox, which sends nothing, never waits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from smtpserver import SMTPTestServer
from test_delivery import send, subscribers

from clinicpress.postal import check_postal_address
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article

SAMPLE_ADDRESS = "Serenity Malibu, Malibu, California"  # content/site.toml: the city only


@pytest.fixture
def server() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as srv:
        yield srv


@pytest.mark.parametrize(
    ("address", "missing"),
    [
        (SAMPLE_ADDRESS, ("a street number", "a street", "a ZIP code")),
        ("Serenity Malibu, 100 Example Way, Malibu, CA", ("a ZIP code",)),
        ("Example Clinic, Example Way, Pasadena, CA 91101", ("a street number",)),
        ("Example Clinic, 12 Example Way, CA 91101", ("a city",)),
        ("Example Clinic, 12 Example Way, Suite 4, Pasadena, CA 91101", ()),
        ("Example Clinic, 12 Example Way, Pasadena, California 91101-1234, USA", ()),
        ("Example Clinic, PO Box 12, Pasadena, CA 91101", ()),  # a USPS box is enough for CAN-SPAM
    ],
)
def test_a_us_address_names_the_parts_it_lacks(address: str, missing: tuple[str, ...]) -> None:
    check = check_postal_address(address)
    assert check.us
    assert all(part in check.missing for part in missing), check.missing
    assert check.complete == (missing == ())
    if missing:
        assert all(part in check.reason() for part in missing)


@pytest.mark.parametrize(
    "address",
    ["Example Clinic, 10 Example Street, London SW1A 2AA, United Kingdom", "Calle Mayor 1, Madrid, Spain"],
)
def test_an_address_abroad_is_accepted_with_a_warning(address: str) -> None:
    check = check_postal_address(address)
    assert check.complete
    assert not check.us
    assert "not a US address" in check.reason()


def with_address(site: SiteConfig, address: str) -> SiteConfig:
    organization = site.organization.model_copy(update={"postal_address": address})
    return site.model_copy(update={"organization": organization})


def test_no_send_to_subscribers_without_a_street_address_then_the_next_publish_sends(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    readers = subscribers(3)
    report = send(article, with_address(site, SAMPLE_ADDRESS), tmp_path, server, readers)
    assert server.accepted == []
    assert report.sent == 0
    assert not report.complete
    assert report.stopped is not None
    for part in ("a street number", "a street", "a ZIP code", "CAN-SPAM"):
        assert part in report.stopped
    # Completed in site.toml: the next publish resumes the same send, one message each.
    report = send(article, site, tmp_path, server, readers)
    assert report.complete
    assert report.accepted == 3
    assert sorted(t for m in server.accepted for t in m.rcpt_tos) == sorted(r.email for r in readers)


def test_a_test_send_is_not_a_send_to_subscribers(
    article: Article, site: SiteConfig, tmp_path: Path, server: SMTPTestServer
) -> None:
    report = send(
        article, with_address(site, SAMPLE_ADDRESS), tmp_path, server, [], test_to="editor@example.org"
    )
    assert report.test
    assert [m.rcpt_tos for m in server.accepted] == [("editor@example.org",)]
