"""The ``publish-catalog`` flow: one ``publish`` flow run per batch of articles, on a work pool.

Thin on purpose: it splits the article files into batches, triggers one run of
the deployment ``publish/<pool>`` (``clinicpress deploy``) per batch, waits for
all of them (bounded) and adds up what each reported. Workers, on this machine
or others sharing the project and output folders, do the checking and
rendering. Batches publish one after another under the release lock
(``outputs/publish.py``), each staged from the release the previous one made live.

What each batch reported is its flow run's result, persisted as JSON under
``<out>/.flow-results`` (the output folder is shared by every worker) and
removed once read: it carries every article's full report, so the CLI prints
the same report as an in-process publish. (The published reports would not
say which articles were blocked: a blocked article writes nothing.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID, uuid4

from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from pydantic import BaseModel, Field

from clinicpress import progress
from clinicpress.checks.model import Verdict
from clinicpress.checks.report_text import skipped_line
from clinicpress.errors import ClinicpressError, InputError
from clinicpress.flows.deployments import pool_deployment_name
from clinicpress.flows.json_flow import flow
from clinicpress.flows.publish import ArticleOutcome, PublishResult
from clinicpress.outputs.holds import HeldArticle
from clinicpress.sources.loader import Skipped, discover_articles
from clinicpress.workspace import PublishOptions, Workspace

DEFAULT_BATCH_SIZE = 50
DEFAULT_WAIT_SECONDS = 3600.0  # for all batches together; a run still going after that fails the parent
POLL_SECONDS = 2.0
RESULTS_DIR = ".flow-results"  # under --out, which every worker shares
WORKER_LABEL = "prefect.worker.name"  # the label a worker puts on each flow run it takes


class BatchOutcome(BaseModel):
    """One batch: its flow run, where it ran, how it ended and (when it completed) what it reported."""

    number: int  # 1-based
    paths: list[str]
    flow_run_id: str
    flow_run_name: str
    state: str  # the Prefect state name: Completed, Failed, Crashed, Cancelled, Late, Running, …
    message: str = ""
    worker: str | None = None
    result: PublishResult | None = None  # None: the batch failed (see state and message)

    @property
    def failed(self) -> bool:
        return self.result is None

    def counts(self) -> tuple[int, int, int]:
        """(published, unchanged, blocked) articles of this batch."""
        outcomes = self.result.outcomes if self.result else []
        return (
            sum(o.published for o in outcomes),
            sum(o.unchanged for o in outcomes),
            sum(o.report.verdict is Verdict.BLOCKED for o in outcomes),
        )

    def summary(self, total: int) -> str:
        where = f"on worker {self.worker}" if self.worker else "on no worker"
        head = f"batch {self.number}/{total} ({len(self.paths)} article(s)): {self.state} {where}"
        if self.result is None:
            return f"{head} (flow run {self.flow_run_name}): {self.message or 'no result'}"
        published, unchanged, blocked = self.counts()
        return f"{head}: {published} published, {unchanged} unchanged, {blocked} blocked"


class CatalogResult(BaseModel):
    deployment: str
    out_dir: str
    batches: list[BatchOutcome]

    @property
    def failed(self) -> list[BatchOutcome]:
        return [b for b in self.batches if b.failed]

    @property
    def outcomes(self) -> list[ArticleOutcome]:
        return [o for b in self.batches if b.result for o in b.result.outcomes]

    @property
    def newsletters(self) -> list[str]:
        return [line for b in self.batches if b.result for line in b.result.newsletters]

    @property
    def skipped(self) -> list[Skipped]:
        """Files a batch did not load (skipped with their error, issue 24): none of them published."""
        return [item for b in self.batches if b.result for item in b.result.skipped]

    @property
    def held(self) -> list[HeldArticle]:
        """Versions a rollback holds (issue 24): each batch skipped them, saying so."""
        return [item for b in self.batches if b.result for item in b.result.held]

    @property
    def newsletters_incomplete(self) -> bool:
        return any(b.result.newsletters_incomplete for b in self.batches if b.result)

    def summary(self) -> str:
        published, unchanged, blocked = (
            sum(c) for c in zip(*(b.counts() for b in self.batches), strict=True)
        )
        failed = f", {len(self.failed)} batch(es) failed" if self.failed else ""
        skipped = f"; {skipped_line(self.skipped)}" if self.skipped else ""
        return (
            f"{len(self.batches)} batch(es) on {self.deployment}: {published} published, "
            f"{unchanged} unchanged, {blocked} blocked{failed}{skipped}"
        )


class BatchesFailed(ClinicpressError):
    """A batch's flow run did not complete: its articles were not published (the others were)."""

    def __init__(self, result: CatalogResult) -> None:
        self.result = result
        total = len(result.batches)
        failed = "; ".join(
            f"batch {b.number}/{total} ({', '.join(Path(p).name for p in b.paths)}): flow run "
            f"{b.flow_run_name} {b.state}{': ' + b.message if b.message else ''}"
            for b in result.failed
        )
        super().__init__(f"{len(result.failed)} of {total} batch(es) failed: {failed}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect may pickle a flow's exception; the default would call __init__ with the message.
        return (type(self), (self.result,))


def batched(paths: list[str], size: int) -> list[list[str]]:
    return [paths[start : start + size] for start in range(0, len(paths), size)]


def _batch_job_variables(results_dir: Path) -> dict[str, Any]:
    """Make each batch's flow run persist its result where this flow can read it back."""
    return {
        "env": {
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            # The flow's result only: task results (rendered PDFs among them) stay in memory.
            "PREFECT_TASKS_DEFAULT_PERSIST_RESULT": "false",
            # JSON, not pickle: reading a pickle from a shared folder would run whatever it holds.
            "PREFECT_RESULTS_DEFAULT_SERIALIZER": "json",
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(results_dir),
        }
    }


def _trigger(
    deployment: str,
    parameters: dict[str, Any],
    name: str,
    job_variables: dict[str, Any],
    key: str,
) -> FlowRun:
    """One flow run of the deployment, linked to this run as a subflow, returned at once (not awaited)."""
    run = run_deployment(
        deployment,
        parameters=parameters,
        timeout=0,  # trigger every batch now; _wait polls them together
        flow_run_name=name,
        job_variables=job_variables,
        idempotency_key=key,
    )
    assert isinstance(run, FlowRun)  # called from sync code: the run itself, not a coroutine
    return run


def _wait(ids: list[UUID], deadline: float) -> dict[UUID, FlowRun]:
    """Poll the runs until all are final or the deadline passes; the latest read of each."""
    latest: dict[UUID, FlowRun] = {}
    done: set[UUID] = set()
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
            for run in runs:
                latest[run.id] = run
                if run.id not in done and run.state is not None and run.state.is_final():
                    done.add(run.id)
                    progress.advance("batches")
            if len(done) == len(ids) or time.monotonic() >= deadline:
                return latest
            time.sleep(POLL_SECONDS)


def _read_result(run: FlowRun, results_dir: Path) -> tuple[PublishResult | None, str]:
    """The batch's PublishResult, its file removed once read; else None and why."""
    state = run.state
    if state is None or not state.is_completed():
        return None, (state.message or "") if state else "no state"
    try:
        value = state.result(raise_on_failure=False)
    except Exception as exc:  # a missing or unreadable result file: the batch cannot be accounted for
        return None, f"its result could not be read from {results_dir} ({type(exc).__name__}: {exc})"
    # A persisted result's state data is its record's metadata: the file is at its storage key.
    storage_key = getattr(state.data, "storage_key", None)
    if isinstance(storage_key, str) and Path(storage_key).parent == results_dir:
        Path(storage_key).unlink(missing_ok=True)  # only ever a file in our own folder
    if not isinstance(value, PublishResult):
        return None, f"it returned {type(value).__name__}, not a publish result"
    return value, ""


def summary_markdown(result: CatalogResult) -> str:
    """The batches, left as a Prefect markdown artifact of the parent run."""
    lines = [
        "# clinicpress publish-catalog",
        "",
        result.summary(),
        "",
        "| batch | flow run | worker | state | published | unchanged | blocked |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for batch in result.batches:
        published, unchanged, blocked = batch.counts()
        lines.append(
            f"| {batch.number} | {batch.flow_run_name} | {batch.worker or '—'} | {batch.state} "
            f"| {published} | {unchanged} | {blocked} |"
        )
    return "\n".join(lines) + "\n"


@flow(name="publish-catalog", validate_parameters=True)
def publish_catalog_flow(
    paths: list[str],
    site_path: str,
    out_dir: str,
    work_pool: str,
    batch_size: Annotated[int, Field(ge=1)] = DEFAULT_BATCH_SIZE,
    strict: bool = False,
    force: bool = False,
    use_cache: bool = True,
    test_to: str | None = None,
    wait_seconds: Annotated[float, Field(gt=0)] = DEFAULT_WAIT_SECONDS,
    triggered_by: str | None = None,
) -> CatalogResult:
    """Publish the articles as one ``publish/<work_pool>`` flow run per batch; fail if any batch fails.

    Paths must be absolute (or valid where the workers run): the batches run elsewhere. Each batch
    gets this run's ``Workspace`` (resolved) and ``PublishOptions`` as the publish flow's parameters.
    """
    workspace = Workspace.of(site_path, out_dir).resolved()
    options = PublishOptions(
        strict=strict, force=force, use_cache=use_cache, test_to=test_to, triggered_by=triggered_by
    )
    from clinicpress.outputs.delivery.people import trigger_problem  # the delivery package: on use

    if problem := trigger_problem(triggered_by):  # refused before any batch is triggered
        raise InputError(None, "triggered_by", problem, "one person's name (who publishes), or none")
    files = [str(path.resolve()) for path in discover_articles(paths)]
    batches = batched(files, batch_size)
    deployment = pool_deployment_name(work_pool)
    results_dir = workspace.out_dir / RESULTS_DIR
    context = FlowRunContext.get()
    # Outside a flow run (the function called directly) there is no retry to guard: a fresh key, so two
    # calls never share "none:batch-1" and the second is never handed the first one's runs.
    parent = str(context.flow_run.id) if context and context.flow_run else f"direct-{uuid4()}"
    progress.start("batches", len(batches))
    runs = [
        _trigger(
            deployment,
            # Who published (triggered_by) goes along, for [newsletter] approval_required; a batch
            # never pauses for the form (it is no deployment's own run: flows/newsletter.py).
            parameters={
                "paths": batch,
                **workspace.flow_parameters(),
                **options.flow_parameters(approval_wait=False),
            },
            name=f"batch-{number}-of-{len(batches)}",
            job_variables=_batch_job_variables(results_dir),
            # A retry of this parent run must not start the same batch twice.
            key=f"{parent}:batch-{number}",
        )
        for number, batch in enumerate(batches, start=1)
    ]
    final = _wait([run.id for run in runs], time.monotonic() + wait_seconds)
    outcomes = []
    for number, (batch, triggered) in enumerate(zip(batches, runs, strict=True), start=1):
        run = final.get(triggered.id, triggered)
        value, why = _read_result(run, results_dir)
        state = run.state.name if run.state else "Unknown"
        if run.state is not None and not run.state.is_final():
            why = f"still {state} after {wait_seconds:.0f} s; it may yet finish on its worker"
        outcomes.append(
            BatchOutcome(
                number=number,
                paths=batch,
                flow_run_id=str(run.id),
                flow_run_name=run.name,
                state=state,
                message=why,
                worker=str(run.labels[WORKER_LABEL]) if WORKER_LABEL in (run.labels or {}) else None,
                result=value,
            )
        )
    result = CatalogResult(deployment=deployment, out_dir=out_dir, batches=outcomes)
    create_markdown_artifact(
        summary_markdown(result), key="publish-catalog-report", description="clinicpress publish-catalog"
    )
    if result.failed:
        raise BatchesFailed(result)
    return result
