"""The hostile corpus (tests/hostile/): every case ends in exit 2, a block, or inert output.

Cases and their expected outcomes are data in tests/hostile/manifest.toml (the
README there shows them as a table). Most run through ``clinicpress check``
(fast, no Prefect); three publish runs at the end cover what only publishing
shows: a blocked article leaves nothing, nothing lands outside --out. A file that does not load
is skipped and named (exit 2); ``--strict`` stops before anything is checked.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import socket
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from conftest import AUTHORITY_OFF, LAST_REVIEWED, LICENSE_EXPIRES, PUBLISHED, REFERENCE_SITE
from hostile.inert import inert_problems, visible_text
from httpfarm import HTTPFarm, Reply
from typer.testing import CliRunner

from clinicpress.cli import app
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.handout import render_handout_html, render_handout_pdf
from clinicpress.renderers.newsletter import build_message
from clinicpress.renderers.web import render_web_html
from clinicpress.site import SiteConfig, load_site
from clinicpress.sources.loader import load_article

HOSTILE = Path(__file__).resolve().parents[1] / "hostile"
MANIFEST: list[dict[str, Any]] = tomllib.loads((HOSTILE / "manifest.toml").read_text(encoding="utf-8"))[
    "case"
]
CONTEXT = RenderContext(published_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC), version="0" * 64)
FRONT = f"summary: A short summary.\npublished: {PUBLISHED}\nlast_reviewed: {LAST_REVIEWED}\n"
# An SVG that would make WeasyPrint fetch three URLs, smuggled in as a PNG data: URL.
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
    ' width="10" height="10">'
    "<style>@import url({sink}/svg-style.css);</style>"
    '<image href="{sink}/svg-image.png" width="10" height="10"/>'
    '<image xlink:href="{sink}/svg-xlink.png" width="10" height="10"/></svg>'
)

runner = CliRunner()


class Sink:
    """A loopback TCP listener that only counts connections: the proof that nothing was fetched."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port = int(self._socket.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="sink", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    listener = Sink()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def farm() -> Iterator[HTTPFarm]:
    with HTTPFarm() as server:
        server.route("/ok", Reply(200, body=b"<html><title>A study</title></html>"))
        server.route("/to-metadata", Reply.redirect(302, "http://169.254.169.254/latest/meta-data/"))
        server.route("/to-private", Reply.redirect(302, "http://10.0.0.1/"))
        server.route("/to-javascript", Reply.redirect(302, "javascript:alert(1)"))
        server.route("/to-file", Reply.redirect(302, "file:///etc/passwd"))
        yield server


@dataclass
class Workspace:
    """One case's files: inputs under in/, the site config, an --out that must stay untouched."""

    root: Path
    files: list[Path]
    site: Path
    out: Path
    cwd: Path

    def written(self) -> list[str]:
        """Every file under root that is not an input (the CLI must write none for check).

        The link checker's cache (``<out>/.cache/``, successes only) is the one exception.
        """
        inputs = {*self.files, self.site}
        cache = self.out / ".cache"
        return sorted(
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() and p not in inputs and not p.is_relative_to(cache)
        )


def _substitute(text: str, farm: HTTPFarm, sink: Sink) -> str:
    svg = SVG.replace("{sink}", sink.url)
    # The corpus's ordinary dates move with the product's clock (a fixed review date goes overdue).
    text = text.replace("\nlast_reviewed: 2026-11-01\n", f"\nlast_reviewed: {LAST_REVIEWED}\n")
    text = text.replace("\npublished: 2026-01-05\n", f"\npublished: {PUBLISHED}\n")
    return (
        text.replace("{farm}", farm.base)
        .replace("{sink_port}", str(sink.port))
        .replace("{sink}", sink.url)
        .replace("{svg_as_png}", base64.b64encode(svg.encode()).decode())
    )


def _generated(kind: str) -> bytes:
    """Files too big (or too silly) to keep in the repository."""
    if kind == "deep-nesting":
        return ("---\ntitle: " + "[" * 100_000 + "\n" + FRONT + "---\nBody\n").encode()
    if kind == "huge-scalar":
        return ("---\ntitle: " + "A" * 900_000 + "\n" + FRONT + "---\nBody\n").encode()
    if kind == "huge-integer":
        return (
            "---\ntitle: Big number\nsummary: " + "9" * 5_000 + "\n" + FRONT[26:] + "---\nBody\n"
        ).encode()
    if kind == "huge-file":
        return ("---\ntitle: Huge\n" + FRONT + "---\n" + "word " * 220_000).encode()
    raise AssertionError(f"unknown generator {kind}")


def _patch_site(text: str, replacements: dict[str, str]) -> str:
    """``key = value`` lines replaced, the value taken as TOML source text (backslashes kept)."""
    for key, value in replacements.items():
        text, count = re.subn(rf"(?m)^{key}\s*=.*$", lambda _m, k=key, v=value: f"{k} = {v}", text, count=1)
        assert count == 1, f"no {key} line in site.toml"
    return text


def _site(case: dict[str, Any], farm_site: bool) -> str:
    replacements: dict[str, str] = {"expires": LICENSE_EXPIRES.isoformat()}
    if farm_site:
        replacements |= {"allow_private_hosts": '["127.0.0.1"]', "timeout": "2.0", "retries": "0"}
    if "site_key" in case:
        replacements[case["site_key"]] = case["site_value"]
    return _patch_site(REFERENCE_SITE.read_text(encoding="utf-8"), replacements) + AUTHORITY_OFF


def _workspace(case: dict[str, Any], tmp_path: Path, farm: HTTPFarm, sink: Sink) -> Workspace:
    inputs = tmp_path / "in"
    inputs.mkdir()
    files: list[Path] = []
    if "generate" in case:
        path = inputs / f"{case['id']}.md"
        path.write_bytes(_generated(case["generate"]))
        files.append(path)
    for name in case.get("files", []):
        source = HOSTILE / name
        path = inputs / source.name
        raw = source.read_bytes()
        try:
            path.write_text(_substitute(raw.decode("utf-8"), farm, sink), encoding="utf-8", newline="")
        except UnicodeDecodeError:
            path.write_bytes(raw)  # the non-UTF-8 and binary cases, byte for byte
        files.append(path)
    if not files:  # site-error cases: a good article, a bad site
        path = inputs / "good.md"
        path.write_text(f"---\ntitle: A good article\n{FRONT}---\nSome text.\n", encoding="utf-8")
        files.append(path)
    site = inputs / "site.toml"
    site.write_text(_site(case, case.get("site") == "loopback"), encoding="utf-8")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return Workspace(tmp_path, files, site, tmp_path / "out", cwd)


def _check(ws: Workspace, monkeypatch: pytest.MonkeyPatch, *extra: str) -> Any:
    monkeypatch.chdir(ws.cwd)
    args = ["check", "--site", str(ws.site), "--out", str(ws.out), "--format", "json", *extra]
    return runner.invoke(app, [*args, *map(str, ws.files)])


def _cases(*kinds: str) -> list[Any]:
    params = []
    for case in MANIFEST:
        if case["kind"] not in kinds:
            continue
        marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if "xfail" in case else []
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


def _no_traceback(result: Any, *, prefect_ran: bool = False) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    # Under the test harness Prefect is imported before the CLI can quiet it (clinicpress/runtime.py
    # sets PREFECT_LOGGING_LEVEL=CRITICAL first in a real run), so its task-failure logs reach stderr.
    assert "Traceback" not in (result.stdout if prefect_ran else result.output)


# -- the manifest itself ------------------------------------------------------------------------


def test_manifest_and_readme_list_the_same_cases() -> None:
    ids = [case["id"] for case in MANIFEST]
    assert len(ids) == len(set(ids))
    readme = (HOSTILE / "README.md").read_text(encoding="utf-8")
    for case in MANIFEST:
        assert f"| `{case['id']}` |" in readme, case["id"]
        for name in case.get("files", []):
            assert (HOSTILE / name).is_file(), name
    listed = {Path(name).name for case in MANIFEST for name in case.get("files", [])}
    stored = {p.name for p in (HOSTILE / "articles").iterdir()}
    assert stored - listed <= {"good-index-slug.md"}  # used by the publish test below


# -- exit 2, one line naming file and field -----------------------------------------------------


@pytest.mark.parametrize("case", _cases("input-error", "site-error"))
def test_bad_input_exits_2_naming_file_and_field(
    case: dict[str, Any], tmp_path: Path, farm: HTTPFarm, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _workspace(case, tmp_path, farm, sink)
    result = _check(ws, monkeypatch)
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    if case["kind"] == "site-error":
        path = ws.site
        assert result.stdout == ""
    else:
        path = ws.root / "in" / Path(case["path"]).name if "path" in case else ws.files[0]
        # The file is skipped (one bad draft does not hold back the rest): named on stderr and in
        # the JSON, nothing else checked. Two files with one slug are both skipped.
        report = json.loads(result.stdout)
        assert report["articles"] == []
        assert sorted(item["path"] for item in report["skipped"]) == sorted(map(str, ws.files))
    lines = result.stderr.splitlines()
    assert len(lines) == len(ws.files if case["kind"] == "input-error" else [ws.site])
    [line] = [line for line in lines if line.startswith(f"error: {path}: ")]
    where = f"error: {path}: {case['field']}: " if case.get("field") else f"error: {path}: "
    assert line.startswith(where), line
    assert case["message"] in line
    assert len(line) < 400  # a huge value is never echoed whole
    assert ws.written() == []
    assert not ws.out.exists()
    assert not any(ws.cwd.iterdir())


# -- blocked by the source check ----------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("blocked"))
def test_unsafe_sources_block_and_are_never_contacted(
    case: dict[str, Any], tmp_path: Path, farm: HTTPFarm, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _workspace(case, tmp_path, farm, sink)
    before = sink.connections
    result = _check(ws, monkeypatch)
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    [report] = json.loads(result.stdout)["articles"]
    assert report["path"] == str(ws.files[0])
    assert report["verdict"] == "blocked"
    assert [link["status"] for link in report["links"]] == case["statuses"], report["links"]
    for link, reason in zip(report["links"], case.get("reasons", []), strict=False):
        assert reason in link["reason"], link
    blocking = [p for p in report["problems"] if p["check"] == "links" and p["severity"] == "blocked"]
    assert len(blocking) == len(case["statuses"])
    # Each problem names where the link is: "source N <url>" or "link in body <url>".
    assert all(p["message"].startswith(("source ", "link in body ")) for p in blocking)
    assert sink.connections == before
    assert ws.written() == []
    assert not any(ws.cwd.iterdir())


# -- rendered: inert in every channel -----------------------------------------------------------


def _channels(article_path: Path, site: SiteConfig) -> tuple[dict[str, str], EmailMessage, str]:
    article = load_article(article_path)
    message = build_message(article, site, CONTEXT)
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    assert html_part is not None
    assert text_part is not None
    pages = {
        "web": render_web_html(article, site, CONTEXT),
        "email": str(html_part.get_content()),
        "handout": render_handout_html(article, site),
    }
    return pages, message, str(text_part.get_content())


@pytest.mark.parametrize("case", _cases("render"))
def test_injection_is_inert_in_every_channel(
    case: dict[str, Any], tmp_path: Path, farm: HTTPFarm, sink: Sink
) -> None:
    ws = _workspace(case, tmp_path, farm, sink)
    site = load_site(ws.site)
    article = load_article(ws.files[0])
    pages, message, text = _channels(ws.files[0], site)
    for channel, page in pages.items():
        assert inert_problems(page) == [], channel
        shown = visible_text(page)
        for literal in case.get("shown", []):
            assert literal in shown, (channel, literal)
    for literal in case.get("shown", []):
        assert literal in text  # the text part is text/plain: the literal is what a reader sees
    # Headers: exactly the ones we set, each one line, Subject the literal title.
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == article.title
    assert parsed["Bcc"] is None
    assert parsed["X-Injected"] is None
    assert {k.lower() for k in parsed} <= {
        "from", "reply-to", "subject", "date", "message-id", "list-unsubscribe",
        "list-unsubscribe-post", "mime-version", "content-type", "content-transfer-encoding",
        "content-language",
    }  # fmt: skip


# -- WeasyPrint fetches nothing -----------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("handout-fetch"))
def test_handout_fetches_nothing(
    case: dict[str, Any],
    tmp_path: Path,
    farm: HTTPFarm,
    sink: Sink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ws = _workspace(case, tmp_path, farm, sink)
    article = load_article(ws.files[0])
    assert sink.url in article.body
    before = sink.connections
    pdf = render_handout_pdf(article, load_site(ws.site))
    assert pdf.startswith(b"%PDF")
    assert sink.connections == before
    html = render_handout_html(article, load_site(ws.site))
    assert inert_problems(html) == []


# -- publish: the few cases that need the Prefect flow ------------------------------------------


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.usefixtures("prefect_harness")
def test_publish_blocked_article_leaves_nothing_and_nothing_leaves_out(
    tmp_path: Path, farm: HTTPFarm, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = {
        "id": "publish-mixed",
        "files": ["articles/good-index-slug.md", "articles/src-redirect-private.md"],
    }
    case["site"] = "loopback"
    farm.route("/publish-image.png", Reply(200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n"))
    ws = _workspace(case, tmp_path, farm, sink)
    before_tree = _tree(tmp_path)
    before_sink = sink.connections
    monkeypatch.chdir(ws.cwd)
    result = runner.invoke(
        app, ["publish", "--site", str(ws.site), "--out", str(ws.out), *map(str, ws.files)]
    )
    _no_traceback(result, prefect_ran=True)
    assert result.exit_code == 1, result.output
    assert "redirected-sources: blocked — nothing published" in result.stdout
    # Nothing outside --out: the new paths are all under out/, the working folder stays empty.
    assert {p for p in _tree(tmp_path) - before_tree if not p.startswith("out")} == set()
    assert not any(ws.cwd.iterdir())
    # The blocked article: no file of any channel, no report.
    leftovers = [p for p in _tree(ws.out) if "redirected-sources" in p]
    assert leftovers == []
    # slug "index" is an article folder, never the site index.
    page = (ws.out / "web" / "index" / "index.html").read_text(encoding="utf-8")
    assert inert_problems(page) == []
    assert "<script>alert('publish')</script>" in visible_text(page)
    assert "index/" in (ws.out / "web" / "index.html").read_text(encoding="utf-8")
    assert (ws.out / "handouts" / "index.pdf").read_bytes().startswith(b"%PDF")
    assert sink.connections == before_sink
    # The body's remote image is verified like a source, by the checker; the handout never fetches it.
    agents = farm.agents("/publish-image.png")
    assert agents, "the remote image was not link-checked"
    assert all(agent.startswith("clinicpress/") for agent in agents), agents


@pytest.mark.usefixtures("prefect_harness")
def test_publish_fails_closed_when_a_header_value_is_bad(
    tmp_path: Path, farm: HTTPFarm, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The site bug of case site-crlf-unsubscribe-url: until load_site refuses it, the
    # newsletter renderer must, and then the whole article stays unpublished.
    case = next(c for c in MANIFEST if c["id"] == "site-crlf-unsubscribe-url")
    ws = _workspace(case, tmp_path, farm, sink)
    monkeypatch.chdir(ws.cwd)
    result = runner.invoke(app, ["publish", "--site", str(ws.site), "--out", str(ws.out), str(ws.files[0])])
    _no_traceback(result, prefect_ran=True)
    assert result.exit_code in (1, 2), result.output  # 1: blocked at render today; 2 once site.py refuses
    assert "unsubscribe" in result.output.lower()
    published = (
        [p for p in _tree(ws.out) if p.endswith((".html", ".pdf", ".eml", ".json"))]
        if ws.out.exists()
        else []
    )
    assert published == []
    assert not any(ws.cwd.iterdir())


def test_publish_strict_bad_input_exits_2_before_prefect(
    tmp_path: Path, farm: HTTPFarm, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --strict: all or nothing (without it the good file is published: tests/cli/test_bad_drafts.py).
    case = {"id": "publish-bad", "files": ["articles/good-index-slug.md", "articles/crlf-title.md"]}
    ws = _workspace(case, tmp_path, farm, sink)
    monkeypatch.chdir(ws.cwd)
    result = runner.invoke(
        app, ["publish", "--strict", "--site", str(ws.site), "--out", str(ws.out), *map(str, ws.files)]
    )
    _no_traceback(result, prefect_ran=True)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {ws.files[1]}: title: must be a single line (no line breaks)")
    assert not ws.out.exists()
    assert not any(ws.cwd.iterdir())
