"""Names and credentials as printed and as registered: the comparisons the NPI verdict makes. Pure.

Case, accents (Unicode NFKD, combining marks dropped), punctuation, titles before a name and
generations or credentials after it are aside; middle names are not compared.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["credentials", "name_tokens", "names_match"]

# Around a name, not part of it: titles before, generations and credentials after.
_PREFIXES = frozenset({"dr", "doctor", "prof", "professor", "mr", "mrs", "ms", "mx"})
_SUFFIXES = frozenset(
    {
        "jr", "sr", "ii", "iii", "iv",
        "md", "do", "phd", "psyd", "np", "pa", "pac", "rn", "dnp", "aprn", "fnp", "pmhnp", "lcsw",
        "lmft", "lpcc", "mph", "msn", "ms", "ma", "facp", "fasam", "dabam", "dfasam", "mba",
    }
)  # fmt: skip
_DROPPED = re.compile(r"['’ʼ`.]")  # O'Brien is OBRIEN, M.D. is MD


def _folded(text: str) -> list[str]:
    """Case, accents and punctuation aside: ``José O'Brien-Díaz M.D.`` → ``jose obrien diaz md``."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(char for char in folded if not unicodedata.combining(char)).casefold()
    folded = _DROPPED.sub("", folded)
    return "".join(char if char.isalnum() else " " for char in folded).split()


def name_tokens(text: str) -> list[str]:
    """A printed name's words, folded (see :func:`_folded`), without a title before it."""
    tokens = _folded(text)
    while len(tokens) > 1 and tokens[0] in _PREFIXES:
        tokens = tokens[1:]
    return tokens


def names_match(printed: str, first: str, last: str) -> bool:
    """Whether ``printed`` (the review's name) names the person ``first`` ``last``. Pure.

    Case, accents, punctuation and titles aside: the first given name and the whole last name
    must match; middle names (or initials) between them are ignored, and so are generations and
    credentials after the last name (``Jr``, ``III``, ``MD``), though never a last name that
    happens to look like one (``Anh Do``). A last name matches with or without its spaces or
    hyphens (``De La Cruz``, ``Smith-Jones``).
    """
    said = name_tokens(printed)
    given = _folded(first)
    family = "".join(_folded(last))
    if len(said) < 2 or not given or not family:
        return False
    # Where the given name ends: its first word, or all of it written as one (MARY-ANN, Maryann).
    given_ends = {m for m in range(1, len(said)) if "".join(said[:m]) == "".join(given)}
    if said[0] == given[0]:
        given_ends.add(1)
    # Where the last name may end: at the end, or before trailing generations/credentials.
    family_ends = [len(said)]
    while family_ends[-1] > 2 and said[family_ends[-1] - 1] in _SUFFIXES:
        family_ends.append(family_ends[-1] - 1)
    return any(
        "".join(said[k:end]) == family for m in given_ends for end in family_ends for k in range(m, end)
    )


def credentials(text: str) -> set[str]:
    """A credential line's credentials, case and periods aside: ``M.D., MPH`` → {md, mph}."""
    folded = unicodedata.normalize("NFKD", text).casefold().replace(".", "")
    return {part for part in re.split(r"[\s,;/&]+", folded) if part}
