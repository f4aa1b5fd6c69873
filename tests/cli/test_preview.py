"""``clinicpress preview``: the pure page builders, the server over loopback HTTP, and Chromium.

The HTTP tests run a real preview (in a thread, port 0) on articles whose sources are served
by :class:`HTTPFarm` on 127.0.0.1, so the background link check is real and offline. The
browser test opens ``/<slug>/`` in headless Chromium (the DevTools client of
``tools/screenshots.py``, as ``test_browser.py`` uses it), edits the file on disk and watches
the web page's iframe change by itself.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import MINIMAL_FRONT_MATTER
from httpfarm import HTTPFarm, Reply
from requirements import need

from clinicpress.checks.model import ArticleReport, LinkResult, LinkStatus, Problem, Severity, Verdict
from clinicpress.cli import publishing as cli
from clinicpress.errors import InputError
from clinicpress.preview import DEFAULT_PORT, pages
from clinicpress.preview.server import Preview, route
from clinicpress.preview.state import CHECKING, Entry, PreviewState, file_changes, source_rows, verdict_label
from clinicpress.sources.article import Channel
from clinicpress.sources.loader import load_article

ROOT = Path(__file__).resolve().parents[2]
SLUG = "test-article"
HOSTILE = "<script>alert(1)</script>"


def _load_tools() -> ModuleType:
    # tools/ is not a package: the DevTools client comes from its file, as in test_browser.py.
    name = "clinicpress_tools_screenshots"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools/screenshots.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


tools = _load_tools()


def _wait(condition: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout} s: {what}")


# -- pure: state and pages ----------------------------------------------------------------------


@pytest.fixture
def loaded(write_article: Callable[..., Path]) -> Entry:
    front = MINIMAL_FRONT_MATTER.replace("Test Article", f"Test Article {HOSTILE}") + (
        f"slug: {SLUG}\nsources:\n"
        "  - {title: 'First <b>source</b>', url: 'https://example.org/one'}\n"
        "  - {title: Second source, url: 'https://example.org/two'}\n"
    )
    path = write_article(front_matter=front, body="Text citing one.[^1] And two.[^2]\n")
    article = load_article(path)
    quick = ArticleReport(path=str(path), slug=SLUG, verdict=Verdict.OK)
    return Entry(
        path=path, slug=SLUG, article=article, generation=1, quick=quick, web="<p>web</p>", wanted=True
    )


def test_sources_show_checking_until_the_check_of_this_text_is_done(loaded: Entry) -> None:
    urls = ["https://example.org/one", "https://example.org/two"]
    assert [r.status for r in source_rows(loaded, urls)] == [CHECKING, CHECKING]
    assert verdict_label(loaded) == CHECKING

    ok = LinkResult(url=urls[0], status=LinkStatus.OK, reason="200")
    broken = LinkResult(url=urls[1], status=LinkStatus.BROKEN, reason="404 Not Found")
    problem = Problem(check="links", severity=Severity.BLOCKED, message="source 2 broken")
    full = ArticleReport(
        path="a.md", slug=SLUG, verdict=Verdict.BLOCKED, problems=[problem], links=[ok, broken]
    )
    checked = replace(loaded, full=full, links_generation=1, known_links={ok.url: ok, broken.url: broken})
    rows = source_rows(checked, urls)
    assert [(r.number, r.status, r.stale) for r in rows] == [(1, "ok", False), (2, "broken", False)]
    assert verdict_label(checked) == "blocked"

    # The next save: the earlier statuses stay on screen, marked as being checked again.
    edited = replace(checked, generation=2)
    assert [(r.status, r.stale) for r in source_rows(edited, urls)] == [("ok", True), ("broken", True)]
    assert verdict_label(edited) == CHECKING


def test_pages_escape_what_comes_from_the_file(loaded: Entry) -> None:
    broken = replace(loaded, error=f"a.md: title: {HOSTILE}")
    for html in (
        pages.index_page([broken], version=3),
        pages.article_page(broken),
        pages.report_part(broken, site_error=HOSTILE),
        pages.message_page(HOSTILE, HOSTILE),
    ):
        assert HOSTILE not in html
        assert "&lt;script&gt;" in html
    assert "<b>source</b>" not in pages.report_part(loaded)


def test_article_page_has_the_three_channels_under_the_report(loaded: Entry) -> None:
    html = pages.article_page(replace(loaded, parts={"web": 7, "email": 8}))
    report, channels = html.index('data-part="report"'), html.index('class="channels"')
    assert report < channels
    assert 'data-src="web" src="web?v=7"' in html
    assert 'data-src="email" src="email?v=8"' in html
    assert 'data-src="email.txt" src="email.txt?v=8"' in html
    assert "Rendering the handout…" in html  # not rendered yet for this generation
    assert '<script src="/_/preview.js" defer></script>' in html
    assert "<script>" not in html  # no inline script: the CSP allows /_/preview.js only


def test_a_channel_the_article_does_not_have_says_so(loaded: Entry) -> None:
    assert loaded.article is not None
    web_only = replace(loaded, article=loaded.article.model_copy(update={"channels": [Channel.WEB]}))
    html = pages.article_page(web_only)
    assert html.count("Not a channel of this article") == 2
    assert not web_only.handout_pending


def test_index_lists_verdicts_and_the_one_line_error_of_a_file_that_does_not_load(
    loaded: Entry, tmp_path: Path
) -> None:
    bad = Entry(path=tmp_path / "bad.md", error="bad.md: front matter: invalid YAML at line 3")
    html = pages.index_page([loaded, bad], version=1)
    assert f'href="/{SLUG}/"' in html
    assert "bad.md: front matter: invalid YAML at line 3" in html
    assert "does not load" in html


def test_file_changes() -> None:
    a, b, c = Path("a.md"), Path("b.md"), Path("c.md")
    assert file_changes({a: 1, b: 2}, {a: 1, b: 3, c: 1}) == ([b, c], [])
    assert file_changes({a: 1, b: 2}, {b: 2}) == ([], [a])


def test_routes_from_state(loaded: Entry) -> None:
    state = PreviewState()
    state.update(
        loaded.path,
        ("page", "report", "web"),
        **{k: getattr(loaded, k) for k in ("slug", "article", "generation", "quick", "web")},
    )
    assert route(state, f"/{SLUG}/web?v=2").body == b"<p>web</p>"
    assert route(state, f"/{SLUG}/web").content_type == "text/html; charset=utf-8"
    assert route(state, f"/{SLUG}").status == 301
    # The web page's "Print this handout" link, as the web root serves it, leads to the preview's.
    served = route(state, f"/handouts/{SLUG}.pdf")
    assert (served.status, dict(served.headers)["Location"]) == (302, f"/{SLUG}/handout.pdf")
    assert route(state, "/nope/").status == 404
    assert route(state, f"/{SLUG}/nope").status == 404
    assert route(state, f"/{SLUG}/handout.pdf").status == 503  # being rendered
    assert route(state, f"/{SLUG}/email").status == 503  # not rendered yet: say so, and come back
    web_only = loaded.article.model_copy(update={"channels": [Channel.WEB]}) if loaded.article else None
    state.update(loaded.path, ("page",), article=web_only)
    assert route(state, f"/{SLUG}/email.txt").status == 404
    assert b"no newsletter channel" in route(state, f"/{SLUG}/email.txt").body
    assert route(state, f"/{SLUG}/handout.pdf").status == 404
    versions = route(state, f"/{SLUG}/version")
    assert versions.content_type == "application/json"
    assert b'"web": 1' in versions.body


def test_the_web_frame_shows_local_images_and_large_print_is_said_to_come_at_publish(
    write_article: Callable[..., Path],
) -> None:
    front = MINIMAL_FRONT_MATTER + f"slug: {SLUG}\n"
    path = write_article(front_matter=front, body="Text.\n\n![A chart](images/chart.png)\n")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    (path.parent / "images").mkdir()
    (path.parent / "images" / "chart.png").write_bytes(png)
    state = PreviewState()
    state.update(path, ("page",), slug=SLUG, article=load_article(path), generation=1)
    # The web frame is /<slug>/web: its images/<name> resolve to /<slug>/images/<name>.
    image = route(state, f"/{SLUG}/images/chart.png")
    assert (image.status, image.content_type, image.body) == (200, "image/png", png)
    assert route(state, f"/{SLUG}/images/other.png").status == 404
    assert route(state, f"/{SLUG}/images/../../site.toml").status == 404
    large = route(state, f"/handouts/{SLUG}-large-print.pdf")
    assert large.status == 404
    assert b"made when the article is published" in large.body


# -- a running preview over HTTP ----------------------------------------------------------------


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # our loopback server
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def article_text(farm: HTTPFarm, body: str, title: str = "Test Article") -> str:
    front = MINIMAL_FRONT_MATTER.replace("Test Article", title) + (
        f"slug: {SLUG}\nsources:\n"
        f"  - {{title: Works, url: '{farm.url('/ok')}'}}\n"
        f"  - {{title: Gone, url: '{farm.url('/gone')}'}}\n"
        f"  - {{title: Slow, url: '{farm.url('/slow')}'}}\n"
    )
    return f"---\n{front}---\n{body} Cited.[^1] Twice.[^2] Thrice.[^3]\n"


@pytest.fixture
def farm() -> Iterator[HTTPFarm]:
    with HTTPFarm() as running:
        running.route("/ok", Reply(200, {"Content-Type": "text/html"}, b"<title>Fine</title>"))
        running.route("/gone", Reply(404))
        running.route("/slow", Reply(200, {"Content-Type": "text/html"}, b"<title>Slow</title>", delay=1.0))
        yield running


@pytest.fixture
def content(tmp_path: Path, farm: HTTPFarm, write_site: Callable[..., Path]) -> tuple[Path, Path]:
    """(the article file, the site config) in a temporary folder; sources on the loopback farm."""
    folder = tmp_path / "content"
    folder.mkdir()
    path = folder / f"{SLUG}.md"
    path.write_text(article_text(farm, "The first draft."), encoding="utf-8")
    site = write_site(allow_private_hosts='["127.0.0.1"]', timeout="3.0", retries="0")
    return path, site


@pytest.fixture
def running(content: tuple[Path, Path], tmp_path: Path) -> Iterator[Preview]:
    path, site = content
    preview = Preview([path.parent], site, tmp_path / "published", port=0)
    try:
        preview.start()
        preview.serve_in_thread()
        yield preview
    finally:
        preview.close()


def test_index_and_channels_over_http(running: Preview, content: tuple[Path, Path], tmp_path: Path) -> None:
    base = running.url.rstrip("/")
    status, kind, body = get(f"{base}/")
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert f'href="/{SLUG}/"'.encode() in body
    [entry] = running.state.entries()
    assert entry.web is None  # verified for the index, but rendered only once someone looks

    # The page comes at once; the slow source is still being checked.
    status, _, body = get(f"{base}/{SLUG}/")
    assert status == 200
    assert CHECKING.encode() in body

    expected = {
        "web": "text/html; charset=utf-8",
        "email": "text/html; charset=utf-8",
        "email.txt": "text/plain; charset=utf-8",
    }
    for name, content_type in expected.items():
        status, kind, body = get(f"{base}/{SLUG}/{name}")
        assert (status, kind) == (200, content_type), name
        assert b"The first draft." in body, name

    pdf = _wait(lambda: (r := get(f"{base}/{SLUG}/handout.pdf"))[0] == 200 and r, 20, "the handout")
    assert pdf[1] == "application/pdf"
    assert pdf[2].startswith(b"%PDF-")
    status, kind, png = get(f"{base}/{SLUG}/handout-1.png")
    assert (status, kind) == (200, "image/png")
    assert png.startswith(b"\x89PNG")

    report = _wait(
        lambda: CHECKING.encode() not in (b := get(f"{base}/{SLUG}/part/report")[2]) and b, 15, "checks"
    )
    assert b'class="status ok">ok' in report
    assert b'class="status broken">broken' in report
    assert b'class="verdict blocked">blocked' in report

    status, kind, _ = get(f"{base}/no-such-article/")
    assert (status, kind) == (404, "text/html; charset=utf-8")
    assert not (tmp_path / "published").exists()  # preview writes nothing to --out


def test_saving_refreshes_and_a_broken_file_shows_its_error(
    running: Preview, content: tuple[Path, Path], farm: HTTPFarm
) -> None:
    path, _ = content
    base = running.url.rstrip("/")
    before = get(f"{base}/{SLUG}/version")[2]

    path.write_text(article_text(farm, "The second draft."), encoding="utf-8")
    # No timed assertion (a loaded CI machine is not a measurement): the time from save to page is
    # measured by bench/preview_latency.py; here a generous bound only keeps the test from hanging.
    _wait(lambda: b"The second draft." in get(f"{base}/{SLUG}/web")[2], 10.0, "the updated web page")
    assert b"The second draft." in get(f"{base}/{SLUG}/email.txt")[2]
    assert get(f"{base}/{SLUG}/version")[2] != before

    path.write_text("---\ntitle: [unclosed\n---\nText.\n", encoding="utf-8")
    error = _wait(lambda: b"invalid YAML" in (b := get(f"{base}/")[2]) and b, 2.0, "the error on /")
    assert b"does not load" in error
    status, _, page = get(f"{base}/{SLUG}/")  # the last good version stays, under the error
    assert status == 200
    assert b"The file does not load" in page
    assert b'<span class="verdict does-not-load">does not load</span>' in page  # not the old verdict
    assert b"The second draft." in get(f"{base}/{SLUG}/web")[2]

    path.write_text(article_text(farm, "The third draft."), encoding="utf-8")
    _wait(lambda: b"The third draft." in get(f"{base}/{SLUG}/web")[2], 2.0, "the fixed file")
    assert b"invalid YAML" not in get(f"{base}/")[2]


def test_a_foreign_host_header_is_refused(running: Preview) -> None:
    request = urllib.request.Request(running.url, headers={"Host": "rebound.example:80"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 421


def test_a_port_in_use_names_port(running: Preview, content: tuple[Path, Path], tmp_path: Path) -> None:
    path, site = content
    port = running.server.server_address[1]
    with pytest.raises(InputError, match=rf"--port: {port} is in use"):
        Preview([path], site, tmp_path / "published", port=port)


def test_the_command_serves_and_stops_on_ctrl_c(content: tuple[Path, Path], tmp_path: Path) -> None:
    path, site = content
    command = [sys.executable, "-m", "clinicpress", "preview", str(path), "--site", str(site), "--port", "0"]
    command += ["--out", str(tmp_path / "published")]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # written once the server listens
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", first)
        assert match, first
        assert get(f"http://127.0.0.1:{match.group(1)}/")[0] == 200

        busy = subprocess.run(
            [*command[:-4], "--port", match.group(1)], capture_output=True, text=True, timeout=60
        )
        assert busy.returncode == 2
        assert f"--port: {match.group(1)} is in use" in busy.stderr
        assert len(busy.stderr.strip().splitlines()) == 1

        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.strip().splitlines() == ["preview: stopped"]
    assert err == ""
    assert not (tmp_path / "published").exists()


# -- in Chromium ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = tools.find_chromium()
    if executable is None:
        need("chromium", "it runs the preview pages (Debian: apt-get install -y chromium)")
    try:
        with tools.chromium(executable) as instance:
            yield instance
    except tools.BrowserError as exc:
        need("chromium", f"it could not be started here: {exc}")


def frame_text(page: Any, part: str = "web") -> str:
    script = (
        f"(() => {{ const f = document.querySelector('iframe[data-src=\"{part}\"]');"
        " const d = f && f.contentDocument; return d && d.body ? d.body.innerText : ''; })()"
    )
    text: str = page.evaluate(script)
    return text


def test_the_open_page_follows_the_file_in_chromium(
    browser: Any, running: Preview, content: tuple[Path, Path], farm: HTTPFarm
) -> None:
    path, _ = content
    page = browser.new_page()
    page.goto(f"{running.url}{SLUG}/")
    _wait(lambda: "The first draft." in frame_text(page), 10, "the web page in its iframe", step=0.1)
    page.evaluate("window.notReloaded = true")

    path.write_text(article_text(farm, "Edited on disk."), encoding="utf-8")
    _wait(lambda: "Edited on disk." in frame_text(page), 10, "the edit in the web iframe", step=0.1)
    # Each frame loads on its own: the text part may come a moment after the web page.
    _wait(lambda: "Edited on disk." in frame_text(page, "email.txt"), 5, "the edit in the text part", 0.1)
    assert page.evaluate("window.notReloaded === true")  # the parts refreshed, not the whole page

    # The handout's pages and the finished source check arrive by themselves too.
    _wait(
        lambda: page.evaluate("document.querySelectorAll('.pages img').length") > 0, 20, "handout pages", 0.1
    )
    _wait(
        lambda: page.evaluate("document.querySelector('.status.broken') !== null"),
        20,
        "the source check",
        0.1,
    )


def test_site_config_and_new_files_are_followed(
    running: Preview, content: tuple[Path, Path], farm: HTTPFarm
) -> None:
    path, site = content
    base = running.url.rstrip("/")
    text = site.read_text(encoding="utf-8")

    site.write_text(text.replace('name = "Serenity Malibu"', 'name = "Renamed Clinic"', 1), encoding="utf-8")
    _wait(lambda: b"Renamed Clinic" in get(f"{base}/{SLUG}/web")[2], 2.0, "the new organization name")

    site.write_text(text.replace("[organization]", "[organization", 1), encoding="utf-8")
    _wait(lambda: b"The site config does not load" in get(f"{base}/")[2], 2.0, "the site config error")
    assert b"Renamed Clinic" in get(f"{base}/{SLUG}/web")[2]  # the last good config stays

    # A second file with the same slug is refused by name; the first keeps its page.
    twin = path.with_name("twin.md")
    twin.write_text(article_text(farm, "A twin."), encoding="utf-8")
    index = _wait(lambda: b"twin.md" in (b := get(f"{base}/")[2]) and b, 2.0, "the new file on /")
    assert b"is already used by" in index
    assert b"The first draft." in get(f"{base}/{SLUG}/web")[2]

    twin.unlink()
    _wait(lambda: b"twin.md" not in get(f"{base}/")[2], 2.0, "the removed file gone from /")


def test_the_command_defaults_to_the_package_port() -> None:
    assert inspect.signature(cli.preview).parameters["port"].default == DEFAULT_PORT == 8765
