"""What every clinicpress command shares: the app, the consoles, the options, one error handler.

Exit codes: 0 success (warnings allowed), 1 blocked by a check (nothing of
that article published), 2 bad input or usage (one clear line, no traceback), also when
a file did not load and was skipped while the others were checked or published.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn

from clinicpress import hints, progress
from clinicpress.checks.model import ArticleReport, Verdict
from clinicpress.errors import ClinicpressError
from clinicpress.site import DEFAULT_SITE_PATH, SiteConfig, load_site
from clinicpress.sources.loader import Loaded, Skipped, discover_articles, load_each

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2
DEFAULT_OUT = Path("published")

app = typer.Typer(
    name="clinicpress",
    help="Verify a canonical health article and publish it to web, a PDF handout and a newsletter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _before_each_command() -> None:
    # No docstring: Typer would show it as the program's help. Every command starts with no hint
    # options left by an earlier one in the same process (clinicpress/hints.py).
    hints.start_command()


out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Article files or folders (default: every article in content/)", show_default=False),
]


def _hinted(flag: str, default: Path) -> Callable[[typer.Context, Path], Path]:
    """The option's callback: every hint the command prints carries the option when it is not the
    default (clinicpress/hints.py), until the command ends."""

    def remember(ctx: typer.Context, value: Path) -> Path:
        if not ctx.resilient_parsing:
            ctx.call_on_close(hints.remember(flag, None if value == default else str(value)))
        return value

    return remember


SiteOpt = Annotated[
    Path,
    typer.Option(
        "--site", help="The site config", metavar="PATH", callback=_hinted("--site", DEFAULT_SITE_PATH)
    ),
]
OutOpt = Annotated[
    Path,
    typer.Option(
        "--out", help="Where published files go", metavar="DIR", callback=_hinted("--out", DEFAULT_OUT)
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Warnings block too, and a file that does not load stops the run before anything is "
        "checked or published (without it, that file is skipped and the rest go on)",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help=(
            "Re-render articles whose version is live already; "
            "publish a version a rollback holds (lifts the hold)"
        ),
    ),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Check every source again (ignore the cache)")]
TestToOpt = Annotated[
    str | None,
    typer.Option("--test-to", metavar="ADDRESS", help="Send one [TEST] newsletter to ADDRESS only"),
]
VerboseOpt = Annotated[bool, typer.Option("-v", "--verbose", help="Show Prefect's logs and full tracebacks")]
WorkPoolOpt = Annotated[
    str | None,
    typer.Option(
        "--work-pool",
        metavar="NAME",
        help="Publish as one flow run per batch on this Prefect work pool (see clinicpress deploy)",
    ),
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size", min=1, metavar="N", help="Articles per flow run with --work-pool [default: 50]"
    ),
]


def say_error(message: str) -> None:
    # The message quotes user input: it must never be read as rich markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


def fail(message: str, code: int) -> typer.Exit:
    say_error(message)
    return typer.Exit(code)


@contextmanager
def errors(verbose: bool) -> Iterator[None]:
    """Our errors become one line and an exit code; anything else too, unless -v."""
    try:
        yield
    except ClinicpressError as exc:
        if verbose:
            traceback.print_exc()
        raise fail(str(exc), exc.exit_code) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        raise fail(
            f"unexpected {type(exc).__name__}: {exc} (run again with -v for the traceback)", EXIT_BLOCKED
        ) from None


def load(
    paths: list[Path] | None,
    site_path: Path,
    out: Path | None = None,
    *,
    use_cache: bool = True,
    strict: bool = False,
) -> tuple[SiteConfig, Loaded]:
    """The site and the articles that load. Each file that does not is one ``error:`` line on
    stderr and is skipped: one bad draft does not hold back the rest (issue 24); with ``strict``
    such a file stops the command (exit 2) before anything is checked or published.

    With ``out``, articles unchanged since a run there come from its facts cache
    (``<out>/.cache/facts.sqlite``) instead of being parsed again."""
    site = load_site(site_path)
    if site.checks.language.allow:  # its ids are the term lists' (a stage above site.py)
        from clinicpress.checks.language import check_exceptions

        check_exceptions(site.checks.language, site_path)
    memo = None
    if out is not None:
        from clinicpress.checks.facts_cache import open_facts

        memo = open_facts(out, enabled=use_cache)
    loaded = load_each(discover_articles(paths or []), memo=memo)
    for skipped in loaded.skipped:
        say_error(skipped.error)
    if strict and loaded.skipped:
        raise typer.Exit(EXIT_USAGE)
    return site, loaded


class RichReporter:
    """Shows the flows' progress (clinicpress.progress) as a rich bar per phase."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}

    def start(self, phase: str, total: int) -> None:
        self.tasks[phase] = self.bar.add_task(phase, total=total)

    def advance(self, phase: str, amount: int = 1) -> None:
        if phase in self.tasks:
            self.bar.advance(self.tasks[phase], amount)


@contextmanager
def progress_bar(message: str) -> Iterator[None]:
    """A spinner until the flow starts, then a bar per phase (only on a terminal)."""
    if not err_console.is_terminal:
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        bar.add_task(message, total=None)
        progress.use(RichReporter(bar))
        try:
            yield
        finally:
            progress.use(None)


def exit_code(reports: list[ArticleReport], skipped: Sequence[Skipped] = ()) -> int:
    """2 when a file did not load (its articles were not checked or published), else 1 when an
    article is blocked, else 0."""
    if skipped:
        return EXIT_USAGE
    return EXIT_BLOCKED if any(r.verdict is Verdict.BLOCKED for r in reports) else EXIT_OK


def use_local_server() -> None:
    """No Prefect server configured: use the local one, started on the first run (flows/local_server.py).

    Called before Prefect is imported, which reads PREFECT_API_URL once.
    """
    from clinicpress.flows.local_server import use_local_server

    use_local_server(say=lambda line: err_console.print(line, markup=False, highlight=False))
