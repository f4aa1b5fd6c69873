"""Publishing is a swap: a release goes live whole, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinicpress.errors import PublishError
from clinicpress.outputs.release import KEEP_RELEASES, Release, live_release


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


@pytest.mark.parametrize("relpath", ["../escape.txt", "/etc/passwd", "web/../../x", "elsewhere/x", ""])
def test_paths_outside_the_channel_folders_are_refused(tmp_path: Path, relpath: str) -> None:
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


def test_old_releases_are_pruned(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for number in range(KEEP_RELEASES + 2):
        _publish(out, {"web/a/index.html": str(number).encode()})
    releases = [p for p in (out / "releases").iterdir() if not p.name.startswith(".")]
    assert len(releases) == KEEP_RELEASES
    assert (out / "web" / "a" / "index.html").read_bytes() == str(KEEP_RELEASES + 1).encode()


def test_a_reader_polling_during_switches_never_sees_a_gap_or_a_mix(tmp_path: Path) -> None:
    """Readers follow the stable paths while releases switch: always a whole, single version."""
    import threading

    out = tmp_path / "out"
    _publish(out, {"web/a/index.html": b"v0", "reports/a.json": b"v0"})
    seen: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_forever() -> None:
        while not stop.is_set():
            try:
                # One consistent view: resolve `current` once, as a web server resolves a request.
                live = (out / "current").resolve()
                seen.append(
                    ((live / "web/a/index.html").read_bytes(), (live / "reports/a.json").read_bytes())
                )
            except OSError as exc:  # a 404 for a reader
                errors.append(exc)

    reader = threading.Thread(target=read_forever)
    reader.start()
    try:
        for version in range(1, 30):
            data = f"v{version}".encode()
            # Enough releases kept that none is pruned under a reader holding it (that is a
            # web server's concern: keep_releases bounds how old a resolved release may get).
            _publish(out, {"web/a/index.html": data, "reports/a.json": data}, keep=100)
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert len(seen) > 30
    assert all(page == report for page, report in seen)  # never one file of one version, one of another
