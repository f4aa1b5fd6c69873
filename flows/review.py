"""The ``review`` flow (issue 15, part 3): a clinician signs off in the Prefect UI.

Served by ``clinicpress serve`` as ``review/review`` (flows/deployments.py). For each article of
``paths``: load and check it as ``clinicpress check`` does; render its three channels into
``<out>/reviews/<slug>/<text hash>/`` (never into a release); leave the markdown artifact
``review-<slug>`` (the checks, links to the files, the diff against the live text); pause for
the clinician's form (:class:`~clinicpress.flows.review_report.ReviewForm`); record the review
as ``clinicpress review`` does, bound to the hash of the text shown. With ``[review]
publish_on_approve = true`` the approved articles are then published by the publish flow (a
subflow); the artifact ``review-result`` says what was published, or how to publish.

A form not sent within ``timeout_hours`` (per article) fails the run: nothing is recorded for
that article or the ones after it, and nothing is published. A form the flow refuses (a blank
name, say) records nothing either: the run pauses again, saying why, until the same deadline.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run

from clinicpress import clock
from clinicpress.checks.cache import open_cache
from clinicpress.checks.model import ArticleReport, Check, Problem, Severity, Verdict
from clinicpress.checks.signoff import ReviewRecord
from clinicpress.checks.verify import check_articles
from clinicpress.errors import ClinicpressError, InputError, RenderError
from clinicpress.flows.json_flow import flow
from clinicpress.flows.publish import DEFAULT_OUT_DIR, load_inputs, load_signoffs, publish_flow
from clinicpress.flows.review_report import (
    ArticleReviewed,
    ReviewForm,
    ReviewResult,
    Submitted,
    form_description,
    live_baseline,
    read_form,
    result_markdown,
    review_markdown,
    review_record,
)
from clinicpress.flows.tasks import quoted
from clinicpress.outputs.release import live_report
from clinicpress.outputs.reviews import record_review
from clinicpress.private import private_dir, private_tree
from clinicpress.renderers.base import AnyArtifact, RenderContext
from clinicpress.renderers.fingerprint import template_fingerprint
from clinicpress.renderers.pool import render_and_check_here
from clinicpress.site import DEFAULT_SITE_PATH, SiteConfig
from clinicpress.sources.article import Article, Channel
from clinicpress.sources.loader import load_article
from clinicpress.sources.versioning import article_version, content_hash
from clinicpress.workspace import PublishOptions, Workspace

REVIEWS_DIR = "reviews"  # under --out, beside the releases: never part of what is published
# Long enough for a clinician's weekend; the paused run holds its process (and a `serve` slot)
# meanwhile, so not weeks. Per article: each form has its own deadline.
DEFAULT_TIMEOUT_HOURS = 72.0
MAX_TIMEOUT_HOURS = 14 * 24.0
POLL_SECONDS = 5  # how often the paused run asks the API whether its form was sent


def review_folder(out_dir: Path, article: Article) -> Path:
    """``<out>/reviews/<slug>/<text hash>/``: one folder per text reviewed."""
    return out_dir / REVIEWS_DIR / article.key / content_hash(article)[:16]


def _email_parts(data: bytes) -> tuple[str | None, str | None]:
    """(HTML, text) of the newsletter as a subscriber gets it: the parts of the rendered message."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
    parts = [message.get_body(preferencelist=(kind,)) for kind in ("html", "plain")]
    html, text = (part.get_content() if isinstance(part, EmailMessage) else None for part in parts)
    return html, text


def write_review_files(folder: Path, artifacts: Sequence[AnyArtifact]) -> dict[str, Path]:
    """web.html, handout.pdf, email.html, email.txt: written whole, then moved into place."""
    staging = folder.with_name(f".{folder.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names: dict[str, str] = {}
    for artifact in artifacts:
        if artifact.channel is Channel.WEB and artifact.relpath.endswith(".html"):
            (staging / "web.html").write_bytes(artifact.data)
            names["web page"] = "web.html"
        elif artifact.channel is Channel.HANDOUT and artifact.relpath.endswith(".pdf"):
            (staging / "handout.pdf").write_bytes(artifact.data)
            names["handout"] = "handout.pdf"
        elif artifact.channel is Channel.NEWSLETTER and artifact.relpath.endswith(".eml"):
            html, text = _email_parts(artifact.data)
            for label, name, part in (
                ("email (HTML)", "email.html", html),
                ("email (text)", "email.txt", text),
            ):
                if part is not None:
                    (staging / name).write_text(part, encoding="utf-8")
                    names[label] = name
    shutil.rmtree(folder, ignore_errors=True)  # the same text reviewed again: the new render replaces it
    staging.rename(folder)
    return {label: folder / name for label, name in names.items()}


@task(name="check-for-review", cache_policy=NO_CACHE)
def check_for_review(
    articles: list[Article],
    site: SiteConfig,
    out_dir: Path,
    options: PublishOptions,
    reviews: list[ReviewRecord],
) -> list[ArticleReport]:
    """What ``clinicpress check`` runs: every check, on today's date, with the link cache."""
    cache = open_cache(out_dir, site.checks.links, enabled=options.use_cache)
    return check_articles(
        articles, site, on=clock.today(), strict=options.strict, cache=cache, reviews=reviews
    )


@task(name="render-for-review", cache_policy=NO_CACHE)
def render_for_review(
    article: Article, site: SiteConfig, out_dir: Path
) -> tuple[dict[str, Path], list[Problem]]:
    """The three channels as publishing renders them (consistency check included), into the folder."""
    context = RenderContext(
        published_at=clock.local_now(), version=article_version(article, site, template_fingerprint())
    )
    [rendered] = render_and_check_here([(article, site, context)])
    if isinstance(rendered, RenderError):
        return {}, [Problem(check=Check.RENDER, severity=Severity.BLOCKED, message=str(rendered))]
    reviews = private_dir(out_dir / REVIEWS_DIR)  # drafts of texts not published: owner-only
    files = write_review_files(review_folder(out_dir, article), rendered.artifacts)
    private_tree(reviews)  # files 0600, folders 0700 (clinicpress/private.py)
    return files, rendered.problems


@task(name="record-review", cache_policy=NO_CACHE)  # no retries: a review must never be recorded twice
def record_review_task(site: SiteConfig, out_dir: Path, record: ReviewRecord) -> ReviewRecord:
    return record_review(site, out_dir, record)


def ask_reviewer(article: Article, verdict: Verdict, timeout_seconds: float) -> Submitted:
    """Pause for the form until one passes :func:`read_form`; FlowPauseTimeout at the deadline."""
    logger = get_run_logger()
    deadline = time.monotonic() + timeout_seconds
    refused: str | None = None
    attempt = 0
    while True:
        attempt += 1
        remaining = int(deadline - time.monotonic())
        if remaining <= 0:
            raise FlowPauseTimeout(f"{article.key}: no acceptable review form before the deadline")
        form = ReviewForm.with_initial_data(description=form_description(article, verdict.value, refused))
        answer = pause_flow_run(
            wait_for_input=form, timeout=remaining, poll_interval=POLL_SECONDS, key=f"{article.key}-{attempt}"
        )
        submitted = read_form(answer)
        if isinstance(submitted, Submitted):
            return submitted
        refused = submitted
        logger.warning("%s: review form refused, nothing recorded: %s", article.key, refused)


def _publish_approved(result: ReviewResult, workspace: Workspace, options: PublishOptions) -> None:
    """Publish the approved texts that are still the files' texts; notes say why not, per article.

    One publish per reviewer, who is recorded as who published each of their articles: with
    ``[newsletter] approval_required`` a send then waits for someone other than its own reviewer
    (one "A, B" for all would let A approve the send of A's article).
    """
    ready: dict[str | None, list[ArticleReviewed]] = {}
    for reviewed in result.approved():
        try:
            unchanged = content_hash(load_article(reviewed.path)) == reviewed.content_hash
        except InputError as exc:
            reviewed.note = f"not published: {exc}"
            continue
        if not unchanged:
            reviewed.note = "not published: the file changed after the review; review it again"
            continue
        ready.setdefault(reviewed.reviewer_name, []).append(reviewed)
    for reviewer, group in ready.items():
        # The approving clinician published: with [newsletter] approval_required the send then
        # waits for someone else (approve-send); a subflow never pauses for that form.
        as_reviewer = replace(options, triggered_by=reviewer, approval_wait_seconds=0)
        _publish_group(result, group, workspace, as_reviewer)
    if ready:
        result.published = [r.slug for group in ready.values() for r in group if r.published]


def _publish_group(
    result: ReviewResult,
    group: list[ArticleReviewed],
    workspace: Workspace,
    options: PublishOptions,
) -> None:
    """One reviewer's approved articles, published by the publish flow (a subflow) as theirs."""
    try:
        published = publish_flow(
            paths=[r.path for r in group], **workspace.flow_parameters(), **options.flow_parameters()
        )
    except ClinicpressError as exc:
        for reviewed in group:
            reviewed.note = f"publish failed: {exc}"
        return
    outcomes = {outcome.report.slug: outcome for outcome in published.outcomes}
    for reviewed in group:
        outcome = outcomes.get(reviewed.slug)
        if outcome is not None and (outcome.published or outcome.unchanged):
            reviewed.published = True
            live = (
                "live already" if outcome.unchanged else f"review line from the {outcome.review_source.value}"
            )
            reviewed.note = live
        elif outcome is not None:
            blocking = [
                p.message.splitlines()[0] for p in outcome.report.problems if p.severity is Severity.BLOCKED
            ]
            reviewed.note = "blocked at publish: " + "; ".join(blocking or [outcome.report.verdict.value])
    result.release_id = published.release_id or result.release_id  # the last one holds every article


@flow(name="review", validate_parameters=True)
def review_flow(
    paths: list[str],
    site_path: str = str(DEFAULT_SITE_PATH),
    out_dir: str = str(DEFAULT_OUT_DIR),
    strict: bool = False,
    use_cache: bool = True,
    timeout_hours: float = DEFAULT_TIMEOUT_HOURS,
) -> ReviewResult:
    """Show each article's checks, channels and diff; pause for the clinician's form; record it.

    With ``[review] publish_on_approve = true``, publish what was approved.

    Args:
        paths: The articles to review (.md files, or folders of them).
        site_path: The site config (the served deployment sets it).
        out_dir: The published site and its registry (the served deployment sets it).
        strict: Warnings block, as with `clinicpress check --strict`.
        use_cache: Use the link cache in out_dir (false: check every source again).
        timeout_hours: How long each article's form waits; then nothing is recorded and the run fails.
    """
    if not paths:
        raise InputError(None, "paths", "is empty", "at least one article (.md) to review")
    if not 0 < timeout_hours <= MAX_TIMEOUT_HOURS:
        raise InputError(
            None, "timeout_hours", f"got {timeout_hours:g}", f"more than 0, at most {MAX_TIMEOUT_HOURS:g}"
        )
    logger = get_run_logger()
    workspace = Workspace.of(site_path, out_dir)
    options = PublishOptions(strict=strict, use_cache=use_cache)
    out = workspace.out_dir
    # Every file given is reviewed: one that does not load stops the run (nothing recorded).
    site, loaded = load_inputs(paths, workspace.site_path, strict=True)
    articles = loaded.articles
    # The review line as publishing prints it (the records), and the checks `check` runs.
    signed = load_signoffs(quoted(articles), site, out)
    printed, records = signed.articles, signed.records
    reports = check_for_review(quoted(printed), site, out, options, quoted(records))
    result = ReviewResult(out_dir=out_dir, reviews=[], publish_on_approve=site.review.publish_on_approve)
    for index, (article, shown, report) in enumerate(zip(articles, printed, reports, strict=True)):
        files, render_problems = render_for_review(quoted(shown), site, out)
        baseline = live_baseline(live_report(out, article.key), [r for r in records if r.slug == article.key])
        create_markdown_artifact(
            review_markdown(shown, report, render_problems, files, baseline, site.review.publish_on_approve),
            key=f"review-{article.key}",
            description=f"clinicpress review: {article.key}",
        )
        reviewed = ArticleReviewed(
            slug=article.key,
            path=str(article.path),
            content_hash=content_hash(article),
            verdict=report.verdict.value,
            folder=str(review_folder(out, article)),
        )
        result.reviews.append(reviewed)
        try:
            submitted = ask_reviewer(article, report.verdict, timeout_hours * 3600)
        except FlowPauseTimeout:
            waiting = [a.key for a in articles[index:]]
            reviewed.note = f"no form within {timeout_hours:g} h: nothing recorded"
            message = (
                f"no review form for {article.key} within {timeout_hours:g} h: nothing recorded for "
                f"{', '.join(waiting)}; nothing published"
            )
            create_markdown_artifact(result_markdown(result) + f"\n{message}\n", key="review-result")
            raise FlowPauseTimeout(message) from None
        record = record_review_task(site, out, review_record(article, submitted, clock.today(), clock.now()))
        reviewed.decision, reviewed.reviewer, reviewed.review_id = record.decision, record.who(), record.id
        reviewed.reviewer_name = record.reviewer.name
        logger.info(
            "%s: review #%s recorded: %s by %s", article.key, record.id, record.decision.value, record.who()
        )
    if site.review.publish_on_approve:
        _publish_approved(result, workspace, options)
    create_markdown_artifact(result_markdown(result), key="review-result", description="clinicpress review")
    logger.info("%s", result.next_step())
    return result
