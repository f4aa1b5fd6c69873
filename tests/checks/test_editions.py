"""Translated editions that know when they are stale (issue 26, part 1).

The fixture (tests/fixtures/editions/): a shortened copy of the sample article and its Spanish
translation, written by hand, citing the same two works in the same order. The pure rules
(checks/editions.py) as a table, the published texts in the registry (outputs/edition_texts.py),
and ``clinicpress check`` end to end on the product clock: editing the English original makes the
translation stale (a warning showing the original's diff), then blocked once the grace period
after the changed original was first published is over.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import TODAY
from editions import (
    NEW_DOSE,
    OLD_DOSE,
    ORIGINAL,
    TRANSLATION,
    edit_original,
    edition_folder,
    edition_site,
    load_slug,
    noon,
    published_text,
)
from typer.testing import CliRunner

from clinicpress import clock
from clinicpress.checks.editions import (
    CHECK,
    Editions,
    EditionState,
    PublishedText,
    edition_problems,
    stale_since,
    standing,
    with_edition_note,
)
from clinicpress.checks.links import LinkReport
from clinicpress.checks.model import Severity, Verdict
from clinicpress.checks.signoff import Decision, ReviewRecord, signoff_problems
from clinicpress.checks.verify import verify_article
from clinicpress.cli import app
from clinicpress.errors import ArticleError
from clinicpress.outputs.edition_texts import load_texts, record_texts
from clinicpress.sources.article import Article, Reviewer
from clinicpress.sources.loader import load_article
from clinicpress.sources.versioning import content_hash, reviewed_text

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return edition_folder(tmp_path)


# -- the front matter --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field", "fragment"),
    [
        ("translation_of: ketamine-therapy-short\n", "translated_from", "is missing"),
        ("translation_of: ketamine-therapy-short\ntranslated_from: 02f76c\n", "translated_from", "12 hex"),
        (
            "translation_of: ketamine-therapy-short\ntranslated_from: 123456789012\n",
            "translated_from",
            "quotes",
        ),
        ("translated_from: 02f76c75931b\n", "translated_from", "without translation_of"),
        ("translation_of: Ketamine Therapy\ntranslated_from: 02f76c75931b\n", "translation_of", "not a slug"),
        ("translation_of: test-article\ntranslated_from: 02f76c75931b\n", "translation_of", "own slug"),
        ("language: Spanish\n", "language", "not a language tag"),
    ],
)
def test_edition_front_matter_is_validated_naming_the_field(
    tmp_path: Path, extra: str, field: str, fragment: str
) -> None:
    path = tmp_path / "a.md"
    front = "title: Test Article\nsummary: S.\npublished: 2026-01-05\nlast_reviewed: 2026-11-01\n"
    path.write_text(f"---\n{front}{extra}---\nWords.\n", encoding="utf-8")
    with pytest.raises(ArticleError) as caught:
        load_article(path)
    assert caught.value.field == field
    assert fragment in str(caught.value)


def test_the_fixture_translation_is_current_and_its_report_carries_content_hashes(folder: Path) -> None:
    site, original, translation = (
        edition_site(folder),
        load_slug(folder, ORIGINAL),
        load_slug(folder, TRANSLATION),
    )
    assert translation.language == "es"
    assert original.language is None  # the site's
    editions = Editions({a.key: a for a in (original, translation)})
    assert standing(translation, editions, site, TODAY).state is EditionState.CURRENT
    no_links = LinkReport(results={}, network_down=False, summary=None)
    report = verify_article(translation, site, no_links, on=TODAY, editions=editions)
    assert not [p for p in report.problems if p.check == CHECK]
    data = report.as_json()
    assert data["content_hash"] == content_hash(translation)
    assert data["language"] == "es"
    assert verify_article(original, site, no_links, on=TODAY).as_json()["language"] == "en"


def test_content_hash_ignores_templates_site_and_dates(folder: Path) -> None:
    original = load_slug(folder, ORIGINAL)
    redated = original.model_copy(update={"last_reviewed": TODAY, "channels": original.channels[:1]})
    assert content_hash(redated) == content_hash(original)  # the hash takes no site, no templates
    assert content_hash(edit_original(folder)) != content_hash(original)


# -- stale, then blocked -----------------------------------------------------------------------


def test_an_edited_original_makes_the_translation_stale_then_blocked_after_the_grace_period(
    folder: Path,
) -> None:
    site = edition_site(folder)
    original, translation = load_slug(folder, ORIGINAL), load_slug(folder, TRANSLATION)
    edited = edit_original(folder)
    changed_on = TODAY - timedelta(days=3)
    history = {
        ORIGINAL: [published_text(original, TODAY - timedelta(days=100)), published_text(edited, changed_on)]
    }
    editions = Editions({edited.key: edited, translation.key: translation}, history)
    grace = site.editions.stale_grace_days
    assert grace == 14

    stale = standing(translation, editions, site, TODAY)
    assert stale.state is EditionState.STALE
    assert stale.since == noon(changed_on)
    assert stale.blocked_on == changed_on + timedelta(days=grace)
    [problem] = edition_problems(translation, editions, site, TODAY)
    assert problem.severity is Severity.WARNING
    assert f"-{OLD_DOSE}" in problem.message  # the original's diff since translated_from
    assert f"+{NEW_DOSE}" in problem.message

    last_day = changed_on + timedelta(days=grace - 1)
    assert standing(translation, editions, site, last_day).state is EditionState.STALE
    blocked_on = changed_on + timedelta(days=grace)
    assert standing(translation, editions, site, blocked_on).state is EditionState.BLOCKED
    [problem] = edition_problems(translation, editions, site, blocked_on)
    assert problem.severity is Severity.BLOCKED
    assert "grace period" in problem.message


def test_an_unpublished_change_warns_without_starting_the_grace_period(folder: Path) -> None:
    site = edition_site(folder)
    original, translation = load_slug(folder, ORIGINAL), load_slug(folder, TRANSLATION)
    edited = edit_original(folder)
    history = {ORIGINAL: [published_text(original, TODAY - timedelta(days=400))]}
    editions = Editions({edited.key: edited, translation.key: translation}, history)
    far = TODAY + timedelta(days=365)
    found = standing(translation, editions, site, far)
    assert found.state is EditionState.STALE
    assert found.since is None
    [problem] = edition_problems(translation, editions, site, far)
    assert problem.severity is Severity.WARNING
    assert "not published yet" in problem.message


def test_the_grace_period_counts_from_the_first_change_published_after_the_translated_text() -> None:
    day = date(2026, 3, 1)
    texts = [
        PublishedText(ORIGINAL, "aa" * 32, "a", noon(day)),
        PublishedText(ORIGINAL, "bb" * 32, "b", noon(day + timedelta(days=10))),
        PublishedText(ORIGINAL, "cc" * 32, "c", noon(day + timedelta(days=20))),
    ]
    assert stale_since(texts, "aaaaaaaaaaaa", "cc" * 32) == noon(day + timedelta(days=10))  # not day 20
    assert stale_since(texts, "bbbbbbbbbbbb", "cc" * 32) == noon(day + timedelta(days=20))
    # An unpublished draft was translated: counted from when the current text went live.
    assert stale_since(texts, "dddddddddddd", "cc" * 32) == noon(day + timedelta(days=20))
    assert stale_since(texts[:2], "aaaaaaaaaaaa", "ee" * 32) == noon(day + timedelta(days=10))
    assert stale_since(texts[:1], "aaaaaaaaaaaa", "ee" * 32) is None


def test_a_stale_translation_within_grace_carries_the_note_its_page_shows(folder: Path) -> None:
    site = edition_site(folder)
    original, translation = load_slug(folder, ORIGINAL), load_slug(folder, TRANSLATION)
    edited = edit_original(folder)
    changed_on = TODAY - timedelta(days=2)
    history = {
        ORIGINAL: [published_text(original, TODAY - timedelta(days=50)), published_text(edited, changed_on)]
    }
    editions = Editions({edited.key: edited, translation.key: translation}, history)
    noted = with_edition_note(translation, editions, site, TODAY)
    assert noted.edition_note is not None
    assert noted.edition_note.original_language == "en"
    assert noted.edition_note.updated_on == changed_on
    current = Editions({original.key: original, translation.key: translation}, history)
    assert with_edition_note(translation, current, site, TODAY).edition_note is None
    late = TODAY + timedelta(days=30)  # blocked: it is not published, with or without a note
    assert with_edition_note(translation, editions, site, late).edition_note is None

    from clinicpress.renderers.base import RenderContext
    from clinicpress.renderers.web import render_web_html

    html = render_web_html(noted, site, RenderContext(published_at=clock.local_now(), version="v"))
    assert 'class="edition-note"' in html
    assert str(changed_on.year) in html.split('class="edition-note"')[1].split("</p>")[0]
    plain = render_web_html(translation, site, RenderContext(published_at=clock.local_now(), version="v"))
    assert "edition-note" not in plain


# -- the sources and the original ----------------------------------------------------------------


@pytest.mark.parametrize("change", ["swap", "url", "drop"])
def test_a_translation_citing_other_works_is_blocked(folder: Path, change: str) -> None:
    site, original, translation = (
        edition_site(folder),
        load_slug(folder, ORIGINAL),
        load_slug(folder, TRANSLATION),
    )
    one, two = translation.sources
    sources = {
        "swap": [two, one],
        "url": [one, two.model_copy(update={"url": "https://doi.org/10.1176/appi.ajp.2021.21030277"})],
        "drop": [one],
    }[change]
    changed = translation.model_copy(update={"sources": sources})
    editions = Editions({original.key: original, changed.key: changed})
    [problem] = edition_problems(changed, editions, site, TODAY)
    assert problem.severity is Severity.BLOCKED
    assert "sources differ" in problem.message
    # Translated titles are not a difference.
    retitled = translation.model_copy(update={"sources": [one.model_copy(update={"title": "Otro"}), two]})
    assert (
        edition_problems(retitled, Editions({original.key: original, retitled.key: retitled}), site, TODAY)
        == []
    )


def test_a_translations_quotes_are_the_originals(folder: Path) -> None:
    """Quotes are checked against the source: a translation's quote, when it has one, must be the
    original's words (the same check then holds it), never a translated quote."""
    site, original, translation = (
        edition_site(folder),
        load_slug(folder, ORIGINAL),
        load_slug(folder, TRANSLATION),
    )
    quote = "ketamine may reduce cravings"

    def quoting(article: Article, words: str | None) -> Article:
        first, *rest = article.sources
        return article.model_copy(update={"sources": [first.model_copy(update={"quote": words}), *rest]})

    cited = quoting(original, quote)
    for words, blocked in ((quote, False), (None, False), ("la ketamina puede reducir los antojos", True)):
        # Translated from the original as it now reads (its quote is part of its text).
        mine = quoting(translation, words).model_copy(update={"translated_from": content_hash(cited)})
        found = edition_problems(mine, Editions({cited.key: cited, mine.key: mine}), site, TODAY)
        assert [p.severity for p in found] == ([Severity.BLOCKED] if blocked else []), words
    assert "source 1's quote is not the original's" in found[0].message


def test_a_translation_of_an_unknown_slug_is_blocked(folder: Path) -> None:
    site, translation = edition_site(folder), load_slug(folder, TRANSLATION)
    [problem] = edition_problems(translation, Editions({translation.key: translation}), site, TODAY)
    assert problem.severity is Severity.BLOCKED
    assert "translation_of: no article has the slug 'ketamine-therapy-short'" in problem.message


# -- per edition: its own sign-off -------------------------------------------------------------


def test_a_translation_needs_its_own_sign_off(folder: Path) -> None:
    original, translation = load_slug(folder, ORIGINAL), load_slug(folder, TRANSLATION)

    def approval(article: Article) -> ReviewRecord:
        return ReviewRecord(
            slug=article.key,
            content_hash=content_hash(article),
            reviewer=Reviewer(name="Ana Ruiz", credentials="MD"),
            reviewed_on=TODAY,
            recorded_at=clock.now(),
            decision=Decision.APPROVED,
            comment="",
            text=reviewed_text(article),
            id=1,
        )

    records = [approval(original)]
    assert signoff_problems(original, records, required=True) == []
    assert [p.severity for p in signoff_problems(translation, records, required=True)] == [Severity.BLOCKED]
    assert signoff_problems(translation, [*records, approval(translation)], required=True) == []


# -- the registry and `clinicpress check` end to end ---------------------------------------------


def _check(folder: Path, out: Path) -> tuple[int, dict[str, dict[str, object]]]:
    result = runner.invoke(
        app,
        ["check", str(folder), "--site", str(folder / "site.toml"), "--out", str(out), "--format", "json"],
    )
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, {a["slug"]: a for a in json.loads(result.stdout)["articles"]}


def _edition_messages(report: dict[str, object]) -> list[tuple[str, str]]:
    problems = report["problems"]
    assert isinstance(problems, list)
    return [(p["severity"], p["message"]) for p in problems if p["check"] == CHECK]


def test_check_sees_stale_then_blocked_on_the_product_clock(
    folder: Path, tmp_path: Path, pin_clock: Callable[[date], None]
) -> None:
    out, site = tmp_path / "published", edition_site(folder)
    start = clock.today()
    original = load_slug(folder, ORIGINAL)
    record_texts(site, out, [original, load_slug(folder, TRANSLATION)], clock.now())

    code, reports = _check(folder, out)
    assert reports[ORIGINAL]["content_hash"] == content_hash(original)
    assert str(reports[TRANSLATION]["content_hash"]).startswith(
        content_hash(load_slug(folder, TRANSLATION))[:12]
    )
    assert _edition_messages(reports[TRANSLATION]) == []
    assert code == 0

    edited = edit_original(folder)
    pin_clock(start + timedelta(days=5))
    record_texts(site, out, [edited], clock.now())  # the edited original goes live on day 5
    assert [t.content_hash for t in load_texts(site, out, [ORIGINAL])[ORIGINAL]] == [
        content_hash(original),
        content_hash(edited),
    ]
    first_times = [t.first_published_at for t in load_texts(site, out, [ORIGINAL])[ORIGINAL]]
    assert record_texts(site, out, [original, edited], clock.now() + timedelta(days=1)) == 0  # kept once
    assert [t.first_published_at for t in load_texts(site, out, [ORIGINAL])[ORIGINAL]] == first_times
    pin_clock(start + timedelta(days=5 + 13))
    code, reports = _check(folder, out)
    [(severity, message)] = _edition_messages(reports[TRANSLATION])
    assert severity == "warning"
    assert f"-{OLD_DOSE}" in message
    assert f"+{NEW_DOSE}" in message
    assert code == 0

    pin_clock(start + timedelta(days=5 + 14))
    code, reports = _check(folder, out)
    [(severity, message)] = _edition_messages(reports[TRANSLATION])
    assert severity == "blocked"
    assert reports[TRANSLATION]["verdict"] == Verdict.BLOCKED.value
    assert _edition_messages(reports[ORIGINAL]) == []
    assert code == 1


def test_check_of_the_translation_alone_finds_its_original_beside_the_site(
    folder: Path, tmp_path: Path
) -> None:
    """Checking one translation file: its original is loaded from the site's folder."""
    edit_original(folder)
    path = folder / f"{TRANSLATION}.md"
    result = runner.invoke(
        app,
        [
            "check",
            str(path),
            "--site",
            str(folder / "site.toml"),
            "--out",
            str(tmp_path / "o"),
            "--format",
            "json",
        ],
    )
    [report] = json.loads(result.stdout)["articles"]
    [(severity, message)] = _edition_messages(report)
    assert severity == "warning"
    assert "is not in the registry: no diff to show" in message  # nothing was ever published
    # An unknown original: blocked, exit 1 (a check result, not a file that fails to load).
    shutil.move(folder / f"{ORIGINAL}.md", tmp_path / "moved.md")
    result = runner.invoke(
        app, ["check", str(path), "--site", str(folder / "site.toml"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert "translation_of: no article has the slug" in result.stdout


# -- the publish flow ----------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_publish_keeps_texts_notes_a_stale_translation_then_blocks_it(
    folder: Path, tmp_path: Path, pin_clock: Callable[[date], None]
) -> None:
    from clinicpress.flows.publish import publish_flow

    out, site, start = tmp_path / "published", edition_site(folder), clock.today()

    problems: list[str] = []

    def publish() -> dict[str, tuple[str, bool]]:
        result = publish_flow(paths=[str(folder)], site_path=str(folder / "site.toml"), out_dir=str(out))
        problems[:] = [p.message for o in result.outcomes for p in o.report.problems if p.check != "language"]
        return {o.report.slug: (o.report.verdict.value, o.published) for o in result.outcomes}

    first = publish()
    assert first[TRANSLATION][1], problems
    assert first[ORIGINAL][1]
    page = out / "web" / TRANSLATION / "index.html"
    assert "edition-note" not in page.read_text("utf-8")
    # The editions link each other: the translation's page names its original (hreflang and a
    # switch in the original's language), and the sitemap lists both with their alternates.
    html = page.read_text("utf-8")
    base = site.organization.base_url
    assert f'<link rel="alternate" hreflang="en" href="{base}/{ORIGINAL}/">' in html
    assert f'<link rel="alternate" hreflang="es" href="{base}/{TRANSLATION}/">' in html
    assert f'<a href="../{ORIGINAL}/" hreflang="en">Esta página en inglés</a>' in html
    # ... and the original's page names the translation, in Spanish, when both went live together.
    original_page = out / "web" / ORIGINAL / "index.html"
    english = original_page.read_text("utf-8")
    assert f'<link rel="alternate" hreflang="es" href="{base}/{TRANSLATION}/">' in english
    assert f'<a href="../{TRANSLATION}/" hreflang="es">This page in Spanish</a>' in english
    sitemap = (out / "web" / "sitemap.xml").read_text("utf-8")
    for slug in (ORIGINAL, TRANSLATION):
        entry = sitemap.split(f"<loc>{base}/{slug}/</loc>", 1)[1].split("</url>", 1)[0]
        assert f'<xhtml:link rel="alternate" hreflang="en" href="{base}/{ORIGINAL}/"/>' in entry
        assert f'<xhtml:link rel="alternate" hreflang="es" href="{base}/{TRANSLATION}/"/>' in entry

    edited = edit_original(folder)
    pin_clock(start + timedelta(days=1))
    second = publish()  # the edited original goes live; its new text is kept from today
    assert second[ORIGINAL][1]
    kept = load_texts(site, out, [ORIGINAL])[ORIGINAL]
    assert [t.content_hash for t in kept][-1] == content_hash(edited)

    pin_clock(start + timedelta(days=2))
    third = publish()  # stale within grace: re-rendered with the note, a warning
    assert third[TRANSLATION] == ("warning", True)
    assert 'class="edition-note"' in page.read_text("utf-8")

    pin_clock(start + timedelta(days=1 + 14))
    fourth = publish()
    assert fourth[TRANSLATION] == ("blocked", False)
    # Blocked on every channel means taken down: its page, handouts and report leave the web root
    # (a patient must not keep the stale advice), and no index, feed or sitemap lists it.
    assert not page.exists()
    assert not list((out / "handouts").glob(f"{TRANSLATION}*.pdf"))
    assert not (out / "reports" / f"{TRANSLATION}.json").exists()
    assert TRANSLATION not in (out / "web" / "sitemap.xml").read_text("utf-8")
    # The original's page no longer links it (flows/editions.py renders it again: its text did not
    # change, the editions live with it did).
    assert TRANSLATION not in original_page.read_text("utf-8")
    assert fourth[ORIGINAL][1]  # published again: a new version of the same text


def test_publishing_one_edition_brings_the_others_along(folder: Path, tmp_path: Path) -> None:
    """A publish of the translation's file alone publishes its original too: the original's page
    then links it (and a publish of the original alone would re-render the translation's note)."""
    from clinicpress.flows.publish import publish_flow

    out, site_path = tmp_path / "published", folder / "site.toml"

    def publish(*names: str) -> dict[str, bool]:
        paths = [str(folder / f"{name}.md") for name in names]
        result = publish_flow(paths=paths, site_path=str(site_path), out_dir=str(out))
        return {o.report.slug: o.published for o in result.outcomes}

    assert publish(ORIGINAL) == {ORIGINAL: True}  # no edition live yet: the original alone
    original_page = out / "web" / ORIGINAL / "index.html"
    assert TRANSLATION not in original_page.read_text("utf-8")

    assert publish(TRANSLATION) == {ORIGINAL: True, TRANSLATION: True}
    assert f'<a href="../{TRANSLATION}/" hreflang="es">' in original_page.read_text("utf-8")
    translation_page = out / "web" / TRANSLATION / "index.html"
    assert f'<a href="../{ORIGINAL}/" hreflang="en">' in translation_page.read_text("utf-8")
