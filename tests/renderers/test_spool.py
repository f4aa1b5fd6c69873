"""The render spool, driven directly: a live run's spool is never removed, a dead run's always is, and
a re-sent job never writes through a file a release already holds. The tests that kill the mutants
test_pool.py and test_catalog.py let live (docs/mutation.md; `make mutation`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from clinicpress.errors import PublishError
from clinicpress.renderers.base import Artifact
from clinicpress.renderers.spool import Spool, remove_dead_spools, spool_artifacts
from clinicpress.sources.article import Channel


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".spool-"))


def test_a_live_spool_is_kept_and_removed_on_exit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Spool(out) as spool:
        assert spool.path.is_dir()
        lock = spool.path.with_name(spool.path.name + ".lock")
        assert _leftovers(out) == sorted([spool.path.name, lock.name])
        remove_dead_spools(out)  # its lock is held: another run must leave it
        with Spool(out) as other:  # a second run at the same time, too
            assert other.path != spool.path
            assert spool.path.is_dir()
        assert spool.path.is_dir()
        assert lock.is_file()
    assert _leftovers(out) == []


def test_the_spools_of_dead_runs_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = out / ".spool-dead"
    (dead / "handouts").mkdir(parents=True)
    (dead / "handouts" / "a.pdf").write_bytes(b"x")
    (out / ".spool-dead.lock").write_bytes(b"")
    old_unborn = out / ".spool-old.lock.new"
    old_unborn.write_bytes(b"")
    an_hour_ago = time.time() - 3600
    os.utime(old_unborn, (an_hour_ago, an_hour_ago))
    fresh_unborn = out / ".spool-fresh.lock.new"  # being made by a run right now
    fresh_unborn.write_bytes(b"")
    unrelated = out / "web"
    unrelated.mkdir()
    remove_dead_spools(out)
    assert _leftovers(out) == [fresh_unborn.name]
    assert unrelated.is_dir()
    # A new run cleans up on its way in as well.
    (out / ".spool-dead2").mkdir()
    (out / ".spool-dead2.lock").write_bytes(b"")
    with Spool(out) as spool:
        assert _leftovers(out) == sorted([fresh_unborn.name, spool.path.name, spool.path.name + ".lock"])


def test_a_spool_that_cannot_be_made_is_a_publish_error_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PublishError, match="cannot create the render spool"):
        Spool(blocker / "out").__enter__()
    out = tmp_path / "out"
    spool = Spool(out)
    spool.path.parent.mkdir()
    spool.path.mkdir()  # taken: mkdir of the folder fails after the lock was made
    with pytest.raises(PublishError, match="cannot create the render spool"):
        spool.__enter__()
    assert _leftovers(out) == []


def test_artifacts_are_spooled_by_relpath(tmp_path: Path) -> None:
    artifacts = [
        Artifact(Channel.HANDOUT, "handouts/a.pdf", b"pdf", "application/pdf"),
        Artifact(Channel.NEWSLETTER, "newsletter/a/email.html", b"html", "text/html"),
    ]
    spooled = spool_artifacts(tmp_path, artifacts)
    assert [(s.channel, s.relpath, s.media_type) for s in spooled] == [
        (Channel.HANDOUT, "handouts/a.pdf", "application/pdf"),
        (Channel.NEWSLETTER, "newsletter/a/email.html", "text/html"),
    ]
    assert [s.path for s in spooled] == [
        tmp_path / "handouts" / "a.pdf",
        tmp_path / "newsletter/a/email.html",
    ]
    assert [s.path.read_bytes() for s in spooled] == [b"pdf", b"html"]
    assert spool_artifacts(tmp_path, []) == []


# An absolute path inside tmp_path, never a real system file (a mutant would write to it).
@pytest.mark.parametrize("relpath", ["{tmp}/x.pdf", "../x.pdf", "handouts/../../x.pdf", ""])
def test_paths_outside_the_spool_are_refused(tmp_path: Path, relpath: str) -> None:
    relpath = relpath.format(tmp=tmp_path)
    with pytest.raises(PublishError, match="refusing to spool"):
        spool_artifacts(tmp_path / "spool", [Artifact(Channel.HANDOUT, relpath, b"x", "application/pdf")])
    assert not (tmp_path / "x.pdf").exists()


def test_a_job_sent_again_never_writes_through_a_linked_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    [first] = spool_artifacts(spool, [Artifact(Channel.HANDOUT, "handouts/a.pdf", b"one", "application/pdf")])
    released = tmp_path / "release-a.pdf"
    os.link(first.path, released)  # what staging does with a spooled file
    [again] = spool_artifacts(spool, [Artifact(Channel.HANDOUT, "handouts/a.pdf", b"two", "application/pdf")])
    assert again.path.read_bytes() == b"two"
    assert released.read_bytes() == b"one"
    assert os.stat(released).st_ino != os.stat(again.path).st_ino


def test_a_lock_left_without_its_folder_is_removed_too(tmp_path: Path) -> None:
    """A run can die between naming its lock and making its folder."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".spool-orphan.lock").write_bytes(b"")
    remove_dead_spools(out)
    assert _leftovers(out) == []


def test_the_output_folder_is_made_with_its_parents(tmp_path: Path) -> None:
    with Spool(tmp_path / "a" / "b" / "out") as spool:
        assert spool.path.is_dir()
    assert _leftovers(tmp_path / "a" / "b" / "out") == []


def test_a_lock_that_cannot_be_opened_is_skipped(tmp_path: Path) -> None:
    """Whatever sits under a spool lock's name (here a folder), the sweep goes on and the run starts."""
    out = tmp_path / "out"
    (out / ".spool-odd.lock").mkdir(parents=True)
    for n in range(12):  # listed in an order we do not choose: some come after the odd one
        (out / f".spool-dead{n}.lock").write_bytes(b"")
    remove_dead_spools(out)
    assert _leftovers(out) == [".spool-odd.lock"]
    with Spool(out) as spool:
        assert spool.path.is_dir()


def test_a_live_spool_does_not_stop_the_sweep(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Spool(out) as live:
        for n in range(12):  # listed in an order we do not choose: some come after the live one
            (out / f".spool-dead{n}").mkdir()
            (out / f".spool-dead{n}.lock").write_bytes(b"")
        remove_dead_spools(out)
        assert _leftovers(out) == sorted([live.path.name, live.path.name + ".lock"])
