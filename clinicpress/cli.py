"""The ``clinicpress`` command line (see README, "The CLI").

Exit codes: 0 success (warnings allowed), 1 blocked by a check (nothing of
that article published), 2 bad input or usage (one clear line, no traceback).
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn

from clinicpress import clock, progress
from clinicpress.checks.model import ArticleReport, Verdict
from clinicpress.checks.settings import LinkCheckSettings
from clinicpress.console import report_lines, summary_line
from clinicpress.errors import ClinicpressError, InputError
from clinicpress.outputs.release import live_release, release_ids, release_versions, rollback_site
from clinicpress.runtime import configure_runtime
from clinicpress.site import DEFAULT_SITE_PATH, SiteConfig, load_site
from clinicpress.sources.article import Article
from clinicpress.sources.loader import discover_articles, load_articles

if TYPE_CHECKING:
    from clinicpress.flows.publish import ArticleOutcome  # Prefect is slow to import

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2
DEFAULT_OUT = Path("published")

app = typer.Typer(
    name="clinicpress",
    help="Verify a canonical health article and publish it to web, a PDF handout and a newsletter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Article files or folders (default: every article in content/)", show_default=False),
]
SiteOpt = Annotated[Path, typer.Option("--site", help="The site config", metavar="PATH")]
OutOpt = Annotated[Path, typer.Option("--out", help="Where published files go", metavar="DIR")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Warnings block too")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Re-render articles whose version is live already")]
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


def _fail(message: str, code: int) -> typer.Exit:
    # The message quotes user input: it must never be read as rich markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(code)


@contextmanager
def _errors(verbose: bool) -> Iterator[None]:
    """Our errors become one line and an exit code; anything else too, unless -v."""
    try:
        yield
    except ClinicpressError as exc:
        if verbose:
            traceback.print_exc()
        raise _fail(str(exc), exc.exit_code) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        raise _fail(
            f"unexpected {type(exc).__name__}: {exc} (run again with -v for the traceback)", EXIT_BLOCKED
        ) from None


def _load(paths: list[Path] | None, site_path: Path) -> tuple[SiteConfig, list[Article]]:
    site = load_site(site_path)
    return site, load_articles(discover_articles(paths or []))


class _RichReporter:
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
def _progress(message: str) -> Iterator[None]:
    """A spinner until the flow starts, then a bar per phase (only on a terminal)."""
    if not err_console.is_terminal:
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        bar.add_task(message, total=None)
        progress.use(_RichReporter(bar))
        try:
            yield
        finally:
            progress.use(None)


@app.command()
def check(
    paths: PathsArg = None,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    strict: StrictOpt = False,
    output_format: Annotated[
        str, typer.Option("--format", help="text or json", metavar="FORMAT", case_sensitive=False)
    ] = "text",
    no_cache: NoCacheOpt = False,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            help="Verify as of this day (license and review dates): what blocks on that day?",
            metavar="YYYY-MM-DD",
            formats=["%Y-%m-%d"],
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Verify articles (sources, license, review dates) and publish nothing."""
    fmt = output_format.lower()
    if fmt not in ("text", "json"):
        raise _fail(f"--format: {output_format!r} is not a format; expected text or json", EXIT_USAGE)
    with _errors(verbose):
        day = as_of.date() if as_of is not None else clock.today()
        site_config, articles = _load(paths, site)
        from clinicpress.checks.cache import open_cache  # keeps --help fast
        from clinicpress.checks.verify import check_articles

        cache = open_cache(out, site_config.checks.links, enabled=not no_cache)
        with _progress(f"Checking {len(articles)} article(s)…"):
            reports = check_articles(articles, site_config, on=day, strict=strict, cache=cache)
    if fmt == "json":
        # Plain JSON: rich's pretty printer costs seconds on thousands of links.
        document = {"as_of": day.isoformat(), "articles": [r.as_json() for r in reports]}
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for report in reports:
            for line in report_lines(report):
                out_console.print(line, markup=False)
        out_console.print(f"{summary_line(reports)} (as of {day.isoformat()})", markup=False)
    raise typer.Exit(_exit_code(reports))


def _exit_code(reports: list[ArticleReport]) -> int:
    return EXIT_BLOCKED if any(r.verdict is Verdict.BLOCKED for r in reports) else EXIT_OK


@app.command()
def publish(
    paths: PathsArg = None,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    strict: StrictOpt = False,
    force: ForceOpt = False,
    no_cache: NoCacheOpt = False,
    test_to: TestToOpt = None,
    work_pool: WorkPoolOpt = None,
    batch_size: BatchSizeOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Verify articles and publish those that pass into --out (all channels or none).

    With [newsletter.smtp] and a subscribers file configured, each newly published
    version's newsletter is sent once the release is live (re-runs resume, never resend).
    With --work-pool the batches run on that pool's workers (PREFECT_API_URL must name the server).
    """
    if batch_size is not None and work_pool is None:
        raise _fail("--batch-size: only with --work-pool; expected --work-pool NAME too", EXIT_USAGE)
    configure_runtime(verbose)
    with _errors(verbose):
        # Validate before starting Prefect: bad input fails in milliseconds, not seconds.
        site_config, articles = _load(paths, site)
        _check_delivery(site_config, test_to)
        if work_pool is not None:
            _publish_on_pool(articles, site, out, work_pool, batch_size, strict, force, not no_cache, test_to)
            return
        from clinicpress.flows.publish import publish_flow  # Prefect is slow to import

        with _progress(f"Publishing {len(articles)} article(s) (starting Prefect)…"):
            result = publish_flow(
                paths=[str(a.path) for a in articles],
                site_path=str(site),
                out_dir=str(out),
                strict=strict,
                force=force,
                use_cache=not no_cache,
                test_to=test_to,
            )
    _print_published(result.outcomes, Path(result.out_dir), result.newsletters, result.newsletters_incomplete)
    raise typer.Exit(_exit_code([o.report for o in result.outcomes]))


def _print_published(
    outcomes: list[ArticleOutcome], out_dir: Path, newsletters: list[str], incomplete: bool
) -> None:
    for outcome in outcomes:
        if outcome.unchanged:
            action = "unchanged, this version is live already (--force re-renders it)"
        else:
            action = "published" if outcome.published else "nothing published"
        for line in report_lines(outcome.report, action=action, list_ok=False):
            out_console.print(line, markup=False)
        for relpath in outcome.files:
            out_console.print(f"  → {out_dir / relpath}", markup=False)
    for summary in newsletters:
        out_console.print(summary, markup=False)
    if incomplete:
        # Not exit 1: the release is live. The send resumes on the next publish, never resending.
        out_console.print(
            "warning  newsletter: not every recipient was reached; run clinicpress publish again to resume",
            markup=False,
        )


def _publish_on_pool(
    articles: list[Article],
    site: Path,
    out: Path,
    work_pool: str,
    batch_size: int | None,
    strict: bool,
    force: bool,
    use_cache: bool,
    test_to: str | None,
) -> None:
    """The publish-catalog flow here, one publish flow run per batch on the pool's workers."""
    from clinicpress.flows.deployments import preflight  # the Prefect client only: quick to import

    preflight(work_pool)  # no server, pool, deployment or worker: exit 2 now, not a wait
    from clinicpress.flows.fanout import DEFAULT_BATCH_SIZE, BatchesFailed, publish_catalog_flow

    size = batch_size or DEFAULT_BATCH_SIZE
    batches = -(-len(articles) // size)
    failure: BatchesFailed | None = None
    with _progress(f"Publishing {len(articles)} article(s) in {batches} batch(es) on work pool {work_pool}…"):
        try:
            result = publish_catalog_flow(
                # Absolute: the batches run in the workers' own working directories.
                paths=[str(a.path.resolve()) for a in articles],
                site_path=str(site.resolve()),
                out_dir=str(out.resolve()),
                work_pool=work_pool,
                batch_size=size,
                strict=strict,
                force=force,
                use_cache=use_cache,
                test_to=test_to,
            )
        except BatchesFailed as exc:
            failure, result = exc, exc.result  # the batches that completed are live: report them
    for batch in result.batches:
        out_console.print(batch.summary(len(result.batches)), markup=False)
    _print_published(result.outcomes, out, result.newsletters, result.newsletters_incomplete)
    out_console.print(result.summary(), markup=False)
    if failure is not None:
        raise _fail(str(failure), failure.exit_code)
    raise typer.Exit(_exit_code([o.report for o in result.outcomes]))


def _check_delivery(site: SiteConfig, test_to: str | None) -> None:
    """Newsletter settings that would fail only after the release went live: fail now instead."""
    from clinicpress.outputs.subscribers import address_problem, load_subscribers

    news = site.newsletter
    if test_to is not None:
        if news.smtp is None:
            raise InputError(None, "--test-to", "needs an SMTP server", "[newsletter.smtp] in site.toml")
        if problem := address_problem(test_to):
            raise InputError(None, "--test-to", problem, "an address like you@example.org")
    elif news.smtp is not None and news.subscribers is not None:
        load_subscribers(news.subscribers)


@app.command()
def monitor(
    site: SiteOpt = DEFAULT_SITE_PATH, out: OutOpt = DEFAULT_OUT, verbose: VerboseOpt = False
) -> None:
    """Re-check everything published; alert once per change (source broken, license, review)."""
    configure_runtime(verbose)
    with _errors(verbose):
        load_site(site)  # bad input fails before Prefect starts
        from clinicpress.flows.monitor import monitor_flow  # Prefect is slow to import

        with _progress("Monitoring published articles (starting Prefect)…"):
            result = monitor_flow(site_path=str(site), out_dir=str(out))
    if not result.articles:
        out_console.print(f"monitor: nothing published in {out} yet (run clinicpress publish)", markup=False)
        raise typer.Exit(EXIT_OK)
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(result.statuses.items()))
    line = f"monitor: {result.articles} article(s), {result.sources} distinct source(s): {statuses or 'none'}"
    if result.network_down:
        line += " (network down: sources could not be verified)"
    out_console.print(line, markup=False)
    if not result.alerts:
        out_console.print("  no changes since the last run: no alerts", markup=False)
    for alert in result.alerts:
        sent = f"delivered to {alert.delivered} destination(s)"
        if alert.failed:
            sent += f"; failed: {'; '.join(alert.failed)}"
        out_console.print(f"  alert {alert.kind}: {alert.title} — {sent}", markup=False)


@app.command(name="import")
def import_(
    file_or_url: Annotated[str, typer.Argument(metavar="FILE_OR_URL")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing content/<slug>.md")] = False,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Turn a legacy HTML page (file or http(s) URL) into content/<slug>.md, beside the site config."""
    with _errors(verbose):
        from clinicpress.sources.importer import import_page, report_lines  # bs4 is slow to import

        # The fetch follows the link checker's safety rules (private addresses refused).
        settings = load_site(site).checks.links if site.exists() else LinkCheckSettings()
        result = import_page(file_or_url, content_dir=site.parent, force=force, link_settings=settings)
    for line in report_lines(result):
        out_console.print(line, markup=False)


@app.command()
def serve(site: SiteOpt = DEFAULT_SITE_PATH, out: OutOpt = DEFAULT_OUT, verbose: VerboseOpt = False) -> None:
    """Serve the Prefect deployments: `publish` (manual) and `monitor` (on the site's schedule)."""
    configure_runtime(verbose=True)  # a long-running service: keep Prefect's logs
    with _errors(verbose):
        from clinicpress.flows.deployments import serve_deployments  # Prefect is slow to import

        serve_deployments(site, out)


@app.command()
def deploy(
    work_pool: Annotated[
        str,
        typer.Option(
            "--work-pool", metavar="NAME", help="The Prefect process work pool (created if missing)"
        ),
    ],
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Register the publish flow on a Prefect process work pool, for publish --work-pool and its workers."""
    configure_runtime(verbose)
    with _errors(verbose):
        load_site(site)  # bad input fails before Prefect starts
        from clinicpress.flows.deployments import deploy_to_pool  # Prefect is slow to import

        done = deploy_to_pool(site, out, work_pool)
    pool = f"work pool {done.work_pool!r} ({'created' if done.pool_created else 'exists'}, process)"
    # The worker's Python runs the batches: it must be the one clinicpress is installed in.
    prefect = Path(sys.executable).parent / "prefect"
    for line in (
        f"{pool}: deployment {done.name} runs in {done.working_dir}",
        f"  defaults: --site {done.site_path} --out {done.out_dir}",
        f"  start workers (on machines that see these paths): {prefect} worker start --pool {done.work_pool} "
        "--limit 1",
        f"  then publish: clinicpress publish --work-pool {done.work_pool} [--batch-size N]",
    ):
        out_console.print(line, markup=False)


@app.command()
def releases(
    site: SiteOpt = DEFAULT_SITE_PATH, out: OutOpt = DEFAULT_OUT, verbose: VerboseOpt = False
) -> None:
    """List the releases kept in --out (newest first), the live one marked."""
    live = live_release(out)
    ids = release_ids(out)
    if not ids:
        out_console.print(f"no releases in {out} (run clinicpress publish)", markup=False)
        return
    for release_id in reversed(ids):
        versions = release_versions(out, release_id)
        marker = "live" if live is not None and live.name == release_id else "    "
        articles = ", ".join(f"{slug}@{version[:8]}" for slug, version in sorted(versions.items()))
        out_console.print(f"{marker}  {release_id}  {len(versions)} article(s): {articles}", markup=False)


@app.command()
def rollback(
    slug: Annotated[str | None, typer.Argument(help="One article; without it, the whole site")] = None,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Make the previous release (or one article's previous version) live again, in one step."""
    with _errors(verbose):
        from clinicpress.outputs.publish import rollback_article  # renderers: slower to import
        from clinicpress.outputs.registry import Registry  # SQLAlchemy: slower to import

        site_config = load_site(site)
        now = clock.now()
        if slug is None:
            was, now_live = rollback_site(out)
            detail = f"site rolled back from {was} to {now_live}"
        else:
            done = rollback_article(out, slug, site_config, now)
            now_live = done.release_id
            detail = (
                f"{slug} rolled back from version {done.from_version[:12]} to {done.to_version[:12]} "
                f"(files of release {done.source_release}) in new release {done.release_id}"
            )
        with Registry.for_site(site_config, out) as registry:
            registry.record_event(action="rollback", release_id=now_live, slug=slug, detail=detail, at=now)
    out_console.print(detail, markup=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
