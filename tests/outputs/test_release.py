"""Publishing is a swap: a release goes live whole, or not at all."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clinicpress.checks.model import ArticleReport, Verdict
from clinicpress.errors import PublishError
from clinicpress.outputs.publish import ReadyArticle, publish_release
from clinicpress.outputs.release import KEEP_RELEASES, STAGING_PREFIX, Release, live_release, switch_live
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article


def _publish(out: Path, files: dict[str, bytes], keep: int = KEEP_RELEASES) -> Path:
    with Release(out, keep=keep) as release:
        for relpath, data in files.items():
            release.write(relpath, data)
        return release.commit()


def test_first_release_is_reached_through_stable_paths(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _publish(out, {"web/a/index.html": b"A1", "handouts/a.pdf": b"P1"})
    assert (out / "web" / "a" / "index.html").read_bytes() == b"A1"
    assert (out / "handouts" / "a.pdf").read_bytes() == b"P1"
    assert (out / "web").is_symlink()
    assert (out / "current").is_symlink()
    assert (out / "newsletter").is_dir()
    assert (out / "reports").is_dir()


def test_new_release_carries_over_and_never_writes_through_old_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _publish(out, {"web/a/index.html": b"A1", "web/b/index.html": b"B1"})
    second = _publish(out, {"web/a/index.html": b"A2"})
    assert (out / "web" / "a" / "index.html").read_bytes() == b"A2"
    assert (out / "web" / "b" / "index.html").read_bytes() == b"B1"  # carried over
    # The previous release is untouched (instant rollback), though it shared inodes.
    assert (first / "web" / "a" / "index.html").read_bytes() == b"A1"
    assert live_release(out) == second.resolve()


def test_failure_before_commit_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _publish(out, {"web/a/index.html": b"A1"})

    def crash_half_way() -> None:
        with Release(out) as release:
            release.write("web/a/index.html", b"HALF")
            raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        crash_half_way()
    assert (out / "web" / "a" / "index.html").read_bytes() == b"A1"
    assert not list((out / "releases").glob(".staging-*"))


def test_stale_staging_from_a_killed_run_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _publish(out, {"web/a/index.html": b"A1"})
    stale = out / "releases" / ".staging-killed"
    (stale / "web").mkdir(parents=True)
    _publish(out, {"web/a/index.html": b"A2"})
    assert not stale.exists()


# An absolute path is one inside tmp_path, never a real system file: a mutant of the path rule once
# let this test overwrite /etc/passwd on a machine that ran it as root.
@pytest.mark.parametrize("relpath", ["../escape.txt", "{tmp}/escape.txt", "web/../../x", "elsewhere/x", ""])
def test_paths_outside_the_channel_folders_are_refused(tmp_path: Path, relpath: str) -> None:
    relpath = relpath.format(tmp=tmp_path)
    with Release(tmp_path / "out") as release, pytest.raises(PublishError, match="refusing to write"):
        release.write(relpath, b"x")
    assert not (tmp_path / "escape.txt").exists()


def test_a_foreign_folder_in_the_way_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "web").mkdir(parents=True)
    with pytest.raises(PublishError, match="is not a clinicpress link"), Release(out):
        pass


def test_one_publish_at_a_time(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Release(out), pytest.raises(PublishError, match="another publish is running"), Release(out):
        pass


def test_a_release_that_fails_while_it_starts_lets_the_lock_go(
    tmp_path: Path, article: Article, site: SiteConfig
) -> None:
    """Issue 23 part 5: ``with`` runs no ``__exit__`` for an ``__enter__`` that raised, so a failure
    after the lock is taken must let it go there. The failed objects stay referenced here, as in a
    served process (a Prefect state keeps the exception and its frames): without the release, the
    next publish in the process would wait for the lock (600 s) and fail."""
    out = tmp_path / "out"
    ready = ReadyArticle(article, ArticleReport(path="a.md", slug=article.key, verdict=Verdict.OK), "v1", [])
    _publish(out, {"web/a/index.html": b"A1"})

    # 1. Through publish_release: a folder where the stable link ``newsletter`` belongs.
    (out / "newsletter").unlink()
    (out / "newsletter").mkdir()
    with pytest.raises(PublishError, match="is not a clinicpress link") as failed_publish:
        publish_release(out, [ready], site, datetime(2026, 11, 27, tzinfo=UTC))
    (out / "newsletter").rmdir()
    (out / "newsletter").symlink_to("current/newsletter")
    with Release(out, wait=0) as next_release:  # at once: no wait, no "another publish is running"
        next_release.write("web/a/index.html", b"A2")
        next_release.commit()

    # 2. A staging folder that cannot be made (an OSError from the copy of the live release).
    failed = Release(out)
    blocker = out / "releases" / f"{STAGING_PREFIX}{failed.release_id}"
    blocker.write_text("not a folder")  # a file: the stale-staging sweep cannot remove it
    with pytest.raises(PublishError, match="cannot start a new release"):
        failed.__enter__()
    blocker.unlink()
    assert _publish(out, {"web/a/index.html": b"A3"}).is_dir()  # wait=0 by default
    assert (out / "web" / "a" / "index.html").read_bytes() == b"A3"
    assert not list((out / "releases").glob(f"{STAGING_PREFIX}*"))
    assert failed_publish.value is not None  # held to the end, as a served process would


def test_old_releases_are_pruned(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for number in range(KEEP_RELEASES + 2):
        _publish(out, {"web/a/index.html": str(number).encode()})
    releases = [p for p in (out / "releases").iterdir() if not p.name.startswith(".")]
    assert len(releases) == KEEP_RELEASES
    assert (out / "web" / "a" / "index.html").read_bytes() == str(KEEP_RELEASES + 1).encode()


def _read_through_stable_paths(out: Path, stop_file: Path, results: Path) -> None:
    """A reader in its own process (true parallelism, no GIL hand-offs to hide a gap): it opens the
    page through ``out/web/…`` as a web server does, over and over, and writes what it saw. It
    says it is reading (``<results>.ready``) after its first read: the handshake the test waits for."""
    seen: list[list[str]] = []  # the distinct versions in each read: one, if the read was whole
    errors: list[str] = []
    page = out / "web" / "a" / "index.html"
    ready = results.with_suffix(".ready")
    stopping = False
    while not stopping:
        if seen and not ready.exists():
            ready.touch()
        stopping = stop_file.exists()  # one more read after the last switch
        try:
            for _ in range(50):  # cheap probes between full reads: a gap lasts microseconds
                os.stat(page)
            seen.append(sorted(set(page.read_bytes().decode().split("|")) - {""}))
        except OSError as exc:  # a 404 for a reader
            errors.append(repr(exc))
    results.write_text(json.dumps({"seen": seen, "errors": errors[:20], "error_count": len(errors)}))


def _reading(reader: multiprocessing.process.BaseProcess, results: Path, timeout: float = 120.0) -> None:
    """Wait (bounded) until the reader process says it reads: no switch before it looks."""
    ready, end = results.with_suffix(".ready"), time.monotonic() + timeout
    while not ready.exists():
        assert reader.is_alive(), "the reader process ended before its first read"
        assert time.monotonic() < end, "the reader process never started reading"
        time.sleep(0.01)


def test_a_reader_polling_during_switches_never_sees_a_gap_or_a_mix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers follow the stable paths (``published/web/…``) while releases switch and old ones are
    pruned: every read is one whole version, never a 404, and versions never go back."""
    out = tmp_path / "out"
    # Durability is not what this test checks; a system-wide sync per switch costs seconds on a busy disk.
    monkeypatch.setattr("clinicpress.outputs.release.os.sync", lambda: None)

    def page(version: int) -> bytes:
        # Large enough that a write through a live file would be seen half done.
        return (f"v{version:03d}|" * 20_000).encode()

    _publish(out, {"web/a/index.html": page(0), "reports/a.json": page(0)})
    stop_file, results = tmp_path / "stop", tmp_path / "seen.json"
    reader = multiprocessing.get_context("spawn").Process(
        target=_read_through_stable_paths, args=(out, stop_file, results)
    )
    reader.start()
    try:
        _reading(reader, results)  # the spawned interpreter has started and reads
        for version in range(1, 200):
            # keep=2: the release a reader just left is pruned at once, under its feet.
            _publish(out, {"web/a/index.html": page(version), "reports/a.json": page(version)}, keep=2)
    finally:
        stop_file.touch()
        reader.join(timeout=60)
    outcome = json.loads(results.read_text())
    assert outcome["error_count"] == 0, outcome["errors"]
    versions = []
    for parts in outcome["seen"]:
        assert len(parts) == 1, f"a read mixed versions {parts[:3]}"  # one whole version per read
        versions.append(int(parts[0][1:]))
    print(len(versions), len(set(versions)))
    assert len(set(versions)) > 20  # it read while the releases switched, not only before or after
    assert versions == sorted(versions)  # never an older release after a newer one
    assert versions[-1] == 199
    # Then one consistent view of two channels: resolve `current` once, as a server resolves a request.
    live = (out / "current").resolve()
    assert (live / "web/a/index.html").read_bytes() == (live / "reports/a.json").read_bytes() == page(199)


def test_switching_current_leaves_no_gap_a_reader_can_fall_into(tmp_path: Path) -> None:
    """The switch itself, thousands of times between two releases, under a reader in another process
    that probes ``out/web/…`` as fast as it can: not one miss (``current`` is replaced in one rename)."""
    out = tmp_path / "out"
    first = _publish(out, {"web/a/index.html": b"v001|"})
    second = _publish(out, {"web/a/index.html": b"v002|"})
    stop_file, results = tmp_path / "stop", tmp_path / "seen.json"
    reader = multiprocessing.get_context("spawn").Process(
        target=_read_through_stable_paths, args=(out, stop_file, results)
    )
    reader.start()
    try:
        _reading(reader, results)
        for _ in range(3_000):
            switch_live(out, first.name)
            switch_live(out, second.name)
    finally:
        stop_file.touch()
        reader.join(timeout=60)
    outcome = json.loads(results.read_text())
    assert outcome["error_count"] == 0, outcome["errors"]
    assert {parts[0] for parts in outcome["seen"]} <= {"v001", "v002"}
    assert len(outcome["seen"]) > 100  # it read while current switched
