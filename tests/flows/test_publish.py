"""The publish flow and the CLI, end to end: real Prefect runs, a real HTTP server, real files.

Loopback only: sources point at tests/httpfarm.py on 127.0.0.1, which the
test site config allows (``allow_private_hosts``).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_FRONT_MATTER, PUBLISHED, REFERENCE_ARTICLE, ROOT, WriteArticle
from httpfarm import HTTPFarm, Reply
from typer.testing import CliRunner

from clinicpress.checks.model import LinkStatus, Verdict
from clinicpress.cli import app
from clinicpress.outputs.publish import ReadyArticle, publish_release
from clinicpress.renderers.base import SpooledArtifact

runner = CliRunner()


@pytest.fixture(scope="module")
def farm() -> Iterator[HTTPFarm]:
    with HTTPFarm() as server:
        server.route("/ok", Reply(200, body=b"<html><title>A study</title></html>"))
        server.route("/gone", Reply(404))
        yield server


@pytest.fixture
def loopback_site(write_site: Callable[..., Path]) -> Path:
    return write_site(allow_private_hosts='["127.0.0.1"]', timeout="2.0", retries="0")


def _article_citing(write_article: WriteArticle, *urls: str, name: str = "a.md", extra: str = "") -> Path:
    sources = "".join(f"  - {{title: Source {i}, url: '{url}'}}\n" for i, url in enumerate(urls, 1))
    front = MINIMAL_FRONT_MATTER.replace("Test Article", name.removesuffix(".md").title()) + extra
    front += f"sources:\n{sources}" if urls else ""
    body = "A claim.[^1]\n" if urls else "No sources.\n"
    return write_article(front_matter=front, body=body, name=name)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "clinicpress", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


# -- bad input: exit 2, one line, nothing written (no Prefect needed) ---------------------------


@pytest.mark.parametrize("command", ["check", "publish"])
def test_malformed_article_exits_2_with_one_line(
    write_article: WriteArticle, tmp_path: Path, command: str
) -> None:
    bad = write_article(front_matter=MINIMAL_FRONT_MATTER.replace(str(PUBLISHED), "soon"))
    out = tmp_path / "out"
    result = _cli(command, "--out", str(out), str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: published: got 'soon'; expected a date as YYYY-MM-DD"
    ]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert runner.invoke(app, ["check", "--format", "xml", str(REFERENCE_ARTICLE)]).exit_code == 2
    missing = runner.invoke(app, ["check", "--site", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2
    assert "nope.toml: file not found" in missing.stderr
    assert runner.invoke(app, ["serve", "--site", str(tmp_path / "nope.toml")]).exit_code == 2


# -- check: direct, no Prefect ---------------------------------------------------------------------


def test_check_json_reports_ok_and_broken(
    write_article: WriteArticle, loopback_site: Path, farm: HTTPFarm
) -> None:
    good = _article_citing(write_article, farm.url("/ok"), name="good.md")
    bad = _article_citing(write_article, farm.url("/gone"), name="bad.md")
    result = runner.invoke(
        app, ["check", "--site", str(loopback_site), "--format", "json", str(good), str(bad)]
    )
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    by_slug = {a["slug"]: a for a in data["articles"]}
    assert by_slug["good"]["verdict"] == "ok"
    assert by_slug["good"]["links"] == [
        {
            "url": farm.url("/ok"),
            "status": "ok",
            "reason": "200 OK",
            "http_status": 200,
            "final_url": None,
            "integrity": None,  # not a DOI or PMID source
            "integrity_notice": None,
        }
    ]
    assert by_slug["bad"]["verdict"] == "blocked"
    assert by_slug["bad"]["links"][0]["status"] == "broken"
    # DESIGN.md's keys, plus the review line and its source (issue 15: "the report says which was used")
    # and what the authorities say (issue 25; off in test sites: [] and null); the edition's language
    # and the hash of its text alone (issue 26).
    assert set(by_slug["bad"]) == {
        "path", "slug", "verdict", "problems", "links", "review_line", "license_registry",
        "reviewer_registry", "language", "content_hash",
    }  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{64}", by_slug["bad"]["content_hash"])
    assert (by_slug["bad"]["license_registry"], by_slug["bad"]["reviewer_registry"]) == ([], None)
    assert by_slug["bad"]["review_line"]["source"] == "front matter"


def test_check_text_says_network_down_in_one_line(
    write_article: WriteArticle, write_site: Callable[..., Path]
) -> None:
    article = _article_citing(
        write_article, "https://no-such-host-1.invalid/a", "https://no-such-host-2.invalid/b"
    )
    site = write_site(timeout="2.0", retries="0")
    result = runner.invoke(app, ["check", "--site", str(site), str(article)])
    assert result.exit_code == 0, result.output
    network_lines = [line for line in result.stdout.splitlines() if "network" in line]
    assert len(network_lines) == 1
    assert "sources: 2 unverified" in result.stdout
    assert runner.invoke(app, ["check", "--strict", "--site", str(site), str(article)]).exit_code == 1


# -- publish: the Prefect flow ---------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_publish_flow_writes_every_channel_and_the_report(
    write_article: WriteArticle, loopback_site: Path, farm: HTTPFarm, tmp_path: Path
) -> None:
    from prefect.artifacts import Artifact

    from clinicpress.flows.publish import publish_flow

    article = _article_citing(write_article, farm.url("/ok"))
    out = tmp_path / "out"
    result = publish_flow(paths=[str(article)], site_path=str(loopback_site), out_dir=str(out))
    [outcome] = result.outcomes
    assert outcome.report.verdict is Verdict.OK
    assert outcome.published
    assert [link.status for link in outcome.report.links] == [LinkStatus.OK]
    for relpath in (
        "web/a/index.html",
        "handouts/a.pdf",
        "newsletter/a.eml",
        "newsletter/a.html",
        "reports/a.json",
    ):
        assert (out / relpath).is_file(), relpath
        assert relpath in outcome.files
    for relpath in ("web/index.html", "web/feed.xml", "web/sitemap.xml"):
        assert (out / relpath).is_file(), relpath
    report = json.loads((out / "reports" / "a.json").read_text())
    assert report["verdict"] == "ok"
    assert report["links"][0]["url"] == farm.url("/ok")
    assert (out / "handouts" / "a.pdf").read_bytes().startswith(b"%PDF")
    artifact = Artifact.get("publish-report")
    assert artifact is not None
    assert "| a | ok | yes |" in str(artifact.data)


@pytest.mark.usefixtures("prefect_harness")
def test_publish_blocks_a_broken_source_and_keeps_the_others(
    write_article: WriteArticle, loopback_site: Path, farm: HTTPFarm, tmp_path: Path
) -> None:
    good = _article_citing(write_article, farm.url("/ok"), name="good.md")
    bad = _article_citing(write_article, farm.url("/gone"), name="bad.md")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["publish", "--site", str(loopback_site), "--out", str(out), str(good), str(bad)]
    )
    assert result.exit_code == 1, result.output
    assert "bad: blocked — nothing published" in result.stdout
    assert "good: ok — published" in result.stdout
    assert (out / "web" / "good" / "index.html").is_file()
    assert not (out / "web" / "bad").exists()
    assert not (out / "handouts" / "bad.pdf").exists()
    assert not (out / "reports" / "bad.json").exists()
    index = (out / "web" / "index.html").read_text()
    assert "good/" in index
    assert "bad/" not in index


@pytest.mark.usefixtures("prefect_harness")
def test_expired_license_blocks_and_writes_nothing(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = write_site(expires="2020-01-31")
    article = _article_citing(write_article)
    out = tmp_path / "out"
    result = runner.invoke(app, ["publish", "--site", str(site), "--out", str(out), str(article)])
    assert result.exit_code == 1, result.output
    assert "expired on January 31, 2020" in result.stdout
    assert not out.exists()


@pytest.mark.usefixtures("prefect_harness")
def test_publish_offline_warns_in_one_line_and_publishes(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = write_site(timeout="2.0", retries="0")
    article = _article_citing(write_article, "https://no-such-host.invalid/paper")
    out = tmp_path / "out"
    result = runner.invoke(app, ["publish", "--site", str(site), "--out", str(out), str(article)])
    assert result.exit_code == 0, result.output
    assert "a: warning — published" in result.stdout
    assert sum("network" in line for line in result.stdout.splitlines()) == 1
    assert (out / "handouts" / "a.pdf").is_file()
    # --strict turns the warning into a block: nothing new goes live.
    strict = runner.invoke(app, ["publish", "--strict", "--site", str(site), "--out", str(out), str(article)])
    assert strict.exit_code == 1


@pytest.mark.usefixtures("prefect_harness")
def test_unchanged_articles_are_not_rendered_again(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from clinicpress.flows.publish import publish_flow

    site = write_site(timeout="2.0", retries="0")
    article = _article_citing(write_article)
    out = tmp_path / "out"
    first = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out))
    assert first.release_id is not None

    again = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out))
    [outcome] = again.outcomes
    assert outcome.unchanged
    assert not outcome.published
    assert again.release_id is None  # no new release: the live one already has this version
    assert (out / "current").resolve().name == first.release_id

    forced = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out), force=True)
    assert forced.outcomes[0].published
    assert forced.release_id not in (None, first.release_id)

    # An edit is a new version.
    article.write_text(article.read_text().replace("No sources.", "No sources yet."))
    edited = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out))
    assert edited.outcomes[0].published


def _smtp_site(write_site: Callable[..., Path], tmp_path: Path, port: int) -> Path:
    """A test site whose newsletter goes to two subscribers (ann@, bob@example.org) through the
    SMTP server on ``port``."""
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text("email\nann@example.org\nbob@example.org\n")
    site = write_site(timeout="2.0", retries="0")
    site.write_text(
        site.read_text().replace(
            'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"',
            'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"\n'
            f'subscribers = "{subscribers}"\n\n[newsletter.smtp]\nhost = "127.0.0.1"\n'
            f'port = {port}\nsecurity = "none"\ntimeout = 5',
        )
    )
    return site


@pytest.mark.usefixtures("prefect_harness")
def test_publish_sends_the_newsletter_once_after_the_swap(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from smtpserver import SMTPTestServer

    article = _article_citing(write_article)
    out = tmp_path / "out"
    live_when_sent: list[bool] = []
    with SMTPTestServer() as server:
        # At the moment each message's data arrives, is the article's page live yet?
        server.on_data = lambda _: live_when_sent.append(bool(list(out.glob("web/*/index.html"))))
        site = _smtp_site(write_site, tmp_path, server.port)

        result = runner.invoke(app, ["publish", "--site", str(site), "--out", str(out), str(article)])
        assert result.exit_code == 0, result.output
        assert "2 accepted" in result.stdout
        assert [len(server.messages_to(a)) for a in ("ann@example.org", "bob@example.org")] == [1, 1]
        assert live_when_sent == [True, True]  # after the swap: the page a reader is sent to exists

        # Publishing again (the version is live): the send is complete, nobody gets a second copy.
        again = runner.invoke(app, ["publish", "--site", str(site), "--out", str(out), str(article)])
        assert again.exit_code == 0, again.output
        assert "0 sent by this run" in again.stdout
        assert len(server.accepted) == 2

        test = runner.invoke(
            app,
            ["publish", "--site", str(site), "--out", str(out), "--test-to", "me@example.org", str(article)],
        )
        assert test.exit_code == 0, test.output
        [message] = server.messages_to("me@example.org")
        assert "[TEST]" in str(message.message()["Subject"])
        assert len(server.accepted) == 3

    bad = runner.invoke(
        app, ["publish", "--site", str(site), "--out", str(out), "--test-to", "not-an-address"]
    )
    assert bad.exit_code == 2
    assert "--test-to" in bad.stderr


@pytest.mark.usefixtures("prefect_harness")
def test_a_site_change_republishes_but_sends_nobody_the_same_text_twice(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    # A new phone number (or a clinicpress upgrade's templates) makes every article a new version;
    # the readers already have each text: the newsletter goes out again only for a new text.
    from smtpserver import SMTPTestServer

    article = _article_citing(write_article)
    out = tmp_path / "out"
    with SMTPTestServer() as server:
        site = _smtp_site(write_site, tmp_path, server.port)

        def publish() -> str:
            result = runner.invoke(app, ["publish", "--site", str(site), "--out", str(out), str(article)])
            assert result.exit_code == 0, result.output
            return result.stdout

        publish()
        assert len(server.accepted) == 2
        [report] = (out / "reports").glob("*.json")
        live = json.loads(report.read_text())["version"]

        site.write_text(site.read_text().replace('phone = "424-235-2009"', 'phone = "424-235-2010"'))
        republished = publish()
        now_live = json.loads(report.read_text())["version"]
        assert now_live != live, republished  # a new version went live (its pages show the new phone)
        assert "424-235-2010" in next(out.glob("web/*/index.html")).read_text()
        assert "0 sent by this run" in republished, republished
        assert f"the same text as version {live[:12]}" in republished  # says why nobody got it
        assert len(server.accepted) == 2  # nobody got the same text twice

        article.write_text(article.read_text().replace("No sources.", "No sources yet."))
        assert "2 sent by this run" in publish()
        assert [len(server.messages_to(a)) for a in ("ann@example.org", "bob@example.org")] == [2, 2]


@pytest.mark.usefixtures("prefect_harness")
def test_a_catalog_renders_in_worker_processes(
    write_article: WriteArticle,
    write_site: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import clinicpress.flows.publish as publish_module
    import clinicpress.renderers.pool as pool_module
    from clinicpress.renderers.pool import RenderPool

    monkeypatch.setattr(pool_module, "POOL_THRESHOLD", 2)  # the pool path, with a small catalog
    # Seen from inside the run: the pool it started, and what reached the release (paths or bytes).
    pools: list[RenderPool] = []
    staged: list[tuple[str, Path | None, bool]] = []  # (relpath, spooled file or None, it existed then)

    class SeenPool(RenderPool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

    real_publish_release = publish_release  # what the flow calls, seen first here

    def seen_publish_release(out_dir: Path, ready: list[ReadyArticle], *args: Any, **kwargs: Any) -> Any:
        for item in ready:
            for artifact in item.artifacts:
                path = artifact.path if isinstance(artifact, SpooledArtifact) else None  # else: bytes
                staged.append((artifact.relpath, path, path is not None and path.is_file()))
        return real_publish_release(out_dir, ready, *args, **kwargs)

    monkeypatch.setattr(publish_module, "RenderPool", SeenPool)
    monkeypatch.setattr(publish_module, "publish_release", seen_publish_release)
    paths = [str(_article_citing(write_article, name=f"article-{n}.md")) for n in range(3)]
    site = write_site()
    out = tmp_path / "out"
    # The spool of a run that died (its lock is free) goes; a live run's (lock held) stays.
    for name in ("dead", "alive"):
        (out / f".spool-{name}" / "handouts").mkdir(parents=True)
        (out / f".spool-{name}.lock").touch()
    with (out / ".spool-alive.lock").open("ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = publish_module.publish_flow(paths=paths, site_path=str(site), out_dir=str(out))
        assert [o.published for o in result.outcomes] == [True, True, True]
        for n in range(3):
            assert (out / "handouts" / f"article-{n}.pdf").read_bytes().startswith(b"%PDF")
        # This run's own spool is gone too: the release holds the files.
        assert sorted(p.name for p in out.glob(".spool-*")) == [".spool-alive", ".spool-alive.lock"]
    # Worker processes rendered every article, none of them this process.
    [pool] = pools
    assert sum(pool.stats.renders_by_pid.values()) == 3
    assert os.getpid() not in pool.stats.renders_by_pid
    assert set(pool.stats.renders_by_pid) <= set(pool.stats.started)
    # Every artifact came to the release as a file in this run's spool (under --out), not as bytes.
    for n in range(3):  # at least the three channels of each article
        assert {f"web/article-{n}/index.html", f"handouts/article-{n}.pdf"} <= {r for r, _, _ in staged}
        assert f"newsletter/article-{n}.eml" in {r for r, _, _ in staged}
    in_memory = [relpath for relpath, path, _ in staged if path is None]
    assert in_memory == [], "these reached the release as bytes, not spooled files"
    assert pool.spool is not None
    assert pool.spool.parent == out
    assert pool.spool.name.startswith(".spool-")
    assert all(exists and path and path.is_relative_to(pool.spool) for _, path, exists in staged)
