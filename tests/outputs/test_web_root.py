"""A web root that can be served as it is (issue 23 part 1).

``<out>/web/`` is what a web server serves. Each page links its handout, served from
``web/handouts/<slug>.pdf`` (the same file as ``handouts/<slug>.pdf``, in the same release).
Nothing private is ever under the web root, and what the tool keeps for itself (the registry, the
caches, the lock, the spool, review drafts) is owner-only: files 0600, folders 0700, whatever the
umask; group-only (0660, 2770) in a folder a team shares with the setgid bit.

End to end: publish, review (with comments), a draft rendered for review, a send to three
subscribers (aiosmtpd on 127.0.0.1) and two monitor runs that alert (a webhook on 127.0.0.1), in a
temporary project; then every file under the web root is read.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sqlite3
import stat
import threading
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from conftest import MINIMAL_FRONT_MATTER, WriteArticle
from httpfarm import HTTPFarm, Reply
from lxml import html as lxml_html
from smtpserver import SMTPTestServer
from typer.testing import CliRunner
from webhook import Receiver

from clinicpress.checks.model import ArticleReport, Verdict
from clinicpress.cli import app
from clinicpress.outputs.publish import ReadyArticle, publish_release, rollback_article
from clinicpress.private import (
    private_dir,
    private_file,
    private_opener,
    private_sqlite,
    private_tree,
    public_dir,
)
from clinicpress.renderers.base import Artifact, RenderContext
from clinicpress.renderers.consistency import consistency_problems
from clinicpress.renderers.registry import render_article
from clinicpress.renderers.spool import Spool, spool_artifacts
from clinicpress.renderers.web import WebRenderer, served_handout
from clinicpress.site import SiteConfig, load_site
from clinicpress.sources.article import Article, Channel
from clinicpress.sources.loader import load_article

runner = CliRunner()
SLUG = "test-article"  # MINIMAL_FRONT_MATTER's title
READERS = ["ann@example.org", "bob@example.org", "cy@example.org"]
APPROVAL_COMMENT = "Dosing paragraph checked against the label zq7"
CHANGES_COMMENT = "Please soften the second claim before it goes out zq8"
DRAFT_MARKER = "UnpublishedDraftWording-zq9"
AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CONTEXT = RenderContext(published_at=AT, version="0" * 64)

# What a web root may hold, by path relative to it: pages, feed, sitemap, handouts, assets.
ALLOWED = [
    re.compile(r"index\.html"),
    re.compile(r"feed\.xml"),
    re.compile(r"sitemap\.xml"),
    re.compile(r"[a-z0-9][a-z0-9-]*/index\.html"),
    re.compile(r"[a-z0-9][a-z0-9-]*/images/[a-z0-9][a-z0-9_-]*\.(png|jpg|gif|webp)"),  # an article's images
    re.compile(r"handouts/[a-z0-9][a-z0-9-]*\.pdf"),
    re.compile(r"assets/[a-z0-9][a-z0-9._-]*\.(css|js|png|jpg|jpeg|svg|webp|ico|woff2)"),
]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# -- the mechanism: clinicpress/private.py --------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
def test_private_and_public_modes_do_not_depend_on_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        out = tmp_path / "out"
        cache = private_dir(out / ".cache")
        database = private_sqlite(cache / "links.sqlite")
        with sqlite3.connect(database) as conn:  # SQLite's side files take the database's mode
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE t (x)")
            conn.execute("INSERT INTO t VALUES (1)")
            assert _mode(Path(f"{database}-wal")) == 0o600
            assert _mode(Path(f"{database}-shm")) == 0o600
        with open(out / ".lock", "wb", opener=private_opener):
            pass
        assert (_mode(out), _mode(cache), _mode(database), _mode(out / ".lock")) == (
            0o755,
            0o700,
            0o600,
            0o600,
        )
        released = _release_with_one_page(out)
        for path in [released, *released.rglob("*")]:
            assert _mode(path) == (0o755 if path.is_dir() else 0o644), path
    finally:
        os.umask(old)


def test_an_existing_loose_file_or_folder_is_tightened(tmp_path: Path, umask_022: None) -> None:
    """A registry made by an older clinicpress (0644) becomes 0600, side files included."""
    loose = tmp_path / "registry.sqlite"
    loose.write_bytes(b"")
    Path(f"{loose}-wal").write_bytes(b"")
    os.chmod(loose, 0o644)
    private_sqlite(loose)
    assert (_mode(loose), _mode(Path(f"{loose}-wal"))) == (0o600, 0o600)
    drafts = tmp_path / "reviews" / "a" / "0123"
    drafts.mkdir(parents=True)
    (drafts / "web.html").write_text("draft")
    private_tree(tmp_path / "reviews")
    assert [_mode(p) for p in (tmp_path / "reviews", drafts.parent, drafts, drafts / "web.html")] == [
        0o700,
        0o700,
        0o700,
        0o600,
    ]


def test_a_team_folder_with_the_setgid_bit_makes_private_files_group_only(
    tmp_path: Path, umask_022: None
) -> None:
    out = public_dir(tmp_path / "out")
    os.chmod(out, 0o2775)  # chgrp TEAM out && chmod g+s out: how a shared group folder is made
    cache = private_dir(out / ".cache")
    assert _mode(cache) == 0o2770
    assert _mode(private_file(cache / "links.sqlite")) == 0o660
    assert _mode(private_sqlite(out / "registry.sqlite")) == 0o660
    assert _mode(public_dir(out / "releases")) == 0o2775  # a teammate's publish adds and prunes here
    assert _mode(private_dir(tmp_path / "alone")) == 0o700  # no setgid bit: owner-only


def test_the_render_spool_is_private_and_its_files_are_ready_to_publish(
    tmp_path: Path, umask_022: None
) -> None:
    out = tmp_path / "out"
    with Spool(out) as spool:
        [spooled] = spool_artifacts(
            spool.path, [Artifact(Channel.WEB, "web/a/index.html", b"A", "text/html")]
        )
        assert _mode(spool.path) == 0o700  # unpublished renders wait here
        [lock] = out.glob(".spool-*.lock")
        assert _mode(lock) == 0o600
        assert _mode(spooled.path) == 0o644  # hard-linked into the release as it is


def _release_with_one_page(out: Path) -> Path:
    from clinicpress.outputs.release import Release

    with Release(out) as release:
        release.write("web/a/index.html", b"A")
        release.write("handouts/a.pdf", b"%PDF")
        return release.commit()


# -- the handout under the web root: one file, two names, one switch ------------------------------


def _ready(article: Article, slug: str, version: str, *, handout: bool = True) -> ReadyArticle:
    art = article.model_copy(update={"slug": slug})
    artifacts = [Artifact(Channel.WEB, f"web/{slug}/index.html", f"{slug} {version}".encode(), "text/html")]
    if handout:
        artifacts.append(
            Artifact(Channel.HANDOUT, f"handouts/{slug}.pdf", version.encode(), "application/pdf")
        )
    report = ArticleReport(path=f"content/{slug}.md", slug=slug, verdict=Verdict.OK)
    return ReadyArticle(art, report, version, artifacts)


def test_the_served_handout_is_the_printed_one_and_rolls_back_with_it(
    tmp_path: Path, article: Article, site: SiteConfig
) -> None:
    out = tmp_path / "out"
    publish_release(out, [_ready(article, "a", "v1")], site, AT)
    printed, served = out / "handouts" / "a.pdf", out / "web" / "handouts" / "a.pdf"
    assert served.read_bytes() == b"v1"
    assert os.stat(served).st_ino == os.stat(printed).st_ino  # one file, in the same release
    report = json.loads((out / "reports" / "a.json").read_text(encoding="utf-8"))
    assert report["channels"]["handout"] == ["handouts/a.pdf", "web/handouts/a.pdf"]

    publish_release(out, [_ready(article, "a", "v2", handout=False)], site, AT)
    assert not served.exists()  # a dropped handout leaves the web root too
    assert not printed.exists()
    rollback_article(out, "a", site, AT)  # back to v1: its handout, under both names
    assert served.read_bytes() == printed.read_bytes() == b"v1"
    assert os.stat(served).st_ino == os.stat(printed).st_ino

    publish_release(out, [_ready(article, "a", "v3")], site, AT)
    assert served.read_bytes() == b"v3"
    rollback_article(out, "a", site, AT)
    assert served.read_bytes() == printed.read_bytes() == b"v1"


def test_served_handout_names() -> None:
    assert served_handout("handouts/a.pdf") == "web/handouts/a.pdf"
    assert served_handout("handouts/a-large-print.pdf") == "web/handouts/a-large-print.pdf"
    for other in ("web/a/index.html", "handouts/x/a.pdf", "handouts/a.txt", "newsletter/a.eml", "handouts/"):
        assert served_handout(other) is None


# -- the consistency check reads the link back -------------------------------------------------


def _web_page(artifacts: list[Artifact], replace: Callable[[str], str]) -> list[Artifact]:
    page = f"web/{'ketamine-therapy-substance-abuse'}/index.html"
    return [
        Artifact(a.channel, a.relpath, replace(a.data.decode()).encode(), a.media_type)
        if a.relpath == page
        else a
        for a in artifacts
    ]


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ('class="handout-link" ', "", "handout link, count differs from the article: expected 1, found 0"),
        ('href="../handouts/', 'href="../../handouts/', "expected 'web/handouts/"),
        ('href="../handouts/', 'href="/handouts/', "expected 'a link relative to web/"),
        ('href="../handouts/', 'href="https://example.org/handouts/', "expected 'a link relative to web/"),
        ('.pdf" type', '-old.pdf" type', "found 'web/handouts/ketamine-therapy-substance-abuse-old.pdf'"),
    ],
)
def test_a_page_whose_handout_link_leads_elsewhere_is_blocked(
    article: Article, site: SiteConfig, old: str, new: str, says: str
) -> None:
    artifacts = render_article(article, site, CONTEXT)
    assert consistency_problems(article, site, artifacts) == []
    # The first match only: the handout link (the large-print link after it has its own tests).
    edited = _web_page(artifacts, lambda page: page.replace(old, new, 1))
    [problem] = consistency_problems(article, site, edited)
    assert problem.message.startswith("web: handout link")
    assert says in problem.message


def test_a_page_without_a_handout_links_none(article: Article, site: SiteConfig) -> None:
    web_only = article.model_copy(update={"channels": [Channel.WEB]})
    [page] = WebRenderer().render(web_only, site, CONTEXT)
    assert b'class="handout-link"' not in page.data
    with_link = WebRenderer().render(article, site, CONTEXT)  # a page that links a handout it has not
    problem, large_print = consistency_problems(web_only, site, with_link)
    assert problem.message.startswith("web: handout link differs from the article: expected [], found ['../")
    assert large_print.message.startswith("web: large-print link differs from the article: expected []")


# -- end to end ---------------------------------------------------------------------------------


def _site(
    write_site: Callable[..., Path], tmp_path: Path, smtp: SMTPTestServer, farm: HTTPFarm, alerts: str
) -> Path:
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text("email\n" + "".join(f"{r}\n" for r in READERS))
    site = write_site(allow_private_hosts='["127.0.0.1"]', timeout="2.0", retries="0")
    text = site.read_text()
    text = text.replace(
        'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"',
        'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"\n'
        f'subscribers = "{subscribers}"\n\n'
        f'[newsletter.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\ntimeout = 5',
    )
    text = text.replace(
        'endpoint = "https://archive.org/wayback/available"', f'endpoint = "{farm.url("/wayback")}"'
    )
    text = text.replace("urls = []", f"urls = {json.dumps([alerts])}")
    if "\n[review]\n" in text:
        text = text.replace("\n[review]\n", "\n[review]\nrequired = true\n", 1)
    else:
        text += "\n[review]\nrequired = true\n"
    site.write_text(text)
    return site


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _files(folder: Path) -> list[Path]:
    return [Path(root) / name for root, _, names in os.walk(folder, followlinks=True) for name in names]


@contextlib.contextmanager
def _serving(folder: Path) -> Iterator[str]:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _resolve_link(page: Path, web_root: Path) -> Path:
    """Where a browser that got ``page`` from the web root goes for its handout link, on disk."""
    [link] = lxml_html.fromstring(page.read_bytes()).find_class("handout-link")
    assert link.text_content() == "Print this handout (PDF)"
    href = link.get("href")
    assert not urlsplit(href).scheme
    assert not href.startswith("/")  # relative: works under any path the web root is served at
    url = urljoin(f"https://clinic.example/{page.relative_to(web_root).as_posix()}", href)
    return web_root / unquote(urlsplit(url).path).lstrip("/")


@pytest.mark.usefixtures("prefect_harness", "umask_022")
def test_nothing_private_is_ever_under_the_web_root(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from clinicpress.flows.review import render_for_review

    webhook = Receiver()
    try:
        with HTTPFarm() as farm, SMTPTestServer() as smtp:
            farm.route("/paper", Reply(200))
            farm.route("/wayback", Reply(200, {"Content-Type": "application/json"}, b"{}"))
            site = _site(write_site, tmp_path, smtp, farm, webhook.url)
            front = MINIMAL_FRONT_MATTER + f"sources:\n  - {{title: A paper, url: '{farm.url('/paper')}'}}\n"
            article = write_article(front_matter=front, body="A claim.[^1]\n")
            out = tmp_path / "out"
            where = ["--site", str(site), "--out", str(out)]

            # Reviewed, published, sent to three subscribers.
            _cli("review", SLUG, "--by", "Dana Reviewer", "--credentials", "MD", "--approve",
                 "--comment", APPROVAL_COMMENT, *where)  # fmt: skip
            published = _cli("publish", *where, "--by", "Alice", str(article))
            assert "published" in published
            assert [len(smtp.messages_to(r)) for r in READERS] == [1, 1, 1]

            # A new text: changes requested on it, its draft rendered for review, never published.
            write_article(front_matter=front, body=f"A claim.[^1] {DRAFT_MARKER}.\n")
            _cli("review", SLUG, "--by", "Dana Reviewer", "--credentials", "MD", "--request-changes",
                 "--comment", CHANGES_COMMENT, *where)  # fmt: skip
            drafts, _ = render_for_review.fn(load_article(article), load_site(site), out)
            assert DRAFT_MARKER in drafts["web page"].read_text(encoding="utf-8")
            blocked = runner.invoke(app, ["publish", *where, str(article)])
            assert blocked.exit_code == 1, blocked.output

            # The source breaks: the second failed monitor run alerts.
            farm.route("/paper", Reply(404))
            _cli("monitor", *where)
            _cli("monitor", *where)
            assert webhook.posts, "the monitor alerted"
    finally:
        webhook.close()

    secrets = [r.encode() for r in READERS] + [c.encode() for c in (APPROVAL_COMMENT, CHANGES_COMMENT)]
    never = [*secrets, DRAFT_MARKER.encode(), b"SQLite format 3"]
    # They are all somewhere under --out (so finding none under the web root means something)…
    everything = b"".join(p.read_bytes() for p in _files(out) if p.is_file())
    for needle in never:
        assert needle.lower() in everything.lower(), needle

    # …and none under the web root.
    web_root = out / "web"
    files = _files(web_root)
    assert files
    for path in files:
        relative = path.relative_to(web_root).as_posix()
        assert not any(part.startswith(".") for part in path.relative_to(web_root).parts), relative
        assert any(pattern.fullmatch(relative) for pattern in ALLOWED), (
            f"not a page, feed, sitemap, …: {relative}"
        )
        data = path.read_bytes().lower()
        for needle in never:
            assert needle.lower() not in data, (relative, needle)
    for folder, dirs, _ in os.walk(web_root, followlinks=True):
        assert not [d for d in dirs if d.startswith(".")], folder

    # The page's link leads to the handout, under the web root (no browser: resolved as one would).
    page = web_root / SLUG / "index.html"
    target = _resolve_link(page, web_root)
    assert target.resolve().is_relative_to(web_root.resolve())
    assert target.read_bytes() == (out / "handouts" / f"{SLUG}.pdf").read_bytes()
    assert target.read_bytes().startswith(b"%PDF")
    # And through a static file server given the web root as it is (Python's, on 127.0.0.1).
    with _serving(web_root) as base:
        href = lxml_html.fromstring(page.read_bytes()).find_class("handout-link")[0].get("href")
        with urllib.request.urlopen(urljoin(f"{base}/{SLUG}/", href), timeout=10) as response:
            assert response.headers["Content-Type"] == "application/pdf"
            assert response.read() == target.read_bytes()

    # The web root is readable by a web server running as another user…
    assert _mode(out) & 0o005 == 0o005
    assert _mode(out / "releases") & 0o005 == 0o005
    live = web_root.resolve()
    for path in [live.parent, live, *live.rglob("*")]:
        assert _mode(path) == (0o755 if path.is_dir() else 0o644), path
    # …and what the tool keeps for itself is its owner's alone.
    private = [out / "registry.sqlite", out / ".lock"]
    private += [Path(f"{out / 'registry.sqlite'}{s}") for s in ("-wal", "-shm", "-journal")]
    private += [*(out / ".cache").rglob("*"), out / ".cache", *(out / "reviews").rglob("*"), out / "reviews"]
    checked = [p for p in private if p.exists()]
    assert out / "registry.sqlite" in checked
    assert any(p.suffix == ".sqlite" and p.parent.name == ".cache" for p in checked)
    assert any(p.name == "web.html" for p in checked)
    for path in checked:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
