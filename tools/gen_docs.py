"""Write the generated pages of the docs site: docs/reference/cli.md and docs/reference/settings.md.

The CLI page walks clinicpress's typer app as click sees it (``typer.main.get_command``: its groups,
commands and parameters) and prints what ``--help`` prints for each, as a table per command; the
settings page comes from the pydantic models (``tools/settings_reference.py``). Neither is written by
hand: ``tests/cli/test_docs.py`` renders both again and fails when a page differs.

    .venv/bin/python tools/gen_docs.py          # rewrite both pages
    .venv/bin/python tools/gen_docs.py --check  # exit 1 if one is out of date (make docs)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import settings_reference
import typer

from clinicpress.cli import app

ROOT = Path(__file__).resolve().parent.parent
CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"
PROGRAM = "clinicpress"

CLI_HEADER = f"""\
# Command line

Generated from the CLI itself (the typer app in `clinicpress/cli/`) by `tools/gen_docs.py`; do not
edit by hand (`tests/cli/test_docs.py` checks it is current). Each command's `--help` prints the
same. Run it as `.venv/bin/{PROGRAM} …` (or activate `.venv`). Exit codes: `0` success (warnings
allowed), `1` blocked by a check, `2` bad input or usage; see
[Exit codes and reports](reports.md).

"""


@dataclass(frozen=True)
class Parameter:
    """One argument or option as ``--help`` shows it."""

    name: str  # e.g. "SLUG", "[PATHS]...", "--by NAME", "-v, --verbose", "--sent / --not-sent"
    help: str  # with click's notes: "[default: …]", "[required]"
    is_option: bool
    flags: tuple[str, ...]  # every --long and -s spelling, also the secondary (--not-sent)
    required: bool


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # ("newsletter", "resolve")
    help: str
    parameters: tuple[Parameter, ...]
    subcommands: tuple[str, ...]  # a group's commands, in --help's order; () for a command

    @property
    def name(self) -> str:
        return " ".join((PROGRAM, *self.path))

    @property
    def synopsis(self) -> str:
        if self.subcommands:
            return f"{self.name} COMMAND [ARGS]..."
        words = [self.name]
        if any(p.is_option and not p.required for p in self.parameters):
            words.append("[OPTIONS]")
        words += [p.name for p in self.parameters if not p.is_option]
        words += [p.name for p in self.parameters if p.is_option and p.required]
        return " ".join(words)


def _argument_name(param: Any) -> str:
    name = str(param.name).upper()
    if param.nargs == -1:
        return f"[{name}]..."
    return name if param.required else f"[{name}]"


def _parameter(param: Any, ctx: typer.Context) -> Parameter:
    is_option = param.param_type_name == "option"
    if is_option:
        # click's own help line: the flags and metavar, then the help with its [default: …] notes.
        record = param.get_help_record(ctx)
        name, text = record if record is not None else (", ".join(param.opts), "")
    else:
        name, text = _argument_name(param), param.help or ""
    flags = tuple(flag for flag in (*param.opts, *param.secondary_opts) if flag.startswith("-"))
    return Parameter(name, " ".join(text.split()), is_option, flags, bool(param.required))


def commands(
    command: Any = None, path: tuple[str, ...] = (), parent: typer.Context | None = None
) -> Iterator[Command]:
    """Every group and command under ``command`` (the whole CLI by default), in ``--help``'s order."""
    if command is None:
        command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name=path[-1] if path else PROGRAM, parent=parent)
    subcommands: dict[str, Any] = getattr(command, "commands", {})
    if path:
        params = tuple(_parameter(p, ctx) for p in command.params if p.name != "help")
        yield Command(path, (command.help or "").strip(), params, tuple(subcommands))
    for name, sub in subcommands.items():
        yield from commands(sub, (*path, name), ctx)


def _cell(text: str) -> str:
    return settings_reference.cell(text)


def _anchor(command: Command) -> str:
    # Python-Markdown's toc slug of "`clinicpress approve-send`": the words joined by hyphens.
    return command.name.replace(" ", "-")


def _first_line(text: str) -> str:
    return text.split("\n\n", 1)[0].replace("\n", " ")


def render_cli() -> str:
    every = list(commands())
    lines = [CLI_HEADER, "| command | what it does |\n| --- | --- |\n"]
    for command in every:
        lines.append(f"| [`{command.name}`](#{_anchor(command)}) | {_cell(_first_line(command.help))} |\n")
    for command in every:
        lines.append(f"\n## `{command.name}`\n\n")
        paragraphs = [" ".join(p.split()) for p in command.help.split("\n\n") if p.strip()]
        lines.append("".join(f"{_cell(p)}\n\n" for p in paragraphs))
        lines.append(f"```\n{command.synopsis}\n```\n")
        if command.subcommands:
            names = ", ".join(
                f"[`{command.name} {sub}`](#{_anchor(command)}-{sub})" for sub in command.subcommands
            )
            lines.append(f"\nCommands: {names}.\n")
        if command.parameters:
            lines.append("\n| argument or option | what it does |\n| --- | --- |\n")
            for param in command.parameters:
                lines.append(f"| `{param.name}` | {_cell(param.help)} |\n")
    return "".join(lines)


def pages() -> dict[Path, str]:
    """Each generated page and the text it must hold."""
    return {CLI_PAGE: render_cli(), settings_reference.TARGET: settings_reference.render()}


def main(argv: list[str]) -> int:
    stale = []
    for target, text in pages().items():
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current == text:
            continue
        if "--check" in argv:
            stale.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}")
    for target in stale:
        print(f"{target.relative_to(ROOT)} is out of date: run tools/gen_docs.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
