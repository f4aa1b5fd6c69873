"""The render pool: same artifacts as ``render_article``, one error per job, recycling, no leaks."""

from __future__ import annotations

import io
import multiprocessing
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pypdf
import pytest

from clinicpress.checks.consistency import consistency_problems
from clinicpress.errors import RenderError
from clinicpress.renderers.base import Artifact, RenderContext
from clinicpress.renderers.pool import Checked, RenderJob, RenderPool, default_workers
from clinicpress.renderers.registry import render_article
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

ROOT = Path(__file__).resolve().parent.parent
CONTEXT = RenderContext(published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC), version="0" * 64)


@pytest.fixture(scope="module")
def small(article: Article) -> Article:
    """A one-page article: fast to render, still every channel."""
    return article.model_copy(update={"slug": "small", "body": "Short text citing a source.[^1]\n"})


@pytest.fixture(scope="module")
def pool() -> Iterator[RenderPool]:
    # One pool for the module: the forkserver start (importing WeasyPrint) is paid once.
    with RenderPool(workers=2) as shared:
        yield shared


def _pdf_facts(data: bytes) -> tuple[int, list[str]]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return len(reader.pages), [page.extract_text() for page in reader.pages]


def _assert_same(got: list[Artifact], want: list[Artifact]) -> None:
    assert [a.relpath for a in got] == [a.relpath for a in want]
    for mine, theirs in zip(got, want, strict=True):
        assert (mine.channel, mine.media_type) == (theirs.channel, theirs.media_type)
        if mine.channel is Channel.HANDOUT:
            assert _pdf_facts(mine.data) == _pdf_facts(theirs.data)
        else:
            assert mine.data == theirs.data, mine.relpath


class _ExitOnUnpickle:
    """Unpickling this in the worker ends the worker process: a stand-in for a segfault or OOM kill."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (os._exit, (3,))


def test_default_workers_is_the_usable_cores() -> None:
    assert 1 <= default_workers() <= (os.cpu_count() or 1)


def test_pool_renders_what_render_article_renders(
    pool: RenderPool, article: Article, small: Article, site: SiteConfig
) -> None:
    web_only = small.model_copy(update={"slug": "web-only", "channels": [Channel.WEB]})
    jobs: list[RenderJob] = [(article, site, CONTEXT), (small, site, CONTEXT), (web_only, site, CONTEXT)]
    results = pool.render(jobs)
    assert len(results) == len(jobs)
    for (job_article, job_site, context), result in zip(jobs, results, strict=True):
        assert not isinstance(result, RenderError), result
        _assert_same(result, render_article(job_article, job_site, context))
    assert [a.relpath for a in results[2]] == ["web/web-only/index.html"]  # type: ignore[union-attr]


def test_render_and_check_runs_the_consistency_check_in_the_worker(
    pool: RenderPool, small: Article, site: SiteConfig
) -> None:
    # A license line on the site that the renders do carry: consistent; the check's own verdict.
    [result] = pool.render_and_check([(small, site, CONTEXT)])
    assert isinstance(result, Checked)
    assert result.problems == []
    assert result.problems == consistency_problems(small, site, result.artifacts)
    _assert_same(result.artifacts, render_article(small, site, CONTEXT))


def test_a_failing_job_is_its_own_error_and_the_batch_goes_on(
    pool: RenderPool, small: Article, site: SiteConfig
) -> None:
    broken = small.model_copy(update={"slug": "broken", "body": "Claim.[^9]\n"})
    results = pool.render_and_check([(small, site, CONTEXT), (broken, site, CONTEXT), (small, site, CONTEXT)])
    assert isinstance(results[0], Checked)
    assert isinstance(results[1], RenderError)
    assert "[^9]" in str(results[1])
    assert isinstance(results[2], Checked)


def test_a_worker_that_dies_fails_only_its_job(small: Article, site: SiteConfig) -> None:
    with RenderPool(workers=1) as pool:
        dying: RenderJob = (small, site, _ExitOnUnpickle())  # type: ignore[assignment]
        results = pool.render([(small, site, CONTEXT), dying, (small, site, CONTEXT)])
        assert not isinstance(results[0], RenderError)
        assert isinstance(results[1], RenderError)
        assert "died" in str(results[1])
        assert not isinstance(results[2], RenderError)
        assert pool.stats.crashed == 1
        assert len(pool.stats.started) == 2  # the dead worker was replaced


def test_a_stuck_job_is_stopped_and_its_worker_replaced(small: Article, site: SiteConfig) -> None:
    # No render finishes in 1 ms: the job counts as stuck, and the next batch still works.
    with RenderPool(workers=1, job_timeout=0.001) as pool:
        [result] = pool.render([(small, site, CONTEXT)])
        assert isinstance(result, RenderError)
        assert "took over" in str(result)
        pool.job_timeout = None
        [again] = pool.render([(small, site, CONTEXT)])
        assert not isinstance(again, RenderError)
        assert len(pool.stats.started) == 2


def test_workers_are_recycled_after_n_renders(small: Article, site: SiteConfig) -> None:
    done: list[int] = []
    with RenderPool(workers=1, recycle_after=2) as pool:
        results = pool.render([(small, site, CONTEXT)] * 5, on_result=done.append)
        assert all(not isinstance(r, RenderError) for r in results)
        # 5 jobs, 2 per worker: three workers in turn, none did more than 2.
        assert len(pool.stats.started) == 3
        assert sorted(pool.stats.renders_by_pid.values()) == [1, 2, 2]
    assert sorted(done) == [0, 1, 2, 3, 4]


def test_close_leaves_no_worker_behind(small: Article, site: SiteConfig) -> None:
    pool = RenderPool(workers=2, recycle_after=1)
    pool.render([(small, site, CONTEXT)] * 3)
    started = list(pool.stats.started)
    assert len(started) >= 3
    pool.close()
    pool.close()  # idempotent
    for pid in started:
        # Workers are children of the forkserver, not ours: look at /proc, not waitpid.
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "State:\tZ" in status.read_text(), f"worker {pid} still running"
    assert [p for p in multiprocessing.active_children() if p.pid in started] == []
    with pytest.raises(RuntimeError, match="closed"):
        pool.render([(small, site, CONTEXT)])


def test_an_empty_batch_is_an_empty_list(pool: RenderPool) -> None:
    assert pool.render([]) == []
    assert pool.render_and_check([]) == []
