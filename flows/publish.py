"""The ``publish`` flow: load → check → render the channels → publish.

Thin on purpose: every step is a function of ``sources/``, ``checks/``,
``renderers/`` or ``outputs/``; this module only wires them as Prefect tasks,
with retries where the network I/O is.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote
from pydantic import BaseModel

from clinicpress import clock, progress
from clinicpress.checks.cache import open_cache
from clinicpress.checks.links import LinkReport
from clinicpress.checks.model import ArticleReport, LinkStatus, Problem, Severity, Verdict
from clinicpress.checks.verify import all_urls, verify_article
from clinicpress.console import links_table
from clinicpress.errors import RenderError
from clinicpress.faults import fault_point
from clinicpress.flows.tasks import (
    LINK_BATCH_RUNNER,
    check_sources,
    record_publish,
    record_unrecorded_live,
    send_newsletter_task,
)
from clinicpress.outputs.delivery import SendReport
from clinicpress.outputs.publish import PublishedRelease, ReadyArticle, publish_release
from clinicpress.outputs.release import live_versions
from clinicpress.outputs.subscribers import load_subscribers
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.fingerprint import template_fingerprint
from clinicpress.renderers.pool import Checked, RenderPool, RenderRun
from clinicpress.renderers.spool import Spool
from clinicpress.site import DEFAULT_SITE_PATH, SiteConfig, load_site
from clinicpress.sources.article import Article, Channel
from clinicpress.sources.loader import discover_articles, load_articles
from clinicpress.versioning import article_version

DEFAULT_OUT_DIR = Path("published")
POOL_THRESHOLD = 8  # articles to render before worker processes are worth their start-up
RENDER_BATCH = 50  # articles per render task


class ArticleOutcome(BaseModel):
    report: ArticleReport
    published: bool
    files: list[str]
    unchanged: bool = False  # this version is live already: nothing re-rendered


class PublishResult(BaseModel):
    out_dir: str
    release_id: str | None
    outcomes: list[ArticleOutcome]
    newsletters: list[str] = []  # one summary per newsletter send (SMTP configured)
    newsletters_incomplete: bool = False

    @property
    def blocked(self) -> bool:
        return any(o.report.verdict is Verdict.BLOCKED for o in self.outcomes)


@task(name="load-inputs", cache_policy=NO_CACHE)
def load_inputs(paths: list[str], site_path: str) -> tuple[SiteConfig, list[Article]]:
    site, articles = load_site(site_path), load_articles(discover_articles(paths))
    fault_point("load")
    return site, articles


@task(name="verify", cache_policy=NO_CACHE)
def verify(
    articles: list[Article], site: SiteConfig, links: LinkReport, on: date, strict: bool
) -> list[ArticleReport]:
    reports = [verify_article(a, site, links, on=on, strict=strict) for a in articles]
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
    out_dir: str, ready: list[ReadyArticle], site: SiteConfig, published_at: datetime, force: bool
) -> PublishedRelease | None:
    return publish_release(Path(out_dir), ready, site, published_at, force=force)


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
    return "\n".join(lines) + "\n"


def _blocked_by(report: ArticleReport, problems: list[Problem]) -> ArticleReport:
    return report.model_copy(update={"verdict": Verdict.BLOCKED, "problems": [*report.problems, *problems]})


def _newsletters(
    site: SiteConfig, out_dir: str, now: datetime, live: list[tuple[Article, str]], test_to: str | None
) -> list[SendReport]:
    """Send (or resume) each live version's newsletter, when an SMTP server is configured."""
    news = site.newsletter
    if news.smtp is None or (test_to is None and news.subscribers is None):
        return []  # the .eml outbox is the only newsletter output
    recipients = [] if test_to or news.subscribers is None else list(load_subscribers(news.subscribers))
    return [
        send_newsletter_task(article, version, site, out_dir, now, quote(recipients), test_to)  # type: ignore[call-overload]
        for article, version in live
        if Channel.NEWSLETTER in article.channels
    ]


@flow(name="publish", validate_parameters=True, task_runner=LINK_BATCH_RUNNER)
def publish_flow(
    paths: list[str] | None = None,
    site_path: str = str(DEFAULT_SITE_PATH),
    out_dir: str = str(DEFAULT_OUT_DIR),
    strict: bool = False,
    force: bool = False,
    use_cache: bool = True,
    test_to: str | None = None,
) -> PublishResult:
    """Verify articles and publish those that pass, all channels or none.

    An article whose version (content, site config, templates) is live
    already is not rendered again unless ``force``.
    """
    site, articles = load_inputs(paths or [], site_path)
    now = clock.local_now()
    templates = template_fingerprint()
    live = {} if force else live_versions(Path(out_dir))
    versions = [article_version(article, site, templates) for article in articles]
    # Rendered unless this version is live already; a render the checks then block is thrown away.
    todo = [index for index, article in enumerate(articles) if live.get(article.key) != versions[index]]
    jobs = [(articles[i], site, RenderContext(published_at=now, version=versions[i])) for i in todo]
    progress.start("check", len(articles))
    progress.start("render", len(jobs))
    results: list[Checked | RenderError] = []
    # A catalog's artifacts wait in files (a spool in --out), not in this process's memory, until
    # the release hard-links them; the spool goes when the release is written.
    spool = Spool(Path(out_dir)) if len(jobs) >= POOL_THRESHOLD else None
    with spool or contextlib.nullcontext():
        # The renders run while the sources are checked (they do not depend on the check).
        with (
            RenderPool(spool=spool.path) if spool is not None else contextlib.nullcontext() as pool,
            RenderRun(jobs, pool) as renders,
        ):
            cache = open_cache(out_dir, site.checks.links, enabled=use_cache)
            links = check_sources(all_urls(articles), site.checks.links, cache)
            # quote(): Prefect walks a task's arguments looking for futures (~1.3 s per 1,000 articles).
            reports = verify(quote(articles), site, quote(links), now.date(), strict)  # type: ignore[call-overload]
            progress.advance("check", len(articles))
            for start in range(0, len(jobs), RENDER_BATCH):
                stop = min(start + RENDER_BATCH, len(jobs))
                results += render_batch(quote(renders), start, stop)  # type: ignore[call-overload]
                progress.advance("render", stop - start)

        unchanged: dict[str, tuple[Article, str]] = {}
        for index, (article, report) in enumerate(zip(articles, reports, strict=True)):
            if report.verdict is not Verdict.BLOCKED and live.get(article.key) == versions[index]:
                unchanged[article.key] = (article, versions[index])

        ready: list[ReadyArticle] = []
        final_reports = list(reports)
        for index, rendered in zip(todo, results, strict=True):
            article, version = articles[index], versions[index]
            if reports[index].verdict is Verdict.BLOCKED:
                continue  # the checks block it: its render is thrown away
            if isinstance(rendered, RenderError):
                problem = Problem(check="render", severity=Severity.BLOCKED, message=str(rendered))
                final_reports[index] = _blocked_by(reports[index], [problem])
            elif rendered.problems:
                # The three channels must state the same facts; any difference blocks the article.
                final_reports[index] = _blocked_by(reports[index], rendered.problems)
            else:
                ready.append(ReadyArticle(article, reports[index], version, rendered.artifacts))

        release = publish(out_dir, quote(ready), site, now, force)  # type: ignore[call-overload]
    went_live = [item for item in ready if release is not None and item.article.key in release.files]
    if release is not None and went_live:
        record_publish(site, out_dir, release, quote(went_live), quote(links), now)  # type: ignore[call-overload]
    # A concurrent run of the same trigger made these versions live first: nothing to do.
    for item in ready:
        if release is not None and item.article.key in release.already_live:
            unchanged[item.article.key] = (item.article, item.version)
    if unchanged:
        record_unrecorded_live(site, out_dir, quote(list(unchanged.values())), now)  # type: ignore[call-overload]
    # After the swap: live versions (new, or unchanged with a send left to resume) get their newsletter.
    live_now = [(item.article, item.version) for item in went_live] + list(unchanged.values())
    sends = _newsletters(site, out_dir, now, live_now, test_to)
    files = release.files if release else {}
    result = PublishResult(
        out_dir=out_dir,
        release_id=release.release_id if release else None,  # None: no new release
        outcomes=[
            ArticleOutcome(
                report=r,
                published=r.slug in files,
                files=files.get(r.slug, []),
                unchanged=r.slug in unchanged,
            )
            for r in final_reports
        ],
        newsletters=[send.summary() for send in sends],
        newsletters_incomplete=any(not send.complete for send in sends),
    )
    # Only the sources that are not ok: a catalog's ~9,000 ok rows cost the server ~0.4 s a run and
    # bury the few that matter (each article's report, and the text output, still list every link).
    table = [row for row in links_table(final_reports) if row["status"] != LinkStatus.OK.value]
    if table:
        create_table_artifact(table, key="links-report", description="clinicpress: every source not ok")
    create_markdown_artifact(
        summary_markdown(result), key="publish-report", description="clinicpress publish"
    )
    return result
