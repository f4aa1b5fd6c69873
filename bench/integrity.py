"""Benchmark: what the integrity lookups (issue 14) add to `clinicpress check` of a catalog.

    .venv/bin/python bench/integrity.py [--articles 1000] [--runs 3]

The catalog is generated from the reference article (bench/catalog/generate.py), its sources
rewritten as DOIs at a loopback resolver: every distinct source is a fake ``10.5555/bench-<k>``
registered at a loopback Crossref stand-in (tests/integrity_standin.py, in its own process:
it must not share this process's CPU time slices), 2 % of them retracted and 3 % corrected,
each cited as "Authors. Title. Journal. Year;…" (so the title comparison runs on every one).

In one run, alternating, ``--runs`` times each (no cache):

* links: the link check alone (``check_urls`` over the distinct URLs);
* off: ``check_articles`` with ``[checks.integrity] enabled = false``;
* on: ``check_articles`` with the lookups on (they run beside the link check).

It prints, per mode, the median and the fastest wall time and this process's CPU time, then
the extra wall time of "on" over "off" as a share of the link check's (goal: under 20 %),
from the medians and from the fastest runs (on a shared machine other load only ever adds
time: the fastest runs are the better estimate of the cost itself). Loopback only; the
stand-in stops with the benchmark.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

RETRACTED_EVERY = 50  # 2 %
CORRECTED_EVERY = 33  # 3 %


def registered_title(k: int) -> str:
    return f"Loopback study {k} of ketamine-assisted care in a fake cohort"


def serve(distinct: int) -> None:
    """The child: a stand-in knowing ``distinct`` works; prints its base URL, serves until stdin closes."""
    from integrity_standin import IntegrityStandin, notice, work

    with IntegrityStandin() as standin:
        works = {}
        for k in range(distinct):
            doi = f"10.5555/bench-{k}"
            updates = []
            if k % RETRACTED_EVERY == 0:
                updates = [
                    notice("retraction", f"10.5555/bench-notice-{k}", date(2024, 1, 2), "retraction-watch")
                ]
            elif k % CORRECTED_EVERY == 0:
                updates = [notice("correction", f"10.5555/bench-erratum-{k}", date(2023, 5, 6), "publisher")]
            works[doi] = work(doi, registered_title(k), authors=("Loopback", "Fixture"), updated_by=updates)
        standin.add_works(works)
        print(standin.base, flush=True)
        sys.stdin.read()  # until the parent closes the pipe


_SOURCE = re.compile(r'(?m)^  - title: ".*"\n    url: (\S+)/paper/(\d+)$')


def _as_dois(catalog_dir: Path, base: str) -> None:
    """Rewrite every ``<base>/paper/<k>`` source as the DOI 10.5555/bench-<k> at the stand-in's resolver."""
    for path in catalog_dir.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        text = _SOURCE.sub(
            lambda m: (
                f'  - title: "Loopback A, Fixture B. {registered_title(int(m.group(2)))}. '
                f'J Loopback Med. 2018;1:{m.group(2)}."\n'
                f"    url: {base}/doi/10.5555/bench-{m.group(2)}"
            ),
            text,
        )
        path.write_text(text, encoding="utf-8")


def _site_text(site: Path, base: str, *, enabled: bool) -> str:
    text = site.read_text(encoding="utf-8")
    text = text.replace(
        "[checks.links]\n",
        f'[checks.links]\ndoi_resolver = "{base}/doi/"\npubmed_resolver = "{base}/pubmed/"\n',
        1,
    )
    start = text.index("[checks.integrity]")
    return text[:start] + (
        "[checks.integrity]\n"
        f"enabled = {'true' if enabled else 'false'}\n"
        f'crossref_api = "{base}/crossref/"\n'
        f'pubmed_api = "{base}/eutils/"\n'
        'mailto = "bench@example.org"\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return

    from bench.catalog.generate import make_catalog
    from clinicpress.checks.links import check_urls
    from clinicpress.checks.verify import all_urls, check_articles
    from clinicpress.site import load_site
    from clinicpress.sources.loader import load_articles

    distinct = max(20, args.articles * 4)  # as make_catalog draws them
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(distinct)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        base = child.stdout.readline().strip()
        with tempfile.TemporaryDirectory(prefix="clinicpress-bench-integrity-") as tmp:
            folder = Path(tmp) / "catalog"
            catalog = make_catalog(folder, args.articles, base)
            _as_dois(folder, base)
            on_path, off_path = folder / "site-on.toml", folder / "site-off.toml"
            on_path.write_text(_site_text(catalog.site, base, enabled=True), encoding="utf-8")
            off_path.write_text(_site_text(catalog.site, base, enabled=False), encoding="utf-8")
            site_on, site_off = load_site(on_path), load_site(off_path)
            articles = load_articles(catalog.articles)
            urls = all_urls(articles)
            today = date.today()
            times: dict[str, list[float]] = {"links": [], "off": [], "on": []}
            cpu: dict[str, list[float]] = {"links": [], "off": [], "on": []}
            reports: list[Any] = []
            for _ in range(args.runs):
                for name, call in (
                    ("links", lambda: check_urls(urls, site_off.checks.links)),
                    ("off", lambda: check_articles(articles, site_off, on=today)),
                    ("on", lambda: check_articles(articles, site_on, on=today)),
                ):
                    start, start_cpu = time.perf_counter(), time.process_time()
                    result = call()
                    times[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
                    if name == "on":
                        reports = result if isinstance(result, list) else reports
            summary: dict[str, int] = {}
            for report in reports:
                for link in report.links:
                    summary[str(link.integrity)] = summary.get(str(link.integrity), 0) + 1
            citations = sum(len(a.sources) for a in articles)
            print(
                f"{len(articles)} articles, {citations} DOI citations of {len(urls)} distinct DOIs (loopback)"
            )
            print(f"integrity of the citations: {json.dumps(summary, sort_keys=True)}")
            for name in ("links", "off", "on"):
                runs = ", ".join(f"{t:.2f}" for t in times[name])
                print(
                    f"{name:>5}: median {statistics.median(times[name]):6.2f} s, "
                    f"fastest {min(times[name]):6.2f} s, "
                    f"CPU of this process (median) {statistics.median(cpu[name]):6.2f} s  (runs: {runs})"
                )
            for label, pick in (("medians", statistics.median), ("fastest runs", min)):
                links, off, on = (pick(times[k]) for k in ("links", "off", "on"))
                extra = on - off
                print(
                    f"extra wall time with integrity on ({label}): {extra:+.2f} s = {extra / links:+.1%} "
                    f"of the link check ({'met' if extra / links < 0.20 else 'NOT met'}: goal < 20 %)"
                )
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=10)


if __name__ == "__main__":
    main()
