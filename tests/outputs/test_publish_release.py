"""The release switch and publish_release, called directly: tests that kill the mutants the
release, rollback and concurrency tests let live (docs/mutation.md; `make mutation`).

Each test names the mechanism it pins; no CLI process, no Prefect: fast enough to run per mutant.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clinicpress.checks.model import ArticleReport, Verdict
from clinicpress.errors import PublishError
from clinicpress.outputs import release as release_module
from clinicpress.outputs.publish import ReadyArticle, publish_release, rollback_article
from clinicpress.outputs.release import (
    Release,
    live_release,
    live_versions,
    prune_releases,
    release_ids,
    remove_stale_staging,
    rollback_site,
    switch_live,
)
from clinicpress.renderers.base import Artifact, SpooledArtifact
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _ready(article: Article, slug: str, version: str, *, handout: bool = True) -> ReadyArticle:
    art = article.model_copy(update={"slug": slug})
    artifacts = [Artifact(Channel.WEB, f"web/{slug}/index.html", f"{slug} {version}".encode(), "text/html")]
    if handout:
        artifacts.append(
            Artifact(Channel.HANDOUT, f"handouts/{slug}.pdf", version.encode(), "application/pdf")
        )
    report = ArticleReport(path=f"content/{slug}.md", slug=slug, verdict=Verdict.OK)
    return ReadyArticle(art, report, version, artifacts)


def _publish(out: Path, files: dict[str, bytes], keep: int = 5) -> str:
    with Release(out, keep=keep) as release:
        for relpath, data in files.items():
            release.write(relpath, data)
        release.commit()
        return release.release_id


# -- publish_release: one version, one release -----------------------------------------------------------
def test_a_version_already_live_is_left_out_under_the_lock(
    tmp_path: Path, article: Article, site: SiteConfig
) -> None:
    """The under-lock live check (issue 18): without it a second run of the same trigger makes a
    second release of one version."""
    out = tmp_path / "out"
    first = publish_release(out, [_ready(article, "a", "v1")], site, AT)
    assert first is not None
    assert first.release_id is not None
    assert first.already_live == []
    again = publish_release(out, [_ready(article, "a", "v1")], site, AT)
    assert again is not None
    assert (again.release_id, again.release_dir, again.files, again.already_live) == (None, None, {}, ["a"])
    assert release_ids(out) == [first.release_id]
    # A new version of it is published; ``force`` publishes the live version again.
    newer = publish_release(out, [_ready(article, "a", "v2")], site, AT)
    assert newer is not None
    assert newer.release_id is not None
    assert newer.already_live == []
    forced = publish_release(out, [_ready(article, "a", "v2")], site, AT, force=True)
    assert forced is not None
    assert forced.release_id is not None
    assert forced.already_live == []
    assert len(release_ids(out)) == 3
    assert live_versions(out) == {"a": "v2"}


def test_only_the_articles_not_live_are_written(tmp_path: Path, article: Article, site: SiteConfig) -> None:
    out = tmp_path / "out"
    publish_release(out, [_ready(article, "a", "v1")], site, AT)
    both = publish_release(out, [_ready(article, "a", "v1"), _ready(article, "b", "v1")], site, AT)
    assert both is not None
    assert both.release_dir is not None
    assert both.already_live == ["a"]
    # The handout also under the web root, where the page links it (the same file).
    assert both.files == {"b": ["web/b/index.html", "handouts/b.pdf", "web/handouts/b.pdf", "reports/b.json"]}
    assert live_versions(out) == {"a": "v1", "b": "v1"}
    assert both.release_dir == live_release(out)
    # The catalog lists both (rendered from the reports of the new release).
    index = (out / "web" / "index.html").read_text(encoding="utf-8")
    assert 'href="a/"' in index
    assert 'href="b/"' in index


def test_nothing_ready_writes_nothing(tmp_path: Path, site: SiteConfig) -> None:
    assert publish_release(tmp_path / "out", [], site, AT) is None
    assert not (tmp_path / "out").exists()


def test_a_channel_dropped_since_the_last_publish_does_not_linger(
    tmp_path: Path, article: Article, site: SiteConfig
) -> None:
    out = tmp_path / "out"
    first = publish_release(out, [_ready(article, "a", "v1")], site, AT)
    assert first is not None
    assert first.release_dir is not None
    publish_release(out, [_ready(article, "a", "v2", handout=False)], site, AT)
    assert not (out / "handouts" / "a.pdf").exists()
    assert (out / "web" / "a" / "index.html").read_bytes() == b"a v2"
    assert (first.release_dir / "handouts" / "a.pdf").read_bytes() == b"v1"  # the old release keeps it
    report = json.loads((out / "reports" / "a.json").read_text(encoding="utf-8"))
    assert report["channels"] == {"web": ["web/a/index.html"]}
    assert report["version"] == "v2"


def test_a_spooled_artifact_is_linked_not_copied(tmp_path: Path, article: Article, site: SiteConfig) -> None:
    out = tmp_path / "out"
    spooled = tmp_path / "spool" / "a.pdf"
    spooled.parent.mkdir()
    spooled.write_bytes(b"PDF bytes")
    ready = _ready(article, "a", "v1", handout=False)
    artifacts = [
        *ready.artifacts,
        SpooledArtifact(Channel.HANDOUT, "handouts/a.pdf", spooled, "application/pdf"),
    ]
    done = publish_release(out, [ReadyArticle(ready.article, ready.report, "v1", artifacts)], site, AT)
    assert done is not None
    assert done.release_dir is not None
    live = done.release_dir / "handouts" / "a.pdf"
    assert live.read_bytes() == b"PDF bytes"
    assert os.stat(live).st_ino == os.stat(spooled).st_ino


# -- rollback_article --------------------------------------------------------------------------------------
def test_rollback_article_restores_the_previous_version(
    tmp_path: Path, article: Article, site: SiteConfig
) -> None:
    out = tmp_path / "out"
    first = publish_release(out, [_ready(article, "a", "v1"), _ready(article, "b", "v1")], site, AT)
    publish_release(out, [_ready(article, "a", "v2", handout=False)], site, AT)
    publish_release(out, [_ready(article, "b", "v2")], site, AT)  # a newer release, a still at v2
    assert first is not None
    assert first.release_id is not None
    back = rollback_article(out, "a", site, AT)
    assert (back.slug, back.from_version, back.to_version) == ("a", "v2", "v1")
    assert back.source_release == first.release_id
    assert live_release(out) == out.resolve() / "releases" / back.release_id
    assert live_versions(out) == {"a": "v1", "b": "v2"}
    assert (out / "handouts" / "a.pdf").read_bytes() == b"v1"
    assert (out / "web" / "a" / "index.html").read_bytes() == b"a v1"


def test_rollback_article_needs_a_live_and_an_earlier_version(
    tmp_path: Path, article: Article, site: SiteConfig
) -> None:
    out = tmp_path / "out"
    with pytest.raises(PublishError, match="not live"):
        rollback_article(out, "a", site, AT)
    publish_release(out, [_ready(article, "a", "v1")], site, AT)
    publish_release(out, [_ready(article, "a", "v1")], site, AT, force=True)  # same version again
    with pytest.raises(PublishError, match="no earlier version"):
        rollback_article(out, "a", site, AT)


# -- the release switch ------------------------------------------------------------------------------------
def test_the_lock_refuses_at_once_without_wait_and_waits_with_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = Release(out)
    with holder:
        with pytest.raises(PublishError, match="another publish is running"):
            Release(out).__enter__()
        with pytest.raises(PublishError, match="another publish is running"):
            rollback_site(out)
        released = threading.Timer(0.3, holder.__exit__, args=(None, None, None))
        released.start()
        try:
            waiting = Release(out, wait=30)
            with waiting:  # gets the lock once the holder lets go
                waiting.write("web/x", b"x")
                waiting.commit()
        finally:
            released.join()
    assert (out / "web" / "x").read_bytes() == b"x"
    with Release(out):  # the lock is free again after a block
        pass


def test_a_file_in_place_of_a_stable_path_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "handouts").mkdir(parents=True)
    with pytest.raises(PublishError, match="is not a clinicpress link"):
        Release(out).__enter__()
    (out / "handouts").rmdir()
    (out / "current").write_text("x")
    with pytest.raises(PublishError, match="is not a clinicpress link"):
        Release(out).__enter__()


def test_a_committed_release_takes_no_more_writes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Release(out) as release:
        release.write("web/a", b"1")
        final = release.commit()
        with pytest.raises(PublishError, match="already live"):
            release.write("web/b", b"2")
    assert final.is_dir()  # leaving the block after the commit keeps the release
    assert (out / "web" / "a").read_bytes() == b"1"
    # Stable links made once are left as they are.
    with Release(out) as second:
        second.write("web/a", b"2")
        second.commit()
    assert os.readlink(out / "web") == "current/web"


def test_stale_switch_links_and_staging_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _publish(out, {"web/a": b"1"})
    (out / ".current.dead").symlink_to(f"releases/{first}")
    (out / "releases" / ".staging-dead").mkdir()
    remove_stale_staging(out)
    assert not (out / ".current.dead").is_symlink()
    assert not (out / "releases" / ".staging-dead").exists()
    # switch_live survives its own temporary link left over by a killed run.
    second = _publish(out, {"web/a": b"2"})
    (out / f".current.{first}").symlink_to("nowhere")
    switch_live(out, first)
    assert (out / "web" / "a").read_bytes() == b"1"
    assert not (out / f".current.{first}").is_symlink()
    switch_live(out, second)
    assert (out / "web" / "a").read_bytes() == b"2"


def test_release_ids_are_complete_releases_oldest_first(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert release_ids(out) == []
    ids = [_publish(out, {"web/a": str(n).encode()}) for n in range(3)]
    (out / "releases" / ".staging-x").mkdir()
    (out / "releases" / "a-file").write_text("x")
    assert release_ids(out) == sorted(ids) == ids


def test_pruning_keeps_the_newest_and_always_the_live_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ids = [_publish(out, {"web/a": str(n).encode()}, keep=10) for n in range(4)]
    switch_live(out, ids[0])  # the live release is the oldest
    prune_releases(out, keep=2)
    assert release_ids(out) == [ids[0], ids[2], ids[3]]
    prune_releases(out, keep=0)
    assert release_ids(out) == [ids[0]]
    assert (out / "web" / "a").read_bytes() == b"0"
    # Nothing live: keep alone decides.
    (out / "current").unlink()
    more = [_publish(tmp_path / "other", {"web/a": str(n).encode()}, keep=10) for n in range(3)]
    (tmp_path / "other" / "current").unlink()
    prune_releases(tmp_path / "other", keep=1)
    assert release_ids(tmp_path / "other") == [more[-1]]


def test_rollback_site_switches_to_the_release_before(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(PublishError, match="nothing is published"):
        rollback_site(out)
    ids = [_publish(out, {"web/a": str(n).encode()}) for n in range(3)]
    assert rollback_site(out) == (ids[2], ids[1])
    assert (out / "web" / "a").read_bytes() == b"1"
    assert rollback_site(out) == (ids[1], ids[0])
    with pytest.raises(PublishError, match="oldest release kept"):
        rollback_site(out)
    assert (out / "web" / "a").read_bytes() == b"0"
    with Release(out):  # rollback_site let the lock go
        pass


def test_live_release_and_versions_ignore_what_is_not_a_release(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert live_release(out) is None
    assert live_versions(out) == {}
    rid = _publish(out, {"reports/a.json": b'{"version": "v1"}', "reports/b.json": b"not json"})
    _publish(out, {"reports/c.json": b'{"version": 3}', "reports/d.json": b"[1]"})
    assert live_versions(out) == {"a": "v1"}
    # Unreadable reports (bad JSON, a folder) are skipped, never the end of the listing.
    valid = {f"reports/v{n:02}.json": b'{"version": "x"}' for n in range(12)}
    _publish(out, {**valid, "reports/a.json": b"{"})
    live = live_release(out)
    assert live is not None
    (live / "reports" / "folder.json").mkdir()
    assert live_versions(out) == {f"v{n:02}": "x" for n in range(12)}
    (out / "current").unlink()
    (out / "current").symlink_to("releases/gone")
    assert live_release(out) is None
    switch_live(out, rid)
    assert live_versions(out) == {"a": "v1"}  # the first release, as it was


def test_link_hard_links_and_remove_tolerates_missing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    source = tmp_path / "source.pdf"
    source.write_bytes(b"pdf")
    with Release(out) as release:
        release.link("handouts/x.pdf", source)
        release.link("web/deep/er/x.pdf", source)  # folders made on the way
        release.remove("handouts/never-there.pdf")
        release.commit()
    assert os.stat(out / "handouts" / "x.pdf").st_ino == os.stat(source).st_ino
    # A carried-over file is replaced, never written through (the old release keeps its bytes).
    old = live_release(out)
    assert old is not None
    with Release(out) as release:
        release.link("handouts/x.pdf", tmp_path / "source.pdf")
        release.write("handouts/x.pdf", b"new")
        release.commit()
    assert (old / "handouts" / "x.pdf").read_bytes() == b"pdf"
    assert source.read_bytes() == b"pdf"


def test_the_lock_file_lives_in_the_output_folder(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(PublishError, match="cannot create the output folder"):
        release_module._lock(blocked / "out")


def test_a_switch_that_cannot_happen_is_a_publish_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rid = _publish(out, {"web/a": b"1"})
    (out / "current").unlink()
    (out / "current" / "x").mkdir(parents=True)  # something else took the name: rename cannot replace it
    with pytest.raises(PublishError, match="could not switch release"):
        switch_live(out, rid)


def test_rollback_article_drops_newer_channels_and_rebuilds_the_catalog(
    tmp_path: Path, article: Article, site: SiteConfig
) -> None:
    out = tmp_path / "out"
    older = _ready(article, "a", "v1", handout=False)
    older = ReadyArticle(
        older.article.model_copy(update={"title": "Old title"}), older.report, "v1", older.artifacts
    )
    publish_release(out, [older], site, AT)
    newer = _ready(article, "a", "v2")
    newer = ReadyArticle(
        newer.article.model_copy(update={"title": "New title"}), newer.report, "v2", newer.artifacts
    )
    publish_release(out, [newer], site, AT)
    assert (out / "handouts" / "a.pdf").exists()
    assert "New title" in (out / "web" / "index.html").read_text(encoding="utf-8")
    rollback_article(out, "a", site, AT)
    assert not (out / "handouts" / "a.pdf").exists()  # v1 had no handout
    index = (out / "web" / "index.html").read_text(encoding="utf-8")
    assert "Old title" in index
    assert "New title" not in index


def test_link_falls_back_to_a_copy_where_hard_links_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    source = tmp_path / "source.pdf"
    source.write_bytes(b"pdf")

    def no_hard_links(src: Any, dst: Any) -> None:
        raise OSError(18, "Invalid cross-device link")

    with Release(out) as release:
        monkeypatch.setattr(os, "link", no_hard_links)
        release.link("handouts/x.pdf", source)
        monkeypatch.undo()
        release.commit()
    assert (out / "handouts" / "x.pdf").read_bytes() == b"pdf"
    assert os.stat(out / "handouts" / "x.pdf").st_ino != os.stat(source).st_ino


def test_pruning_counts_only_release_folders(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ids = [_publish(out, {"web/a": str(n).encode()}, keep=10) for n in range(3)]
    (out / "releases" / "zz-note.txt").write_text("not a release")
    (out / "releases" / ".staging-dead").mkdir()
    prune_releases(out, keep=2)
    assert release_ids(out) == ids[1:]
