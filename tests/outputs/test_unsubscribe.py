"""One-click unsubscribe (issue 28, part 1): signed per-recipient links, the endpoint that answers
them, and the suppression list every later send honours.

The promises: a link works for its recipient only and for ``unsubscribe_max_age_days``; a forged,
altered or expired one gets one neutral answer; a POST with ``List-Unsubscribe=One-Click``
unsubscribes at once (no cookie, no redirect, no confirmation) and is committed before the 200
leaves, so a crash right after the answer loses nothing; a GET never unsubscribes; the secret
comes from the environment or an owner-only file, never site.toml.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError
from requirements import need
from sqlalchemy import create_engine, text

from clinicpress import clock
from clinicpress.errors import RenderError, SiteConfigError
from clinicpress.outputs.delivery.suppression import (
    Kind,
    MailEvent,
    Suppression,
    SuppressionStore,
    export_csv,
    stronger,
)
from clinicpress.outputs.delivery.unsubscribe import (
    Refused,
    Unsubscriber,
    issue_token,
    read_token,
    unsubscribe_link,
)
from clinicpress.outputs.delivery.unsubscribe_server import Endpoint, UnsubscribeServer, answer, bind
from clinicpress.outputs.subscribers import Subscriber
from clinicpress.settings.newsletter_loop import (
    DKIM_KEY_KEY,
    UNSUBSCRIBE_SECRET_KEY,
    NewsletterLoop,
    nameserver_address,
    secret_keys_in,
    with_loop_secrets,
)

SECRET = "s3cr3t-" + "0123456789abcdef" * 3
OTHER_SECRET = "another-" + "fedcba9876543210" * 3
BASE = "https://clinic.example/newsletter/unsubscribe"
READER = "Reader@Example.net"
ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"
MAX_AGE = 730


def _token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["t"][0]


def _now() -> datetime:
    return clock.now()


# -- tokens -------------------------------------------------------------------------------------


def test_a_link_names_its_recipient_and_newsletter_and_keeps_the_base_query() -> None:
    link = unsubscribe_link(f"{BASE}?list=news&t=stale", READER, SECRET, slug="ketamine-therapy", now=_now())
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == BASE
    query = parse_qs(parts.query)
    assert query["list"] == ["news"]
    assert len(query["t"]) == 1  # the stale t is replaced
    verdict = read_token(_token(link), SECRET, _now(), max_age_days=MAX_AGE)
    assert isinstance(verdict, Unsubscriber)
    assert verdict.address == "reader@example.net"
    assert verdict.slug == "ketamine-therapy"


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def _refusals() -> dict[str, Callable[[datetime], tuple[str, datetime]]]:
    """Each way a token can be bad: (token, the moment it is read)."""

    def good(at: datetime) -> str:
        return issue_token(READER, SECRET, issued=at, slug="ketamine-therapy")

    def other_reader(at: datetime) -> str:
        return issue_token("other@example.net", SECRET, issued=at)

    return {
        "forged with another secret": lambda now: (issue_token(READER, OTHER_SECRET, issued=now), now),
        "payload altered": lambda now: (_flip(good(now), 5), now),
        "signature altered": lambda now: (_flip(good(now), len(good(now)) - 3), now),
        "another reader's signature": lambda now: (
            good(now).split(".")[0] + "." + other_reader(now).split(".")[1],
            now,
        ),
        "expired": lambda now: (good(now - timedelta(days=MAX_AGE, seconds=1)), now),
        "from the future": lambda now: (good(now + timedelta(days=2)), now),
        "empty": lambda now: ("", now),
        "not base64": lambda now: ("not a token!.x", now),
        "too long": lambda now: ("A" * 2000 + ".A", now),
        "three parts": lambda now: (good(now) + ".x", now),
    }


@pytest.mark.parametrize("case", list(_refusals()))
def test_a_bad_token_is_refused(case: str) -> None:
    token, at = _refusals()[case](_now())
    assert isinstance(read_token(token, SECRET, at, max_age_days=MAX_AGE), Refused)


def test_a_link_works_until_its_last_day() -> None:
    issued = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    token = issue_token(READER, SECRET, issued=issued)
    last = issued + timedelta(days=MAX_AGE)
    assert isinstance(read_token(token, SECRET, last, max_age_days=MAX_AGE), Unsubscriber)
    after = read_token(token, SECRET, last + timedelta(seconds=1), max_age_days=MAX_AGE)
    assert after == Refused("expired")


def test_a_link_is_not_made_for_a_bad_address() -> None:
    with pytest.raises(RenderError, match="line break"):
        unsubscribe_link(BASE, "a@example.org\r\nBcc: x@example.org", SECRET)


# -- the endpoint, without sockets --------------------------------------------------------------


class Calls:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def __call__(self, address: str, how: str, slug: str | None) -> None:
        self.calls.append((address, how, slug))


def _endpoint(suppress: Any, now: Callable[[], datetime] = _now) -> Endpoint:
    return Endpoint.at(
        BASE,
        secret=SECRET,
        max_age_days=MAX_AGE,
        suppress=suppress,
        organization="Serenity Malibu",
        contact="news@clinic.example",
        now=now,
    )


def _path(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def test_a_one_click_post_unsubscribes_at_once() -> None:
    calls = Calls()
    link = unsubscribe_link(BASE, READER, SECRET, slug="ketamine-therapy")
    response = answer(_endpoint(calls), "POST", _path(link), FORM, ONE_CLICK)
    assert response.status == 200
    assert b"You are unsubscribed" in response.body
    assert calls.calls == [("reader@example.net", "one-click", "ketamine-therapy")]


def test_a_multipart_one_click_post_unsubscribes_too() -> None:
    calls = Calls()
    body = b'--b1\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b1--\r\n'
    link = unsubscribe_link(BASE, READER, SECRET)
    response = answer(_endpoint(calls), "POST", _path(link), "multipart/form-data; boundary=b1", body)
    assert response.status == 200
    assert calls.calls == [("reader@example.net", "one-click", None)]


def test_a_get_shows_one_button_and_unsubscribes_nobody() -> None:
    calls = Calls()
    link = unsubscribe_link(BASE, READER, SECRET)
    response = answer(_endpoint(calls), "GET", _path(link))
    assert response.status == 200
    page = response.body.decode()
    assert page.count("<form") == 1
    assert '<form method="post" action="">' in page
    assert 'name="List-Unsubscribe" value="One-Click"' in page
    assert calls.calls == []


def test_a_post_without_one_click_does_nothing() -> None:
    calls = Calls()
    link = unsubscribe_link(BASE, READER, SECRET)
    response = answer(_endpoint(calls), "POST", _path(link), FORM, b"List-Unsubscribe=Maybe")
    assert response.status == 400
    assert calls.calls == []


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_bad_token_gets_the_same_neutral_answer(method: str) -> None:
    calls = Calls()
    endpoint = _endpoint(calls)
    answers = set()
    for make in _refusals().values():
        token, at = make(_now())
        endpoint = _endpoint(calls, now=lambda at=at: at)
        response = answer(endpoint, method, f"/newsletter/unsubscribe?t={token}", FORM, ONE_CLICK)
        answers.add((response.status, response.body, response.headers))
    assert len(answers) == 1
    ((status, body, _),) = answers
    assert status == 400
    assert b"not valid, or it has expired" in body
    assert b"@example.net" not in body  # no address, whoever asks
    assert calls.calls == []


def test_only_the_path_of_the_unsubscribe_url_is_answered() -> None:
    calls = Calls()
    link = unsubscribe_link(BASE, READER, SECRET)
    response = answer(_endpoint(calls), "POST", "/other?" + urlsplit(link).query, FORM, ONE_CLICK)
    assert response.status == 404
    assert calls.calls == []


def test_a_failed_commit_is_a_500_the_client_may_retry() -> None:
    def broken(address: str, how: str, slug: str | None) -> None:
        raise OSError("database away")

    link = unsubscribe_link(BASE, READER, SECRET)
    response = answer(_endpoint(broken), "POST", _path(link), FORM, ONE_CLICK)
    assert response.status == 500
    assert b"unsubscribed" not in response.body


# -- the endpoint over HTTP, with the suppression list -------------------------------------------


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.sqlite'}"


@pytest.fixture
def running(db_url: str) -> Iterator[tuple[UnsubscribeServer, SuppressionStore]]:
    store = SuppressionStore(db_url)
    server = bind(0, _endpoint(store.unsubscribe))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, store
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        store.engine.dispose()


def _request(port: int, method: str, path: str, body: bytes | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": FORM} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_over_http_a_post_suppresses_with_no_cookie_and_no_redirect(
    running: tuple[UnsubscribeServer, SuppressionStore],
) -> None:
    server, store = running
    link = unsubscribe_link(BASE, READER, SECRET, slug="ketamine-therapy")
    got = _request(server.port, "GET", _path(link))
    assert got.status == 200
    assert not store.is_suppressed(READER)
    posted = _request(server.port, "POST", _path(link), ONE_CLICK)
    assert posted.status == 200
    assert posted.getheader("Set-Cookie") is None
    assert posted.getheader("Location") is None
    assert posted.getheader("Cache-Control") == "no-store"
    assert store.is_suppressed(READER)
    again = _request(server.port, "POST", _path(link), ONE_CLICK)  # a client's retry
    assert again.status == 200
    (row,) = store.export()
    assert (row.address, row.how) == ("reader@example.net", "unsubscribe")
    assert store.counts("ketamine-therapy").unsubscribed == 1


def test_over_http_a_forged_token_suppresses_nobody(
    running: tuple[UnsubscribeServer, SuppressionStore],
) -> None:
    server, store = running
    link = unsubscribe_link(BASE, READER, OTHER_SECRET)
    assert _request(server.port, "POST", _path(link), ONE_CLICK).status == 400
    assert store.export() == []


def test_an_unsubscribe_answered_is_never_lost_to_a_crash(tmp_path: Path, db_url: str) -> None:
    """The server SIGKILLs itself right after its 200 (CLINICPRESS_FAULT): the row is there."""
    script = (
        "import sys\n"
        "from clinicpress.outputs.delivery.suppression import SuppressionStore\n"
        "from clinicpress.outputs.delivery.unsubscribe_server import Endpoint, bind\n"
        f"store = SuppressionStore({db_url!r})\n"
        f"endpoint = Endpoint.at({BASE!r}, secret={SECRET!r}, max_age_days={MAX_AGE}, "
        "suppress=store.unsubscribe, organization='Serenity Malibu')\n"
        "server = bind(0, endpoint)\n"
        "print(server.port, flush=True)\n"
        "server.serve_forever(poll_interval=0.05)\n"
    )
    env = {**os.environ, "CLINICPRESS_FAULT": "unsubscribe.answered:kill"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())  # the handshake: bound and listening
        link = unsubscribe_link(BASE, READER, SECRET)
        assert _request(port, "POST", _path(link), ONE_CLICK).status == 200
        assert proc.wait(timeout=60) == -9  # killed at the fault point, after the answer
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with SuppressionStore(db_url) as store:
        assert store.is_suppressed(READER)


# -- the suppression list -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SuppressionStore]:
    if request.param == "sqlite":
        with SuppressionStore(f"sqlite:///{tmp_path / 'registry.sqlite'}") as found:
            yield found
        return
    url = os.environ.get("CLINICPRESS_TEST_POSTGRES_URL", "")
    if not url:
        need("PostgreSQL", "set CLINICPRESS_TEST_POSTGRES_URL (e.g. $(tools/ci-postgres.sh)) to run")
    schema = f"suppress_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        with SuppressionStore(f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}") as found:
            yield found
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_a_suppression_is_kept_once_and_only_a_stronger_reason_replaces_it(store: SuppressionStore) -> None:
    first = clock.now() - timedelta(days=3)
    assert store.add("Reader@Example.net", "hard-bounce", "550 5.1.1", at=first)
    assert not store.add("reader@example.net", "hard-bounce", "again", at=first + timedelta(days=1))
    assert store.export() == [Suppression("reader@example.net", first, "hard-bounce", "550 5.1.1")]
    later = first + timedelta(days=2)
    assert store.add("READER@example.net", "unsubscribe", "one-click", at=later)  # the person's choice
    assert not store.add("reader@example.net", "hard-bounce", "late bounce", at=later + timedelta(hours=1))
    assert store.export() == [Suppression("reader@example.net", later, "unsubscribe", "one-click")]
    assert stronger("complaint", "unsubscribe")
    assert not stronger("manual", "unsubscribe")


def test_every_send_skips_a_suppressed_address_the_csv_still_lists(store: SuppressionStore) -> None:
    csv = [Subscriber("first@example.org"), Subscriber("Reader@Example.net"), Subscriber("last@example.org")]
    store.unsubscribe("reader@example.net", "one-click", "ketamine-therapy")
    kept, dropped = store.without_suppressed(csv)
    assert [s.email for s in kept] == ["first@example.org", "last@example.org"]
    assert [s.email for s in dropped] == ["Reader@Example.net"]


def test_the_list_exports_as_csv(store: SuppressionStore) -> None:
    at = clock.now()
    store.add("b@example.org", "manual", 'asked by phone, "please stop"', at=at)
    store.add("a@example.org", "complaint", "abuse", at=at - timedelta(hours=1))
    lines = export_csv(store.export()).splitlines()
    assert lines[0] == "address,at,how,detail"
    assert lines[1].startswith("a@example.org,")
    assert lines[1].endswith(",complaint,abuse")
    assert lines[2].endswith(',manual,"asked by phone, ""please stop"""')


def test_an_event_recorded_twice_counts_once(store: SuppressionStore) -> None:
    event = MailEvent(
        "reader@example.net", Kind.UNSUBSCRIBE, source="link:ketamine-therapy", slug="ketamine-therapy"
    )
    assert store.record(event).new
    assert not store.record(event).new
    assert store.counts("ketamine-therapy").unsubscribed == 1


# -- the settings -------------------------------------------------------------------------------


class _Newsletter(NewsletterLoop):
    """As the site's [newsletter] model inherits the loop's fields."""

    # As SiteConfig is: a traceback must not print a secret's value.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    from_name: str = "Serenity Malibu"


def _site_file(tmp_path: Path) -> Path:
    site = tmp_path / "site.toml"
    site.write_text("# the site config\n")
    return site


def test_the_secret_is_read_from_an_owner_only_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "unsubscribe.key"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    loaded = with_loop_secrets(
        _Newsletter(unsubscribe_secret_file=Path("unsubscribe.key")), _site_file(tmp_path)
    )
    assert loaded.unsubscribe_secret is not None
    assert loaded.unsubscribe_secret.get_secret_value() == SECRET


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_secret_file_others_can_open_is_refused(tmp_path: Path, mode: int) -> None:
    secret_file = tmp_path / "unsubscribe.key"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(mode)
    with pytest.raises(SiteConfigError, match=f"mode {mode:04o}") as caught:
        with_loop_secrets(_Newsletter(unsubscribe_secret_file=secret_file), _site_file(tmp_path))
    assert SECRET not in str(caught.value)


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    loaded = with_loop_secrets(
        _Newsletter(unsubscribe_secret=SECRET, unsubscribe_secret_file=tmp_path / "absent"),
        _site_file(tmp_path),
    )
    assert loaded.unsubscribe_secret is not None
    assert loaded.unsubscribe_secret.get_secret_value() == SECRET


def test_a_short_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        _Newsletter(unsubscribe_secret="short-secret")
    assert "short-secret" not in str(caught.value)
    (error,) = caught.value.errors()
    assert error["loc"] == ("unsubscribe_secret",)  # the place the site loader names, never the value


def test_a_secret_in_site_toml_is_named_for_refusal() -> None:
    data = {"newsletter": {"unsubscribe_secret": "x", "dkim": {"private_key": "y"}}}
    assert secret_keys_in(data) == [UNSUBSCRIBE_SECRET_KEY, DKIM_KEY_KEY]
    assert secret_keys_in({"newsletter": {"from_name": "x"}}) == []


def test_link_age_below_thirty_days_is_refused() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 30"):
        _Newsletter(unsubscribe_max_age_days=7)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [("127.0.0.1:5353", ("127.0.0.1", 5353)), ("[::1]:53", ("::1", 53)), ("192.0.2.53", ("192.0.2.53", 53))],
)
def test_nameservers_are_ip_and_port(entry: str, expected: tuple[str, int]) -> None:
    assert nameserver_address(entry) == expected


@pytest.mark.parametrize("entry", ["dns.example:53", "127.0.0.1:0", "127.0.0.1:99999", "[::1", "1.2.3.4:x"])
def test_a_bad_nameserver_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match=r"expected e\.g\."):
        nameserver_address(entry)


def test_loop_settings_validate_as_part_of_a_model() -> None:
    class Site(BaseModel):
        newsletter: _Newsletter

    with pytest.raises(ValidationError, match="nameservers"):
        Site.model_validate({"newsletter": {"domain_check": {"nameservers": ["ns.example"]}}})
