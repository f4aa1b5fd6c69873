"""The render pool: same artifacts as ``render_article``, one error per job, recycling, no leaks."""

from __future__ import annotations

import io
import multiprocessing
import operator
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pypdf
import pytest

from clinicpress.errors import RenderError
from clinicpress.faults import FAULT_ENV, InjectedFault
from clinicpress.renderers.base import Artifact, RenderContext, SpooledArtifact
from clinicpress.renderers.consistency import consistency_problems
from clinicpress.renderers.pool import Checked, RenderJob, RenderPool, RenderRun, default_workers
from clinicpress.renderers.registry import render_article
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

ROOT = Path(__file__).resolve().parents[2]
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


class _Call:
    """Unpickled in the worker as ``function(*args)``: a side effect on the way to a job's context."""

    def __init__(self, function: object, *args: object) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (self.function, self.args)


def _announced(marker: Path, seconds: float) -> RenderContext:
    """``CONTEXT``, arriving in the worker only after ``marker`` was created and ``seconds`` passed:
    the test sees which jobs a worker received, and each stays in flight a while."""
    slow = _Call(operator.getitem, (_Call(Path.touch, marker), _Call(time.sleep, seconds), CONTEXT), 2)
    return slow  # type: ignore[return-value]


def test_background_renders_come_back_in_slices_and_stop_when_closed(
    pool: RenderPool, small: Article, site: SiteConfig, tmp_path: Path
) -> None:
    jobs: list[RenderJob] = [(small.model_copy(update={"slug": f"s{i}"}), site, CONTEXT) for i in range(6)]
    with RenderRun(jobs, pool) as renders:
        first, rest = renders.results(0, 2), renders.results(2, 6)
    results = first + rest
    assert all(isinstance(r, Checked) and r.problems == [] for r in results)
    assert [r.artifacts[0].relpath for r in results if isinstance(r, Checked)] == [
        f"web/s{i}/index.html" for i in range(6)
    ]
    # Closed while the first jobs are in the workers: those finish and come back, no job is sent after.
    received = tmp_path / "received"
    received.mkdir()
    many: list[RenderJob] = [(small, site, _announced(received / str(i), 1.0)) for i in range(12)]
    renders = RenderRun(many, pool)
    deadline = time.monotonic() + 60
    while not list(received.iterdir()):
        assert time.monotonic() < deadline, "no job reached a worker"
        time.sleep(0.01)
    renders.close()
    sent = {int(p.name) for p in received.iterdir()}
    assert 1 <= len(sent) <= pool.size
    for index in sorted(sent):  # each job in flight at close finished, and its result came back
        [result] = renders.results(index, index + 1)
        assert isinstance(result, Checked), result
        assert result.problems == []
    time.sleep(1.5)  # a job sent after close would have announced itself by now
    assert {int(p.name) for p in received.iterdir()} == sent
    with pytest.raises(RuntimeError, match="stopped before"):
        renders.results(0, len(many))
    [again] = pool.render([(small, site, CONTEXT)])  # the pool is still usable
    assert not isinstance(again, RenderError)


def test_an_exception_in_a_background_render_is_raised_to_the_caller(
    small: Article, site: SiteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "render.web:raise")
    with (
        RenderRun([(small, site, CONTEXT)], None) as renders,
        pytest.raises(InjectedFault, match=r"render\.web"),
    ):
        renders.results(0, 1)
    monkeypatch.delenv(FAULT_ENV)
    with RenderRun([(small, site, CONTEXT)], None) as renders:  # in this process, no pool
        [result] = renders.results(0, 1)
    assert isinstance(result, Checked)
    assert result.problems == []


def test_a_pool_with_a_spool_sends_back_paths_to_the_same_bytes(
    small: Article, site: SiteConfig, tmp_path: Path
) -> None:
    with RenderPool(workers=1, spool=tmp_path) as pool:
        [checked] = pool.render_and_check([(small, site, CONTEXT)])
    assert isinstance(checked, Checked)
    assert checked.problems == []
    assert all(isinstance(a, SpooledArtifact) for a in checked.artifacts)
    assert [a.relpath for a in checked.artifacts] == [a.relpath for a in render_article(small, site, CONTEXT)]
    web = checked.artifacts[0]
    assert isinstance(web, SpooledArtifact)
    assert web.path == tmp_path / "web" / "small" / "index.html"
    assert web.data == render_article(small, site, CONTEXT)[0].data


def test_the_publishing_process_leaves_the_pdf_libraries_to_the_workers() -> None:
    # ~55 MB of WeasyPrint, PDFium and lxml per process: only processes that render load them.
    code = (
        "import sys, clinicpress.cli, clinicpress.flows.publish\n"
        "print(sorted(m for m in ('weasyprint', 'pypdfium2', 'lxml.html') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
