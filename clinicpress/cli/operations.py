"""The commands that operate a site: serve, deploy, releases, rollback, review(s), server.

The newsletter's commands (approve-send, newsletter …, subscribers, unsubscribe-server) are in
``mailing.py``."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from clinicpress import clock
from clinicpress.cli.common import (
    DEFAULT_OUT,
    EXIT_BLOCKED,
    EXIT_USAGE,
    OutOpt,
    SiteOpt,
    VerboseOpt,
    app,
    err_console,
    errors,
    fail,
    out_console,
    use_local_server,
)
from clinicpress.errors import InputError
from clinicpress.hints import Placeholder, command
from clinicpress.outputs.holds import Hold
from clinicpress.outputs.registry_location import registry_exists, registry_url
from clinicpress.outputs.release import (
    live_release,
    release_ids,
    release_texts,
    release_versions,
    rollback_site,
)
from clinicpress.runtime import configure_runtime
from clinicpress.site import DEFAULT_SITE_PATH, load_site
from clinicpress.sources.article import Article
from clinicpress.sources.loader import Loaded, discover_articles, load_article


@app.command()
def serve(
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    unsubscribe_port: Annotated[
        int | None,
        typer.Option(
            "--unsubscribe-port",
            metavar="N",
            min=0,
            max=65535,
            help="Also answer the one-click unsubscribe links on 127.0.0.1:N (as unsubscribe-server)",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Serve the Prefect deployments: `publish` (manual), `monitor` (the site's schedule), `review`."""
    configure_runtime(verbose=True)  # a long-running service: keep Prefect's logs
    with errors(verbose), contextlib.ExitStack() as stack:
        if unsubscribe_port is not None:  # bound first: a missing secret or a busy port is exit 2 now
            from clinicpress.cli.mailing import say, unsubscribe_endpoint
            from clinicpress.outputs.delivery.unsubscribe_server import serve_in_thread

            serve_in_thread(unsubscribe_port, stack.enter_context(unsubscribe_endpoint(site, out)), say)
        use_local_server()
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
    with errors(verbose):
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
        "  (each worker's environment: PREFECT_API_URL, and PREFECT_API_AUTH_STRING if the server has one)",
        f"  then publish: {command('publish', '--work-pool', done.work_pool)} [--batch-size N]",
    ):
        out_console.print(line, markup=False)


@app.command()
def releases(
    site: SiteOpt = DEFAULT_SITE_PATH, out: OutOpt = DEFAULT_OUT, verbose: VerboseOpt = False
) -> None:
    """List the releases kept in --out (newest first), the live one marked, and the held versions."""
    with errors(verbose):
        site_config = load_site(site)
        keep = site_config.publishing.keep_releases
        live = live_release(out)
        ids = release_ids(out)
        listing = [(release_id, release_versions(out, release_id)) for release_id in reversed(ids)]
        holds: list[Hold] = []
        if listing and registry_exists(registry_url(site_config, out)):  # reading creates nothing
            from clinicpress.outputs.registry import Registry  # SQLAlchemy: slower to import

            with Registry.for_site(site_config, out) as registry:
                holds = registry.holds()
    if not listing:
        out_console.print(f"no releases in {out} (run {command('publish')})", markup=False)
        return
    held = {(hold.slug, hold.version) for hold in holds}
    for release_id, versions in listing:
        marker = "live" if live is not None and live.name == release_id else "    "
        articles = ", ".join(
            f"{slug}@{version[:8]}{' (held)' if (slug, version) in held else ''}"
            for slug, version in sorted(versions.items())
        )
        out_console.print(f"{marker}  {release_id}  {len(versions)} article(s): {articles}", markup=False)
    out_console.print(
        f"{len(listing)} kept; publishing keeps {keep} ([publishing] keep_releases)", markup=False
    )
    for hold in holds:
        out_console.print(
            f"held: {hold.slug}@{hold.version[:8]} rolled back by {hold.held_by} on "
            f"{hold.held_at:%Y-%m-%d %H:%M} UTC (a plain publish skips it; "
            f"{command('publish', Placeholder('FILE'), '--force')} publishes it and lifts the hold)",
            markup=False,
        )


@app.command()
def rollback(
    slug: Annotated[str | None, typer.Argument(help="One article; without it, the whole site")] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            metavar="NAME",
            help="Who rolls back, shown when a publish skips the held version [default: your login name]",
            show_default=False,
        ),
    ] = None,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Make the previous release (or one article's previous version) live again, in one step.

    Each version taken out of live is held: a plain publish skips it until the article is edited
    or its file is published again with --force.
    """
    with errors(verbose):
        from clinicpress.cli.publishing import login_name
        from clinicpress.outputs.delivery.people import name_problem
        from clinicpress.outputs.holds import held_text, went_out
        from clinicpress.outputs.publish import rollback_article  # renderers: slower to import
        from clinicpress.outputs.registry import Registry  # SQLAlchemy: slower to import

        if by is not None and (problem := name_problem(by)):
            raise InputError(None, "--by", problem, 'one person\'s name, e.g. --by "Jane Doe"')
        site_config = load_site(site)
        now = clock.now()
        if slug is None:
            was, now_live = rollback_site(out)
            detail = f"site rolled back from {was} to {now_live}"
            before, after = release_versions(out, was), release_versions(out, now_live)
            texts_before, texts_after = release_texts(out, was), release_texts(out, now_live)
            held = {
                s: (v, held_text(texts_before, texts_after, s)) for s, v in went_out(before, after).items()
            }
            restored = {s: (v, texts_after.get(s)) for s, v in went_out(after, before).items()}
        else:
            done = rollback_article(out, slug, site_config, now)
            now_live = done.release_id
            detail = (
                f"{slug} rolled back from version {done.from_version[:12]} to {done.to_version[:12]} "
                f"(files of release {done.source_release}) in new release {done.release_id}"
            )
            texts_before, texts_after = {slug: done.from_text or ""}, {slug: done.to_text or ""}
            held = {slug: (done.from_version, held_text(texts_before, texts_after, slug))}
            restored = {slug: (done.to_version, done.to_text)}
        who = by or login_name()
        with Registry.for_site(site_config, out) as registry:
            registry.record_rollback(
                release_id=now_live,
                slug=slug,
                detail=f"{detail} by {who}",
                at=now,
                by=who,
                held=held,
                restored=restored,
            )
    out_console.print(detail, markup=False)
    for held_slug, (version, _) in sorted(held.items()):
        out_console.print(
            f"held: {held_slug} version {version[:12]} (a plain publish skips it until the article "
            f"is edited, or its file is published with {command('publish', Placeholder('FILE'), '--force')})",
            markup=False,
        )


# -- clinicpress review / reviews: the clinical sign-off bound to the exact text (issue 15) -------


def content_articles(site: Path, out: Path | None = None) -> dict[str, Article]:
    """The articles beside the site config (content/ for content/site.toml), by slug.

    A file that does not load is skipped: one broken draft must not stop a review of another.
    With ``out``, each article is at the slug its file published there (issue 24: a title edit
    moves no address), as check and publish show it.
    """
    articles: list[Article] = []
    for path in discover_articles([], content_dir=site.parent):
        try:
            articles.append(load_article(path))
        except InputError:
            continue
    config = load_site(site) if out is not None else None
    if out is not None and config is not None and registry_exists(registry_url(config, out)):
        from clinicpress.outputs.registry import at_addresses  # SQLAlchemy: slower to import

        placed, _ = at_addresses(config, site, out, Loaded(articles=articles, skipped=[]))
        articles = placed.articles
    found: dict[str, Article] = {}
    for article in articles:
        found.setdefault(article.key, article)
    return found


@app.command()
def review(
    slug: Annotated[str, typer.Argument(metavar="SLUG", help="The article reviewed (its current text)")],
    by: Annotated[str, typer.Option("--by", metavar="NAME", help="The reviewing clinician's name")],
    credentials: Annotated[
        str, typer.Option("--credentials", metavar="CRED", help="The reviewer's credentials, e.g. MD")
    ],
    approve: Annotated[bool, typer.Option("--approve", help="Approve this text")] = False,
    request_changes: Annotated[
        bool, typer.Option("--request-changes", help="Ask for changes to this text")
    ] = False,
    comment: Annotated[
        str, typer.Option("--comment", metavar="TEXT", help="A note kept with the review")
    ] = "",
    npi: Annotated[
        str | None,
        typer.Option("--npi", metavar="N", help="The reviewer's 10-digit NPI (its check digit is verified)"),
    ] = None,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Record a clinician's review of an article's current text (bound to its content hash)."""
    if approve == request_changes:
        raise fail("review: give exactly one of --approve or --request-changes", EXIT_USAGE)
    with errors(verbose):
        from pydantic import ValidationError

        from clinicpress.checks.signoff import Decision, new_review
        from clinicpress.outputs.delivery.people import name_problem
        from clinicpress.outputs.reviews import record_review  # SQLAlchemy: slower to import
        from clinicpress.settings.registries import npi_problem
        from clinicpress.sources.article import Reviewer

        # One clinician: the reviewer becomes who published, for the two-person rule of the send.
        if problem := name_problem(by):
            raise InputError(None, "--by", problem, "one clinician's name (credentials go in --credentials)")
        # A typo in the NPI is caught here, before anything is recorded or asked (issue 25).
        if npi is not None and (problem := npi_problem(npi.strip())):
            raise InputError(None, "--npi", f"{npi[:20]!r} {problem}", "a 10-digit NPI like 1234567893")
        site_config = load_site(site)
        article = content_articles(site, out).get(slug)
        if article is None:
            raise InputError(
                None, "SLUG", f"no article {slug!r} in {site.parent}", "the slug of a content article"
            )
        try:
            reviewer = Reviewer(name=by, credentials=credentials, npi=npi.strip() if npi else None)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise InputError(None, "--by/--credentials/--npi", problem, "one line of text") from None
        done = record_review(
            site_config,
            out,
            new_review(
                article,
                reviewer,
                Decision.APPROVED if approve else Decision.CHANGES_REQUESTED,
                comment,
                today=clock.today(),
                now=clock.now(),
            ),
        )
    out_console.print(
        f"review #{done.id}: {slug} text {done.content_hash[:12]} {done.decision.value} by {done.who()} "
        f"on {done.reviewed_on.isoformat()}",
        markup=False,
    )


@app.command(name="reviews")
def reviews_list(
    slug: Annotated[str | None, typer.Argument(metavar="[SLUG]", help="One article; without it, all")] = None,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """List the review records, newest first, and whether each is of the article's current text."""
    with errors(verbose):
        from clinicpress.outputs.reviews import load_reviews  # SQLAlchemy: slower to import
        from clinicpress.sources.versioning import content_hash

        site_config = load_site(site)
        records = load_reviews(site_config, out, None if slug is None else [slug])
        current = {key: content_hash(a) for key, a in content_articles(site, out).items()}
    if not records:
        out_console.print(f"no reviews recorded{f' for {slug}' if slug else ''}", markup=False)
        return
    for record in records:
        matches = "current text" if current.get(record.slug) == record.content_hash else "earlier text"
        line = (
            f"{record.reviewed_on.isoformat()}  {record.slug}  {record.decision.value}  {record.who()}  "
            f"{record.content_hash[:12]} ({matches})"
        )
        out_console.print(line + (f"  — {record.comment}" if record.comment else ""), markup=False)


# -- clinicpress server …: the local Prefect server runs start when none is configured ------------

server_app = typer.Typer(
    name="server",
    help="The local Prefect server publish, monitor and serve start when no PREFECT_API_URL is set "
    "(`server start --host 0.0.0.0 --port 4200` for a team, with an auth string).",
    no_args_is_help=True,
)
app.add_typer(server_app)


@server_app.command("status")
def server_status() -> None:
    """Say whether the local Prefect server runs (url, pid, home, uptime): exit 0 running, 1 not."""
    import time

    from clinicpress.flows.local_server import server_home, uptime_text
    from clinicpress.flows.local_server import server_status as probe_status

    home = server_home(os.environ)
    state, running = probe_status(home)
    if state is None or not running:
        stale = " (its state file is stale: the next run replaces it)" if state is not None else ""
        out_console.print(f"local Prefect server: not running{stale}; home {home}", markup=False)
        raise typer.Exit(EXIT_BLOCKED)
    uptime = uptime_text(time.time() - state.started_at)
    login = "asks for the auth string" if state.auth else "no login (anyone who reaches the port)"
    for line in (
        f"local Prefect server: running at {state.ui_url} (API {state.api_url})",
        f"  pid {state.pid}, Prefect {state.prefect}, up {uptime}, home {home}",
        f"  bound to {state.host}; {login}",
    ):
        out_console.print(line, markup=False)


@server_app.command("start")
def server_start(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="ADDRESS",
            help="The address to listen on; beyond 127.0.0.1 (e.g. 0.0.0.0) it needs an auth string: "
            "PREFECT_SERVER_API_AUTH_STRING or the owner-only file api-auth in the server's home",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            "--port", metavar="N", min=1, max=65535, help="The port (default: a free one)", show_default=False
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Start the local Prefect server in the background (for a team: --host 0.0.0.0 --port 4200)."""
    from clinicpress.flows.local_server import Bind, ensure_server, server_home

    home = server_home(os.environ)
    with errors(verbose):
        state, started = ensure_server(
            home, lambda line: err_console.print(line, markup=False, highlight=False), bind=Bind(host, port)
        )
    login = "asks for the auth string" if state.auth else "no login"
    verb = "started" if started else "already running"
    for line in (
        f"local Prefect server {verb}: {state.ui_url} (API {state.api_url}), bound to {state.host}; {login}",
        f"  pid {state.pid}, home {home} (to stop it: {command('server', 'stop', where=False)})",
    ):
        out_console.print(line, markup=False)


@server_app.command("stop")
def server_stop(verbose: VerboseOpt = False) -> None:
    """Stop the local Prefect server (its run history stays in its home for the next start)."""
    from clinicpress.flows.local_server import server_home, stop_server

    home = server_home(os.environ)
    with errors(verbose):
        state = stop_server(home)
    if state is None:
        out_console.print(f"local Prefect server: not running; home {home}", markup=False)
    else:
        out_console.print(f"local Prefect server stopped (pid {state.pid}); home {home}", markup=False)
