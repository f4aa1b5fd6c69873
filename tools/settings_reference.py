"""Write docs/reference/settings.md: every site.toml key, its default and what it does, from the models.

The models in clinicpress/site.py (and the tables they nest) are the one source: each key's
description is its pydantic ``Field(description=…)``. ``tests/cli/test_docs.py`` fails when a key has
no description or when the page is older than the models. ``tools/gen_docs.py`` writes this page
and the CLI reference together.

    .venv/bin/python tools/settings_reference.py          # rewrite docs/reference/settings.md
    .venv/bin/python tools/settings_reference.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import enum
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from clinicpress.site import SiteConfig

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "reference" / "settings.md"
TABLE_HEAD = "| key | type | default | what it does |\n| --- | --- | --- | --- |\n"

HEADER = """\
# Site settings (`content/site.toml`)

Generated from the models in `clinicpress/site.py` by `tools/gen_docs.py`; do not edit by hand
(`tests/cli/test_docs.py` checks it is current). Every key can also come from the environment,
which wins over the file: `CLINICPRESS_<TABLE>__<KEY>`, e.g. `CLINICPRESS_CHECKS__LINKS__TIMEOUT=5`.
Settings are validated once, when the file is loaded: a bad value stops every command with exit
code 2 and one line naming the file, the key and what was expected.

"""


@dataclass(frozen=True)
class Setting:
    table: str  # e.g. "checks.links"; "" for the top level
    key: str
    kind: str
    default: str
    description: str


def _model_of(annotation: object) -> type[BaseModel] | None:
    """The model a field holds (directly, optionally, or as list items), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, dict):
        for arg in typing.get_args(annotation):
            if (model := _model_of(arg)) is not None:
                return model
    return None


def _kind(annotation: object) -> str:
    """The type as a reader says it: ``str or None``, ``list[int]``; validators (Annotated) left out.

    "or", not "|": a pipe in a table cell splits it on GitHub, and its escape shows on the site.
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _kind(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind(arg) for arg in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is not None:
        return f"{getattr(origin, '__name__', repr(origin))}[{', '.join(_kind(arg) for arg in args)}]"
    if annotation is type(None):
        return "None"
    return annotation.__name__ if isinstance(annotation, type) else repr(annotation)


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        factory = info.default_factory
        try:
            value = factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        return "(a table)" if isinstance(value, BaseModel) else repr(value)
    if info.default is PydanticUndefined:
        return "required"
    if isinstance(info.default, enum.Enum):
        return repr(info.default.value)
    return repr(info.default)


def _container(annotation: object) -> type | None:
    """list or dict when the field holds several tables, else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        origin = typing.get_origin(candidate)
        if origin in (list, dict):
            return typing.cast(type, origin)
    return None


def settings(model: type[BaseModel] = SiteConfig, table: str = "") -> Iterator[Setting]:
    """Every leaf key of ``model`` (its own keys first, then its nested tables), with its table path."""
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        inner = _model_of(info.annotation)
        if inner is None:
            yield Setting(table, name, _kind(info.annotation), _default(info), info.description or "")
            continue
        path = f"{table}.{name}" if table else name
        container = _container(info.annotation)
        if container is list:
            path = f"[{path}]"  # an array of tables: [[licenses]]
        elif container is dict:
            path = f'{path}."<name>"'  # one table per key: [checks.links.hosts."example.org"]
        nested.append((path, inner))
    for path, inner in nested:
        yield from settings(inner, path)


def cell(text: str) -> str:
    """``text`` in a Markdown table cell: no column break, no HTML tag (``<out>`` stays visible)."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _type(kind: str) -> str:
    # "str or None" → `str` or `None`; a bracketed type stays one span: `list[IPv4Network or IPv6Network]`.
    parts = [kind] if "[" in kind else kind.split(" or ")
    return " or ".join(f"`{part}`" for part in parts)


def _code(text: str) -> str:
    # A code span in a table cell; a pipe in it would split the cell on GitHub (none does today).
    return f"`{text}`" if "|" not in text else cell(text)


def render() -> str:
    lines = [HEADER]
    current: str | None = None
    for setting in settings():
        if setting.table != current:
            current = setting.table
            lines.append(f"\n## `[{current}]`\n\n{TABLE_HEAD}")
        kind, default, description = _type(setting.kind), _code(setting.default), cell(setting.description)
        lines.append(f"| `{setting.key}` | {kind} | {default} | {description} |\n")
    return "".join(lines)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run tools/gen_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
