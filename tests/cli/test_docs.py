"""The docs match the code: every site.toml key and every CLI option is documented.

Modelled on datasette's tests/cli/test_docs.py: the documentation is checked against the code, so a
new setting or option cannot land undocumented.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer

from clinicpress.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


reference = _tool("settings_reference")


@pytest.mark.parametrize("setting", list(reference.settings()), ids=lambda s: f"{s.table}.{s.key}")
def test_every_setting_says_what_it_does(setting: Any) -> None:
    assert setting.description, f"[{setting.table}] {setting.key}: add Field(description=...) in its model"


def test_the_settings_reference_is_current() -> None:
    current = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert current == reference.render(), "docs/settings.md is out of date: run tools/settings_reference.py"
    assert "docs/settings.md" in README


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    # typer's groups and commands (duck-typed: typer may carry its own click).
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), command


COMMANDS = list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_command_and_option_is_in_the_readme(name: str, command: Any) -> None:
    assert f"clinicpress {name}" in README, f"README does not show `clinicpress {name}`"
    options = [
        flag
        for param in command.params
        if getattr(param, "param_type_name", "") == "option"
        for flag in param.opts
        if flag.startswith("--")
    ]
    missing = [flag for flag in options if flag not in README]
    assert missing == [], f"clinicpress {name}: options not in the README: {missing}"
