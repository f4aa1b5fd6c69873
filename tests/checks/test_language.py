"""The language check: each stigmatising term is a warning with its sentence and the preferred words.

Each rule has its test: proper names, quoted cited titles and quoted mentions are not flagged, "clean"
only for a test result, "relapse" softly and not for another illness, exceptions by term id, the
longest match once, and the sample article's own terms flagged.
"""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from clinicpress.checks.language import (
    TERMS_DIR,
    article_language_problems,
    available_languages,
    check_exceptions,
    find_terms,
    language_problems,
    load_terms,
)
from clinicpress.checks.model import Problem, Severity
from clinicpress.errors import SiteConfigError
from clinicpress.settings.language import LanguageCheckSettings
from clinicpress.sources import Article

ON = LanguageCheckSettings()


def problems(
    body: str,
    *,
    titles: tuple[str, ...] = (),
    language: str = "en",
    settings: LanguageCheckSettings = ON,
    title: str = "A plain title",
) -> list[Problem]:
    return language_problems(
        title=title,
        summary="A plain summary.",
        prose=[body],
        source_titles=titles,
        language=language,
        settings=settings,
    )


def terms_of(found: list[Problem]) -> list[str]:
    return [re.search(r"\[term ([a-z0-9-]+)\]$", p.message).group(1) for p in found]  # type: ignore[union-attr]


# --- the sample article ----------------------------------------------------------------------------------


def test_the_sample_article_is_flagged_for_its_terms(article: Article) -> None:
    found = article_language_problems(article, ON)
    assert all(p.check == "language" and p.severity is Severity.WARNING for p in found)
    assert terms_of(found) == [
        "substance-abuse",  # the title: "… Can Help with Substance Abuse"
        "substance-abuse",  # "… the treatment of substance abuse."
        "substance-abuse",  # "ketamine abuse"
        "user",  # "recreational users" (twice)
        "user",
        "addicted",  # "… are addicted to ketamine."
        "relapse",  # "… relapse rates are high."
    ]
    title, body = found[0].message, found[1].message
    assert "“Substance Abuse” (title)" in title
    assert "In: “Ketamine Therapy Can Help with Substance Abuse”" in title
    # The sentence is quoted, and the preferred wording with its source.
    assert "the treatment of substance abuse." in body
    assert "prefer “alcohol, drug, or substance use disorder”" in body
    assert "(VA)" in body


def test_the_samples_cited_titles_are_not_flagged_when_quoted(article: Article) -> None:
    # The sample cites "Adjunctive Ketamine With Relapse Prevention-Based Psychological Therapy …".
    quoted = article.model_copy(
        update={
            "body": "Grabski and colleagues tested “Adjunctive Ketamine With Relapse Prevention-Based "
            "Psychological Therapy” in a small trial.[^3]\n"
        }
    )
    assert "relapse" not in terms_of(article_language_problems(quoted, ON))
    own_words = quoted.model_copy(update={"body": "The trial paired ketamine with relapse prevention.[^3]\n"})
    assert terms_of(article_language_problems(own_words, ON)) == ["substance-abuse", "relapse"]


# --- what is not flagged ---------------------------------------------------------------------------------


def test_proper_names_are_not_flagged() -> None:
    body = (
        "The Substance Abuse and Mental Health Services Administration (SAMHSA) runs a helpline. "
        "So does the National Institute on Alcohol Abuse and Alcoholism. Alcoholics Anonymous meets weekly."
    )
    assert problems(body) == []
    # The same words that are not part of a name are flagged.
    assert terms_of(problems(body + " Substance abuse is common.")) == ["substance-abuse"]


def test_a_sites_own_names_are_not_flagged() -> None:
    body = "Our Recovering Alcoholics Fellowship meets on Mondays."
    assert terms_of(problems(body)) == ["former-addict"]
    named = LanguageCheckSettings(names=["Recovering Alcoholics Fellowship"])
    assert problems(body, settings=named) == []


def test_a_quoted_cited_title_is_not_flagged_but_other_quotes_are() -> None:
    titles = ("Smith J, Ortiz L. Treating Substance Abuse in Primary Care: A Review. J Fam Med. 2020;4:1-9.",)
    assert (
        problems("Smith’s review, “Treating Substance Abuse in Primary Care”, is short.", titles=titles) == []
    )
    assert (
        problems('Smith\'s review, "treating substance abuse in primary care", is short.', titles=titles)
        == []
    )
    # Not quoted: the writer's own words, read.
    assert len(problems("Treating substance abuse in primary care is common.", titles=titles)) == 1
    # Quoted, but not from a cited title (nor its whole words: "ting" is not "Treating").
    assert len(problems("She said “substance abuse is rare here” to us.", titles=titles)) == 1
    assert len(problems("She read “ting substance abuse” aloud.", titles=titles)) == 1


def test_a_term_quoted_alone_is_a_mention_not_a_use() -> None:
    assert problems("NIDA asks writers to avoid “addict” and “junkie”.") == []
    assert terms_of(problems("He is an addict.")) == ["addict"]


def test_clean_and_dirty_only_for_test_results() -> None:
    for plain in (
        "Wash your hands and keep them clean.",
        "Drink clean water every day.",
        "Collect a clean urine sample in the cup.",  # a clean-catch sample: uncontaminated
        "The clinic is clean and dirty towels go in the bin.",
    ):
        assert problems(plain) == [], plain
    assert terms_of(problems("Her urine test came back clean.")) == ["clean"]
    assert terms_of(problems("He had a dirty drug screen last week.")) == ["dirty"]
    assert terms_of(problems("She tested clean twice.")) == ["clean"]
    [found] = problems("The results were dirty.")
    assert "prefer “tested positive for substances”" in found.message


def test_relapse_is_flagged_softly_and_not_for_another_illness() -> None:
    [found] = problems("Relapse rates are high after treatment.")
    assert "“relapse” for a return to substance use? If so, prefer" in found.message
    assert "if not, keep it" in found.message
    assert problems("A relapse of depression can follow stress.") == []
    assert problems("Some cancers relapse after years.") == []


def test_exceptions_are_honoured_by_term_id() -> None:
    body = "Relapse is common. He is an addict."
    assert terms_of(problems(body)) == ["relapse", "addict"]
    allowed = LanguageCheckSettings(allow=["relapse"])
    assert terms_of(problems(body, settings=allowed)) == ["addict"]


def test_disabled_flags_nothing(article: Article) -> None:
    off = LanguageCheckSettings(enabled=False)
    assert article_language_problems(article, off) == []
    assert problems("He is an addict.", settings=off) == []


# --- how occurrences are counted -------------------------------------------------------------------------


def test_a_term_inside_a_longer_one_counts_once_as_the_longer() -> None:
    assert terms_of(problems("She is a former addict.")) == ["former-addict"]
    assert terms_of(problems("Injection drug users need sterile syringes.")) == ["injection-drug-user"]


def test_each_occurrence_is_one_warning() -> None:
    found = problems("An addict is not only an addict. Addicts are people.")
    assert terms_of(found) == ["addict", "addict", "addict"]


def test_words_with_other_senses_are_not_flagged() -> None:
    for plain in (
        "Alcoholic beverages raise the risk of alcoholic liver disease.",
        "Non-alcoholic drinks are served.",
        "Open the user guide to read more.",
        "He had drunk two glasses of water.",
        "Small steps build new habits.",
        "Child abuse must be reported.",
    ):
        assert problems(plain) == [], plain


# --- Spanish ---------------------------------------------------------------------------------------------


def test_spanish_terms_are_flagged_from_the_spanish_list() -> None:
    assert terms_of(problems("Los adictos necesitan apoyo.", language="es")) == ["adicto"]
    assert terms_of(problems("El abuso de sustancias es frecuente.", language="es")) == ["abuso"]
    assert terms_of(problems("La prueba de orina salió limpia.", language="es")) == ["limpio"]
    # The source's own wording, the other sense, the name: not flagged.
    for plain in (
        "Es una persona adicta al alcohol.",
        "El abuso sexual se denuncia.",
        "Lávese las manos limpias.",
        "El Instituto Nacional sobre el Abuso de Drogas publica guías.",
    ):
        assert problems(plain, language="es") == [], plain
    # English words in a Spanish edition are not read with the English list.
    assert problems("He is an addict.", language="es") == []


def test_a_language_without_a_list_flags_nothing() -> None:
    assert problems("He is an addict.", language="fr") == []
    assert problems("He is an addict.", language="../en") == []


# --- the term lists and the settings ---------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "es"])
def test_every_entry_cites_a_source_and_a_preferred_wording(language: str) -> None:
    terms = load_terms(language)
    assert terms.terms, language
    for term in terms.terms:
        assert term.preferred, term.id
        assert term.sources, term.id
        for source in term.sources:
            assert source.url.startswith("https://"), term.id
            assert source.says, term.id
            assert source.label, term.id


@pytest.mark.parametrize("language", ["en", "es"])
def test_every_entry_flags_its_own_examples(language: str) -> None:
    # The examples are data: a pattern, or a key that prefilters it, that stops matching fails here.
    for term in load_terms(language).terms:
        assert term.examples, term.id
        for example in term.examples:
            assert terms_of(problems(example, language=language)) == [term.id], (term.id, example)


def test_the_term_lists_are_the_files_shipped() -> None:
    assert available_languages() == ("en", "es")
    assert {p.name for p in TERMS_DIR.iterdir()} >= {"en.toml", "es.toml"}


def test_find_terms_reads_blocks_in_order() -> None:
    found = find_terms(
        [("title", "Help for an addict"), ("body", "Relapse happens.")],
        source_titles=(),
        terms=load_terms("en"),
    )
    assert [(f.where, f.term.id, f.text) for f in found] == [
        ("title", "addict", "addict"),
        ("body", "relapse", "Relapse"),
    ]


def test_an_unknown_exception_id_is_a_config_error() -> None:
    check_exceptions(LanguageCheckSettings(allow=["relapse", "adicto"]), "site.toml")
    with pytest.raises(SiteConfigError) as caught:
        check_exceptions(LanguageCheckSettings(allow=["relapse", "relapsed"]), "site.toml")
    assert caught.value.exit_code == 2
    assert "site.toml: checks.language.allow.1: 'relapsed' is not the id of a listed term" in str(
        caught.value
    )


def test_settings_refuse_unknown_keys_and_bad_ids() -> None:
    assert LanguageCheckSettings().enabled is True
    with pytest.raises(ValidationError, match="extra"):
        LanguageCheckSettings.model_validate({"enabled": True, "allowed": ["relapse"]})
    with pytest.raises(ValidationError, match="is not a term id"):
        LanguageCheckSettings(allow=["Relapse Rates"])
    with pytest.raises(ValidationError, match="single word"):
        LanguageCheckSettings(names=["Clean"])
