"""Published addresses are permanent (issue 24, part 4).

Once a file has published a slug, a title edit keeps it (check, publish and the preview alike); an
explicit new ``slug:`` publishes at the new address and leaves ``web/<old>/index.html`` as a
redirect page, listed nowhere and carried into every later release; a chain of moves redirects
every old address straight to the current one; another file cannot take an old address; the open
preview follows the article to its new slug.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MINIMAL_FRONT_MATTER
from typer.testing import CliRunner

from clinicpress import clock
from clinicpress.cli import app
from clinicpress.outputs.registry import Registry
from clinicpress.outputs.release import live_release, live_versions

runner = CliRunner()
OLD = "test-article"  # MINIMAL_FRONT_MATTER's title, as a slug


def _write(
    path: Path, *, title: str = "Test Article", slug: str | None = None, body: str = "Text.\n"
) -> Path:
    front = MINIMAL_FRONT_MATTER.replace("Test Article", title) + (f"slug: {slug}\n" if slug else "")
    path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return path


@pytest.fixture
def clinic(tmp_path: Path, write_site: Callable[..., Path]) -> tuple[Path, Path, list[str]]:
    """content/ (the site config and the articles) and the output folder, as the CLI names them."""
    content = tmp_path / "content"
    content.mkdir()
    site = write_site()
    site = site.rename(content / "site.toml")
    out = tmp_path / "out"
    return content, out, ["--site", str(site), "--out", str(out)]


def _publish(where: list[str], *paths: Path, code: int = 0) -> str:
    result = runner.invoke(app, ["publish", *where, *map(str, paths)])
    assert result.exit_code == code, result.output
    return result.output


def _redirect_target(page: str) -> str:
    match = re.search(r'<meta http-equiv="refresh" content="0; url=([^"]+)">', page)
    assert match is not None, page
    return match.group(1)


@pytest.mark.usefixtures("prefect_harness")
def test_a_published_address_stays_and_a_new_slug_leaves_a_redirect(
    clinic: tuple[Path, Path, list[str]],
) -> None:
    content, out, where = clinic
    article = _write(content / "a.md")
    _publish(where, article)
    assert set(live_versions(out)) == {OLD}

    # A title edit: the title changes, the address does not (check and publish alike).
    _write(article, title="Ketamine and Recovery, What to Expect")
    checked = runner.invoke(app, ["check", "--format", "json", *where, str(article)])
    assert [a["slug"] for a in json.loads(checked.stdout)["articles"]] == [OLD], checked.output
    _publish(where, article)
    assert set(live_versions(out)) == {OLD}
    assert "Ketamine and Recovery" in (out / "web" / OLD / "index.html").read_text(encoding="utf-8")
    assert not (out / "web" / "ketamine-and-recovery-what-to-expect").exists()
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        assert registry.addresses() == {"a.md": [OLD]}

    # An explicit new slug: published there; the old address redirects, listed nowhere.
    _write(article, title="Ketamine and Recovery, What to Expect", slug="ketamine-recovery")
    _publish(where, article)
    assert set(live_versions(out)) == {"ketamine-recovery"}
    redirect = (out / "web" / OLD / "index.html").read_text(encoding="utf-8")
    assert _redirect_target(redirect) == "../ketamine-recovery/"
    assert '<link rel="canonical" href="https://' in redirect
    assert '/ketamine-recovery/">' in redirect
    assert '<a href="../ketamine-recovery/">' in redirect
    for listing in ("index.html", "feed.xml", "sitemap.xml"):
        text = (out / "web" / listing).read_text(encoding="utf-8")
        assert f"{OLD}/" not in text, listing
        assert "ketamine-recovery/" in text, listing
    # The old handout and newsletter are not kept: a printed QR code leads to the web page.
    assert not (out / "handouts" / f"{OLD}.pdf").exists()
    assert not (out / "web" / "handouts" / f"{OLD}.pdf").exists()
    assert not (out / "reports" / f"{OLD}.json").exists()
    assert (out / "web" / "handouts" / "ketamine-recovery.pdf").is_file()

    # A chain: every old address leads straight to the current one.
    _write(article, title="Ketamine and Recovery, What to Expect", slug="ketamine-in-recovery")
    _publish(where, article)
    for old in (OLD, "ketamine-recovery"):
        page = (out / "web" / old / "index.html").read_text(encoding="utf-8")
        assert _redirect_target(page) == "../ketamine-in-recovery/", old

    # Kept in every later release: another article's publish makes a new one, redirects and all.
    before = live_release(out)
    other = _write(content / "b.md", title="Another Article")
    _publish(where, other)
    assert live_release(out) != before
    for old in (OLD, "ketamine-recovery"):
        page = (out / "web" / old / "index.html").read_text(encoding="utf-8")
        assert _redirect_target(page) == "../ketamine-in-recovery/", old

    # Another file cannot take an old address: the QR codes printed for it must keep landing.
    squatter = _write(content / "c.md", title="Test Article")
    output = _publish(where, squatter, code=2)
    assert f"c.md: slug: '{OLD}' is an earlier address of a.md" in output
    assert _redirect_target((out / "web" / OLD / "index.html").read_text(encoding="utf-8")).endswith(
        "/ketamine-in-recovery/"
    )


def test_the_preview_keeps_the_address_and_follows_the_article_to_its_new_slug(
    clinic: tuple[Path, Path, list[str]],
) -> None:
    from clinicpress.preview.server import Preview, route

    content, out, _ = clinic
    article = _write(content / "a.md")
    out.mkdir()
    with Registry(f"sqlite:///{(out / 'registry.sqlite').resolve()}") as registry:
        registry.record_addresses({OLD: "a.md"}, clock.now())  # what a publish records
    _write(article, title="A New Title for the Same Page")
    preview = Preview([content], content / "site.toml", out, port=0)
    try:
        preview.watcher.poll()
        assert route(preview.state, f"/{OLD}/").status == 200  # the title edit moved nothing
        assert route(preview.state, "/a-new-title-for-the-same-page/").status == 404

        _write(article, title="A New Title for the Same Page", slug="new-home")
        preview.previewer.reload(article)
        moved = route(preview.state, f"/{OLD}/")
        assert (moved.status, dict(moved.headers)["Location"]) == (302, "/new-home/")
        assert dict(route(preview.state, f"/{OLD}/version").headers)["Location"] == "/new-home/version"
        assert route(preview.state, "/new-home/").status == 200
    finally:
        preview.close()
