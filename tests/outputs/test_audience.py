"""Who gets which edition of a newsletter (issue 26): the subscribers CSV's ``language`` column,
the pure decision (outputs/delivery/audience.py), and a publish of an original with its Spanish
translation to an SMTP server on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from editions import ORIGINAL, TRANSLATION, edition_folder
from smtpserver import SMTPTestServer
from typer.testing import CliRunner

from clinicpress.cli import app
from clinicpress.outputs.delivery.audience import LiveEdition, audience, edition_for, live_editions
from clinicpress.outputs.subscribers import Subscriber, SubscribersError, load_subscribers

runner = CliRunner()

EN = LiveEdition("care", "en", "care")
ES = LiveEdition("cuidado", "es", "care")
OTHER = LiveEdition("other", "en", "other")


def _people(*languages: str | None) -> list[Subscriber]:
    return [Subscriber(email=f"p{i}@example.org", language=lang) for i, lang in enumerate(languages)]


def test_each_subscriber_gets_one_edition_in_their_language_else_the_original() -> None:
    people = _people(None, "en", "es", "ES-mx", "fr")
    live = {e.slug: e for e in (EN, ES, OTHER)}
    to_en = [p.language for p in audience(people, "care", live)]
    to_es = [p.language for p in audience(people, "cuidado", live)]
    assert to_en == [None, "en", "fr"]  # no language, English, and a language with no edition
    assert to_es == ["es", "ES-mx"]  # es-MX reads the es edition
    assert [p.language for p in audience(people, "other", live)] == [None, "en", "es", "ES-mx", "fr"]
    assert edition_for(Subscriber("a@example.org", language="es"), [EN, ES]) == "cuidado"


def test_a_translation_whose_original_is_not_live_goes_to_its_readers_only() -> None:
    people = _people(None, "es")
    assert [p.language for p in audience(people, "cuidado", {"cuidado": ES})] == ["es"]


def test_live_editions_come_from_the_reports() -> None:
    reports = {"care": {"language": "en"}, "cuidado": {"language": "es", "translation_of": "care"}, "old": {}}
    assert live_editions(reports) == {
        "care": EN,
        "cuidado": ES,
        "old": LiveEdition("old", "", "old"),  # a report from before editions
    }


def test_the_subscribers_csv_may_carry_a_language(tmp_path: Path) -> None:
    path = tmp_path / "subscribers.csv"
    path.write_text("email,language\nann@example.org,es-MX\nbob@example.org,\n", encoding="utf-8")
    assert [s.language for s in load_subscribers(path)] == ["es-MX", None]
    path.write_text("email,language\nann@example.org,spanish please\n", encoding="utf-8")
    with pytest.raises(SubscribersError, match="line 2: language: 'spanish please' is not a language tag"):
        load_subscribers(path)


READERS = ("ann@example.org", "bea@example.org", "cruz@example.org", "dee@example.org")


def _mailing_site(tmp_path: Path, port: int, *, approval: bool = False) -> tuple[Path, Path]:
    """The fixture editions beside a site that mails four readers (none, es, es-MX, fr) on ``port``."""
    folder = edition_folder(tmp_path)
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text(
        "email,language\nann@example.org,\nbea@example.org,es\ncruz@example.org,es-MX\ndee@example.org,fr\n",
        encoding="utf-8",
    )
    site = folder / "site.toml"
    text = site.read_text("utf-8").replace(
        'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"',
        'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"\n'
        f'subscribers = "{subscribers}"\napproval_required = {str(approval).lower()}\n\n'
        f'[newsletter.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5',
    )
    site.write_text(text, encoding="utf-8")
    return folder, site


def _languages_received(server: SMTPTestServer) -> dict[str, list[str]]:
    return {
        address: [str(m.message()["Content-Language"]) for m in server.messages_to(address)]
        for address in READERS
    }


def _published_awaiting(tmp_path: Path, server: SMTPTestServer) -> list[str]:
    """Both editions published by Alice with approval_required; returns the ``--site``/``--out`` args."""
    folder, site = _mailing_site(tmp_path, server.port, approval=True)
    where = ["--site", str(site), "--out", str(tmp_path / "out")]
    published = runner.invoke(app, ["publish", *where, "--by", "Alice", str(folder)])
    assert published.exit_code == 0, published.output
    return where


EACH_IN_THEIR_LANGUAGE = {
    "ann@example.org": ["en"],
    "bea@example.org": ["es"],
    "cruz@example.org": ["es"],
    "dee@example.org": ["en"],  # no French edition: the original
}


@pytest.mark.usefixtures("prefect_harness")
def test_a_publish_sends_each_subscriber_the_edition_in_their_language(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with SMTPTestServer() as server:
        folder, site = _mailing_site(tmp_path, server.port)
        result = runner.invoke(app, ["publish", "--site", str(site), "--out", str(out), str(folder)])
        assert result.exit_code == 0, result.output
        got = _languages_received(server)
    assert got == EACH_IN_THEIR_LANGUAGE
    assert (out / "web" / ORIGINAL / "index.html").exists()
    assert (out / "web" / TRANSLATION / "index.html").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_an_approved_send_goes_to_each_subscriber_in_their_language(tmp_path: Path) -> None:
    """approve-send: each edition is still the version live (its page links the other edition),
    and its approval sends it to its own readers only."""
    with SMTPTestServer() as server:
        where = _published_awaiting(tmp_path, server)
        assert server.received == []  # both sends wait for a second person
        for slug in (ORIGINAL, TRANSLATION):
            approved = runner.invoke(app, ["approve-send", slug, "--by", "Bob", *where])
            assert approved.exit_code == 0, approved.output
        assert _languages_received(server) == EACH_IN_THEIR_LANGUAGE


@pytest.mark.usefixtures("prefect_harness")
def test_an_approval_honours_a_reader_who_left_the_language_meanwhile(tmp_path: Path) -> None:
    """The audience is worked out again when the send is approved: a reader who changed her CSV
    language since the publish is not sent the edition in the language she left."""
    with SMTPTestServer() as server:
        where = _published_awaiting(tmp_path, server)
        subscribers = tmp_path / "subscribers.csv"
        csv = subscribers.read_text("utf-8")
        subscribers.write_text(csv.replace("bea@example.org,es\n", "bea@example.org,en\n"), encoding="utf-8")
        approved = runner.invoke(app, ["approve-send", TRANSLATION, "--by", "Bob", *where])
        assert approved.exit_code == 0, approved.output
        got = _languages_received(server)
    assert got["bea@example.org"] == []
    assert got["cruz@example.org"] == ["es"]
