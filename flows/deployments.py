"""The Prefect deployments: those ``clinicpress serve`` serves (manual publish, scheduled monitor,
the clinician's review, scheduled bounce reading) and the ``publish`` deployment ``clinicpress
deploy`` registers on a process work pool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prefect import serve
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.runner.storage import LocalStorage
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL
from prefect.workers.process import ProcessWorker

import clinicpress
from clinicpress.errors import InputError
from clinicpress.hints import command
from clinicpress.site import load_site

# The flows are imported where used: they pull in the renderers (WeasyPrint), seconds on a busy
# machine, and `publish --work-pool` should say "no server" before paying for that.
POOL_TYPE = "process"  # flow runs as subprocesses of `prefect worker start`: no image to build
PUBLISH_FLOW = "publish"  # the name in flows/publish.py's @flow; deploy_to_pool checks it
# A module path, not "flows/publish.py:…": loaded as a script, the flow's result classes would live
# in a module the reading side cannot import.
PUBLISH_ENTRYPOINT = "clinicpress.flows.publish.publish_flow"


def build_deployments(site_path: Path, out_dir: Path) -> list[Any]:
    """``publish`` (triggered by hand, parameters validated), ``monitor`` on the site's cron,
    ``review`` (by hand with ``paths``: it pauses for the clinician's form, flows/review.py), and
    ``bounces`` on ``[newsletter.bounces] schedule`` when the site names a bounce mailbox."""
    from clinicpress.flows.bounces import bounces_flow
    from clinicpress.flows.monitor import monitor_flow
    from clinicpress.flows.publish import publish_flow
    from clinicpress.flows.review import review_flow

    site = load_site(site_path)  # fail now, not at the first scheduled run
    # Absolute paths: the served process may be started from anywhere.
    common = {"site_path": str(site_path.resolve()), "out_dir": str(out_dir.resolve())}
    deployments = [
        publish_flow.to_deployment(
            name="publish",
            parameters=common,
            description="Verify and publish articles (trigger from the UI or `prefect deployment run`).",
        ),
        monitor_flow.to_deployment(
            name="monitor",
            parameters=common,
            cron=site.monitor.schedule,
            description="Re-check published sources, licenses and reviews; alert on transitions.",
        ),
        review_flow.to_deployment(
            name="review",
            parameters=common,
            description="A clinician reviews articles (paths): checks, the three channels and the diff in an "
            "artifact, then a form on the paused run records the sign-off ([review] publish_on_approve "
            "then publishes).",
        ),
    ]
    if (mailbox := site.newsletter.bounces) is not None:
        deployments.append(
            bounces_flow.to_deployment(
                name="bounces",
                parameters=common,
                cron=mailbox.schedule,
                description="Read bounces and complaints from [newsletter.bounces] and suppress their "
                "addresses (the IMAP password from CLINICPRESS_BOUNCES__IMAP_PASSWORD).",
            )
        )
    return deployments


def serve_deployments(site_path: Path, out_dir: Path) -> None:
    """Serve the deployments until interrupted (needs PREFECT_API_URL for a real server)."""
    if url := PREFECT_API_URL.value():
        require_login(str(url))  # one line now, not a traceback from the first registration
    serve(*build_deployments(site_path, out_dir))


def project_root() -> Path:
    """Where the installed clinicpress code lives: the worker's flow runs start in this folder."""
    return Path(clinicpress.__file__).resolve().parent.parent


def pool_deployment_name(work_pool: str) -> str:
    """``publish/<pool>``: one deployment per pool, apart from the served ``publish/publish``."""
    return f"{PUBLISH_FLOW}/{work_pool}"


def check_pool_name(work_pool: str) -> None:
    """The pool's name also names its deployment: it must be one Prefect accepts, and not ours."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", work_pool):
        raise InputError(None, "--work-pool", f"{work_pool!r} is not a pool name", "letters, digits, . _ -")
    if work_pool == PUBLISH_FLOW:
        # publish/publish is the deployment `clinicpress serve` serves: one would replace the other.
        raise InputError(None, "--work-pool", f"{work_pool!r} is used by `clinicpress serve`", "another name")


def require_api() -> str:
    """The URL of a Prefect server that answers, else an InputError (exit 2) saying what to start."""
    url = PREFECT_API_URL.value()
    if not url:
        # Without it Prefect would start a throw-away embedded API that no worker can reach.
        raise InputError(
            None,
            "PREFECT_API_URL",
            "is not set; a work pool needs a running Prefect server",
            "e.g. http://127.0.0.1:4200/api of a running `prefect server start`",
        )
    with get_client(sync_client=True) as client:
        failure = client.api_healthcheck()
    if failure is not None:
        raise InputError(
            None,
            "PREFECT_API_URL",
            f"no Prefect server answers at {url} ({type(failure).__name__})",
            "a running `prefect server start` at that address",
        )
    require_login(str(url))
    return str(url)


def require_login(url: str) -> None:
    """The server lets this client in, else an InputError (exit 2) naming the setting to fix.

    Its health check answers everyone, so ask for something that needs the auth string when the
    server was started with one (``PREFECT_SERVER_API_AUTH_STRING``). The string is never shown.
    """
    try:
        with get_client(sync_client=True) as client:
            client.hello()
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != httpx.codes.UNAUTHORIZED:
            raise
        given = "is wrong" if PREFECT_API_AUTH_STRING.value() else "is not set"
        raise InputError(
            None,
            "PREFECT_API_AUTH_STRING",
            f"{given}: the Prefect server at {url} answered 401 Unauthorized",
            "the auth string the server was started with (its PREFECT_SERVER_API_AUTH_STRING), "
            "in this environment",
        ) from exc


@dataclass(frozen=True)
class PoolDeployment:
    work_pool: str
    pool_created: bool
    name: str  # "publish/<pool>"
    deployment_id: str
    working_dir: Path
    site_path: Path
    out_dir: Path


def deploy_to_pool(site_path: Path, out_dir: Path, work_pool: str) -> PoolDeployment:
    """Create the process pool if missing and (re)register ``publish/<pool>`` on it.

    Workers on any machine that has clinicpress installed and sees ``site_path``
    and ``out_dir`` at the same absolute paths can run it.
    """
    check_pool_name(work_pool)
    load_site(site_path)  # fail now, not in every batch on the workers
    require_api()
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(work_pool)
            created = False
        except ObjectNotFound:
            pool = client.create_work_pool(
                WorkPoolCreate(
                    name=work_pool,
                    type=POOL_TYPE,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="clinicpress: batches of the publish flow, run by `prefect worker start`",
                )
            )
            created = True
    if pool.type != POOL_TYPE:
        # Other pool types run flows in containers or elsewhere, where this folder does not exist.
        raise InputError(
            None,
            "--work-pool",
            f"{work_pool!r} is a {pool.type!r} work pool",
            f"a {POOL_TYPE!r} pool (pick another name and it is created)",
        )
    root = project_root()
    # Local storage: no code is copied; the run starts in `root` (a set_working_directory pull step).
    deployment = RunnerDeployment.from_storage(
        storage=LocalStorage(str(root)),
        entrypoint=PUBLISH_ENTRYPOINT,
        name=work_pool,
        work_pool_name=work_pool,
        # Absolute paths: a worker's flow run starts in its own working directory.
        parameters={"site_path": str(site_path.resolve()), "out_dir": str(out_dir.resolve())},
        description="Verify and publish one batch of articles (clinicpress publish --work-pool).",
    )
    assert isinstance(deployment, RunnerDeployment)  # called from sync code: not a coroutine
    assert deployment.flow_name == PUBLISH_FLOW, deployment.flow_name  # pool_deployment_name relies on it
    deployment_id = deployment.apply(work_pool_name=work_pool)
    return PoolDeployment(
        work_pool=work_pool,
        pool_created=created,
        name=pool_deployment_name(work_pool),
        deployment_id=str(deployment_id),
        working_dir=root,
        site_path=site_path.resolve(),
        out_dir=out_dir.resolve(),
    )


def preflight(work_pool: str) -> None:
    """Fail in seconds with one line (exit 2) instead of waiting on runs no worker will take."""
    check_pool_name(work_pool)
    url = require_api()
    name = pool_deployment_name(work_pool)
    deploy_hint = f"`{command('deploy', '--work-pool', work_pool)}` first"
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(work_pool)
        except ObjectNotFound as exc:
            raise InputError(
                None, "--work-pool", f"no work pool {work_pool!r} on the Prefect server at {url}", deploy_hint
            ) from exc
        try:
            deployment = client.read_deployment_by_name(name)
        except ObjectNotFound as exc:
            raise InputError(None, "--work-pool", f"no deployment {name!r} at {url}", deploy_hint) from exc
        if deployment.work_pool_name != work_pool:
            raise InputError(
                None, "--work-pool", f"deployment {name!r} is not on work pool {work_pool!r}", deploy_hint
            )
        if pool.is_paused:
            resume = f"`prefect work-pool resume {work_pool}`"
            raise InputError(None, "--work-pool", f"work pool {work_pool!r} is paused", resume)
        online = client.read_workers_for_work_pool(
            work_pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
        )
    if not online:
        raise InputError(
            None,
            "--work-pool",
            f"no worker is polling work pool {work_pool!r}",
            f"at least one `prefect worker start --pool {work_pool}`",
        )
