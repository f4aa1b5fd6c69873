"""`clinicpress publish` of an edited article starts the render workers before Prefect is imported.

The workers' forkserver imports WeasyPrint on another core while the publishing process imports
Prefect; the one render then runs in a worker forked from it (renderers/pool.py ``use_pool``).
A publish with nothing to render starts no worker at all.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, WriteArticle

from clinicpress.renderers.pool import head_start, use_pool

# The CLI in a fresh process; afterwards (stderr, last line): did this process import WeasyPrint,
# and did it start a forkserver?
_CLI = """
import multiprocessing.forkserver, sys
from clinicpress.cli import main
try:
    main()
finally:
    started = multiprocessing.forkserver._forkserver._forkserver_pid is not None
    print("head-start:", "weasyprint" in sys.modules, started, file=sys.stderr)
"""


def _publish(site: Path, out: Path, article: Path) -> tuple[int, str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _CLI, "publish", "--site", str(site), "--out", str(out), str(article)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
    )
    [said] = [line.split()[1:] for line in done.stderr.splitlines() if line.startswith("head-start: ")]
    return done.returncode, done.stdout + done.stderr, said


@pytest.mark.usefixtures("prefect_harness")
def test_an_edited_article_renders_in_a_worker_and_a_no_op_starts_none(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = write_site(timeout="2.0", retries="0")
    article = write_article(body="No sources.\n")
    out = tmp_path / "out"

    code, stdout, (weasyprint_here, forkserver) = _publish(site, out, article)
    assert code == 0, stdout
    assert "published" in stdout
    assert (out / "current" / "handouts" / "test-article.pdf").read_bytes().startswith(b"%PDF")
    assert forkserver == "True"
    assert weasyprint_here == "False"  # rendered in the worker, not here

    code, stdout, (weasyprint_here, forkserver) = _publish(site, out, article)
    assert code == 0, stdout
    assert "unchanged" in stdout
    assert forkserver == "False"  # nothing to render: no worker started
    assert weasyprint_here == "False"

    article.write_text(article.read_text(encoding="utf-8") + "\nAn edit.\n", encoding="utf-8")
    code, stdout, (weasyprint_here, forkserver) = _publish(site, out, article)
    assert code == 0, stdout
    assert "An edit." in (out / "current" / "web" / "test-article" / "index.html").read_text(encoding="utf-8")
    assert (forkserver, weasyprint_here) == ("True", "False")


def test_the_head_start_holds_inside_its_block_only() -> None:
    # A context, not a global: a test session or a served process runs many publishes.
    assert not use_pool(1)
    with head_start(False):
        assert not use_pool(1)
    with head_start(True):
        assert use_pool(1)
        assert not use_pool(0)
    assert not use_pool(1)
    assert use_pool(8)  # a catalog: workers, head start or not
