"""Turn pydantic's ValidationError into one clear InputError line.

Every message names the file, the field (as a dotted path such as
``sources.2.url``) and what was expected, so the user never sees a traceback.
A TOML syntax error (:func:`toml_error`) names the key too, not only its line and column.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from clinicpress.errors import InputError


def single_line(value: str) -> str:
    """Validator for text that reaches a header or a one-line field: no breaks, no control characters.

    str.splitlines() semantics: the email package refuses a header with any of
    \x0b, \x0c, \x1c-\x1e, \x85, U+2028, U+2029, not only CR and LF.
    """
    if "\r" in value or "\n" in value or len(value.splitlines()) > 1:
        raise ValueError("must be a single line (no line breaks)")
    for char in value:
        if unicodedata.category(char) == "Cc" and char != "\t":
            raise ValueError(f"contains the control character U+{ord(char):04X}; expected plain text")
    return value.strip()


# What a human should have written, by pydantic error type.
_EXPECTED_BY_TYPE: dict[str, str] = {
    "missing": "a value",
    "date_type": "a date as YYYY-MM-DD",
    "date_parsing": "a date as YYYY-MM-DD",
    "date_from_datetime_parsing": "a date as YYYY-MM-DD",
    "date_from_datetime_inexact": "a date as YYYY-MM-DD",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "literal_error": "",
    "enum": "",
    "too_short": "",
    "too_long": "",
}


def _field_name(loc: Iterable[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _describe(error: ErrorDetails, allowed_keys: Iterable[str] | None) -> tuple[str, str | None]:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing", _EXPECTED_BY_TYPE["missing"]
    if kind == "extra_forbidden":
        expected = "one of " + ", ".join(sorted(allowed_keys)) if allowed_keys else None
        return "unknown key", expected
    message = error["msg"]
    # pydantic prefixes our own ValueError messages with "Value error, ".
    message = message.removeprefix("Value error, ")
    given = error.get("input")
    if _EXPECTED_BY_TYPE.get(kind):
        shown = repr(given) if not isinstance(given, dict | list) else type(given).__name__
        return f"got {shown[:60]}", _EXPECTED_BY_TYPE[kind]
    return message[:1].lower() + message[1:], None


def input_error_from(
    exc: ValidationError,
    path: Path | str,
    error_class: type[InputError],
    *,
    field_prefix: str = "",
    model: type[BaseModel] | None = None,
) -> InputError:
    """Build one InputError from the first validation error, counting the rest."""
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    allowed = None
    if first["type"] == "extra_forbidden" and model is not None:
        allowed = _keys_at(model, loc[:-1])
    problem, expected = _describe(first, allowed)
    if len(errors) > 1:
        more = len(errors) - 1
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    field = _field_name(loc)
    if field_prefix:
        field = f"{field_prefix}.{field}"
    return error_class(path, field, problem, expected)


def _keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str] | None:
    """The keys accepted at ``loc`` inside ``model`` (descending lists and sub-models)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # an index into a list: the item type was already chosen
        is_model = isinstance(current, type) and issubclass(current, BaseModel)
        field = current.model_fields.get(part) if is_model else None
        if field is None:
            return None
        current = _model_in(field.annotation)
        if current is None:
            return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``list[Source]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# tomllib (Python 3.11) gives the position only inside its message: "… (at line 3, column 11)".
_TOML_AT = re.compile(r"^(?P<problem>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$", re.DOTALL)
_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_TOML_KEY = re.compile(rf"^\s*(?P<key>{_DOTTED})\s*=")
_TOML_TABLE = re.compile(rf"^\s*\[\s*(?P<name>{_DOTTED})\s*\]")
_TOML_ARRAY_TABLE = re.compile(rf"^\s*\[\[\s*(?P<name>{_DOTTED})\s*\]\]")
_TOML_PART = re.compile(_BARE_OR_QUOTED)


def _toml_parts(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in _TOML_PART.findall(dotted)]


def toml_key_at(text: str, line: int) -> str | None:
    """The dotted key whose value is on ``line`` (1-based), as the model names fields:
    ``licenses.0.expires`` for ``expires`` in the first ``[[licenses]]``; None when no key is there.

    Read line by line, not parsed: it serves a file TOML itself refused. A value that spans lines
    (an array) is named by the key that opened it; a header line names its table.
    """
    table: list[str] = []
    seen: dict[str, int] = {}
    key: list[str] | None = None
    for raw in text.splitlines()[:line]:
        if match := _TOML_ARRAY_TABLE.match(raw):
            name = ".".join(_toml_parts(match["name"]))
            seen[name] = seen.get(name, -1) + 1
            table, key = [*_toml_parts(match["name"]), str(seen[name])], None
        elif match := _TOML_TABLE.match(raw):
            table, key = _toml_parts(match["name"]), None
        elif match := _TOML_KEY.match(raw):
            key = _toml_parts(match["key"])
    dotted = [*table, *(key or [])]
    return ".".join(dotted) or None


def toml_error(
    exc: tomllib.TOMLDecodeError, path: Path | str, text: str, error_class: type[InputError]
) -> InputError:
    """A TOML syntax or value error as one line naming the file, the key, the line and column:
    ``site.toml: licenses.0.expires: invalid TOML at line 30, column 11: Invalid date or datetime;
    expected a date as YYYY-MM-DD that exists``."""
    match = _TOML_AT.match(str(exc))
    if match is None:
        return error_class(path, None, f"invalid TOML: {exc}")
    line = int(match["line"])
    problem = f"invalid TOML at line {line}, column {match['column']}: {match['problem']}"
    is_date = "date" in match["problem"].lower()
    return error_class(
        path,
        toml_key_at(text, line),
        problem,
        "a date as YYYY-MM-DD that exists" if is_date else "valid TOML",
    )
