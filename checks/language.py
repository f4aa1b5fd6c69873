"""The language check: each stigmatising term in an article's words is a warning (issue 26, part 5).

The terms are data, one list per language (``checks/language_terms/<language>.toml``), each entry
citing its source (the VA's destigmatizing-language guide, NIDA's "Words Matter"). What is read: the
title, the summary and the body's prose, from the one parse the readability grade uses
(``checks/body.py``). Headings are not part of that parse's prose, so they are not read yet.

Not flagged:

- proper names: the list's ``names`` and the site's ``[checks.language] names`` (the "Substance Abuse
  and Mental Health Services Administration" is a name);
- a cited title: text in double quotation marks that is part of a cited source's title (a paper's
  title is its title); the same words outside quotation marks are the writer's own and are read;
- a term mentioned as a word: a quotation holding the term alone (NIDA asks us to avoid “addict”);
- the terms the site allows (``[checks.language] allow``, by term id).

A match that lies inside a longer match ("former addict" holds "addict") counts once, as the longer.

The module is near 500 lines: it loads the term lists (each key checked, since a site may edit
them), applies them and keeps what it found by content hash (for the facts cache); the three stay
together because the finder's rules (keys, soft, unless_near, window) are the list format's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import tomllib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinicpress.checks.body import parsed_prose
from clinicpress.checks.model import Check, Problem, Severity
from clinicpress.checks.readability import split_sentences
from clinicpress.errors import InputError, SiteConfigError
from clinicpress.settings.language import LanguageCheckSettings
from clinicpress.sources.article import Article

__all__ = [
    "TERMS_DIR",
    "Finding",
    "Term",
    "TermList",
    "TermSource",
    "article_language_problems",
    "available_languages",
    "check_exceptions",
    "find_terms",
    "know_language",
    "language_key",
    "language_problems",
    "load_terms",
]

TERMS_DIR = Path(__file__).resolve().parent / "language_terms"
CONTEXT_CHARS = 70  # of the sentence shown on each side of the term
DEFAULT_WINDOW = 5  # words on each side that ``unless_near`` looks at

# Quotation marks that quote a title: straight and curly double quotes, guillemets, low-high quotes.
# Single quotes are not used: ’ is also the apostrophe ("ketamine’s").
_QUOTED = re.compile(r"“([^”“]+)”|\"([^\"]+)\"|«([^»«]+)»|„([^“„]+)“")
_WORD = re.compile(r"[\w'’-]+")


@dataclass(frozen=True)
class TermSource:
    label: str  # short, in messages: "VA", "NIDA"
    name: str
    url: str
    says: str  # the source's own words, abridged
    via: str | None = None  # where the text was read, when not at ``url``


@dataclass(frozen=True)
class Term:
    id: str
    what: str
    keys: tuple[str, ...]  # lowercase text every match holds: the patterns run only where one is
    patterns: tuple[re.Pattern[str], ...]
    preferred: tuple[str, ...]
    sources: tuple[TermSource, ...]
    soft: bool = False  # not always stigmatising: the warning asks the writer to judge
    unless_near: frozenset[str] = frozenset()
    window: int = DEFAULT_WINDOW
    examples: tuple[str, ...] = ()  # sentences the term must flag (the tests read them)


@dataclass(frozen=True)
class TermList:
    language: str
    terms: tuple[Term, ...]
    names: tuple[str, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(term.id for term in self.terms)


@dataclass(frozen=True)
class Finding:
    """One occurrence of a term: where ("title", "summary", "body"), the words matched, the sentence."""

    term: Term
    where: str
    text: str
    sentence: str
    start: int  # of ``text`` in ``sentence``


def available_languages() -> tuple[str, ...]:
    return tuple(sorted(path.stem for path in TERMS_DIR.glob("*.toml")))


@functools.cache
def load_terms(language: str) -> TermList:
    """The term list of ``language`` (a language without a list has no terms: nothing is flagged)."""
    path = TERMS_DIR / f"{language}.toml"
    if not re.fullmatch(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*", language) or not path.is_file():
        return TermList(language=language, terms=(), names=())
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, None, f"is not valid TOML ({exc})", "a term list like en.toml") from exc
    return _term_list(path, language, data)


def _term_list(path: Path, language: str, data: dict[str, Any]) -> TermList:
    if data.get("language") != language:
        raise InputError(path, "language", f"is {data.get('language')!r}", f"{language!r}, the file's name")
    names = data.get("names", [])
    if not isinstance(names, list) or not all(isinstance(name, str) and name.strip() for name in names):
        raise InputError(path, "names", "is not a list of names", "a list of proper names")
    terms = [_term(path, index, entry) for index, entry in enumerate(data.get("term", []))]
    ids = [term.id for term in terms]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise InputError(path, "term", f"ids {twice} are used twice", "each id once")
    return TermList(language=language, terms=tuple(terms), names=tuple(names))


def _strings(path: Path, field: str, value: object, *, required: bool = True) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(path, field, "is not a list of text", "a list of strings")
    if required and not value:
        raise InputError(path, field, "is empty", "at least one")
    return list(value)


def _term(path: Path, index: int, entry: object) -> Term:
    field = f"term.{index}"
    if not isinstance(entry, dict):
        raise InputError(path, field, "is not a table", "a [[term]] table")
    known = {
        "id",
        "what",
        "keys",
        "examples",
        "patterns",
        "preferred",
        "sources",
        "soft",
        "unless_near",
        "window",
    }
    if unknown := sorted(set(entry) - known):
        raise InputError(path, f"{field}.{unknown[0]}", "is not a key of a term", ", ".join(sorted(known)))
    term_id, what = entry.get("id"), entry.get("what")
    if not isinstance(term_id, str) or not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", term_id):
        raise InputError(path, f"{field}.id", f"is {term_id!r}", "lowercase words joined by hyphens")
    if not isinstance(what, str) or not what.strip():
        raise InputError(path, f"{field}.what", "is missing", "what the term is, in a few words")
    patterns: list[re.Pattern[str]] = []
    for text in _strings(path, f"{field}.patterns", entry.get("patterns")):
        try:
            patterns.append(re.compile(text, re.IGNORECASE))
        except re.error as exc:
            raise InputError(
                path, f"{field}.patterns", f"{text!r} is not a regular expression ({exc})"
            ) from exc
    sources = entry.get("sources")
    if not isinstance(sources, list) or not sources:
        raise InputError(
            path, f"{field}.sources", "is missing", "at least one [[term.sources]] citing the advice"
        )
    window = entry.get("window", DEFAULT_WINDOW)
    if not isinstance(window, int) or not 1 <= window <= 20:
        raise InputError(path, f"{field}.window", f"is {window!r}", "a whole number of words from 1 to 20")
    keys = _strings(path, f"{field}.keys", entry.get("keys"))
    if any(key != key.lower() for key in keys):
        raise InputError(
            path, f"{field}.keys", f"{keys} holds capitals", "lowercase text (sentences are lowered)"
        )
    return Term(
        id=term_id,
        what=what.strip(),
        keys=tuple(keys),
        examples=tuple(_strings(path, f"{field}.examples", entry.get("examples", []), required=False)),
        patterns=tuple(patterns),
        preferred=tuple(_strings(path, f"{field}.preferred", entry.get("preferred"))),
        sources=tuple(_source(path, f"{field}.sources.{i}", s) for i, s in enumerate(sources)),
        soft=entry.get("soft", False) is True,
        unless_near=frozenset(
            w.casefold()
            for w in _strings(path, f"{field}.unless_near", entry.get("unless_near", []), required=False)
        ),
        window=window,
    )


def _source(path: Path, field: str, entry: object) -> TermSource:
    if not isinstance(entry, dict):
        raise InputError(path, field, "is not a table", "label, name, url, says (and via)")
    values = {key: entry.get(key) for key in ("label", "name", "url", "says")}
    for key, value in values.items():
        if not isinstance(value, str) or not value.strip():
            raise InputError(path, f"{field}.{key}", "is missing", "text")
    url, via = str(values["url"]), entry.get("via")
    if not url.startswith("https://") or (
        via is not None and not (isinstance(via, str) and via.startswith("https://"))
    ):
        raise InputError(path, f"{field}.url", "is not an https:// address", "the source's address")
    return TermSource(
        label=str(values["label"]), name=str(values["name"]), url=url, says=str(values["says"]), via=via
    )


# --- finding the terms -----------------------------------------------------------------------------------


def _normal(text: str) -> str:
    """Casefolded words only: a quote matches a title whatever its punctuation, case and spacing."""
    return " ".join(_WORD.findall(text.casefold())).replace("’", "'")


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


@functools.lru_cache(maxsize=256)
def _name_pattern(name: str) -> re.Pattern[str]:
    words = [re.escape(word) for word in name.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _inside(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def _near(sentence: str, start: int, end: int, words: frozenset[str], window: int) -> bool:
    before = _WORD.findall(sentence[:start])[-window:]
    after = _WORD.findall(sentence[end:])[:window]
    return any(word.casefold() in words for word in (*before, *after))


def _sentences(block: str) -> list[tuple[int, str]]:
    """The block's sentences (as the readability grade splits them) with their offsets in the block."""
    found: list[tuple[int, str]] = []
    cursor = 0
    for sentence in split_sentences(block):
        at = block.find(sentence, cursor)
        at = cursor if at < 0 else at
        found.append((at, sentence))
        cursor = at + len(sentence)
    return found


def _quoted_exempt(block: str, titles: Sequence[str]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Spans of quotations that are part of a cited title, and of every quotation's text."""
    cited: list[tuple[int, int]] = []
    quotes: list[tuple[int, int]] = []
    for match in _QUOTED.finditer(block):
        group = next(g for g in range(1, 5) if match.group(g) is not None)
        inner = (match.start(group), match.end(group))
        quotes.append(inner)
        quoted = _normal(match.group(group))
        # Whole words of a title: "ice cream" is not in "justice creamery".
        if len(quoted.split()) >= 2 and any(f" {quoted} " in f" {title} " for title in titles):
            cited.append(inner)
    return cited, quotes


def _with_keys(terms: Sequence[Term], text: str) -> list[Term]:
    """The terms one of whose keys ``text`` holds: a substring test costs far less than a scan."""
    lowered = text.lower()
    return [term for term in terms if any(key in lowered for key in term.keys)]


def _candidates(sentence: str, terms: Sequence[Term]) -> list[tuple[int, int, Term]]:
    """Every match, the longest first where matches overlap (a match inside a longer one is dropped)."""
    found = [
        (start, end, term)
        for term in terms
        for pattern in term.patterns
        for start, end in _spans(pattern, sentence)
        if end > start
    ]
    found.sort(key=lambda c: (c[0], -(c[1] - c[0])))
    kept: list[tuple[int, int, Term]] = []
    for start, end, term in found:
        if all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, term))
    return kept


def find_terms(
    blocks: Sequence[tuple[str, str]],
    *,
    source_titles: Sequence[str],
    terms: TermList,
    allow: Collection[str] = (),
    names: Sequence[str] = (),
) -> list[Finding]:
    """Each occurrence of a listed term in ``blocks`` (``(where, text)`` pairs), in reading order."""
    titles = [_normal(title) for title in source_titles]
    all_names = (*terms.names, *names)
    findings: list[Finding] = []
    for where, block in blocks:
        # Most blocks hold no key at all: nothing else is computed for them.
        in_block = _with_keys(terms.terms, block)
        if not in_block:
            continue
        matched = [
            (offset, sentence, candidate)
            for offset, sentence in _sentences(block)
            for candidate in _candidates(sentence, _with_keys(in_block, sentence))
        ]
        if not matched:
            continue
        lowered = block.lower()
        named = [
            span
            for name in all_names
            if name.split()[0].lower() in lowered
            for span in _spans(_name_pattern(name), block)
        ]
        cited, quotes = _quoted_exempt(block, titles)
        for offset, sentence, (start, end, term) in matched:
            at, to = offset + start, offset + end
            if term.id in allow or _inside(at, to, named) or _inside(at, to, cited):
                continue
            if _mentioned(block, at, to, quotes):
                continue  # the word itself, quoted: a mention, not a use
            if term.unless_near and _near(sentence, start, end, term.unless_near, term.window):
                continue
            findings.append(Finding(term, where, sentence[start:end], sentence, start))
    return findings


def _mentioned(block: str, start: int, end: int, quotes: Sequence[tuple[int, int]]) -> bool:
    """The quotation holds this match alone (give or take spaces and a closing full stop or comma)."""
    return any(
        s <= start and end <= e and not block[s:start].strip() and not block[end:e].strip(" .,;:")
        for s, e in quotes
    )


# --- problems -------------------------------------------------------------------------------------------


def _context(finding: Finding) -> str:
    sentence, start = finding.sentence, finding.start
    end = start + len(finding.text)
    left = max(0, start - CONTEXT_CHARS)
    right = min(len(sentence), end + CONTEXT_CHARS)
    if left > 0 and (space := sentence.find(" ", left, start)) >= 0:
        left = space + 1  # whole words only
    if right < len(sentence) and (space := sentence.rfind(" ", end, right)) >= 0:
        right = space
    return ("…" if left > 0 else "") + sentence[left:right].strip() + ("…" if right < len(sentence) else "")


def _message(finding: Finding) -> str:
    term = finding.term
    preferred = " or ".join(f"“{p}”" for p in term.preferred)
    labels = ", ".join(dict.fromkeys(source.label for source in term.sources))
    if term.soft:  # the word has other senses: the writer judges
        advice = f"{term.what}? If so, prefer {preferred} ({labels}); if not, keep it"
    else:
        advice = f"{term.what}; prefer {preferred} ({labels})"
    return f"“{finding.text}” ({finding.where}): {advice}. In: “{_context(finding)}” [term {term.id}]"


def language_problems(
    *,
    title: str,
    summary: str,
    prose: Sequence[str],
    source_titles: Sequence[str],
    language: str,
    settings: LanguageCheckSettings,
) -> list[Problem]:
    """One warning per occurrence of a stigmatising term, quoting its sentence and the preferred words."""
    if not settings.enabled:
        return []
    blocks = [("title", title), ("summary", summary), *(("body", block) for block in prose)]
    findings = find_terms(
        blocks,
        source_titles=source_titles,
        terms=load_terms(language),
        allow=frozenset(settings.allow),
        names=settings.names,
    )
    return [Problem(check=Check.LANGUAGE, severity=Severity.WARNING, message=_message(f)) for f in findings]


# Findings known without reading the article again (checks/facts_cache.py reads them from disk in a
# new process: a 1,000-article no-op would otherwise pay ~5 ms an article), by ``language_key``.
_KNOWN: dict[str, tuple[Problem, ...]] = {}
KNOWN_LIMIT = 8192


@functools.cache
def _terms_fingerprint(language: str) -> str:
    """The bytes of the term lists ``language`` reads: an edited list is a new key."""
    digest = hashlib.sha256(language.encode())
    for path in sorted(TERMS_DIR.glob("*.toml")):
        digest.update(path.name.encode() + b"\x00" + path.read_bytes())
    return digest.hexdigest()


def language_key(article: Article, settings: LanguageCheckSettings, language: str) -> str:
    """The hash of everything the check reads: the words, the cited titles, the language, the
    site's exceptions and the term lists (not the code: the facts cache's fingerprint has it)."""
    read = [
        article.title,
        article.summary,
        article.body,
        len(article.sources),
        [source.title for source in article.sources],
        language,
        sorted(settings.allow),
        list(settings.names),
        _terms_fingerprint(language),
    ]
    return hashlib.sha256(json.dumps(read, ensure_ascii=False).encode()).hexdigest()


def know_language(key: str, problems: Sequence[Problem]) -> None:
    """Take ``problems`` as the findings of the article with this key without reading it."""
    if len(_KNOWN) >= KNOWN_LIMIT:
        _KNOWN.clear()
    _KNOWN[key] = tuple(problems)


def article_language_problems(
    article: Article, settings: LanguageCheckSettings, language: str = "en"
) -> list[Problem]:
    """:func:`language_problems` of ``article``, whose edition is in ``language``.

    The prose is the one parse the readability grade reads (cached): no second parse of the body;
    findings already known (``know_language``) are not worked out again.
    """
    if not settings.enabled:
        return []
    key = language_key(article, settings, language)
    if (known := _KNOWN.get(key)) is not None:
        return list(known)
    problems = _article_language_problems(article, settings, language)
    know_language(key, problems)
    return problems


def _article_language_problems(
    article: Article, settings: LanguageCheckSettings, language: str
) -> list[Problem]:
    return language_problems(
        title=article.title,
        summary=article.summary,
        prose=parsed_prose(article.body, len(article.sources)),
        source_titles=[source.title for source in article.sources],
        language=language,
        settings=settings,
    )


def check_exceptions(settings: LanguageCheckSettings, path: Path | str) -> None:
    """``[checks.language] allow`` names only ids of the term lists (exit 2 otherwise, at load)."""
    known = {term_id for language in available_languages() for term_id in load_terms(language).ids}
    for index, term_id in enumerate(settings.allow):
        if term_id not in known:
            raise SiteConfigError(
                path,
                f"checks.language.allow.{index}",
                f"{term_id!r} is not the id of a listed term",
                "an id from checks/language_terms/*.toml, e.g. " + ", ".join(sorted(known)[:6]) + ", …",
            )
