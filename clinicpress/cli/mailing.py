"""The newsletter's commands: the delivery records a person acts on (approve-send, newsletter
resolve) and the newsletter's loop (issue 28): unsubscribes, the From domain's records, bounces,
a send's numbers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clinicpress.cli.common import (
    DEFAULT_OUT,
    EXIT_BLOCKED,
    EXIT_USAGE,
    OutOpt,
    SiteOpt,
    VerboseOpt,
    app,
    errors,
    fail,
    out_console,
)
from clinicpress.cli.operations import content_articles
from clinicpress.errors import InputError
from clinicpress.hints import command
from clinicpress.site import DEFAULT_SITE_PATH, load_site

if TYPE_CHECKING:
    from clinicpress.outputs.delivery.unsubscribe_server import Endpoint


# -- clinicpress newsletter …: the delivery records a person acts on ----------------------------

newsletter_app = typer.Typer(
    name="newsletter", help="The newsletter's delivery records.", no_args_is_help=True
)
app.add_typer(newsletter_app)


@newsletter_app.command("resolve")
def newsletter_resolve(
    slug: Annotated[str, typer.Argument(metavar="SLUG", help="The article whose newsletter it was")],
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The recipient reported uncertain")],
    sent: Annotated[
        bool,
        typer.Option(
            "--sent/--not-sent",
            help="What the mail server's log says: --sent records it accepted; --not-sent makes it "
            "pending, so the next publish sends it",
            show_default=False,
        ),
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            metavar="PREFIX",
            help="The article version (a prefix), when EMAIL is uncertain in more than one",
        ),
    ] = None,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Record whether an uncertain recipient got the newsletter, after checking the mail server's log."""
    with errors(verbose):
        from clinicpress.outputs.delivery import resolve_uncertain  # SQLAlchemy: slower to import

        done = resolve_uncertain(load_site(site), out, slug, version or "", email, delivered=sent)
    out_console.print(done.summary(), markup=False)


@app.command(name="approve-send")
def approve_send(
    slug: Annotated[str, typer.Argument(metavar="SLUG", help="The article whose newsletter send waits")],
    by: Annotated[
        str,
        typer.Option("--by", metavar="NAME", help="Who approves: someone other than who published it"),
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version", metavar="PREFIX", help="The article version (a prefix); default: the live one"
        ),
    ] = None,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Approve a newsletter send that waits for a second person (approval_required), then send it."""
    with errors(verbose):
        from clinicpress.outputs.delivery.approval import approve_and_send  # SQLAlchemy: slower to import
        from clinicpress.outputs.delivery.people import name_problem

        # Bad input first, whatever the registry holds (approve_and_send asks again, as the form does).
        if problem := name_problem(by):
            raise InputError(None, "--by", problem, "one person's name (not who published it)")
        site_config = load_site(site)
        done = approve_and_send(
            site_config,
            out,
            slug,
            by,
            article=content_articles(site).get(slug),
            version=version or "",
            content_dir=site.parent,
        )
    out_console.print(done.summary(), markup=False)
    if done.report.stalled:
        # Not an error: the approval is recorded. The next publish resumes the send, never resending.
        out_console.print(
            f"warning  newsletter: not every recipient was reached; run {command('publish')} again to resume",
            markup=False,
        )


# -- the newsletter's loop (issue 28): unsubscribes, the domain check, bounces, numbers -----------

PortOpt = Annotated[
    int,
    typer.Option(
        "--port", metavar="N", min=0, max=65535, help="The port on 127.0.0.1 (0: a free one, printed)"
    ),
]


def say(line: str) -> None:
    out_console.print(line, markup=False)


@contextmanager
def unsubscribe_endpoint(site: Path, out: Path) -> Iterator[Endpoint]:
    """The one-click endpoint of the site's ``[newsletter]``, suppressing into the registry under
    ``out`` while the block runs (``unsubscribe-server``, ``serve --unsubscribe-port``); exit 2
    without the unsubscribe secret."""
    from clinicpress.outputs.delivery.loop import endpoint_for  # SQLAlchemy: slower to import
    from clinicpress.outputs.delivery.suppression import SuppressionStore
    from clinicpress.outputs.registry import registry_url

    site_config = load_site(site)
    with SuppressionStore(registry_url(site_config, out)) as store:
        yield endpoint_for(site_config, store.unsubscribe)


@app.command(name="unsubscribe-server")
def unsubscribe_server(
    port: PortOpt,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Answer the one-click unsubscribe links (RFC 8058) on 127.0.0.1, behind the clinic's web server."""
    with errors(verbose), unsubscribe_endpoint(site, out) as endpoint:
        from clinicpress.outputs.delivery.unsubscribe_server import serve_unsubscribes

        serve_unsubscribes(port, endpoint, say)


subscribers_app = typer.Typer(
    name="subscribers", help="The subscribers' suppression list.", no_args_is_help=True
)
app.add_typer(subscribers_app)


@subscribers_app.command("suppressed")
def subscribers_suppressed(
    site: SiteOpt = DEFAULT_SITE_PATH, out: OutOpt = DEFAULT_OUT, verbose: VerboseOpt = False
) -> None:
    """Print the suppression list as CSV (address,at,how,detail): every address no send mails again."""
    with errors(verbose):
        from clinicpress.outputs.delivery.suppression import Suppression, SuppressionStore, export_csv
        from clinicpress.outputs.registry_location import registry_exists, registry_url

        url = registry_url(load_site(site), out)
        rows: list[Suppression] = []
        if registry_exists(url):  # reading never creates a database
            with SuppressionStore(url) as store:
                rows = store.export()
    sys.stdout.write(export_csv(rows))


@newsletter_app.command("check-domain")
def newsletter_check_domain(
    strict: Annotated[
        bool, typer.Option("--strict", help="DNS that does not answer blocks too (exit 1)")
    ] = False,
    site: SiteOpt = DEFAULT_SITE_PATH,
    verbose: VerboseOpt = False,
) -> None:
    """Check the From domain's SPF, DKIM and DMARC records, as a send to subscribers does: exit 1 when
    one blocks the send."""
    with errors(verbose):
        from clinicpress.outputs.delivery.loop import domain_report, signer_for

        news = load_site(site).newsletter
        report = domain_report(news.from_address, news, signer_for(news))
    for check in report.checks:
        out_console.print(check.line(), markup=False)
    if report.blocks(strict=strict):
        out_console.print(f"blocks the send to subscribers: {report.reason()}", markup=False)
        raise typer.Exit(EXIT_BLOCKED)
    out_console.print(f"the From domain {report.domain}: no record blocks a send", markup=False)


@newsletter_app.command("bounces")
def newsletter_bounces(
    maildir: Annotated[
        Path | None, typer.Option("--maildir", metavar="DIR", help="A Maildir folder to read")
    ] = None,
    imap: Annotated[
        str | None,
        typer.Option(
            "--imap",
            metavar="URL",
            help="imaps://USER@HOST[:PORT]/MAILBOX; the password in CLINICPRESS_BOUNCES__IMAP_PASSWORD",
        ),
    ] = None,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """Read bounces (RFC 3464) and complaints (RFC 5965) from a mailbox, read-only, and suppress their
    addresses (hard bounces, complaints, three soft bounces in a row)."""
    if (maildir is None) == (imap is None):
        raise fail("newsletter bounces: give exactly one of --maildir DIR or --imap URL", EXIT_USAGE)
    with errors(verbose):
        from clinicpress.outputs.delivery.loop import read_mailbox  # SQLAlchemy: slower to import
        from clinicpress.outputs.registry import registry_url

        summary = read_mailbox(registry_url(load_site(site), out), maildir=maildir, imap=imap)
    for line in summary.lines():
        out_console.print(line, markup=False)


@newsletter_app.command("stats")
def newsletter_stats(
    slug: Annotated[str, typer.Argument(metavar="SLUG", help="The article whose newsletter it was")],
    version: Annotated[
        str | None,
        typer.Option("--version", metavar="PREFIX", help="The article version (a prefix); default: newest"),
    ] = None,
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    verbose: VerboseOpt = False,
) -> None:
    """A newsletter send's numbers: accepted, failed, uncertain; bounced, complained, unsubscribed."""
    with errors(verbose):
        from clinicpress.outputs.registry_location import registry_exists, registry_url

        site_config = load_site(site)
        url = registry_url(site_config, out)
        if not registry_exists(url):  # reading never creates a database
            raise InputError(
                None, "SLUG", f"no newsletter of {slug!r} was sent", "the slug of a sent article"
            )
        from clinicpress.outputs.delivery.loop import send_stats

        stats = send_stats(url, slug, site_config.newsletter.max_send_attempts, version or "")
    for line in stats.lines():
        out_console.print(line, markup=False)
