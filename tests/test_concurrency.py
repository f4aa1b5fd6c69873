"""One trigger, one run: two publishes of the same version at once make one release."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, WriteArticle


@pytest.mark.usefixtures("prefect_harness")
def test_two_simultaneous_publishes_make_one_release(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    article = write_article(body="One version of one article.\n")
    site = write_site()
    out = tmp_path / "out"
    # Two real CLI processes against the test's Prefect API, started together.
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    command = [
        sys.executable,
        "-m",
        "clinicpress",
        "publish",
        "--site",
        str(site),
        "--out",
        str(out),
        str(article),
    ]
    runs = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    releases = [p for p in (out / "releases").iterdir() if not p.name.startswith(".")]
    assert len(releases) == 1
    said = sorted("— published" in stdout for stdout, _ in outputs)
    assert said == [False, True]  # one published it; the other says it was live already
    loser = next(stdout for stdout, _ in outputs if "— published" not in stdout)
    assert "unchanged, this version is live already" in loser
