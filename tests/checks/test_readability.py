"""Readability: Flesch–Kincaid grade of the body's prose, the hardest sentences named."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import nltk  # type: ignore[import-untyped]  # ships no types
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinicpress.checks.model import Severity
from clinicpress.checks.readability import (
    DEFAULT_MAX_GRADE,
    flesch_kincaid_grade,
    prose_blocks,
    readability,
    readability_problems,
    split_sentences,
)
from clinicpress.sources import Article

ROOT = Path(__file__).resolve().parents[2]
SIMPLE = (
    "## What to expect\n\nYou will meet your nurse. She will ask how you feel. "
    "Then you rest for an hour.[^1]\n\n- Bring a friend.\n- Eat a light meal\n"
)


def with_body(article: Article, body: str) -> Article:
    return article.model_copy(update={"body": body})


def test_reference_article_reads_above_grade_8(article: Article) -> None:
    result = readability(article)
    assert result.grade > DEFAULT_MAX_GRADE
    assert result.words > 800
    assert result.sentences > 40
    assert len(result.hardest) == 3
    assert [s.grade for s in result.hardest] == sorted((s.grade for s in result.hardest), reverse=True)
    assert result.hardest[0].grade >= result.grade
    assert result.as_json()["grade"] == result.grade


def test_warning_names_the_three_hardest_sentences(article: Article) -> None:
    [problem] = readability_problems(article)
    assert problem.check == "readability"
    assert problem.severity is Severity.WARNING
    result = readability(article)
    assert f"grade {result.grade:g} (Flesch–Kincaid)" in problem.message
    assert "aim for 8 or below" in problem.message
    for hard in result.hardest:
        assert hard.text[:40] in problem.message
    assert problem.message.count("…") >= 1  # long sentences are cut, not pasted whole
    assert len(problem.message) < 600


def test_simple_text_passes_and_threshold_is_a_parameter(article: Article) -> None:
    simple = with_body(article, SIMPLE)
    assert readability(simple).grade <= DEFAULT_MAX_GRADE
    assert readability_problems(simple) == []
    assert readability_problems(article, max_grade=30.0) == []


def test_only_prose_is_measured(article: Article) -> None:
    body = (
        "# A Heading Without A Full Stop\n\n"
        "See [the FDA page](https://www.fda.gov/drugs/a-very-long-path/with-many-parts) today.[^1]\n\n"
        "```\nsome_code(x) + other_code(y)\n```\n\n"
        "| a | b |\n| --- | --- |\n| cell one | cell two |\n\n"
        "- one item\n- another item.\n"
    )
    blocks = prose_blocks(with_body(article, body))
    assert blocks == ["See the FDA page today.", "one item.", "another item."]


def test_sentence_split_keeps_decimals_and_quotes() -> None:
    text = 'About 0.5 mg is used. "Is it safe?" she asked. Yes! It is.'
    assert split_sentences(text) == ["About 0.5 mg is used.", '"Is it safe?"', "she asked.", "Yes!", "It is."]


def test_never_touches_the_network(article: Article, monkeypatch: pytest.MonkeyPatch) -> None:
    # textstat would otherwise download NLTK's CMUdict in the middle of the check.
    calls: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise OSError("readability must not touch the network")

    monkeypatch.setattr(nltk, "download", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    result = readability(
        with_body(article, "A brand new sentence about recovery and hope. Another one here.")
    )
    assert result.grade > 0
    assert calls == []


def test_links_and_grade_of_a_catalog_parse_each_body_once(
    article: Article, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clinicpress.checks.body as body_module
    from clinicpress.checks.verify import all_urls

    parses: list[str] = []
    real_parse = body_module.body_tokens_of

    def counting_parse(body: str, source_count: int) -> Any:
        parses.append(body)
        return real_parse(body, source_count)

    monkeypatch.setattr(body_module, "body_tokens_of", counting_parse)
    body_module.body_facts.cache_clear()
    catalog = [with_body(article, article.body + f"\nParagraph {n} of a catalog.\n") for n in range(5)]
    all_urls(catalog)  # a publish first lists every article's links,
    for each in catalog:  # then grades every article
        readability(each)
    assert len(parses) == len(set(parses)) == 5


def _textstat_without_cmudict(monkeypatch: pytest.MonkeyPatch) -> Any:
    """textstat as it grades when NLTK's CMUdict is not there (pyphen for every word), without
    its attempt to download the corpus: the reference our own syllable count must equal."""
    import textstat  # type: ignore[import-untyped]
    from textstat.backend.counts import _count_syllables  # type: ignore[import-untyped]

    monkeypatch.setattr(_count_syllables, "get_cmudict", lambda lang: None)
    return textstat


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(
            [
                "Ketamine",
                "therapy",
                "isn't",
                "a",
                "cure-all;",
                "patients'",
                "O'Brien's",
                "'clean'",
                "3.5",
                "mg/kg,",
                "twice",
                "a",
                "day?",
                "Yes...",
                "maybe!!",
                "naïve",
                "résumé",
                "recovery",
                "hope",
                "medication-assisted",
                "treatment.",
            ]
        ),
        max_size=40,
    )
)
def test_the_grade_is_textstats_flesch_kincaid_on_pyphen_syllables(words: list[str]) -> None:
    text = " ".join(words)
    with pytest.MonkeyPatch.context() as monkeypatch:
        reference = _textstat_without_cmudict(monkeypatch).flesch_kincaid_grade(text)
    assert round(flesch_kincaid_grade(text), 1) == round(reference, 1)


def test_the_reference_article_grades_as_textstat_does(
    article: Article, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "\n\n".join(prose_blocks(article))
    reference = _textstat_without_cmudict(monkeypatch).flesch_kincaid_grade(text)
    assert readability(article).grade == round(reference, 1)
