"""Does the citation name the work its DOI or PMID is registered for? Pure, stdlib only.

The cited text (``sources[].title``) is often a whole reference ("Jones JL, Mateus CF, …
Efficacy of ketamine … Front Psychiatry. 2018;9:277."), sometimes the title alone, sometimes
a shortened title. The registered title (Crossref, PubMed) is normalised the same way (case,
HTML tags, entities, accents, punctuation, typographic quotes) and must appear approximately
inside the cited text: most of its meaningful words in order (a sliding-window ratio), or —
for a short cited title — most of the cited words inside the registered title. Authors and
year are compared only when the cited text plainly has them (a leading "Surname AB," or a
year); a mismatch is a warning, never a block: citations are messy, a wrong DOI is not.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

__all__ = ["TitleMatch", "compare", "normalise", "tokens"]

MATCH_THRESHOLD = 0.8
_TAGS = re.compile(r"<[^>]+>")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "into",
        "is",
        "of",
        "on",
        "or",
        "the",
        "to",
        "with",
        "without",
        "vs",
        "versus",
        "its",
        "their",
    }
)
_LEADING_AUTHOR = re.compile(r"^\s*([A-Z][\w'’\-]+(?: [a-z]{1,3} [A-Z][\w'’\-]+)?) [A-Z]{1,3}[,.]")
_YEAR = re.compile(r"(?<!\d)(19\d\d|20\d\d)(?!\d)")


def normalise(text: str) -> str:
    """Lowercase ASCII words separated by single spaces: tags, entities, accents, punctuation gone."""
    if "<" in text or "&" in text:
        text = html.unescape(_TAGS.sub(" ", text))
    if not text.isascii():  # the per-character pass only where there are accents to drop
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(_WORD.findall(text.casefold()))


def tokens(text: str) -> list[str]:
    return normalise(text).split()


def _content(words: Sequence[str]) -> list[str]:
    return [w for w in words if w not in _STOP]


def _window_ratio(needle: Sequence[str], haystack: Sequence[str]) -> float:
    """Best similarity of ``needle`` with any run of as many words in ``haystack`` (a partial ratio)."""
    if not needle or not haystack:
        return 0.0
    wanted = " ".join(needle)
    size = len(needle)
    if len(haystack) <= size:
        return SequenceMatcher(None, wanted, " ".join(haystack), autojunk=False).ratio()
    best = 0.0
    for start in range(len(haystack) - size + 1):
        window = " ".join(haystack[start : start + size])
        matcher = SequenceMatcher(None, wanted, window, autojunk=False)
        if matcher.real_quick_ratio() <= best or matcher.quick_ratio() <= best:
            continue
        best = max(best, matcher.ratio())
    return best


def _coverage(needle: Sequence[str], haystack: Sequence[str]) -> float:
    """Share of ``needle``'s meaningful words found in ``haystack``."""
    wanted = _content(needle)
    if not wanted:
        return 0.0
    have = set(haystack)
    return sum(w in have for w in wanted) / len(wanted)


@functools.lru_cache(maxsize=8192)
def title_score(cited: str, registered: str) -> float:
    """0..1: how well the registered title is found in the cited text (or the cited title in it).

    Cached: a catalog cites the same work, in the same words, from many articles.
    """
    cited_words, registered_words = tokens(cited), tokens(registered)
    if not cited_words or not registered_words:
        return 0.0
    forward = _coverage(registered_words, cited_words)
    if forward < 1.0:  # every word there (the common case) needs no sliding window
        forward = max(forward, _window_ratio(registered_words, cited_words))
    # A shortened cited title ("Efficacy of ketamine in SUD"): its words must be in the registered title.
    backward = 0.0
    if len(_content(cited_words)) >= 3 and len(cited_words) <= len(registered_words) + 3:
        backward = min(_coverage(cited_words, registered_words), 1.0)
    return max(forward, backward)


@dataclass(frozen=True)
class TitleMatch:
    ok: bool
    title_ok: bool
    registered: str  # the registered title that matched best
    score: float
    author_mismatch: str | None = None  # the cited first author, when no registered author has that name
    year_mismatch: int | None = None  # the cited year, when the registry gives others


def _cited_first_author(cited: str) -> str | None:
    found = _LEADING_AUTHOR.match(cited)
    return found.group(1) if found else None


def compare(
    cited: str, titles: Sequence[str], authors: Sequence[str] = (), years: Sequence[int] = ()
) -> TitleMatch:
    """Compare a citation with a record's titles, authors and years."""
    return _compare(cited, tuple(titles), tuple(authors), tuple(years))


# Cached: many articles cite one work with the same text.
@functools.lru_cache(maxsize=16384)
def _compare(
    cited: str, titles: tuple[str, ...], authors: tuple[str, ...], years: tuple[int, ...]
) -> TitleMatch:
    if not titles:
        return TitleMatch(ok=True, title_ok=True, registered="", score=1.0)  # nothing to compare with
    scored = sorted(((title_score(cited, t), t) for t in titles), reverse=True)
    score, best = scored[0]
    title_ok = score >= MATCH_THRESHOLD
    author_mismatch: str | None = None
    first = _cited_first_author(cited)
    if first and authors:
        registered = {normalise(a) for a in authors}
        if normalise(first) not in registered and not any(normalise(first) in r.split() for r in registered):
            author_mismatch = first
    year_mismatch: int | None = None
    cited_years = {int(y) for y in _YEAR.findall(cited)}
    if cited_years and years and not any(abs(c - y) <= 1 for c in cited_years for y in years):
        year_mismatch = min(cited_years)
    return TitleMatch(
        ok=title_ok and author_mismatch is None and year_mismatch is None,
        title_ok=title_ok,
        registered=best,
        score=score,
        author_mismatch=author_mismatch,
        year_mismatch=year_mismatch,
    )


def _quoted(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mismatch_message(where: str, shown: str, cited: str, match: TitleMatch, years: Sequence[int]) -> str:
    """``source 3 cites 'X', but doi:10.… is 'Y'`` (+ the author or year that differ)."""
    if not match.title_ok:
        return f"{where} cites '{_quoted(cited)}', but {shown} is '{_quoted(match.registered)}'"
    if match.author_mismatch:
        return (
            f"{where} names {match.author_mismatch} as first author, but {shown} "
            f"('{_quoted(match.registered, 60)}') has no author of that name"
        )
    shown_years = ", ".join(str(y) for y in years)
    return f"{where} gives the year {match.year_mismatch}, but {shown} was published in {shown_years}"
