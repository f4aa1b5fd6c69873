"""`make bench` (bench/suite.py): one table from every benchmark's JSON; README edited between markers."""

from __future__ import annotations

import argparse
from pathlib import Path

from conftest import ROOT

from bench.suite import BEGIN, END, results_text, table, write_readme

CANNED = {
    "linkcheck": {
        "medians": {
            "clinicpress": {"wall": 2.0, "cpu": 1.5, "peak_mb": 100.0},
            "lychee": {"wall": 4.0, "cpu": 0.25, "peak_mb": 40.0},
            "cp 0 links": {"wall": 1.0, "cpu": 0.8, "peak_mb": 80.0},
        },
        "right": {"clinicpress": 2000, "lychee": 1990},
        "total": 2000,
        "load": 1.5,
    },
    "flow_call": {
        "rows": {
            "empty flow call in a running process, heartbeats off (None)": 0.2,
            "clinicpress publish, no-op, heartbeats off (the CLI's default)": 2.2,
            "clinicpress publish, one edited, heartbeats off (the CLI's default)": 3.0,
        },
        "baseline": 2.0,
        "load": 1.0,
    },
    "make_publish": {
        "medians": {
            "clinicpress publish again (the local server)": 2.5,
            "clinicpress check (the baseline)": 1.0,
        },
        "load": 1.0,
    },
    "incremental": {
        "articles": 1000,
        "rows": {
            "no-op (whole process)": {"seconds": 4.0, "rerendered": 0},
            "one changed (whole process)": {"seconds": 5.0, "rerendered": 1},
        },
        "one_render": 1.5,
        "load": 1.0,
    },
    "full_rebuild": {
        "articles": 1000,
        "rows": {
            "floor": {"seconds": 100.0, "peak_rss_mb": 300.0, "peak_pss_mb": 200.0},
            "publish": {"seconds": 110.0, "peak_rss_mb": 500.0, "peak_pss_mb": 390.0},
        },
        "floor_row": "floor",
        "publish_row": "publish",
        "load": 1.0,
    },
    "preview": {"web": 0.12, "handout": 0.8, "load": 1.0},
}


def test_one_table_with_every_benchmark_its_ratio_and_goal() -> None:
    lines = table({name: (data, "") for name, data in CANNED.items()})
    text = "\n".join(lines)
    assert "unreadable" not in text
    assert len(lines) == 2 + 4 + 3 + 1 + 2 + 2 + 2  # header, then the rows of each benchmark
    assert "| 0.50× | ≤ 0.6× | met |" in text  # wall: 2.0 s against lychee's 4.0 s
    assert "| 6.00× | ≤ 3× | **not met** |" in text  # CPU: 1.5 s against 0.25 s
    assert "| 1.10× | ≤ 1.1× | met |" in text  # a no-op publish against the empty flow process
    assert "**not met**" in text.split("no-op (whole process)")[1].split("\n")[0]  # 4 s > 3 s


def test_a_failed_benchmark_is_a_row_not_a_crash() -> None:
    lines = table({"linkcheck": (None, "failed (exit 1)"), "preview": ({"web": 1}, "")})
    assert any("failed (exit 1)" in line for line in lines)
    assert any("unreadable results" in line for line in lines)


def test_the_readme_changes_only_between_its_markers(tmp_path: Path) -> None:
    readme = ROOT / "docs" / "development" / "performance.md"
    text = readme.read_text(encoding="utf-8")
    assert text.count(BEGIN) == text.count(END) == 1
    assert text.index(BEGIN) > text.index("# Performance") >= 0
    copy = tmp_path / "README.md"
    copy.write_text(text, encoding="utf-8")
    args = argparse.Namespace(runs=3, articles=1000, full_articles=1000)
    generated = results_text({name: (data, "") for name, data in CANNED.items()}, args, "0.5")
    write_readme(generated, copy)
    after = copy.read_text(encoding="utf-8")
    assert after.split(BEGIN)[0] == text.split(BEGIN)[0]
    assert after.split(END)[1] == text.split(END)[1]
    assert generated.strip() in after
