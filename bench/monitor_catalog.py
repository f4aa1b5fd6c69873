"""Benchmark: one `clinicpress monitor` run over a 1,000-article catalog on a loopback farm.

    .venv/bin/python bench/monitor_catalog.py [--articles 1000] [--per-article 5] [--distinct 2000] [--runs 3]

The catalog (1,000 articles citing 5 sources each, 5,000 citations of 2,000
distinct URLs: 94 % 200, 3 % 404, 2 % 301, 1 % 503) is written straight into
a registry, then `clinicpress monitor` runs as a whole process, the way a
user runs it (Prefect's embedded API included). The baseline, measured in
the same run on the same farm, is the link check alone in one process
(`check_urls` over the 2,000 distinct URLs): the ratio says what the
registry, the transitions, Prefect and process start add to the checking.
Loopback only; the farm stops by itself.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from httpfarm import HTTPFarm, Reply  # noqa: E402  (the tests' loopback server)

from clinicpress.checks.links import check_urls  # noqa: E402
from clinicpress.outputs.registry import Registry  # noqa: E402
from clinicpress.site import License, load_site  # noqa: E402

SITE_OVERRIDES = """
[checks.links]
allow_private_hosts = ["127.0.0.1"]
timeout = 5.0
concurrency = 32
per_host = 32          # the whole farm is one host; a real catalog spreads over many,
min_interval = 0.0     # each with its own limits (the default 0.05 s would cap one host at 20/s)
retries = 1
max_redirects = 10
"""


def _routes(farm: HTTPFarm, distinct: int, rng: random.Random) -> list[str]:
    urls = []
    for i in range(distinct):
        roll = rng.random()
        if roll < 0.03:
            urls.append(farm.route(f"/gone/{i}", Reply(404)))
        elif roll < 0.05:
            target = farm.route(f"/new/{i}", Reply(200))
            urls.append(farm.route(f"/old/{i}", Reply.redirect(301, target)))
        elif roll < 0.06:
            urls.append(farm.route(f"/busy/{i}", Reply(503)))
        else:
            urls.append(farm.route(f"/paper/{i}", Reply(200, body=b"<html><title>Paper</title></html>")))
    return urls


def _site_toml(out: Path) -> Path:
    base = (ROOT / "content" / "site.toml").read_text()
    head, _, rest = base.partition("[checks.links]")
    # Drop the original [checks.links] table up to the next table, then add ours.
    tail = rest[rest.index("\n[", 1) :] if "\n[" in rest else ""
    path = out / "site.toml"
    path.write_text(head + SITE_OVERRIDES + tail)
    return path


def _fill_registry(out: Path, urls: list[str], articles: int, per_article: int, rng: random.Random) -> int:
    lic = License(
        issuer="California Department of Health Care Services",
        program_id="190655AP",
        expires=date(2027, 4, 30),
    )
    citations = 0
    # Every distinct URL is cited at least once; the rest are drawn at random.
    pool = urls + [rng.choice(urls) for _ in range(articles * per_article - len(urls))]
    rng.shuffle(pool)
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        for n in range(articles):
            cited = list(dict.fromkeys(pool[n * per_article : (n + 1) * per_article]))
            citations += len(cited)
            registry.record_publish(
                slug=f"article-{n:04d}",
                version=f"{n:064x}",
                title=f"Article {n}",
                published_at=datetime.now(UTC),
                release_id="bench",
                channels={
                    "web": [f"web/article-{n:04d}/index.html"],
                    "handout": [f"handouts/article-{n:04d}.pdf"],
                },
                licenses=[lic],
                last_reviewed=date(2026, 11, 1),
                next_review=date(2027, 11, 1),
                cited=[(f"Source {i}", url) for i, url in enumerate(cited, 1)],
            )
    return citations


def _children_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--per-article", type=int, default=5)
    parser.add_argument("--distinct", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(2026)
    monitor_times: list[float] = []
    baseline_times: list[float] = []
    with HTTPFarm() as farm, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        urls = _routes(farm, args.distinct, rng)
        citations = _fill_registry(out, urls, args.articles, args.per_article, rng)
        site_path = _site_toml(out)
        settings = load_site(site_path).checks.links
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        for run in range(args.runs):
            start = time.perf_counter()
            report = check_urls(urls, settings)
            baseline_times.append(time.perf_counter() - start)
            assert len(report.results) == len(urls)

            start = time.perf_counter()
            done = subprocess.run(
                [
                    str(ROOT / ".venv" / "bin" / "clinicpress"),
                    "monitor",
                    "--site",
                    str(site_path),
                    "--out",
                    str(out),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=900,
                check=False,
            )
            monitor_times.append(time.perf_counter() - start)
            if done.returncode != 0:
                sys.exit(f"monitor failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
            print(f"run {run + 1}: {done.stdout.strip().splitlines()[0]}", flush=True)
    monitor = statistics.median(monitor_times)
    baseline = statistics.median(baseline_times)
    print()
    print(
        f"catalog: {args.articles} articles, {citations} citations, {len(urls)} distinct sources (loopback)"
    )
    print(f"{'measure (median of ' + str(args.runs) + ')':<44} {'seconds':>8} {'sources/s':>10}")
    print(f"{'link check alone, in-process (baseline)':<44} {baseline:>8.2f} {len(urls) / baseline:>10.0f}")
    print(f"{'clinicpress monitor, whole process':<44} {monitor:>8.2f} {len(urls) / monitor:>10.0f}")
    print(f"ratio monitor / baseline: {monitor / baseline:.2f}")
    print(f"peak RSS of the monitor process: {_children_peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
