"""The ``publish`` flow: load → check → render the channels → publish.

Thin on purpose: every step is a function of ``sources/``, ``checks/``,
``renderers/`` or ``outputs/``; this module only wires them as Prefect tasks,
with retries where the network I/O is.

Past 400 lines on purpose: the thin tasks sit beside the one flow body that calls them, so the
order of the steps reads top to bottom in one file; its only other part is the run's report
(``summary_markdown`` and the artifacts), which reads the same result.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from clinicpress import clock, progress
from clinicpress.checks.authority.run import AuthorityReport
from clinicpress.checks.cache import open_cache
from clinicpress.checks.editions import Editions, with_edition_note
from clinicpress.checks.facts_cache import FactsCache, open_facts, prime_facts
from clinicpress.checks.integrity.client import IntegrityReport
from clinicpress.checks.language import check_exceptions
from clinicpress.checks.links import LinkReport
from clinicpress.checks.model import ArticleReport, LinkStatus, Verdict
from clinicpress.checks.report_text import links_table, skipped_line
from clinicpress.checks.signoff import ReviewRecord, ReviewSource
from clinicpress.checks.verify import all_urls, verify_article
from clinicpress.errors import InputError, RenderError
from clinicpress.faults import fault_point
from clinicpress.flows.editions import relink, withdrawn
from clinicpress.flows.json_flow import caller_unquotes, flow
from clinicpress.flows.settle import Fate, Settled, after_release, plan, settle
from clinicpress.flows.tasks import (
    LINK_BATCH_RUNNER,
    check_authority_task,
    check_integrity_task,
    check_sources,
    quoted,
    record_publish,
    record_unrecorded_live,
)
from clinicpress.outputs.edition_texts import edition_context, other_editions, record_texts
from clinicpress.outputs.holds import HeldArticle, held_back
from clinicpress.outputs.publish import PublishedRelease, ReadyArticle, publish_release
from clinicpress.outputs.registry import Registry, at_addresses
from clinicpress.outputs.registry_location import registry_exists, registry_url
from clinicpress.outputs.release import live_reports, versions_in
from clinicpress.outputs.signed import SignedOff, signed_off
from clinicpress.outputs.subscribers import load_subscribers
from clinicpress.renderers.fingerprint import template_fingerprint
from clinicpress.renderers.pool import (
    Checked,
    RenderPool,
    RenderRun,
    default_workers,
    is_catalog,
    render_and_check_here,
    use_pool,
)
from clinicpress.renderers.spool import Spool, remove_dead_spools
from clinicpress.site import DEFAULT_SITE_PATH, SiteConfig, load_site
from clinicpress.sources.addresses import Moves
from clinicpress.sources.article import Article, Channel
from clinicpress.sources.editions import expected_live, has_editions, link_all, live_editions
from clinicpress.sources.loader import Loaded, Skipped, discover_articles, load_articles, load_each
from clinicpress.sources.versioning import article_version, content_hash
from clinicpress.workspace import PublishOptions, Workspace

if TYPE_CHECKING:
    from clinicpress.outputs.delivery import SendReport

DEFAULT_OUT_DIR = Path("published")
RENDER_BATCH = 50  # articles per render task


class ArticleOutcome(BaseModel):
    report: ArticleReport
    published: bool
    files: list[str]
    unchanged: bool = False  # this version is live already: nothing re-rendered
    review_source: ReviewSource = ReviewSource.FRONT_MATTER  # where the printed review line came from


class PublishResult(BaseModel):
    out_dir: str
    release_id: str | None
    outcomes: list[ArticleOutcome]
    newsletters: list[str] = []  # one summary per newsletter send (SMTP configured)
    newsletters_incomplete: bool = False
    newsletters_waiting: list[str] = []  # slugs whose send waits for a second person's approval
    skipped: list[Skipped] = []  # files that do not load: skipped, each with its error (issue 24)
    held: list[HeldArticle] = []  # versions a rollback took out: skipped-as-held (issue 24)
    withdrawn: list[str] = []  # slugs taken down: translations the edition rules block (issue 26)

    @property
    def blocked(self) -> bool:
        return any(o.report.verdict is Verdict.BLOCKED for o in self.outcomes)


@task(name="load-inputs", cache_policy=NO_CACHE)
def load_inputs(
    paths: list[str], site_path: Path, facts: FactsCache | None = None, strict: bool = False
) -> tuple[SiteConfig, Loaded]:
    """The site and the articles that load; a file that does not is skipped with its error
    (issue 24), or with ``strict`` stops the run with it (all or nothing)."""
    site, files = load_site(site_path), discover_articles(paths)
    if site.checks.language.allow:  # its ids are the term lists' (a stage above site.py)
        check_exceptions(site.checks.language, site_path)
    # facts: an unchanged file is not parsed again (checks/facts_cache.py)
    if strict:  # the first file that does not load raises: nothing is published
        loaded = Loaded(articles=load_articles(files, memo=facts), skipped=[])
    else:
        loaded = load_each(files, memo=facts)
    fault_point("load")
    return site, loaded


@task(name="load-reviews", cache_policy=NO_CACHE)
def load_signoffs(articles: list[Article], site: SiteConfig, out_dir: Path) -> SignedOff:
    """The articles with their review line from the sign-off records (issue 15), and the records.

    Before the version hash and the renders: every channel, the version and the consistency
    check see the same reviewer.
    """
    return signed_off(site, out_dir, articles)


@task(name="held-versions", cache_policy=NO_CACHE)
def held_versions(
    site: SiteConfig,
    out_dir: Path,
    articles: list[Article],
    versions: list[str],
    live: dict[str, str],
    force: bool,
) -> list[HeldArticle]:
    """The articles whose version a rollback took out of live (issue 24): skipped, unless ``force``.

    The decision is :func:`held_back` (pure); the registry is opened only when a version not live
    is about to be published.
    """
    candidates = {
        a.key: (v, content_hash(a)) for a, v in zip(articles, versions, strict=True) if live.get(a.key) != v
    }
    if force or not candidates or not registry_exists(registry_url(site, out_dir)):
        return []  # nothing published there yet: no rollback, no hold (and no registry made)
    with Registry.for_site(site, out_dir) as registry:
        held = held_back(candidates, live, registry.holds(), force=force)
    return [
        HeldArticle(
            slug=a.key,
            version=candidates[a.key][0],
            path=str(a.path),
            held_by=hold.held_by,
            held_at=hold.held_at,
            release_id=hold.release_id,
        )
        for a in articles
        if (hold := held.get(a.key)) is not None
    ]


@task(name="verify", cache_policy=NO_CACHE)
def verify(
    articles: list[Article],
    site: SiteConfig,
    links: LinkReport,
    on: date,
    strict: bool,
    integrity: IntegrityReport | None = None,
    reviews: list[ReviewRecord] | None = None,
    authority: AuthorityReport | None = None,
    editions: Editions | None = None,
) -> list[ArticleReport]:
    reports = [
        verify_article(
            a,
            site,
            links,
            on=on,
            strict=strict,
            integrity=integrity,
            reviews=reviews or [],
            authority=authority,
            editions=editions,
        )
        for a in articles
    ]
    fault_point("check.verify")
    return reports


@task(name="render-batch", cache_policy=NO_CACHE)
def render_batch(renders: RenderRun, start: int, stop: int) -> list[Checked | RenderError]:
    """A batch of renders and consistency checks: one task per batch, never one per article.

    The renders started before the link check (``RenderRun``); this waits for the batch's.
    """
    return renders.results(start, stop)


@task(name="publish-release", cache_policy=NO_CACHE)
def publish(
    out_dir: Path,
    ready: list[ReadyArticle],
    site: SiteConfig,
    published_at: datetime,
    force: bool,
    redirects: dict[str, str] | None = None,
    withdraw: list[str] | None = None,
) -> PublishedRelease | None:
    return publish_release(
        out_dir, ready, site, published_at, force=force, redirects=redirects, withdraw=withdraw or []
    )


@task(name="addresses", cache_policy=NO_CACHE)
def addressed(site: SiteConfig, workspace: Workspace, loaded: Loaded) -> tuple[Loaded, Moves]:
    """Each article at its permanent address (issue 24, sources/addresses.py): a title edit keeps
    the slug its file published; an article that would take another's old address is skipped."""
    return at_addresses(site, workspace.site_path, workspace.out_dir, loaded)


def summary_markdown(result: PublishResult) -> str:
    """The verification summary left as a Prefect markdown artifact."""
    lines = [
        "# clinicpress publish",
        "",
        f"Release: `{result.release_id or 'none (nothing published)'}` in `{result.out_dir}`",
        "",
        "| article | verdict | published | problems |",
        "| --- | --- | --- | --- |",
    ]
    for outcome in result.outcomes:
        report = outcome.report
        problems = "<br>".join(f"{p.severity.value}: {p.message}" for p in report.problems) or "—"
        problems = problems.replace("|", "\\|")
        published = "unchanged" if outcome.unchanged else "yes" if outcome.published else "no"
        lines.append(f"| {report.slug} | {report.verdict.value} | {published} | {problems} |")
    for item in result.held:
        lines.append(
            f"| {item.slug} | — | no ({item.status}) | rolled back by {item.held_by} on "
            f"{item.held_at:%Y-%m-%d %H:%M} UTC; edit it, or publish it with --force |"
        )
    if result.skipped:
        lines += ["", f"Skipped, not published: {skipped_line(result.skipped)}", ""]
        lines += [f"- {item.error}" for item in result.skipped]
    return "\n".join(lines) + "\n"


def _newsletters(
    site: SiteConfig,
    out_dir: Path,
    now: datetime,
    live: list[tuple[Article, str]],
    options: PublishOptions,
) -> list[SendReport]:
    """Send (or resume) each live version's newsletter, when an SMTP server is configured.

    A send waiting for a second person's approval ([newsletter] approval_required) pauses a
    deployment's run for the approval form, up to ``options.approval_wait_seconds``
    (flows/newsletter.py).
    """
    news, test_to = site.newsletter, options.test_to
    if news.smtp is None or (test_to is None and news.subscribers is None):
        return []  # the .eml outbox is the only newsletter output
    # Imported only when there is something to send: the delivery package (its tables, SMTP) is
    # ~0.1 s of a publish process that sends nothing (issue 16).
    from clinicpress.flows.newsletter import ask_for_approval, send_newsletter_task
    from clinicpress.outputs.delivery.audience import audience

    recipients = [] if test_to or news.subscribers is None else list(load_subscribers(news.subscribers))
    articles = {(a.key, v): a for a, v in live if Channel.NEWSLETTER in a.channels}

    # An article with translations live goes to each subscriber in their language (issue 26).
    editions = live_editions(live_reports(out_dir)) if recipients else {}

    def send(article: Article, version: str) -> SendReport:
        readers = audience(recipients, article.key, editions)
        return send_newsletter_task(article, version, site, out_dir, now, quoted(readers), options)

    reports = [send(article, version) for (_, version), article in articles.items()]
    return ask_for_approval(
        reports,
        site,
        out_dir,
        options.approval_wait_seconds,
        lambda r: send(articles[r.slug, r.version], r.version),
    )


@flow(name="publish", validate_parameters=True, task_runner=LINK_BATCH_RUNNER)
def publish_flow(
    paths: list[str] | None = None,
    site_path: str = str(DEFAULT_SITE_PATH),
    out_dir: str = str(DEFAULT_OUT_DIR),
    strict: bool = False,
    force: bool = False,
    use_cache: bool = True,
    test_to: str | None = None,
    triggered_by: str | None = None,
    approval_wait_seconds: int = 3600,
) -> PublishResult:
    """Verify articles and publish those that pass, all channels or none.

    An article whose version (content, site config, templates) is live
    already is not rendered again unless ``force``. Each article is one
    :class:`ArticleRun` through the steps; :func:`settle` decides its fate.
    ``triggered_by`` (who publishes; None: "unknown") is recorded with each new newsletter send;
    run from a deployment, a send waiting for approval pauses the run for the approval form up
    to ``approval_wait_seconds`` (flows/newsletter.py). It names one person: "A, B" is refused
    before anything is published (A could otherwise approve their own send).

    The parameters are flat because they are a deployment's (clinicpress/workspace.py says why);
    past this signature they travel as one ``Workspace`` and one ``PublishOptions``.
    """
    workspace = Workspace.of(site_path, out_dir)
    options = PublishOptions(
        strict=strict,
        force=force,
        use_cache=use_cache,
        test_to=test_to,
        triggered_by=triggered_by,
        approval_wait_seconds=approval_wait_seconds,
    )
    return _publish(paths or [], workspace, options)


def _publish(paths: list[str], workspace: Workspace, options: PublishOptions) -> PublishResult:
    """The publish flow's body (see :func:`publish_flow`)."""
    out_dir, strict, force = workspace.out_dir, options.strict, options.force
    if options.triggered_by is not None:
        from clinicpress.outputs.delivery.people import trigger_problem  # the delivery package: on use

        if problem := trigger_problem(options.triggered_by):
            raise InputError(None, "triggered_by", problem, "one person's name (who publishes), or none")
    facts = open_facts(out_dir, enabled=options.use_cache)
    site, loaded = load_inputs(paths, workspace.site_path, facts, strict)
    reports_live = live_reports(out_dir)
    editions_live = live_editions(reports_live)
    if paths and (more := other_editions(loaded.articles, editions_live, workspace.content_dir)):
        # One edition is never published alone (issue 26): its original and the editions live
        # beside it come along, so every page links the editions live with it.
        site, loaded = load_inputs([*paths, *map(str, more)], workspace.site_path, facts, strict)
    loaded, moved = addressed(site, workspace, quoted(loaded))
    articles = loaded.articles
    signed = load_signoffs(quoted(articles), site, out_dir)
    articles, reviews, review_sources = signed.articles, signed.records, signed.sources
    now = clock.local_now()
    # Translations (issue 26): their originals and published texts; a stale one's page says so.
    editions = edition_context(site, out_dir, articles, workspace.content_dir)
    if editions is not None:
        articles = [with_edition_note(a, editions, site, now.date()) for a in articles]
    templates = template_fingerprint()
    live = {} if force else versions_in(reports_live)
    # Each edition's page links the others live with it (issue 26): guessed now (every article of
    # the run live), corrected by relink once the checks have spoken.
    linked = has_editions(editions_live.values()) or any(a.translation_of for a in articles)
    if linked:
        guess = expected_live(editions_live, articles, site, moved.redirects(a.key for a in articles))
        articles = link_all(articles, guess, site)
    versions = [article_version(a, site, templates) for a in articles]
    # A version a rollback took out stays out (issue 24): not checked, rendered or published.
    held = held_versions(site, out_dir, quoted(articles), versions, live, force)
    if held:
        skip = {h.slug for h in held}
        kept = [(a, v) for a, v in zip(articles, versions, strict=True) if a.key not in skip]
        articles, versions = [a for a, _ in kept], [v for _, v in kept]
    runs = plan(articles, versions, live)
    # Rendered unless this version is live already; a render the checks then block is thrown away.
    to_render = [run for run in runs if not run.is_live]
    progress.start("check", len(runs))
    progress.start("render", len(to_render))
    # A catalog's artifacts wait in files (a spool in --out), not in this process's memory, until
    # the release hard-links them; the spool goes when the release is written.
    spool = Spool(out_dir) if is_catalog(len(to_render)) else None
    if spool is None:
        # A killed catalog run's spool goes even when this run renders nothing (opening a Spool
        # would do it otherwise): tests/flows/test_faults.py, the catalog's switched-kill case.
        remove_dead_spools(out_dir)
    with spool or contextlib.nullcontext():
        # The renders run while the sources are checked (they do not depend on the check).
        jobs = [run.render_job(site, now) for run in to_render]
        with (
            (
                # A few renders with no spool: the workers send back bytes, and a blocked run
                # writes nothing to --out.
                RenderPool(min(default_workers(), len(to_render)), spool=spool.path if spool else None)
                if use_pool(len(to_render))
                else contextlib.nullcontext()
            ) as pool,
            RenderRun(jobs, pool) as renders,
        ):
            cache = open_cache(out_dir, site.checks.links, enabled=options.use_cache)
            prime_facts(
                articles, facts, site
            )  # links, grade, language findings: from disk or worked out once
            # Crossref/PubMed lookups run while the links are checked (a task of their own).
            integrity = check_integrity_task.submit(quoted(articles), site, cache)
            # The licenses at DHCS and the reviewers at the NPI registry: the lookup check makes.
            authority = check_authority_task.submit(quoted(articles), site, cache)
            links = check_sources(all_urls(articles), site.checks.links, cache)
            records = quoted(integrity.result())
            reports = verify(
                quoted(articles),
                site,
                quoted(links),
                now.date(),
                strict,
                records,
                quoted(reviews),
                quoted(authority.result()),
                quoted(editions),
            )
            for run, report in zip(runs, reports, strict=True):
                run.report = report
            progress.advance("check", len(runs))
            for start in range(0, len(to_render), RENDER_BATCH):
                stop = min(start + RENDER_BATCH, len(to_render))
                rendered = render_batch(quoted(renders), start, stop)
                for run, outcome in zip(to_render[start:stop], rendered, strict=True):
                    run.rendered = outcome
                progress.advance("render", stop - start)

        settled = [settle(run) for run in runs]
        if linked:  # a page that guessed wrong which editions go live is rendered again (rare)
            settled = relink(
                settled,
                editions_live,
                site,
                templates,
                now,
                render_and_check_here,
                lambda items: moved.redirects(s.run.article.key for s in items if s.fate is Fate.READY),
            )
        ready = [item.ready for item in settled if item.fate is Fate.READY]
        redirects = moved.redirects(item.article.key for item in ready)
        # A translation blocked by the edition rules does not stay live (issue 26); any other
        # blocked article keeps the version already live.
        withdraw = withdrawn(settled)
        release = publish(out_dir, quoted(ready), site, now, force, redirects, withdraw)
    went_live, unchanged = after_release(settled, release)
    if release is not None and went_live:
        record_publish(
            site, out_dir, release, quoted([s.ready for s in went_live]), quoted(links), now, records
        )
        if force and release.release_id is not None:  # a held version published again: no longer held
            with Registry.for_site(site, out_dir) as registry:
                registry.lift_holds(
                    {s.run.article.key: (s.run.version, content_hash(s.run.article)) for s in went_live},
                    release_id=release.release_id,
                    by=options.triggered_by or "unknown",
                    at=now,
                )
    live_unchanged = [(s.run.article, s.run.version) for s in unchanged]
    live_files = moved.published(s.run.article.key for s in [*went_live, *unchanged])
    if live_files:
        with Registry.for_site(site, out_dir) as registry:
            registry.record_addresses(live_files, now)  # which file published which slug
    # The texts that are live, each kept once with when it first went live (translations' grace).
    record_texts(site, out_dir, [s.run.article for s in [*went_live, *unchanged]], now)
    if live_unchanged:
        record_unrecorded_live(site, out_dir, quoted(live_unchanged), now)
    # After the swap: live versions (new, or unchanged with a send left to resume) get their newsletter.
    sends = _newsletters(
        site, out_dir, now, [(s.run.article, s.run.version) for s in went_live] + live_unchanged, options
    )
    result = _result(out_dir, release, settled, {s.run.article.key for s in unchanged}, sends, review_sources)
    result.skipped = loaded.skipped
    result.held = held
    result.withdrawn = release.withdrawn if release is not None else []
    _leave_artifacts(result)
    return caller_unquotes(result)  # not walked by Prefect for nothing (flows/json_flow.py)


def _result(
    out_dir: Path,
    release: PublishedRelease | None,
    settled: list[Settled],
    unchanged: set[str],
    sends: list[SendReport],
    review_sources: dict[str, ReviewSource],
) -> PublishResult:
    files = release.files if release else {}
    return PublishResult(
        out_dir=str(out_dir),
        release_id=release.release_id if release else None,  # None: no new release
        outcomes=[
            ArticleOutcome(
                report=item.report,
                published=item.report.slug in files,
                files=files.get(item.report.slug, []),
                unchanged=item.report.slug in unchanged,
                review_source=review_sources.get(item.report.slug, ReviewSource.FRONT_MATTER),
            )
            for item in settled
        ],
        newsletters=[send.summary() for send in sends],
        newsletters_incomplete=any(send.stalled for send in sends),  # not one awaiting approval
        newsletters_waiting=[send.slug for send in sends if send.awaiting],
    )


def _leave_artifacts(result: PublishResult) -> None:
    """The run's report in the Prefect UI: the sources that are not ok, and the summary."""
    # Only the sources that are not ok: a catalog's ~9,000 ok rows cost the server ~0.4 s a run and
    # bury the few that matter (each article's report, and the text output, still list every link).
    reports = [outcome.report for outcome in result.outcomes]
    table = [row for row in links_table(reports) if row["status"] != LinkStatus.OK.value]
    if table:
        create_table_artifact(table, key="links-report", description="clinicpress: every source not ok")
    create_markdown_artifact(
        summary_markdown(result), key="publish-report", description="clinicpress publish"
    )
