"""The commands that verify and publish: check, preview, publish, monitor, import.

Just over 400 lines: ``publish`` has two paths (in this process, or batches on a work pool) and
the render head start, each printing the same report.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clinicpress import clock
from clinicpress.checks.report_text import report_lines, skipped_line, summary_line
from clinicpress.errors import InputError
from clinicpress.hints import command
from clinicpress.runtime import cli_flow_run, configure_runtime
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.site import DEFAULT_SITE_PATH, SiteConfig, load_site
from clinicpress.sources.article import Article
from clinicpress.sources.loader import Loaded, Skipped
from clinicpress.workspace import PublishOptions, Workspace

if TYPE_CHECKING:
    from clinicpress.checks.model import ArticleReport
    from clinicpress.flows.publish import ArticleOutcome  # Prefect is slow to import
    from clinicpress.outputs.holds import HeldArticle

from clinicpress.cli.common import (
    DEFAULT_OUT,
    EXIT_USAGE,
    BatchSizeOpt,
    ForceOpt,
    NoCacheOpt,
    OutOpt,
    PathsArg,
    SiteOpt,
    StrictOpt,
    TestToOpt,
    VerboseOpt,
    WorkPoolOpt,
    app,
    err_console,
    errors,
    exit_code,
    fail,
    load,
    out_console,
    progress_bar,
    say_error,
    use_local_server,
)


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
        raise fail(f"--format: {output_format!r} is not a format; expected text or json", EXIT_USAGE)
    with errors(verbose):
        day = as_of.date() if as_of is not None else clock.today()
        # A file that does not load: one error line, skipped (--strict: exit 2 here).
        site_config, loaded = load(paths, site, out, use_cache=not no_cache, strict=strict)
        loaded = at_addresses(site_config, site, out, loaded)  # a published article keeps its slug
        articles = loaded.articles
        reports = _check_loaded(site_config, articles, out, day, strict, no_cache, site) if articles else []
    if fmt == "json":
        # Plain JSON: rich's pretty printer costs seconds on thousands of links.
        document = {
            "as_of": day.isoformat(),
            "articles": [r.as_json() for r in reports],
            "skipped": [s.as_json() for s in loaded.skipped],
        }
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        lines = [line for report in reports for line in report_lines(report)]
        lines.append(f"{summary_line(reports, loaded.skipped)} (as of {day.isoformat()})")
        out_console.print("\n".join(lines), markup=False)  # one print: rich's per-call cost adds up
    raise typer.Exit(exit_code(reports, loaded.skipped))


def at_addresses(site_config: SiteConfig, site: Path, out: Path, loaded: Loaded) -> Loaded:
    """The articles at the slugs their files published (issue 24): a title edit moves no address.
    An article refused its slug (another file's old address) is one ``error:`` line, skipped."""
    from clinicpress.outputs.registry_location import registry_exists, registry_url

    if not registry_exists(registry_url(site_config, out)):
        return loaded  # nothing published there yet: every slug is as written
    from clinicpress.outputs.registry import at_addresses as placed

    addressed, _ = placed(site_config, site, out, loaded)
    for refused in addressed.skipped[len(loaded.skipped) :]:
        say_error(refused.error)
    return addressed


def _check_loaded(
    site: SiteConfig,
    articles: list[Article],
    out: Path,
    day: date,
    strict: bool,
    no_cache: bool,
    site_path: Path = DEFAULT_SITE_PATH,
) -> list[ArticleReport]:
    from clinicpress.checks.cache import open_cache  # keeps --help fast
    from clinicpress.checks.verify import check_articles
    from clinicpress.cli.editions import editions_for  # translations: their originals (issue 26)
    from clinicpress.outputs.signed import signed_off

    # The sign-off records (issue 15): the review line and [review] required, as publish sees them.
    signed = signed_off(site, out, articles)
    articles, reviews = signed.articles, signed.records

    editions = editions_for(site, out, articles, site_path)
    cache = open_cache(out, site.checks.links, enabled=not no_cache)
    with progress_bar(f"Checking {len(articles)} article(s)…"):
        return check_articles(
            articles, site, on=day, strict=strict, cache=cache, reviews=reviews, editions=editions
        )


@app.command()
def preview(
    paths: PathsArg = None,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, metavar="N", help="Port on 127.0.0.1 (0: any free one)")
    ] = 8765,  # clinicpress.preview.DEFAULT_PORT
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Show the three channels side by side in a browser, refreshed on every save (127.0.0.1 only).

    Writes nothing to --out (it reads the link cache there). Ctrl-C stops it.
    """
    with errors(verbose):
        from clinicpress.preview.server import run_preview  # the renderers: slower to import

        run_preview(paths or [], site, out, port, say=lambda line: out_console.print(line, markup=False))


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
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            metavar="NAME",
            help="Who publishes, recorded with each new newsletter send (with [newsletter] "
            "approval_required, someone else approves it) [default: your login name]",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Verify articles and publish those that pass into --out (all channels or none).

    With [newsletter.smtp] and a subscribers file configured, each newly published
    version's newsletter is sent once the release is live (re-runs resume, never resend);
    with [newsletter] approval_required it waits for clinicpress approve-send by someone else.
    With --work-pool the batches run on that pool's workers (PREFECT_API_URL must name the server).
    """
    if batch_size is not None and work_pool is None:
        raise fail("--batch-size: only with --work-pool; expected --work-pool NAME too", EXIT_USAGE)
    configure_runtime(verbose)
    with errors(verbose):
        if by is not None:  # one person: "A, B" would let A approve the send A published
            from clinicpress.outputs.delivery.people import name_problem

            if problem := name_problem(by):
                raise InputError(None, "--by", problem, 'one person\'s name, e.g. --by "Jane Doe"')
        # Validate before starting Prefect: bad input fails in milliseconds, not seconds.
        # A file that does not load: one error line, skipped (--strict: exit 2 here).
        site_config, loaded = load(paths, site, out, use_cache=not no_cache, strict=strict)
        articles = loaded.articles
        _check_delivery(site_config, test_to)
        if not articles:  # every file was skipped: nothing to publish, no Prefect to start
            _print_skipped(loaded.skipped)
            raise typer.Exit(EXIT_USAGE)
        workspace = Workspace(site, out)
        options = PublishOptions(
            strict=strict,
            force=force,
            use_cache=not no_cache,
            test_to=test_to,
            triggered_by=by or login_name(),
            approval_wait_seconds=0,  # a CLI publish never waits for a form: it says the send waits
        )
        if work_pool is not None:
            _publish_on_pool(articles, workspace, work_pool, batch_size, options, loaded.skipped)
            return
        from clinicpress.renderers.pool import head_start

        # Before Prefect's import: the render workers' process imports WeasyPrint meanwhile.
        with head_start(_renders_expected(site_config, articles, out, force)):
            use_local_server()
            from clinicpress.flows.publish import publish_flow  # Prefect is slow to import

            with progress_bar(f"Publishing {len(articles)} article(s) (starting Prefect)…"), cli_flow_run():
                result = publish_flow(
                    paths=[str(a.path) for a in articles],
                    **workspace.flow_parameters(),
                    **options.flow_parameters(),
                )
    again = command("publish", *map(str, paths or []))
    _print_published(
        result.outcomes, Path(result.out_dir), result.newsletters, result.newsletters_incomplete, again
    )
    _print_held(result.held)
    for slug in result.withdrawn:
        say_error(f"{slug}: taken down (web page, handouts, newsletter): the edition rules block it")
    for late in result.skipped:  # changed since this command loaded it: the flow's load skipped it
        say_error(late.error)
    skipped = [*loaded.skipped, *result.skipped]
    _print_skipped(skipped)
    raise typer.Exit(exit_code([o.report for o in result.outcomes], skipped))


def _print_held(held: Sequence[HeldArticle]) -> None:
    """One line per article skipped because a rollback holds its version (issue 24)."""
    from clinicpress.outputs.holds import held_line

    lines = [held_line(item, command("publish", item.path, "--force")) for item in held]
    if lines:
        lines.append(f"{len(lines)} held (rolled back): not published")
        out_console.print("\n".join(lines), markup=False)


def _print_skipped(skipped: Sequence[Skipped]) -> None:
    """The closing line of a publish that skipped files (each named by its error line above)."""
    if skipped:
        line = f"{skipped_line(skipped)}: not published (a version already live stays live)"
        out_console.print(line, markup=False)


def _renders_expected(site: SiteConfig, articles: list[Article], out: Path, force: bool) -> bool:
    """Will this publish render a few articles? Then the render workers get a head start
    (``renderers/pool.py`` ``head_start``): their WeasyPrint import (~1 s) runs on another core
    during Prefect's. The flow decides what it renders; this guesses the same way (sign-off
    records applied, versions against the live release), and a wrong guess costs a background
    process, never a result. A catalog's flow starts its pool early by itself, and hashing a
    catalog's versions here would cost time: no guess for it."""
    from clinicpress.renderers.pool import is_catalog

    if is_catalog(len(articles)):
        return False
    from clinicpress.flows.settle import plan
    from clinicpress.outputs.release import live_versions
    from clinicpress.outputs.signed import signed_off
    from clinicpress.renderers.fingerprint import template_fingerprint
    from clinicpress.sources.versioning import article_version

    articles = signed_off(site, out, articles).articles
    templates = template_fingerprint()
    live = {} if force else live_versions(out)
    versions = [article_version(a, site, templates) for a in articles]
    return any(not run.is_live for run in plan(articles, versions, live))


def login_name() -> str:
    """Who runs this command, by the operating system's account: the default of publish --by."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (some containers)
        return "unknown"


def _print_published(
    outcomes: list[ArticleOutcome],
    out_dir: Path,
    newsletters: list[str],
    incomplete: bool,
    again: str | None = None,
) -> None:
    """Each article's block; ``again``: the command that resumes an incomplete send (default: a
    plain publish with this run's --site/--out)."""
    lines: list[str] = []
    for outcome in outcomes:
        if outcome.unchanged:
            action = "unchanged, this version is live already (--force re-renders it)"
        else:
            action = "published" if outcome.published else "nothing published"
        lines += report_lines(outcome.report, action=action, list_ok=False)
        if outcome.published:
            lines.append(f"  review line from the {outcome.review_source.value}")
        lines += [f"  → {out_dir / relpath}" for relpath in outcome.files]
    lines += newsletters
    if incomplete:
        # Not exit 1: the release is live. The send resumes on the next publish, never resending.
        lines.append(
            f"warning  newsletter: not every recipient was reached; run {again or command('publish')} "
            "again to resume"
        )
    # One print: rich's per-call work was ~0.4 s for a 1,000-article catalog's lines (issue 16).
    if lines:
        out_console.print("\n".join(lines), markup=False)


def _publish_on_pool(
    articles: list[Article],
    workspace: Workspace,
    work_pool: str,
    batch_size: int | None,
    options: PublishOptions,
    skipped: Sequence[Skipped] = (),
) -> None:
    """The publish-catalog flow here, one publish flow run per batch on the pool's workers;
    ``skipped``: the files this command did not load (named already, counted at the end)."""
    from clinicpress.flows.deployments import preflight  # the Prefect client only: quick to import

    preflight(work_pool)  # no server, pool, deployment or worker: exit 2 now, not a wait
    from clinicpress.flows.fanout import DEFAULT_BATCH_SIZE, BatchesFailed, publish_catalog_flow

    size = batch_size or DEFAULT_BATCH_SIZE
    batches = -(-len(articles) // size)
    failure: BatchesFailed | None = None
    message = f"Publishing {len(articles)} article(s) in {batches} batch(es) on work pool {work_pool}…"
    with progress_bar(message):
        try:
            result = publish_catalog_flow(
                # Absolute: the batches run in the workers' own working directories.
                paths=[str(a.path.resolve()) for a in articles],
                **workspace.resolved().flow_parameters(),
                work_pool=work_pool,
                batch_size=size,
                **options.flow_parameters(approval_wait=False),
            )
        except BatchesFailed as exc:
            failure, result = exc, exc.result  # the batches that completed are live: report them
    for batch in result.batches:
        out_console.print(batch.summary(len(result.batches)), markup=False)
    _print_published(result.outcomes, workspace.out_dir, result.newsletters, result.newsletters_incomplete)
    _print_held(result.held)
    out_console.print(result.summary(), markup=False)
    _print_skipped(skipped)
    if failure is not None:
        raise fail(str(failure), failure.exit_code)
    raise typer.Exit(exit_code([o.report for o in result.outcomes], skipped))


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
    with errors(verbose):
        load_site(site)  # bad input fails before Prefect starts
        use_local_server()
        from clinicpress.flows.monitor import monitor_flow  # Prefect is slow to import

        with progress_bar("Monitoring published articles (starting Prefect)…"), cli_flow_run():
            result = monitor_flow(site_path=str(site), out_dir=str(out))
    if not result.articles and result.busy is None:
        out_console.print(f"monitor: nothing published in {out} yet (run {command('publish')})", markup=False)
    for line in result.lines():  # another run holding the lock, or what this run found and alerted
        out_console.print(line, markup=False)


@app.command(name="import")
def import_(
    file_or_url: Annotated[str, typer.Argument(metavar="FILE_OR_URL")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing content/<slug>.md")] = False,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Turn a legacy HTML page (file or http(s) URL) into content/<slug>.md, beside the site config."""
    if out != DEFAULT_OUT:
        # Every command takes --out (the CLI contract), but an import publishes nothing: say so, not silently.
        err_console.print(
            f"note: --out is not used by import: it writes content/<slug>.md beside --site ({site.parent})",
            markup=False,
            highlight=False,
        )
    with errors(verbose):
        from clinicpress.sources.importer import import_page, report_lines  # bs4 is slow to import

        # The fetch follows the link checker's safety rules (private addresses refused); a saved
        # page that names no address of its own has its relative links resolved against base_url.
        config = load_site(site) if site.exists() else None
        result = import_page(
            file_or_url,
            content_dir=site.parent,
            force=force,
            link_settings=config.checks.links if config else LinkCheckSettings(),
            site_url=config.organization.base_url if config else None,
        )
    for line in report_lines(result):
        out_console.print(line, markup=False)
