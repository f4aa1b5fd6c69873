"""Settings of the stigma-free language check: the ``[checks.language]`` table of site.toml.

The keys are fixed (docs/architecture.md, "Contracts": ``[checks.language] enabled``, per-term
exceptions)::

    [checks.language]
    enabled = true
    allow = ["relapse"]      # term ids (checks/language_terms/<language>.toml) never flagged
    names = ["Clean Slate Program"]   # more proper names whose words are never flagged

Whether each id in ``allow`` exists is known only to the term lists, which live with the check
(a stage above this core layer): ``clinicpress.checks.language.check_exceptions`` validates them
once the site is loaded.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clinicpress.validation import single_line

__all__ = ["LanguageCheckSettings"]

_TERM_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class LanguageCheckSettings(BaseModel):
    """Which stigmatising terms an article may use anyway, and which names hold them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="Warn on each stigmatising term in an article's title, summary and prose",
    )
    allow: list[str] = Field(
        default_factory=list,
        description=(
            'Term ids never flagged on this site, e.g. ["relapse"] '
            "(the ids are those of checks/language_terms/<language>.toml)"
        ),
    )
    names: list[str] = Field(
        default_factory=list,
        description=(
            "Proper names whose words are never flagged, besides the term list's own "
            '(e.g. a program called "Clean Slate")'
        ),
    )

    @field_validator("allow")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        ids = [item.strip() for item in value]
        for item in ids:
            if not _TERM_ID.match(item):
                raise ValueError(
                    f"{item[:60]!r} is not a term id; expected lowercase words joined by hyphens, "
                    'as in checks/language_terms/en.toml (e.g. "relapse", "former-addict")'
                )
        return list(dict.fromkeys(ids))

    @field_validator("names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [single_line(item) for item in value]
        for name in names:
            if len(name.split()) < 2:
                raise ValueError(
                    f"{name[:60]!r} is a single word; expected a proper name of two or more words "
                    "(to stop flagging one term everywhere, add its id to allow instead)"
                )
        return list(dict.fromkeys(names))
