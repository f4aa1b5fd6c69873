"""The Prefect deployments ``clinicpress serve`` serves: manual publish, scheduled monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import serve

from clinicpress.flows.monitor import monitor_flow
from clinicpress.flows.publish import publish_flow
from clinicpress.site import load_site


def build_deployments(site_path: Path, out_dir: Path) -> list[Any]:
    """``publish`` (triggered by hand, parameters validated) and ``monitor`` on the site's cron."""
    site = load_site(site_path)  # fail now, not at the first scheduled run
    # Absolute paths: the served process may be started from anywhere.
    common = {"site_path": str(site_path.resolve()), "out_dir": str(out_dir.resolve())}
    return [
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
    ]


def serve_deployments(site_path: Path, out_dir: Path) -> None:
    """Serve both deployments until interrupted (needs PREFECT_API_URL for a real server)."""
    serve(*build_deployments(site_path, out_dir))
