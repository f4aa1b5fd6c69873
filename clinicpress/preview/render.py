"""Load, render and check articles for the preview: the quick part now, the slow parts in background.

:meth:`Previewer.reload` runs on the watcher's thread when a file changes: it loads and
verifies the article without the network (license, review, readability) and, once someone
has opened its page (:meth:`Previewer.want`), renders the web page and the email
(milliseconds). The handout (WeasyPrint) and the source check (network, with the cache) go
to two background workers. Each keeps only the newest job per article, so a burst of saves
costs one render, and a result for an older text is dropped; the source checks of all
waiting articles run as one check, so a source they share is fetched once.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from clinicpress import clock
from clinicpress.checks.cache import LinkCache
from clinicpress.checks.editions import Editions
from clinicpress.checks.links import LinkReport
from clinicpress.checks.model import ArticleReport, Check, Problem, Severity, verdict_of
from clinicpress.checks.verify import check_articles, verify_article
from clinicpress.errors import ArticleError, ClinicpressError
from clinicpress.outputs.registry import read_addresses
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.fingerprint import template_fingerprint
from clinicpress.renderers.handout import render_handout_pdf
from clinicpress.renderers.newsletter import build_message
from clinicpress.renderers.web import render_web_html
from clinicpress.site import SiteConfig, load_site
from clinicpress.sources.addresses import content_path, moved_from, place_articles, slug_written
from clinicpress.sources.article import Article, Channel
from clinicpress.sources.loader import load_article
from clinicpress.sources.versioning import article_version

from .state import Entry, HandoutRender, PreviewState, slug_owner

log = logging.getLogger(__name__)

# 1.25 × 72 dpi: a Letter page 765 px wide, sharp in a third of a wide screen.
PAGE_IMAGE_SCALE = 1.25


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ClinicpressError):
        return " ".join(str(exc).split())
    return f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"


def render_web_and_email(
    article: Article, site: SiteConfig, context: RenderContext
) -> tuple[str | None, str | None, str | None, dict[str, str]]:
    """(web HTML, email HTML, email text, channel → error) for the article's own channels."""
    web = email_html = email_text = None
    errors: dict[str, str] = {}
    if Channel.WEB in article.channels:
        try:
            web = render_web_html(article, site, context)
        except Exception as exc:  # one channel failing must not stop the others or the server
            errors[Channel.WEB.value] = _one_line(exc)
    if Channel.NEWSLETTER in article.channels:
        try:
            # The message a subscriber gets (header checks, size limit), not only its template.
            message = build_message(article, site, context)
            html_part = message.get_body(preferencelist=("html",))
            text_part = message.get_body(preferencelist=("plain",))
            email_html = html_part.get_content() if html_part is not None else None
            email_text = text_part.get_content() if text_part is not None else None
        except Exception as exc:  # as above
            errors[Channel.NEWSLETTER.value] = _one_line(exc)
    return web, email_html, email_text, errors


def render_handout(article: Article, site: SiteConfig, context: RenderContext) -> HandoutRender:
    """The handout PDF (WeasyPrint) and its pages as PNGs (pypdfium2)."""
    # PDFium is not thread-safe, and the background checks may read a PDF source (a quote) at the
    # same time: every PDFium user in the process takes the one lock of clinicpress/pdftext.py.
    from clinicpress.pdftext import PDFIUM_LOCK, pdfium

    # The regular handout only: the large-print one is made at publish (twice the layout work).
    pdf = render_handout_pdf(article, site)
    with PDFIUM_LOCK:
        pages = _page_images(pdfium, pdf)
    return HandoutRender(pdf=pdf, pages=tuple(pages))


def _page_images(pdfium: Any, data: bytes) -> list[bytes]:
    pages: list[bytes] = []
    document = pdfium.PdfDocument(data)
    try:
        for index in range(len(document)):
            page = document[index]
            image = page.render(scale=PAGE_IMAGE_SCALE).to_pil()
            buffer = io.BytesIO()
            # zlib level 1: level 6 (the default) took 2–3 times as long for a 15 % smaller file.
            image.save(buffer, format="PNG", compress_level=1)
            pages.append(buffer.getvalue())
            page.close()
    finally:
        document.close()
    return pages


def quick_report(article: Article, site: SiteConfig, on: date) -> ArticleReport:
    """The checks that need no network; the sources come later, from the links worker."""
    return verify_article(article, site, LinkReport(results={}, network_down=False, summary=None), on=on)


@dataclass(frozen=True)
class Job:
    """One article's background work, for the text of ``generation``."""

    path: Path
    generation: int
    article: Article
    site: SiteConfig
    context: RenderContext | None = None


class LatestOnly:
    """One background thread for keyed jobs; a new job for a key replaces the one waiting.

    ``batch``: the thread takes every waiting job at once (one link check for a whole folder
    of articles checks a shared source once); else one at a time, the newest first.
    """

    def __init__(self, name: str, run: Callable[[list[Job]], None], *, batch: bool = False) -> None:
        self._run_jobs = run
        self._batch = batch
        self._jobs: dict[Path, Job] = {}
        self._wake = threading.Condition()
        self._stopped = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._wake:
            self._jobs.pop(job.path, None)  # re-queued at the end: the newest job runs next
            self._jobs[job.path] = job
            self._wake.notify()

    def idle(self) -> bool:
        with self._wake:
            return not self._jobs and not self._busy

    def stop(self, wait: float = 0.0) -> None:
        """Drop waiting jobs, and wait up to ``wait`` seconds for the running one."""
        with self._wake:
            self._stopped = True
            self._jobs.clear()
            self._wake.notify()
        if wait > 0 and self._thread.is_alive():
            self._thread.join(wait)

    def _run(self) -> None:
        while True:
            with self._wake:
                self._busy = False
                while not self._jobs and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                if self._batch:
                    jobs = list(reversed(self._jobs.values()))
                    self._jobs.clear()
                else:  # the newest first: the save someone is looking at
                    jobs = [self._jobs.pop(next(reversed(self._jobs)))]
                self._busy = True
            try:
                self._run_jobs(jobs)
            except Exception:  # a job reports its own errors; this keeps the worker alive regardless
                log.exception("preview worker %s", self._thread.name)


class Previewer:
    """Keeps ``state`` current with the files: call :meth:`reload` when one changed.

    Every article is loaded and verified (the index shows its verdict); its channels are
    rendered once someone looks at it (:meth:`want`), then on every save. A content folder
    of a hundred imported posts thus costs no hundred WeasyPrint runs at start.
    """

    def __init__(
        self,
        state: PreviewState,
        site_path: Path,
        site: SiteConfig,
        cache: LinkCache,
        *,
        out_dir: Path | None = None,
    ) -> None:
        self.state = state
        self.site_path = site_path
        self.site = site
        self.cache = cache
        # Which file published which slug, in --out's registry (read once; a preview publishes
        # nothing): an article keeps its published slug when its title changes (issue 24).
        self.addresses = read_addresses(site, out_dir) if out_dir is not None else {}
        self.out_dir = out_dir
        self._templates = template_fingerprint()
        self._lock = threading.Lock()  # one load or render at a time: the watcher's and a request's
        self.handouts = LatestOnly("preview-handout", self._render_handouts)
        self.links = LatestOnly("preview-links", self._check_links, batch=True)

    def start(self) -> None:
        self.handouts.start()
        self.links.start()

    def stop(self, wait: float = 0.0) -> None:
        """Stop both workers; wait up to ``wait`` seconds in all for the jobs they are running."""
        self.handouts.stop()
        self.links.stop()
        deadline = time.monotonic() + wait
        self.handouts.stop(max(0.0, deadline - time.monotonic()))
        self.links.stop(max(0.0, deadline - time.monotonic()))

    def idle(self) -> bool:
        return self.handouts.idle() and self.links.idle()

    def reload_site(self, paths: Sequence[Path]) -> None:
        """site.toml changed: a bad file keeps the last good config and says so on every page."""
        try:
            site = load_site(self.site_path)
        except ClinicpressError as exc:
            self.state.set_site_error(_one_line(exc))
            return
        self.site = site
        self._templates = template_fingerprint()
        self.state.set_site_error(None)
        for path in paths:
            self.reload(path, force=True)

    def want(self, slug: str) -> None:
        """Someone opened the article: render its channels now and keep them current from here on."""
        entry = self.state.by_slug(slug)
        if entry is None or entry.wanted or entry.article is None:
            return
        with self._lock:
            entry = self.state.by_slug(slug)  # again: the watcher may have reloaded it meanwhile
            if entry is None or entry.wanted or entry.article is None:
                return
            wanted = self.state.update(entry.path, (), wanted=True)
            if wanted is not None:
                self._render(wanted)

    def reload(self, path: Path, *, force: bool = False) -> None:
        """Load ``path`` again; if it changed (or ``force``), verify it, and render it if wanted."""
        with self._lock:
            self._reload(path, force)

    def _reload(self, path: Path, force: bool) -> None:
        entry = self.state.get(path)
        try:
            article = self._placed(load_article(path))
            owner = slug_owner(self.state.entries(), article.key, path)
            if owner is not None:
                raise ArticleError(
                    path, "slug", f"{article.key!r} is already used by {owner}", "a unique slug"
                )
        except Exception as exc:  # any failure to load is shown on the page, never fatal
            message = _one_line(exc)
            if entry is None or entry.error != message:
                self.state.update(path, ("report",), error=message)
            return
        site = self.site
        version = article_version(article, site, self._templates)
        if entry is not None and not force and entry.error is None and entry.render_key == version:
            return  # saved without a change
        generation = (entry.generation if entry is not None else 0) + 1
        reshaped = entry is None or entry.slug != article.key or entry.channels != tuple(article.channels)
        updated = self.state.update(
            path,
            ["report", "page"] if reshaped else ["report"],
            slug=article.key,
            article=article,
            error=None,
            generation=generation,
            render_key=version,
            quick=quick_report(article, site, clock.today()),
        )
        self.links.submit(Job(path, generation, article, site))
        if updated is not None and updated.wanted:
            self._render(updated)

    def _placed(self, article: Article) -> Article:
        """The article at its permanent address (sources/addresses.py), as publish places it."""
        if not self.addresses:
            return article
        relpath = content_path(article.path, self.site_path.parent)
        placed = place_articles([article], self.addresses, lambda p: relpath, slug_written)
        if placed.refused:
            [refused] = placed.refused
            raise ArticleError(refused.path, "slug", refused.problem, refused.expected)
        [article] = placed.articles
        self.state.remember_moves(article.path, moved_from(self.addresses, relpath, article.key))
        return article

    def _render(self, entry: Entry) -> None:
        """The web page and the email now (milliseconds); the handout in the background."""
        article, site, generation = entry.article, self.site, entry.generation
        assert article is not None
        context = RenderContext(published_at=clock.local_now(), version=entry.render_key)
        web, email_html, email_text, errors = render_web_and_email(article, site, context)
        if (handout_error := entry.channel_errors.get(Channel.HANDOUT.value)) is not None:
            errors[Channel.HANDOUT.value] = handout_error  # until the next handout says otherwise
        self.state.update(
            entry.path,
            ("web", "email", "report") if errors != entry.channel_errors else ("web", "email"),
            if_generation=generation,
            web=web,
            email_html=email_html,
            email_text=email_text,
            channel_errors=errors,
        )
        if Channel.HANDOUT in article.channels:
            self.handouts.submit(Job(entry.path, generation, article, site, context))

    def _render_handouts(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._render_handout(job)

    def _render_handout(self, job: Job) -> None:
        path, generation, context = job.path, job.generation, job.context
        assert context is not None
        entry = self.state.get(path)
        if entry is None or entry.generation != generation:
            return  # a newer text is queued already
        try:
            handout = render_handout(job.article, job.site, context)
        except Exception as exc:  # shown in the handout's column
            errors = {**entry.channel_errors, Channel.HANDOUT.value: _one_line(exc)}
            self.state.update(
                path,
                ("handout", "report"),  # the report lists the channels' errors too
                if_generation=generation,
                handout_generation=generation,
                channel_errors=errors,
            )
            return
        current = self.state.get(path)
        errors = dict(current.channel_errors) if current is not None else {}
        fixed = errors.pop(Channel.HANDOUT.value, None) is not None
        self.state.update(
            path,
            ("handout", "report") if fixed else ("handout",),
            if_generation=generation,
            handout=handout,
            handout_generation=generation,
            channel_errors=errors,
        )

    def _editions(self, site: SiteConfig, articles: list[Article]) -> Editions | None:
        """A translation's original and its published texts (issue 26): stale or blocked shows here too."""
        if self.out_dir is None or not any(a.translation_of is not None for a in articles):
            return None
        from clinicpress.outputs.edition_texts import edition_context  # SQLAlchemy: only when needed

        return edition_context(site, self.out_dir, articles, self.site_path.parent)

    def _check_links(self, jobs: list[Job]) -> None:
        """One check for every article waiting (a source they share is fetched once)."""
        current = [job for job in jobs if (e := self.state.get(job.path)) and e.generation == job.generation]
        for site in {id(job.site): job.site for job in current}.values():
            batch = [job for job in current if job.site is site]
            try:
                articles = [job.article for job in batch]
                editions = self._editions(site, articles)
                on = clock.today()
                reports = check_articles(articles, site, on=on, cache=self.cache, editions=editions)
            except Exception as exc:  # never "checking…" forever: the quick report and why
                reports = [_unchecked(job.article, site, exc) for job in batch]
            for job, report in zip(batch, reports, strict=True):
                self.state.update(
                    job.path,
                    ("report",),
                    if_generation=job.generation,
                    full=report,
                    links_generation=job.generation,
                    known_links={link.url: link for link in report.links},
                )


def _unchecked(article: Article, site: SiteConfig, exc: Exception) -> ArticleReport:
    """The checks without sources, and one more problem: why the sources were not checked."""
    quick = quick_report(article, site, clock.today())
    problem = Problem(
        check=Check.LINKS, severity=Severity.WARNING, message=f"sources not checked: {_one_line(exc)}"
    )
    problems = [*quick.problems, problem]
    return quick.model_copy(update={"problems": problems, "verdict": verdict_of(problems)})
