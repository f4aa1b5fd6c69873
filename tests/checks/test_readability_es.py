"""Spanish readability: Fernández-Huerta's ease on textstat's counts, reported on the US grade scale.

The texts are our own plain Spanish (no health advice). textstat, set to Spanish, is the reference.
"""

from __future__ import annotations

import socket
from typing import Any

import nltk  # type: ignore[import-untyped]  # ships no types
import pytest
from hypothesis import given
from hypothesis import strategies as st
from textstat.textstat import textstatistics  # type: ignore[import-untyped]  # ships no types

from clinicpress.checks.model import Severity
from clinicpress.checks.readability_es import (
    FORMULA,
    fernandez_huerta,
    fernandez_huerta_level,
    grade_from_ease,
    inflesz_level,
    readability_problems_in,
    spanish_readability,
    spanish_readability_problems,
    szigriszt_pazos,
)
from clinicpress.sources import Article

EASY = (
    "Hoy es un buen día. El sol sale temprano. Ana abre la ventana y mira el cielo. "
    "Su gato duerme en la silla. Luego Ana toma un café con leche. Después sale a caminar por el parque."
)
HARD = (
    "La administración municipal, considerando las numerosas reclamaciones presentadas por los vecinos "
    "durante el ejercicio anterior, determinó implementar progresivamente un procedimiento extraordinario "
    "de comunicación institucional, cuya ejecución correspondería a departamentos especializados y "
    "requeriría coordinación interadministrativa permanente. Posteriormente, la correspondiente "
    "documentación justificativa fue remitida a las autoridades competentes para su consideración."
)
QUESTIONS = "¿Dónde está la estación? ¡Qué frío hace hoy! El tren llega a las tres y media, según el horario."


@pytest.fixture
def spanish_textstat() -> Any:
    """textstat set to Spanish: a fresh instance, so the English grading elsewhere keeps its language."""
    reference = textstatistics()
    reference.set_lang("es")
    return reference


@pytest.mark.parametrize("text", [EASY, HARD, QUESTIONS, f"{EASY}\n\n{HARD}"])
def test_scores_are_textstats_own(text: str, spanish_textstat: Any) -> None:
    assert fernandez_huerta(text) == pytest.approx(spanish_textstat.fernandez_huerta(text), abs=1e-9)
    # textstat takes Szigriszt's constant as 206.84; the published one is 206.835.
    assert szigriszt_pazos(text) == pytest.approx(spanish_textstat.szigriszt_pazos(text), abs=0.006)


def test_easy_text_reads_easier_than_hard_text() -> None:
    assert fernandez_huerta(EASY) > 90 > 30 > fernandez_huerta(HARD)


def test_grade_follows_fernandez_huertas_band_edges() -> None:
    # 90 → end of 4th grade … 60 → 8th (the lower edge of "normal (para adulto)") … 0 → 16th.
    edges = {100: 3.0, 90: 4.0, 80: 5.0, 70: 6.0, 60: 8.0, 50: 12.0, 30: 14.0, 0: 16.0}
    for ease, grade in edges.items():
        assert grade_from_ease(ease) == pytest.approx(grade), ease
    assert grade_from_ease(65) == pytest.approx(7.0)
    assert grade_from_ease(55) == pytest.approx(10.0)
    assert grade_from_ease(-30) == pytest.approx(18.0)
    assert grade_from_ease(160) == 0.0  # never below 0


@given(st.floats(min_value=-200, max_value=250), st.floats(min_value=-200, max_value=250))
def test_grade_never_rises_as_the_text_gets_easier(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert grade_from_ease(high) <= grade_from_ease(low)


def test_band_names() -> None:
    assert [fernandez_huerta_level(x) for x in (95, 85, 75, 65, 55, 40, 10)] == [
        "muy fácil",
        "fácil",
        "algo fácil",
        "normal (para adulto)",
        "algo difícil",
        "difícil",
        "muy difícil",
    ]
    assert [inflesz_level(x) for x in (85, 70, 60, 50, 20)] == [
        "muy fácil",
        "bastante fácil",
        "normal",
        "algo difícil",
        "muy difícil",
    ]


def spanish(article: Article, body: str) -> Article:
    return article.model_copy(update={"body": body})


def test_hard_spanish_body_warns_naming_the_formula(article: Article) -> None:
    [problem] = spanish_readability_problems(spanish(article, HARD + "\n"))
    assert problem.check == "readability"
    assert problem.severity is Severity.WARNING
    result = spanish_readability(HARD + "\n", len(article.sources))
    assert result.grade > 8
    assert f"grade {result.grade:g} ({FORMULA}: reading ease {result.ease:g}" in problem.message
    assert "aim for 8 or below" in problem.message
    assert result.as_json()["formula"] == "Fernández-Huerta"
    assert set(result.as_json()) >= {"grade", "words", "sentences", "hardest"}  # the English keys too


def test_easy_spanish_body_passes_and_threshold_is_a_parameter(article: Article) -> None:
    easy = spanish(article, EASY + "\n")
    assert spanish_readability_problems(easy) == []
    assert spanish_readability_problems(easy, max_grade=1.0) != []


def test_the_edition_language_picks_the_formula(article: Article) -> None:
    hard = spanish(article, HARD + "\n")
    [es] = readability_problems_in(hard, "es-MX")
    assert FORMULA in es.message
    [en] = readability_problems_in(hard, "en")
    assert "Flesch–Kincaid" in en.message


def test_grading_spanish_needs_no_network(article: Article, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("no download, no lookup")

    monkeypatch.setattr(nltk, "download", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    result = spanish_readability("Una frase nueva sobre el mar y la arena. Otra más aquí.\n", 0)
    assert result.grade >= 0
    assert result.words == 12
    assert calls == []
