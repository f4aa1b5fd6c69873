"""The floor: the renderers called directly, no Prefect, one process per core.

Imported by the worker processes of the floor (keep it free of the farm and of test helpers).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from clinicpress.renderers.base import Artifact, RenderContext
from clinicpress.renderers.consistency import consistency_problems
from clinicpress.renderers.registry import RENDERERS
from clinicpress.site import SiteConfig, load_site
from clinicpress.sources.loader import load_article

PHASES = ("load", "web", "handout", "newsletter", "consistency")
_SITES: dict[str, SiteConfig] = {}

Chunk = tuple[list[str], str, bool]


def render_chunk(chunk: Chunk) -> tuple[int, dict[str, list[float]], int, int]:
    """Load and render (and check) some articles: per-article CPU seconds per phase, and failures.

    CPU time, not wall time: on a shared machine wall time per phase grows with other people's load.
    """
    paths, site_path, check = chunk
    site = _SITES.get(site_path) or _SITES.setdefault(site_path, load_site(site_path))
    context = RenderContext(published_at=datetime.now().astimezone(), version="0" * 64)
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    failures = 0
    for path in paths:
        start = time.process_time()
        article = load_article(path)
        times["load"].append(time.process_time() - start)
        artifacts: list[Artifact] = []
        for channel, renderer in RENDERERS.items():  # render_article's loop, timed per channel
            if channel in article.channels:
                start = time.process_time()
                artifacts.extend(renderer.render(article, site, context))
                times[channel.value].append(time.process_time() - start)
        if check:
            start = time.process_time()
            failures += bool(consistency_problems(article, site, artifacts))
            times["consistency"].append(time.process_time() - start)
    return len(paths), times, failures, 0


@dataclass
class FloorResult:
    seconds: float
    articles: int
    failures: int
    times: dict[str, list[float]] = field(default_factory=dict)


def run_floor(paths: Sequence[Path], site: Path, workers: int, check: bool, chunk: int = 4) -> FloorResult:
    """Every article through the renderers in ``workers`` processes (process start and imports included)."""
    chunks: list[Chunk] = [
        ([str(p) for p in paths[i : i + chunk]], str(site), check) for i in range(0, len(paths), chunk)
    ]
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    done = failures = 0
    start = time.perf_counter()
    # forkserver: the benchmark process runs the farm's threads; never fork it.
    with multiprocessing.get_context("forkserver").Pool(workers) as pool:
        for n, chunk_times, chunk_failures, _ in pool.imap_unordered(render_chunk, chunks):
            done += n
            failures += chunk_failures
            for phase, values in chunk_times.items():
                times[phase].extend(values)
    return FloorResult(time.perf_counter() - start, done, failures, times)
