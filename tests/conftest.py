"""Shared fixtures: article and site files written into a temporary folder."""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from clinicpress import clock
from clinicpress.settings.newsletter_loop import UNSUBSCRIBE_SECRET_ENV
from clinicpress.site import SiteConfig, load_site
from clinicpress.sources.article import Article
from clinicpress.sources.loader import load_article

if TYPE_CHECKING:
    from clinicpress.outputs.registry import Registry

# Never a background Prefect server from the suite (flows/local_server.py): the tests bring their
# own API (prefect_test_harness), and every CLI process a test starts inherits this.
os.environ["CLINICPRESS_LOCAL_SERVER"] = "0"

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_ARTICLE = ROOT / "content" / "ketamine-therapy-substance-abuse.md"
REFERENCE_SITE = ROOT / "content" / "site.toml"

# Test dates are relative to the product's clock (which honours CLINICPRESS_CLOCK_SHIFT_DAYS, as
# every CLI process a test starts does), never to the calendar: the suite passes on any day, and CI
# runs it again two years ahead. Tests that need one exact day set it with ``pin_clock``.
TODAY = clock.today()
PUBLISHED = TODAY - timedelta(days=330)
LAST_REVIEWED = TODAY - timedelta(days=30)  # next review (last + 12 months) is ~11 months away
LICENSE_EXPIRES = TODAY + timedelta(days=400)  # outside every warning window (150/90/30 days)
# The sample's postal address is a city only (the clinic's street address is not confirmed), and a
# send to subscribers waits for a full one (clinicpress/postal.py): tests send from a fictional one.
TEST_POSTAL_ADDRESS = "Serenity Malibu, 100 Example Way, Malibu, CA 90265"

# For tests of pure functions that are given their day (loading, date rules): fixed dates.
FIXED_DATES_FRONT_MATTER = """\
title: Test Article
summary: A short summary.
published: 2026-01-05
last_reviewed: 2026-11-01
"""

MINIMAL_FRONT_MATTER = f"""\
title: Test Article
summary: A short summary.
published: {PUBLISHED}
last_reviewed: {LAST_REVIEWED}
"""

WriteArticle = Callable[..., Path]


# A send to subscribers signs each one-click link with the unsubscribe secret, and waits without one
# (outputs/delivery/loop.py). Never in a site.toml: in the environment of the suite and of every CLI
# process a test starts, as an operator sets it. A test of the missing secret removes it.
TEST_UNSUBSCRIBE_SECRET = "test-unsubscribe-secret-" + "0123456789abcdef" * 2


@pytest.fixture(scope="session", autouse=True)
def _unsubscribe_secret() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(UNSUBSCRIBE_SECRET_ENV, TEST_UNSUBSCRIBE_SECRET)
        yield


# The reference article and site, shared read-only (frozen models) by the tests that need them.
@pytest.fixture(scope="session")
def site() -> SiteConfig:
    loaded = load_site(REFERENCE_SITE)
    organization = loaded.organization.model_copy(update={"postal_address": TEST_POSTAL_ADDRESS})
    return loaded.model_copy(update={"organization": organization})


@pytest.fixture(scope="session")
def article() -> Article:
    return load_article(REFERENCE_ARTICLE)


def another_text(article: Article, body: str = "A corrected text.\n") -> Article:
    """The article with another body: another text (``content_hash``), so another newsletter send
    (a new version of the same text continues the send of that text)."""
    return article.model_copy(update={"body": body})


@pytest.fixture
def write_article(tmp_path: Path) -> WriteArticle:
    """Write an article file: ``write_article(front_matter=..., body=..., name=...)``."""

    def write(
        front_matter: str = MINIMAL_FRONT_MATTER, body: str = "Some text.\n", name: str = "a.md"
    ) -> Path:
        path = tmp_path / name
        path.write_text(f"---\n{front_matter}---\n{body}", encoding="utf-8")
        return path

    return write


# The authority lookups (issue 25) are on by default and would ask DHCS and NPPES, which the test
# process refuses (the guard below): test sites turn them off unless a test points them at
# tests/authority_standin.py.
AUTHORITY_OFF = (
    "\n[checks.license_registry]\nenabled = false\n\n[checks.reviewer_registry]\nenabled = false\n"
)


def site_text(*, authority: str = AUTHORITY_OFF, **replacements: str) -> str:
    """The reference site.toml with ``key = value`` lines replaced (first match).

    The license expires ``LICENSE_EXPIRES`` (relative to the product's today) unless ``expires``
    is given: the sample's real date would put every publish test in its warning window, then
    block it. The postal address is ``TEST_POSTAL_ADDRESS`` unless ``postal_address`` is given.
    ``authority``: the ``[checks.license_registry]`` and ``[checks.reviewer_registry]`` tables,
    appended at the end (default: both off; ``AuthorityStandin().site_toml_lines()`` points them
    at the stand-in).
    """
    text = REFERENCE_SITE.read_text(encoding="utf-8")
    defaults = {"expires": LICENSE_EXPIRES.isoformat(), "postal_address": f'"{TEST_POSTAL_ADDRESS}"'}
    for key, value in {**defaults, **replacements}.items():
        text, count = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", text, count=1)
        assert count == 1, f"no {key} line in site.toml"
    return text.rstrip("\n") + "\n" + authority


@pytest.fixture
def write_site(tmp_path: Path) -> Callable[..., Path]:
    """Write a site.toml: the reference one with some keys replaced."""

    def write(name: str = "site.toml", **replacements: str) -> Path:
        path = tmp_path / name
        path.write_text(site_text(**replacements), encoding="utf-8")
        return path

    return write


def reference_article_text(last_reviewed: date = LAST_REVIEWED) -> str:
    """The reference article with its review date moved relative to the product's today."""
    text = REFERENCE_ARTICLE.read_text(encoding="utf-8")
    text, count = re.subn(r"(?m)^last_reviewed: .*$", f"last_reviewed: {last_reviewed}", text, count=1)
    assert count == 1, "no last_reviewed line in the reference article"
    return text


@pytest.fixture
def pin_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[date], None]:
    """Set the product's today (here and in every CLI process the test starts): ``pin_clock(day)``."""

    def pin(day: date) -> None:
        monkeypatch.delenv(clock.SHIFT_ENV, raising=False)
        monkeypatch.setenv(clock.SHIFT_ENV, str((day - clock.today()).days))
        assert clock.today() == day

    return pin


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One real Prefect API for the whole session (flow tests only ask for it)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


# "No test touches the internet" as a guarantee (issue 27): a connection from the test process to
# any address but loopback is refused at once and fails the test that made it, even when the code
# under test took the refusal for a network that is down. (CLI child processes are not covered: they
# are started on 127.0.0.1 servers by construction, and the machines here reach no other network.)
_OUTSIDE: list[str] = []


def _local(family: int, address: object) -> bool:
    if family == getattr(socket, "AF_UNIX", None) or not isinstance(address, tuple):
        return True
    host = str(address[0]).split("%")[0]
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: connect() would resolve it here, unvetted
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _guard(real: Callable[..., object]) -> Callable[..., object]:
    def connect(self: socket.socket, address: object) -> object:
        if not _local(self.family, address):
            _OUTSIDE.append(repr(address))
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"tests connect to loopback only, not {address!r}"
            )
        return real(self, address)

    return connect


socket.socket.connect = _guard(socket.socket.connect)  # type: ignore[method-assign]
socket.socket.connect_ex = _guard(socket.socket.connect_ex)  # type: ignore[method-assign,assignment]


@pytest.fixture(autouse=True)
def _no_connection_beyond_loopback() -> Iterator[None]:
    """Fail the test that tried to connect beyond loopback (the connection itself was refused)."""
    _OUTSIDE.clear()
    yield
    if _OUTSIDE:
        tried = ", ".join(_OUTSIDE)
        _OUTSIDE.clear()
        pytest.fail(f"this test tried to connect beyond loopback: {tried}")


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """An empty registry on SQLite, then on PostgreSQL (CLINICPRESS_TEST_POSTGRES_URL; under CI
    required, elsewhere skipped saying why): its tables dropped first, then made again."""
    from requirements import need

    from clinicpress.outputs.registry import Registry, metadata

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    else:
        url = os.environ.get("CLINICPRESS_TEST_POSTGRES_URL", "")
        if not url:
            need("PostgreSQL", "set CLINICPRESS_TEST_POSTGRES_URL (e.g. $(tools/ci-postgres.sh)) to run")
    with Registry(url) as opened:
        if request.param == "postgresql":
            metadata.drop_all(opened.engine)
            opened.close()
            opened = Registry(url)
        yield opened
