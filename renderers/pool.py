"""Render articles in parallel: long-lived worker processes, one job at a time each.

Why processes: WeasyPrint is CPU-bound Python (and not thread-safe with a
shared ``FontConfiguration``), so threads do not scale across cores.

Why our own small pool and not ``ProcessPoolExecutor``:

- ``max_tasks_per_child`` deadlocks on Python 3.11 (CPython gh-115634, fixed
  in 3.13+): the executor stops replacing a worker that retired at its limit.
- One crashed worker (a segfault in a C library, the OOM killer) breaks a
  ``ProcessPoolExecutor`` for every pending job, and ``multiprocessing.Pool``
  waits forever for the lost result. Here it is that one job's ``RenderError``
  and a replacement worker takes the rest.

Start method: ``forkserver`` with this module, the renderers and the
consistency check preloaded. The server process imports WeasyPrint once (~3 s on a
busy 2-core machine, in the background while the caller does other work);
each worker is then forked from that clean, single-threaded server in a few
ms, so recycling is cheap. Each worker owns its copy of ``handout.FONT_CONFIG``
(created before any render, so no font folder is shared) and warms its own
caches (Jinja templates, WeasyPrint's user-agent stylesheet). ``fork`` from
the caller is unsafe here: a Prefect flow process runs threads (event loop,
embedded API, log shipping) whose locks a forked child could inherit held.
``spawn`` works too but re-imports everything in every new worker.

Who uses workers (``use_pool``): a catalog (``POOL_THRESHOLD`` renders or more), and any render
inside ``head_start``, which ``clinicpress publish`` enters before importing Prefect when it
expects a few renders: the forkserver then imports WeasyPrint on another core meanwhile. A few
renders without a head start run in a thread of this process (one WeasyPrint import, not two).

A worker exits by itself after ``recycle_after`` jobs and is replaced, so the
memory that WeasyPrint and Pango caches accumulate stays bounded.

Over 400 lines on purpose: the worker's loop, the parent's pool and ``RenderRun`` (renders
started before the checks) are the two ends of one pipe protocol and read best side by side;
``head_start`` starts the same forkserver, with the same preload, that the pool forks from.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeAlias, TypeVar

from clinicpress.checks.model import Problem
from clinicpress.errors import RenderError
from clinicpress.faults import fault_point
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article

from .base import AnyArtifact, Artifact, RenderContext
from .spool import spool_artifacts

RenderJob: TypeAlias = tuple[Article, SiteConfig, RenderContext]
StartMethod = Literal["forkserver", "spawn", "fork"]

# What a worker runs, imported once by the forkserver (workers fork from it warm).
_WORKER_MODULES = ("clinicpress.renderers.registry", "clinicpress.renderers.consistency")
POOL_THRESHOLD = 8  # articles to render before worker processes are worth their start-up (cold)
DEFAULT_RECYCLE_AFTER = 200
# A 15-page handout takes ~3 s on a loaded 2-core machine; a job 100× slower is stuck, not slow.
DEFAULT_JOB_TIMEOUT = 300.0
# Loggers whose level the workers copy from the caller (the CLI quiets them unless -v).
_COPIED_LOGGERS = ("weasyprint", "fontTools", "clinicpress")


@dataclass(frozen=True)
class Checked:
    """One article's artifacts and what the consistency check found in them (empty: consistent)."""

    artifacts: list[AnyArtifact]  # spooled to files when the pool has a spool folder
    problems: list[Problem]


_Result = TypeVar("_Result", list[Artifact], Checked)


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _set_preload(ctx: BaseContext) -> None:
    # The server imports this module (hence WeasyPrint) and the caller's main module once;
    # workers fork from it warm and skip re-importing main (a guarded script).
    ctx.set_forkserver_preload(["__main__", __name__, *_WORKER_MODULES])


# Set while a caller that started the forkserver early runs its renders (a context, not a global:
# one process may run many publishes, e.g. a test session or a served deployment).
_HEAD_START: ContextVar[bool] = ContextVar("clinicpress_render_head_start", default=False)


@contextlib.contextmanager
def head_start(wanted: bool) -> Iterator[None]:
    """With ``wanted``: start the workers' forkserver now, and render in workers inside the block.

    The forkserver imports WeasyPrint (~1 s) on another core while this process goes on
    (``clinicpress publish`` enters this before importing Prefect when it expects a render); a
    pool created inside the block forks its workers from it warm, so even one render is worth a
    worker (:func:`use_pool`). Without ``wanted``: nothing.
    """
    if not wanted:
        yield
        return
    import multiprocessing.forkserver

    _set_preload(multiprocessing.get_context("forkserver"))
    multiprocessing.forkserver.ensure_running()  # returns at once; the server imports in the background
    token = _HEAD_START.set(True)
    try:
        yield
    finally:
        _HEAD_START.reset(token)


def is_catalog(renders: int) -> bool:
    """Enough renders for worker processes started cold, and for a spool in --out."""
    return renders >= POOL_THRESHOLD


def use_pool(renders: int) -> bool:
    """Render in worker processes? Yes for a catalog, or for any render inside :func:`head_start`;
    a few renders without a head start are quicker in this process (no second WeasyPrint import)."""
    return is_catalog(renders) or (renders > 0 and _HEAD_START.get())


# --- the worker process ------------------------------------------------------------------


def _job(
    article: Article, site: SiteConfig, context: RenderContext, check: bool, spool: str | None = None
) -> list[Artifact] | Checked:
    # Imported here, not at the top: a process that only hands jobs to the pool never loads
    # WeasyPrint, PDFium or lxml (~55 MB); the forkserver preloads them for the workers.
    from clinicpress.renderers.consistency import consistency_problems
    from clinicpress.renderers.markdown import image_artifacts
    from clinicpress.renderers.registry import render_article

    # The article's local images go live with its pages: web/<slug>/images/<name> (issue 24).
    artifacts = [*render_article(article, site, context), *image_artifacts(article)]
    if not check:
        return artifacts
    fault_point("check.consistency")
    problems = consistency_problems(article, site, artifacts)
    # Spooled after the check (it reads the bytes in memory); the parent gets paths, not megabytes.
    kept: list[AnyArtifact] = [*spool_artifacts(Path(spool), artifacts)] if spool else [*artifacts]
    return Checked(kept, problems)


def render_and_check_here(jobs: Sequence[RenderJob]) -> list[Checked | RenderError]:
    """What ``RenderPool.render_and_check`` does, in this process (few articles: no pool start-up)."""
    results: list[Checked | RenderError] = []
    for article, site, context in jobs:
        try:
            checked = _job(article, site, context, True)
        except RenderError as exc:
            results.append(exc)
        else:
            assert isinstance(checked, Checked)
            results.append(checked)
    return results


def _worker_main(conn: Connection, recycle_after: int, log_levels: dict[str, int], spool: str | None) -> None:
    """Serve jobs from ``conn`` until ``recycle_after`` are done, ``None`` arrives or the pipe closes."""
    # Ctrl-C goes to the whole process group: the parent decides, and closes us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name, level in log_levels.items():
        logging.getLogger(name).setLevel(level)
    for _ in range(recycle_after):
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, article, site, context, check = message
        result: list[Artifact] | Checked | RenderError
        try:
            result = _job(article, site, context, check, spool)
        except RenderError as exc:
            result = exc
        except Exception as exc:  # any library error is this article's failure, never the batch's
            result = RenderError(f"{article.key}: rendering failed ({type(exc).__name__}: {exc})")
        conn.send((index, result))


# --- the pool ----------------------------------------------------------------------------


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    done: int = 0
    job: int | None = None  # index of the job in flight
    since: float = 0.0  # monotonic time the job was sent


@dataclass
class PoolStats:
    """What the pool did so far (for tests, benchmarks and logs)."""

    started: list[int] = field(default_factory=list)  # pid of every worker ever started
    renders_by_pid: dict[int, int] = field(default_factory=dict)
    crashed: int = 0  # workers that died or were killed in the middle of a job


class RenderPool:
    """Long-lived render workers; results come back in job order, one error per failed job.

    ::

        with RenderPool() as pool:
            results = pool.render_and_check(jobs)   # list of Checked | RenderError

    Workers start in the background when the pool is created, so creating it
    early (before the link check) hides their start-up. Not thread-safe: one
    batch at a time.
    """

    def __init__(
        self,
        workers: int | None = None,
        recycle_after: int = DEFAULT_RECYCLE_AFTER,
        *,
        start_method: StartMethod = "forkserver",
        job_timeout: float | None = DEFAULT_JOB_TIMEOUT,
        spool: Path | None = None,
    ) -> None:
        if recycle_after < 1:
            raise ValueError(f"recycle_after must be at least 1, got {recycle_after}")
        self.size = workers if workers is not None else default_workers()
        if self.size < 1:
            raise ValueError(f"workers must be at least 1, got {self.size}")
        self.recycle_after = recycle_after
        self.job_timeout = job_timeout
        self.spool = spool  # workers write checked artifacts here (``Spool``) and send their paths
        self.stats = PoolStats()
        self._ctx: BaseContext = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            _set_preload(self._ctx)
        self._log_levels = {name: logging.getLogger(name).getEffectiveLevel() for name in _COPIED_LOGGERS}
        self._workers: list[_Worker] = []
        self._closed = False
        self._start_error: BaseException | None = None
        self._starter = threading.Thread(target=self._start_all, name="render-pool-start", daemon=True)
        self._starter.start()

    # -- lifecycle --

    def _spawn(self) -> _Worker:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=_worker_main,
            args=(child_end, self.recycle_after, self._log_levels, str(self.spool) if self.spool else None),
            name="clinicpress-render",
            daemon=True,  # dies with the parent even if close() is never reached
        )
        process.start()
        child_end.close()  # only the worker holds it now: its death shows as EOF here
        assert process.pid is not None
        self.stats.started.append(process.pid)
        return _Worker(process, parent_end)

    def _start_all(self) -> None:
        try:
            for _ in range(self.size):
                self._workers.append(self._spawn())
        except BaseException as exc:  # re-raised in the caller's thread by _ready()
            self._start_error = exc

    def _ready(self) -> None:
        if self._closed:
            raise RuntimeError("the render pool is closed")
        self._starter.join()
        if self._start_error is not None:
            raise RuntimeError(f"render workers could not start: {self._start_error}") from self._start_error

    def _retire(self, worker: _Worker, *, kill: bool = False) -> None:
        if kill:
            worker.process.kill()
        worker.process.join(timeout=10)
        if worker.process.is_alive():  # pragma: no cover - a worker that ignores its closed pipe
            worker.process.kill()
            worker.process.join(timeout=10)
        worker.conn.close()
        worker.process.close()

    def _replace(self, worker: _Worker, *, kill: bool = False) -> None:
        self._retire(worker, kill=kill)
        self._workers[self._workers.index(worker)] = self._spawn()

    def close(self) -> None:
        """Stop every worker (idempotent). Workers mid-job are killed."""
        if self._closed:
            return
        self._closed = True
        self._starter.join()
        for worker in self._workers:
            try:
                if worker.job is None:
                    worker.conn.send(None)
            except OSError:
                pass  # already gone
        for worker in self._workers:
            self._retire(worker, kill=worker.job is not None)
        self._workers.clear()

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def worker_pids(self) -> list[int]:
        """The pids of the workers alive now."""
        self._starter.join()
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    # -- rendering --

    def render(
        self, jobs: Sequence[RenderJob], on_result: Callable[[int], None] | None = None
    ) -> list[list[Artifact] | RenderError]:
        """``render_article`` of every job, in job order; a failed job is its ``RenderError``.

        ``on_result(index)`` is called in this thread as each job finishes (a progress bar).
        """
        return self.run_jobs(jobs, check=False, on_result=_indexed(on_result), kind=list)

    def render_and_check(
        self, jobs: Sequence[RenderJob], on_result: Callable[[int], None] | None = None
    ) -> list[Checked | RenderError]:
        """Render and run the consistency check in the worker (reading a PDF back is CPU work too)."""
        return self.run_jobs(jobs, check=True, on_result=_indexed(on_result), kind=Checked)

    def run_jobs(
        self,
        jobs: Sequence[RenderJob],
        *,
        check: bool,
        on_result: Callable[[int, _Result | RenderError], None],
        kind: type[_Result],
        stop: threading.Event | None = None,
    ) -> list[_Result | RenderError]:
        """Every job in order; with ``stop`` set, no new job is sent and the jobs in flight finish.

        ``on_result(index, result)`` is called in this thread as each job finishes (``render`` and
        ``render_and_check`` wrap it; ``RenderRun`` below collects results as they come)."""
        self._ready()
        results: list[_Result | RenderError | None] = [None] * len(jobs)
        pending = deque(range(len(jobs)))
        left = len(jobs)

        def finish(index: int, result: _Result | RenderError) -> None:
            nonlocal left
            results[index] = result
            left -= 1
            on_result(index, result)

        while left:
            if stop is not None and stop.is_set():
                left -= len(pending)
                pending.clear()
            for worker in self._workers:
                if worker.job is None and pending:
                    index = pending.popleft()
                    article, site, context = jobs[index]
                    try:
                        worker.conn.send((index, article, site, context, check))
                    except OSError:  # the worker died while idle: the job was never sent
                        pending.appendleft(index)
                        self._replace(worker, kill=True)
                        continue
                    worker.job, worker.since = index, time.monotonic()
            busy = [w for w in self._workers if w.job is not None]
            if not busy:
                break
            # Woken at least once a second to notice ``stop``.
            timeout = self._wait_timeout(busy)
            wait_for = 1.0 if timeout is None else min(timeout, 1.0)
            multiprocessing.connection.wait([w.conn for w in busy], timeout=wait_for)
            for worker in busy:
                self._collect(worker, jobs, kind, finish)
        return [r for r in results if r is not None]

    def _wait_timeout(self, busy: list[_Worker]) -> float | None:
        if self.job_timeout is None or not busy:
            return None
        oldest = min(w.since for w in busy)
        return max(0.0, oldest + self.job_timeout - time.monotonic())

    def _collect(
        self,
        worker: _Worker,
        jobs: Sequence[RenderJob],
        kind: type[_Result],
        finish: Callable[[int, _Result | RenderError], None],
    ) -> None:
        index = worker.job
        assert index is not None
        key = jobs[index][0].key
        try:
            if worker.conn.poll():
                reply_index, result = worker.conn.recv()
            elif self.job_timeout is not None and time.monotonic() - worker.since > self.job_timeout:
                self.stats.crashed += 1
                worker.job = None
                self._replace(worker, kill=True)
                finish(index, RenderError(f"{key}: rendering took over {self.job_timeout:.0f} s; stopped"))
                return
            else:
                return  # still working
        except (EOFError, OSError):  # the pipe closed without a reply: the worker died mid-job
            code = worker.process.exitcode if not worker.process.is_alive() else None
            self.stats.crashed += 1
            worker.job = None
            self._replace(worker, kill=True)
            finish(index, RenderError(f"{key}: the render worker died (exit code {code})"))
            return
        assert reply_index == index, f"worker answered job {reply_index}, expected {index}"
        worker.job = None
        worker.done += 1
        pid = worker.process.pid
        assert pid is not None
        self.stats.renders_by_pid[pid] = self.stats.renders_by_pid.get(pid, 0) + 1
        if worker.done >= self.recycle_after:
            self._replace(worker)  # it exits by itself after its last reply
        if not isinstance(result, RenderError | kind):
            result = RenderError(f"{key}: unexpected reply from the render worker ({type(result).__name__})")
        finish(index, result)


def _indexed(on_result: Callable[[int], None] | None) -> Callable[[int, object], None]:
    return (lambda index, _: on_result(index)) if on_result is not None else (lambda index, _: None)


class RenderRun:
    """Jobs rendering (and consistency-checked) in the background; wait for slices of them.

    Started early, the renders overlap the work that does not need them yet
    (the link check, verification); a render nobody collects is thrown away.
    With a pool the work is in its worker processes; without one (a few
    articles) it is in one thread of this process. An exception escaping a
    render (an injected fault) is raised again by ``results``.

    ::

        with RenderRun(jobs, pool) as renders:   # starts rendering now
            ...                                    # check the sources meanwhile
            batch = renders.results(0, 50)         # waits for jobs 0..49
    """

    def __init__(self, jobs: Sequence[RenderJob], pool: RenderPool | None) -> None:
        self._jobs = list(jobs)
        self._pool = pool
        self._results: list[Checked | RenderError | None] = [None] * len(self._jobs)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="clinicpress-renders", daemon=True)
        self._thread.start()

    def _deliver(self, index: int, result: Checked | RenderError) -> None:
        with self._changed:
            self._results[index] = result
            self._changed.notify_all()

    def _work(self) -> None:
        try:
            if self._pool is not None:
                self._pool.run_jobs(
                    self._jobs, check=True, on_result=self._deliver, kind=Checked, stop=self._stop
                )
            else:
                for index, job in enumerate(self._jobs):
                    if self._stop.is_set():
                        break
                    [result] = render_and_check_here([job])
                    self._deliver(index, result)
        except BaseException as exc:  # raised again in the caller's thread by results()
            with self._changed:
                self._error = exc
                self._changed.notify_all()

    def results(self, start: int, stop: int) -> list[Checked | RenderError]:
        """Jobs ``start``..``stop - 1``, waiting for the ones not finished yet."""
        with self._changed:
            while True:
                if self._error is not None:
                    raise self._error
                wanted = self._results[start:stop]
                if all(r is not None for r in wanted):
                    return [r for r in wanted if r is not None]
                if not self._thread.is_alive():  # stopped before these were rendered
                    raise RuntimeError("the background renders stopped before these jobs finished")
                self._changed.wait(timeout=1.0)

    def close(self) -> None:
        """Send no more jobs and wait for those in flight (at most one render per worker)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> RenderRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "POOL_THRESHOLD",
    "Checked",
    "PoolStats",
    "RenderJob",
    "RenderPool",
    "RenderRun",
    "default_workers",
    "head_start",
    "is_catalog",
    "use_pool",
]
