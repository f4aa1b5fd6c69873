"""Readability: the Flesch–Kincaid grade of an article's body (textstat).

Only the prose is measured: paragraphs and list items, as a reader sees them,
without markup, citation markers, link addresses, headings, code or tables.
Health information for patients should read at grade 8 or below; above that
the check warns and names the hardest sentences so the writer knows where to
start.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from clinicpress.checks.body import parsed_prose
from clinicpress.checks.model import Check, Problem, Severity
from clinicpress.sources.article import Article

DEFAULT_MAX_GRADE = 8.0
HARDEST_SHOWN = 3
SENTENCE_CHARS = 90  # a named sentence is cut to this many characters


class _Counters(NamedTuple):
    words: Callable[[str], int]
    sentences: Callable[[str], int]
    syllable_words: Callable[[str], str]  # the text as textstat lists words for syllables
    hyphen_positions: Callable[[str], list[int]]  # pyphen's, for the language's dictionary


class TextCounts(NamedTuple):
    """What the formulas read of a text: its words, sentences and syllables."""

    words: int
    sentences: int
    syllables: int


# The Flesch–Kincaid grade is textstat's formula on textstat's public word and sentence counts. Its
# syllable count is ours, from pyphen (textstat's own fallback), through public APIs only: textstat
# 0.7.13 looks English syllables up in NLTK's CMUdict and, when the corpus is not on disk, *downloads*
# it during the call (on a closed network it raises LookupError), so the grade would depend on the
# machine and need the network. Same numbers as textstat on pyphen (tests/checks/test_readability.py).
# The Spanish formulas (checks/readability_es.py) count the same way with pyphen's Spanish dictionary.
@functools.cache
def _counters(hyphenation: str) -> _Counters:
    """textstat and pyphen, imported on the first grade (~0.35 s: textstat imports nltk), which a run
    whose every grade is known (``checks/facts_cache.py``) never needs."""
    import pyphen  # type: ignore[import-untyped]  # ships no types
    import textstat  # type: ignore[import-untyped]  # ships no types
    from textstat.textstat import textstatistics  # type: ignore[import-untyped]

    for_syllables = textstatistics()
    for_syllables.set_rm_apostrophe(False)  # as textstat lists words for its syllable count
    return _Counters(
        words=textstat.lexicon_count,
        sentences=textstat.sentence_count,
        syllable_words=for_syllables.remove_punctuation,
        hyphen_positions=pyphen.Pyphen(lang=hyphenation).positions,
    )


def word_count(text: str) -> int:
    """textstat's word count (punctuation removed)."""
    return int(_counters("en_US").words(text))


def text_counts(text: str, hyphenation: str = "en_US") -> TextCounts:
    """Words and sentences as textstat counts them; syllables by pyphen's ``hyphenation`` dictionary."""
    counters = _counters(hyphenation)
    words = counters.words(text)
    if words == 0:
        return TextCounts(0, 0, 0)
    listed = counters.syllable_words(text).lower().split()
    syllables = sum(len(counters.hyphen_positions(word)) + 1 for word in listed)
    return TextCounts(words=words, sentences=counters.sentences(text), syllables=syllables)


def flesch_kincaid_grade(text: str) -> float:
    """0.39 × words per sentence + 11.8 × syllables per word − 15.59 (0 for no words)."""
    counts = text_counts(text)
    if counts.words == 0 or counts.syllables == 0:
        return 0.0
    return 0.39 * (counts.words / counts.sentences) + 11.8 * (counts.syllables / counts.words) - 15.59


# A sentence ends at . ! or ? (optionally closed by a quote or bracket) before whitespace.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+")


@dataclass(frozen=True)
class HardSentence:
    text: str
    grade: float


@dataclass(frozen=True)
class ReadabilityResult:
    """The body's grade and the sentences that push it up (hardest first)."""

    grade: float
    words: int
    sentences: int
    hardest: tuple[HardSentence, ...]  # a tuple: results are cached and shared

    def as_json(self) -> dict[str, object]:
        return {
            "grade": self.grade,
            "words": self.words,
            "sentences": self.sentences,
            "hardest": [{"text": s.text, "grade": s.grade} for s in self.hardest],
        }


def prose_blocks(article: Article) -> list[str]:
    """The body's paragraphs (list items and quotes included) as plain text, one a block."""
    return list(parsed_prose(article.body, len(article.sources)))


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _grade(text: str) -> float:
    return round(flesch_kincaid_grade(text), 1)


def _truncate(sentence: str) -> str:
    if len(sentence) <= SENTENCE_CHARS:
        return sentence
    return sentence[: SENTENCE_CHARS - 1].rsplit(" ", 1)[0] + "…"


def hardest_named(hardest: Sequence[HardSentence]) -> str:
    """The hardest sentences as a warning names them: each cut short, with its grade."""
    return "; ".join(f'"{_truncate(s.text)}" (grade {s.grade:g})' for s in hardest)


# Grades read from the facts cache (checks/facts_cache.py), by (body, source count); bounded.
_KNOWN: dict[tuple[str, int], ReadabilityResult] = {}
KNOWN_LIMIT = 8192


def know_grade(body: str, source_count: int, result: ReadabilityResult) -> None:
    """Take ``result`` as the grade of this body (with ``HARDEST_SHOWN`` sentences) without grading it."""
    if len(_KNOWN) >= KNOWN_LIMIT:
        _KNOWN.clear()
    _KNOWN[(body, source_count)] = result


def readability(article: Article, hardest: int = HARDEST_SHOWN) -> ReadabilityResult:
    """Flesch–Kincaid grade of the body's prose, with its ``hardest`` sentences."""
    if hardest == HARDEST_SHOWN:
        return grade_body(article.body, len(article.sources))
    return _readability(article.body, len(article.sources), hardest)


def grade_body(body: str, source_count: int) -> ReadabilityResult:
    """What :func:`readability` says of an article with this body and this many sources."""
    known = _KNOWN.get((body, source_count))
    return known if known is not None else _readability(body, source_count, HARDEST_SHOWN)


# Grading every sentence is the slowest check (textstat); the result depends on the body alone,
# so a served process re-verifying an unchanged catalog grades each body once.
@functools.lru_cache(maxsize=4096)
def _readability(body: str, source_count: int, hardest: int) -> ReadabilityResult:
    blocks = parsed_prose(body, source_count)
    text = "\n\n".join(blocks)
    sentences = [s for block in blocks for s in split_sentences(block)]
    ranked = sorted(
        (HardSentence(text=s, grade=_grade(s)) for s in sentences if len(s.split()) >= 3),
        key=lambda s: s.grade,
        reverse=True,
    )
    return ReadabilityResult(
        grade=_grade(text) if text else 0.0,
        words=word_count(text) if text else 0,
        sentences=len(sentences),
        hardest=tuple(ranked[:hardest]),
    )


def readability_problems(article: Article, max_grade: float = DEFAULT_MAX_GRADE) -> list[Problem]:
    """A warning when the body reads above ``max_grade``, naming its hardest sentences."""
    result = readability(article)
    if result.grade <= max_grade:
        return []
    named = hardest_named(result.hardest)
    message = (
        f"the body reads at grade {result.grade:g} (Flesch–Kincaid); aim for {max_grade:g} or below. "
        f"Hardest sentences: {named}"
    )
    return [Problem(check=Check.READABILITY, severity=Severity.WARNING, message=message)]


__all__ = [
    "DEFAULT_MAX_GRADE",
    "HARDEST_SHOWN",
    "HardSentence",
    "ReadabilityResult",
    "TextCounts",
    "flesch_kincaid_grade",
    "grade_body",
    "hardest_named",
    "know_grade",
    "prose_blocks",
    "readability",
    "readability_problems",
    "split_sentences",
    "text_counts",
    "word_count",
]
