"""Rollback: the previous release, or one article's previous version, live again in one step."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import MINIMAL_FRONT_MATTER, REFERENCE_SITE, WriteArticle
from typer.testing import CliRunner

from clinicpress.checks.model import ArticleReport, Verdict
from clinicpress.cli import app
from clinicpress.errors import PublishError
from clinicpress.faults import FAULT_ENV, GO
from clinicpress.outputs.publish import ReadyArticle, RolledBack, publish_release, rollback_article
from clinicpress.outputs.registry import Registry
from clinicpress.outputs.release import live_versions, release_ids
from clinicpress.renderers.base import Artifact
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

runner = CliRunner()
AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _write(write_article: WriteArticle, name: str, body: str) -> Path:
    front = MINIMAL_FRONT_MATTER.replace("Test Article", name.title())
    return write_article(front_matter=front, body=body, name=f"{name}.md")


@pytest.mark.usefixtures("prefect_harness")
def test_rollback_site_and_one_article(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from clinicpress.flows.publish import publish_flow

    site = write_site()
    out = tmp_path / "out"
    alpha = _write(write_article, "alpha", "Alpha, first version.\n")
    beta = _write(write_article, "beta", "Beta, first version.\n")
    first = publish_flow(paths=[str(alpha), str(beta)], site_path=str(site), out_dir=str(out))
    v1 = live_versions(out)

    _write(write_article, "alpha", "Alpha, second version.\n")
    _write(write_article, "beta", "Beta, second version.\n")
    second = publish_flow(paths=[str(alpha), str(beta)], site_path=str(site), out_dir=str(out))
    v2 = live_versions(out)
    assert v1["alpha"] != v2["alpha"]

    # One article: alpha goes back to its first version, beta stays on its second.
    result = runner.invoke(app, ["rollback", "alpha", "--site", str(site), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "alpha rolled back" in result.stdout
    assert live_versions(out) == {"alpha": v1["alpha"], "beta": v2["beta"]}
    assert "first version" in (out / "web" / "alpha" / "index.html").read_text()
    assert "second version" in (out / "web" / "beta" / "index.html").read_text()
    assert (out / "handouts" / "alpha.pdf").is_file()
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        # The monitor checks what is live, not the newest version recorded.
        live = {a.slug: a.version for a in registry.latest_publishes(live_versions(out))}
        assert live == {"alpha": v1["alpha"], "beta": v2["beta"]}
        [event] = registry.events()
        assert (event["action"], event["slug"]) == ("rollback", "alpha")

    # The whole site: back to the release before the live one.
    listed = runner.invoke(app, ["releases", "--out", str(out)])
    assert listed.stdout.splitlines()[0].startswith("live")
    result = runner.invoke(app, ["rollback", "--site", str(site), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "current").resolve().name == second.release_id
    result = runner.invoke(app, ["rollback", "--site", str(site), "--out", str(out)])
    assert (out / "current").resolve().name == first.release_id
    assert live_versions(out) == v1
    assert "first version" in (out / "web" / "beta" / "index.html").read_text()

    # Nothing before the oldest: a clear message, exit 2.
    result = runner.invoke(app, ["rollback", "--site", str(site), "--out", str(out)])
    assert result.exit_code == 2
    assert "oldest release kept" in result.stderr


def test_rollback_with_nothing_published(write_site: Callable[..., Path], tmp_path: Path) -> None:
    site = write_site()
    result = runner.invoke(app, ["rollback", "--site", str(site), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "nothing is published" in result.stderr
    result = runner.invoke(app, ["rollback", "x", "--site", str(site), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "'x' is not live" in result.stderr


def test_releases_and_import_refuse_options_they_would_ignore(tmp_path: Path) -> None:
    """No option is silently ignored: a bad --site fails in one line; import says --out is unused."""
    missing = runner.invoke(app, ["releases", "--site", str(tmp_path / "nope.toml"), "--out", str(tmp_path)])
    assert missing.exit_code == 2
    assert "nope.toml: file not found" in missing.stderr
    page = tmp_path / "page.html"
    page.write_text("<html><title>T</title><body><p>x</p></body></html>", encoding="utf-8")
    site = tmp_path / "content" / "site.toml"
    site.parent.mkdir()
    site.write_text(REFERENCE_SITE.read_text(encoding="utf-8"), encoding="utf-8")
    args = ["import", "--site", str(site), "--out", str(tmp_path / "elsewhere"), str(page)]
    imported = runner.invoke(app, args)
    assert "note: --out is not used by import" in imported.stderr
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_rolling_back_one_article_drops_a_channel_its_previous_version_did_not_have(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    """The restored version comes back with exactly its own channels: a handout added since goes."""
    from clinicpress.flows.publish import publish_flow

    site = write_site()
    out = tmp_path / "out"
    front = MINIMAL_FRONT_MATTER.replace("Test Article", "Alpha")
    alpha = write_article(
        front_matter=front + "channels: [web]\n", body="Alpha, web only.\n", name="alpha.md"
    )
    publish_flow(paths=[str(alpha)], site_path=str(site), out_dir=str(out))
    assert not (out / "handouts" / "alpha.pdf").exists()
    write_article(front_matter=front, body="Alpha, every channel.\n", name="alpha.md")
    publish_flow(paths=[str(alpha)], site_path=str(site), out_dir=str(out))
    assert (out / "handouts" / "alpha.pdf").is_file()

    result = runner.invoke(app, ["rollback", "alpha", "--site", str(site), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "web only" in (out / "web" / "alpha" / "index.html").read_text()
    assert not (out / "handouts" / "alpha.pdf").exists()  # the version rolled back to never had one


def _ready(article: Article, slug: str, version: str) -> ReadyArticle:
    art = article.model_copy(update={"slug": slug})
    artifacts = [
        Artifact(Channel.WEB, f"web/{slug}/index.html", f"{slug} {version}".encode(), "text/html"),
        Artifact(Channel.HANDOUT, f"handouts/{slug}.pdf", version.encode(), "application/pdf"),
    ]
    report = ArticleReport(path=f"content/{slug}.md", slug=slug, verdict=Verdict.OK)
    return ReadyArticle(art, report, version, artifacts)


def test_a_rollback_racing_a_publish_that_prunes_its_source_refuses_cleanly(
    tmp_path: Path, article: Article, site: SiteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23 part 5: which release a rollback copies from is decided under the lock. Here a
    publish with the fewest releases kept (2, the least ``keep_releases`` allows) goes live and
    prunes the only release holding the earlier version while the rollback waits to take the lock
    (held at a fault point: a handshake, no timing). The rollback then refuses, saying why, and
    never fails half-way on a file that is gone (FileNotFoundError)."""
    out = tmp_path / "out"
    keep_two = site.model_copy(update={"publishing": site.publishing.model_copy(update={"keep_releases": 2})})
    first = publish_release(out, [_ready(article, "a", "v1")], site, AT)
    publish_release(out, [_ready(article, "a", "v2")], site, AT)
    assert first is not None
    assert first.release_id in release_ids(out)  # a's v1 is there to roll back to, before the race

    pause = tmp_path / "pause"
    pause.mkdir()
    monkeypatch.setenv(FAULT_ENV, f"rollback.lock:pause:{pause}")
    outcome: list[RolledBack | BaseException] = []

    def roll_back() -> None:
        try:
            outcome.append(rollback_article(out, "a", keep_two, AT))
        except BaseException as exc:
            outcome.append(exc)

    rollback = threading.Thread(target=roll_back)
    rollback.start()
    try:
        waiting = pause / f"{os.getpid()}.waiting"
        while not waiting.exists() and rollback.is_alive():  # the fault point's handshake file
            threading.Event().wait(0.01)
        assert waiting.exists(), outcome
        raced = publish_release(out, [_ready(article, "b", "v1")], keep_two, AT)
        assert raced is not None
        assert first.release_id not in release_ids(out)  # pruned under the waiting rollback
    finally:
        (pause / GO).touch()
        rollback.join(timeout=60)
    [result] = outcome
    assert isinstance(result, PublishError), repr(result)
    assert "no earlier version of 'a' is kept" in str(result)
    assert live_versions(out) == {"a": "v2", "b": "v1"}  # nothing changed by the refused rollback
    assert (out / "web" / "handouts" / "a.pdf").read_bytes() == b"v2"
