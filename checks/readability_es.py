"""Readability of Spanish text: Fernández-Huerta's reading ease, reported on the US grade scale.

Formula (Fernández Huerta 1959, with the coefficients as corrected by Law 2011; textstat's
``fernandez_huerta``)::

    L = 206.84 − 60 × syllables per word − 1.02 × words per sentence

on textstat's public word and sentence counts and pyphen's Spanish syllables, exactly as textstat
counts them for ``set_lang("es")`` (for Spanish it never looks at NLTK's CMUdict, so nothing is
downloaded; tests/checks/test_readability_es.py holds our numbers to textstat's own).

The grade. Fernández Huerta published L with school grades; the table as legible.es gives it
(https://legible.es/blog/lecturabilidad-fernandez-huerta/):

    L 90–100 muy fácil, 4º grado · 80–90 fácil, 5º · 70–80 algo fácil, 6º ·
    60–70 normal (para adulto), 7º u 8º · 50–60 algo difícil, preuniversitario ·
    30–50 difícil, cursos selectivos · 0–30 muy difícil, universitario (especialización)

Each band's lower edge is read as the end of its grade, and the grade runs straight between edges:
L 90 → 4, 80 → 5, 70 → 6, 60 → 8, 50 → 12 (preuniversitario: the last year before university),
30 → 14 (cursos selectivos: the first university years), 0 → 16 (a university degree); above 100
and below 0 the end bands' slopes go on, and a grade is never below 0. So "grade 8 or below", the
English threshold, is L ≥ 60 — the lower edge of Fernández Huerta's "normal (para adulto)" — and the
two languages share one ``readability_max_grade`` scale.

Szigriszt-Pazos's perspicuity (206.835 − 62.3 × syllables per word − words per sentence) and its
INFLESZ band (Barrio-Cantalejo 2008, An Sist Sanit Navar 31(2):135-152: <40 muy difícil, 40–55 algo
difícil, 55–65 normal, 65–80 bastante fácil, ≥80 muy fácil) are reported alongside, for Spanish
health writers who know that scale; the verdict uses the grade.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from clinicpress.checks.body import parsed_prose
from clinicpress.checks.model import Check, Problem, Severity
from clinicpress.checks.readability import (
    DEFAULT_MAX_GRADE,
    HARDEST_SHOWN,
    HardSentence,
    TextCounts,
    hardest_named,
    readability_problems,
    split_sentences,
    text_counts,
)
from clinicpress.sources.article import Article

__all__ = [
    "FORMULA",
    "SpanishReadability",
    "fernandez_huerta",
    "fernandez_huerta_level",
    "grade_from_ease",
    "inflesz_level",
    "readability_problems_in",
    "spanish_readability",
    "spanish_readability_problems",
    "szigriszt_pazos",
]

FORMULA = "Fernández-Huerta"

# (L, US grade) at the edges of Fernández Huerta's bands, easiest first; see the module docstring.
_GRADE_AT: tuple[tuple[float, float], ...] = (
    (100.0, 3.0),
    (90.0, 4.0),
    (80.0, 5.0),
    (70.0, 6.0),
    (60.0, 8.0),
    (50.0, 12.0),
    (30.0, 14.0),
    (0.0, 16.0),
)
_FH_LEVELS: tuple[tuple[float, str], ...] = (
    (90.0, "muy fácil"),
    (80.0, "fácil"),
    (70.0, "algo fácil"),
    (60.0, "normal (para adulto)"),
    (50.0, "algo difícil"),
    (30.0, "difícil"),
)
_INFLESZ: tuple[tuple[float, str], ...] = (
    (80.0, "muy fácil"),
    (65.0, "bastante fácil"),
    (55.0, "normal"),
    (40.0, "algo difícil"),
)


def _count(text: str) -> TextCounts:
    """Counted as checks/readability.py counts English, with pyphen's Spanish dictionary."""
    return text_counts(text, "es")


def fernandez_huerta(text: str) -> float:
    """Fernández-Huerta's L (0 for a text without words)."""
    counts = _count(text)
    if counts.words == 0 or counts.syllables == 0:
        return 0.0
    return 206.84 - 60 * (counts.syllables / counts.words) - 1.02 * (counts.words / counts.sentences)


def szigriszt_pazos(text: str) -> float:
    """Szigriszt-Pazos's perspicuity (0 for a text without words)."""
    counts = _count(text)
    if counts.words == 0:
        return 0.0
    return 206.835 - 62.3 * (counts.syllables / counts.words) - counts.words / counts.sentences


def grade_from_ease(ease: float) -> float:
    """The US grade of Fernández-Huerta's ``ease``: straight between the band edges, never below 0."""
    anchors = _GRADE_AT
    if ease >= anchors[0][0]:
        (l0, g0), (l1, g1) = anchors[0], anchors[1]
    elif ease <= anchors[-1][0]:
        (l0, g0), (l1, g1) = anchors[-2], anchors[-1]
    else:
        index = next(i for i in range(1, len(anchors)) if ease >= anchors[i][0])
        (l0, g0), (l1, g1) = anchors[index - 1], anchors[index]
    return max(0.0, g0 + (ease - l0) * (g1 - g0) / (l1 - l0))


def fernandez_huerta_level(ease: float) -> str:
    return next((name for floor, name in _FH_LEVELS if ease >= floor), "muy difícil")


def inflesz_level(perspicuity: float) -> str:
    return next((name for floor, name in _INFLESZ if perspicuity >= floor), "muy difícil")


def _grade(text: str) -> float:
    return round(grade_from_ease(fernandez_huerta(text)), 1)


@dataclass(frozen=True)
class SpanishReadability:
    """The body's grade (US scale, from Fernández-Huerta) and the sentences that push it up."""

    grade: float
    ease: float  # Fernández-Huerta's L
    level: str  # Fernández Huerta's name for the band of ``ease``
    perspicuity: float  # Szigriszt-Pazos
    inflesz: str  # the INFLESZ band of ``perspicuity``
    words: int
    sentences: int
    hardest: tuple[HardSentence, ...]
    formula: str = FORMULA

    def as_json(self) -> dict[str, object]:
        """The English result's keys (grade, words, sentences, hardest), the formula and its scores."""
        return {
            "formula": self.formula,
            "grade": self.grade,
            "ease": self.ease,
            "level": self.level,
            "perspicuity": self.perspicuity,
            "inflesz": self.inflesz,
            "words": self.words,
            "sentences": self.sentences,
            "hardest": [{"text": s.text, "grade": s.grade} for s in self.hardest],
        }


@functools.lru_cache(maxsize=4096)
def spanish_readability(body: str, source_count: int, hardest: int = HARDEST_SHOWN) -> SpanishReadability:
    """The grade of a Spanish body's prose (the one parse of checks/body.py), hardest sentences first."""
    blocks = parsed_prose(body, source_count)
    text = "\n\n".join(blocks)
    sentences = [s for block in blocks for s in split_sentences(block)]
    ranked = sorted(
        (HardSentence(text=s, grade=_grade(s)) for s in sentences if len(s.split()) >= 3),
        key=lambda s: s.grade,
        reverse=True,
    )
    ease = round(fernandez_huerta(text), 1) if text else 0.0
    perspicuity = round(szigriszt_pazos(text), 1) if text else 0.0
    return SpanishReadability(
        grade=_grade(text) if text else 0.0,
        ease=ease,
        level=fernandez_huerta_level(ease),
        perspicuity=perspicuity,
        inflesz=inflesz_level(perspicuity),
        words=_count(text).words if text else 0,
        sentences=len(sentences),
        hardest=tuple(ranked[:hardest]),
    )


def spanish_readability_problems(article: Article, max_grade: float = DEFAULT_MAX_GRADE) -> list[Problem]:
    """A warning when a Spanish body reads above ``max_grade``: the formula, its hardest sentences."""
    result = spanish_readability(article.body, len(article.sources))
    if result.grade <= max_grade:
        return []
    named = hardest_named(result.hardest)
    message = (
        f"the body reads at grade {result.grade:g} ({FORMULA}: reading ease {result.ease:g}, "
        f"“{result.level}”); aim for {max_grade:g} or below. Hardest sentences: {named}"
    )
    return [Problem(check=Check.READABILITY, severity=Severity.WARNING, message=message)]


def readability_problems_in(
    article: Article, language: str, max_grade: float = DEFAULT_MAX_GRADE
) -> list[Problem]:
    """The readability warning with the formula of ``language``: Spanish (``es``, ``es-MX`` …) or English."""
    if language.split("-", 1)[0].lower() == "es":
        return spanish_readability_problems(article, max_grade)
    return readability_problems(article, max_grade)
