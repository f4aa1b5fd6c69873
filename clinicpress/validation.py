"""Turn pydantic's ValidationError into one clear InputError line.

Every message names the file, the field (as a dotted path such as
``sources.2.url``) and what was expected, so the user never sees a traceback.
"""

from __future__ import annotations

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
