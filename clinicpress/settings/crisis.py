"""The crisis box of every channel, per language: the ``[crisis]`` table of site.toml.

Health content for people in addiction treatment must say where to turn in a crisis, in the
words of the edition's language. The defaults are the US lines (988, 911); a clinic elsewhere,
or one that wants other wording, sets its own::

    [crisis]
    text_by_language = { en = "…", es = "…" }

A language named here replaces the default for that language only; the others keep theirs. An
edition in a language with no text at all is refused at render, never printed with English.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clinicpress.validation import single_line

__all__ = ["DEFAULT_CRISIS_TEXT", "CrisisSettings"]

# 988 takes calls and texts in English and Spanish; 911 is the US emergency number.
DEFAULT_CRISIS_TEXT: dict[str, str] = {
    "en": (
        "If you are in crisis or thinking about suicide, call or text 988, "
        "the Suicide & Crisis Lifeline, any time. In an emergency, call 911."
    ),
    "es": (
        "Si está en crisis o piensa en el suicidio, llame o envíe un mensaje de texto al 988, "
        "la Línea 988 de Prevención del Suicidio y Crisis, a cualquier hora. "
        "En una emergencia, llame al 911."
    ),
}

_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")


class CrisisSettings(BaseModel):
    """Where to turn in a crisis, printed by the web page, the handout and the newsletter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_by_language: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'The crisis box per language, e.g. {es = "…"}; a language not named here keeps the '
            "default (the US 988 and 911 lines, in English and Spanish)"
        ),
    )

    @field_validator("text_by_language")
    @classmethod
    def _texts(cls, value: dict[str, str]) -> dict[str, str]:
        texts: dict[str, str] = {}
        for key, text in value.items():
            tag = key.strip().lower().replace("_", "-")
            if not _LANGUAGE_TAG.match(tag):
                raise ValueError(f"{key[:40]!r} is not a language tag; expected e.g. en, es or es-MX")
            if not text.strip():
                raise ValueError(f"the crisis text for {tag} is empty; expected a sentence or two")
            try:
                texts[tag] = single_line(text)
            except ValueError as exc:
                raise ValueError(f"the crisis text for {tag} {exc}") from exc
        return texts

    def text_for(self, language: str) -> str | None:
        """The crisis text of an edition in ``language`` (``es-MX`` falls back to ``es``); None
        when neither the site nor the defaults have one."""
        tag = language.strip().lower().replace("_", "-")
        primary = tag.split("-", 1)[0]
        for table in (self.text_by_language, DEFAULT_CRISIS_TEXT):
            for key in (tag, primary):
                if key in table:
                    return table[key]
        return None
