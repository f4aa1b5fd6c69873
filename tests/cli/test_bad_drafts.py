"""One bad draft does not hold back the rest (issue 24, part 1).

A folder of 8 articles, 7 with one mistake each: ``check`` and ``publish`` name every file that
does not load, one ``error:`` line each (file, field, what was expected), check and publish the
good one, and exit 2. ``--strict`` keeps all or nothing. The publish flow (what a deployment
runs) skips the same files. Also here: the other bad input of issue 24 named before any work
(a TOML value names its key; ``import`` refuses an existing file before fetching).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL_FRONT_MATTER, PUBLISHED, site_text
from httpfarm import HTTPFarm, Reply
from typer.testing import CliRunner

from clinicpress.cli import app
from clinicpress.errors import ArticleError

runner = CliRunner()

GOOD = "good-article"
# file → (the field its error line names, None: the file itself; a fragment of that line)
DRAFTS: dict[str, tuple[str | None, str]] = {
    "bad-date.md": ("published", "got '2026-13-40'; expected a date as YYYY-MM-DD"),
    "unknown-key.md": ("author", "unknown key; expected one of"),
    "bad-citation.md": ("body", "cites [^2] but sources has 0 entries"),
    "bad-yaml.md": ("front matter", "invalid YAML at line 3"),
    "binary.md": (None, "is a binary file; expected UTF-8 Markdown text"),
    "latin1.md": (None, "not UTF-8 text"),
    "no-summary.md": ("summary", "required field is missing"),
}
SKIPPED_SUMMARY = (
    "7 files skipped (do not load: 2 unreadable, 1 body, 1 front matter, 1 published, 1 summary, "
    "1 unknown key)"
)


def _front(title: str) -> str:
    return MINIMAL_FRONT_MATTER.replace("Test Article", title)


def _write(folder: Path, name: str, front: str, body: str = "Plain words for the reader.\n") -> Path:
    path = folder / name
    path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return path


@pytest.fixture
def drafts(tmp_path: Path) -> Path:
    """The folder: one good article and seven drafts, each with one mistake (no health claims)."""
    folder = tmp_path / "drafts"
    folder.mkdir()
    _write(folder, "good.md", _front("Good article"))
    _write(folder, "bad-date.md", _front("Bad date").replace(str(PUBLISHED), "2026-13-40"))
    _write(folder, "unknown-key.md", _front("Unknown key") + "author: someone\n")
    _write(folder, "bad-citation.md", _front("Bad citation"), "A sentence.[^2]\n")
    _write(folder, "bad-yaml.md", _front("Bad YAML").replace("title: Bad YAML", "title: [Bad YAML"))
    (folder / "binary.md").write_bytes(b"---\x00\x01\x02")
    latin = f"---\n{_front('Latin one')}---\ncaf\xe9\n"
    (folder / "latin1.md").write_bytes(latin.encode("latin-1"))
    no_summary = "".join(
        line for line in _front("Missing one").splitlines(True) if not line.startswith("summary:")
    )
    _write(folder, "no-summary.md", no_summary)
    return folder


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "clinic.toml"  # not the default --site
    path.write_text(site_text(), encoding="utf-8")
    return path


def _assert_every_bad_file_named(stderr: str, folder: Path, *, prefect_ran: bool = False) -> None:
    lines = stderr.splitlines()
    if prefect_ran:  # under the test harness Prefect logs to stderr too (tests/cli/test_hostile.py)
        lines = [line for line in lines if line.startswith("error:")]
    assert len(lines) == len(DRAFTS), stderr
    for name, (field, fragment) in DRAFTS.items():
        [line] = [line for line in lines if line.startswith(f"error: {folder / name}: ")]
        where = f"error: {folder / name}: {field}: " if field else f"error: {folder / name}: "
        assert line.startswith(where), line
        assert fragment in line, line
        assert "; expected " in line, line


# -- check ----------------------------------------------------------------------------------------


def test_check_names_every_bad_file_and_checks_the_good_one(drafts: Path, site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["check", "--site", str(site), "--out", str(out), str(drafts)])
    assert result.exit_code == 2, result.output
    _assert_every_bad_file_named(result.stderr, drafts)
    assert result.stdout.startswith(f"{GOOD}: ok\n"), result.stdout
    [summary] = [line for line in result.stdout.splitlines() if line.startswith("1 article: ")]
    assert summary.startswith(f"1 article: 1 ok · {SKIPPED_SUMMARY} (as of "), summary
    assert "Traceback" not in result.output


def test_check_json_stays_valid_and_lists_the_skipped_files(drafts: Path, site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["check", "--format", "json", "--site", str(site), "--out", str(out), str(drafts)]
    )
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)  # stdout is the JSON object only; the error lines are on stderr
    assert [(a["slug"], a["verdict"]) for a in document["articles"]] == [(GOOD, "ok")]
    skipped = {Path(item["path"]).name: item for item in document["skipped"]}
    assert sorted(skipped) == sorted(DRAFTS)
    for name, (field, fragment) in DRAFTS.items():
        assert skipped[name]["field"] == field
        assert skipped[name]["error"].startswith(f"{drafts / name}: ")
        assert fragment in skipped[name]["error"]
    _assert_every_bad_file_named(result.stderr, drafts)


def test_a_slug_claimed_by_two_files_skips_both(drafts: Path, site: Path, tmp_path: Path) -> None:
    # A copy of a live article kept as a draft sorts before it: neither may take the address.
    for name in ("sleep.md", "sleep-draft.md"):
        _write(drafts, name, _front("Sleep"))
    for name in DRAFTS:
        (drafts / name).unlink()
    result = runner.invoke(
        app, ["check", "--format", "json", "--site", str(site), "--out", str(tmp_path / "out"), str(drafts)]
    )
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)
    assert [a["slug"] for a in document["articles"]] == [GOOD]
    errors = {Path(item["path"]).name: item["error"] for item in document["skipped"]}
    draft, live = drafts / "sleep-draft.md", drafts / "sleep.md"
    assert errors == {
        draft.name: f"{draft}: slug: 'sleep' is also used by {live}; expected a unique slug",
        live.name: f"{live}: slug: 'sleep' is already used by {draft}; expected a unique slug",
    }


@pytest.mark.parametrize("command", ["check", "publish"])
def test_strict_is_all_or_nothing(drafts: Path, site: Path, tmp_path: Path, command: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, [command, "--strict", "--site", str(site), "--out", str(out), str(drafts)])
    assert result.exit_code == 2, result.output
    _assert_every_bad_file_named(result.stderr, drafts)
    assert result.stdout == ""  # nothing checked, nothing published, Prefect never started
    assert not out.exists()


# -- publish: the CLI and the flow a deployment runs ------------------------------------------------


def _web_slugs(out: Path) -> set[str]:
    return {p.parent.name for p in (out / "web").glob("*/index.html")}


@pytest.mark.usefixtures("prefect_harness")
def test_publish_publishes_the_good_article_and_keeps_live_what_it_skips(
    drafts: Path, site: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["publish", "--site", str(site), "--out", str(out), str(drafts)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    _assert_every_bad_file_named(result.stderr, drafts, prefect_ran=True)
    assert f"{GOOD}: ok — published" in result.stdout
    assert f"{SKIPPED_SUMMARY}: not published (a version already live stays live)" in result.stdout
    assert _web_slugs(out) == {GOOD}
    assert sorted(p.name for p in (out / "reports").iterdir()) == [f"{GOOD}.json"]
    assert (out / "handouts" / f"{GOOD}.pdf").read_bytes().startswith(b"%PDF")

    # The live article's file breaks while a fixed draft goes out: a new release, and the skipped
    # article's live page is still in it, listed on the index (what the summary line promised).
    page = (out / "web" / GOOD / "index.html").read_bytes()
    _write(drafts, "good.md", _front("Good article").replace(str(PUBLISHED), "someday"))
    _write(drafts, "bad-date.md", _front("Bad date"))
    again = runner.invoke(app, args)
    assert again.exit_code == 2, again.output
    assert f"error: {drafts / 'good.md'}: published: " in again.stderr
    assert "bad-date: ok — published" in again.stdout
    assert _web_slugs(out) == {GOOD, "bad-date"}
    assert (out / "web" / GOOD / "index.html").read_bytes() == page
    assert f"{GOOD}/" in (out / "web" / "index.html").read_text(encoding="utf-8")


@pytest.mark.usefixtures("prefect_harness")
def test_the_publish_flow_skips_the_same_files(drafts: Path, site: Path, tmp_path: Path) -> None:
    from clinicpress.flows.publish import publish_flow

    out = tmp_path / "out"
    with pytest.raises(ArticleError):  # strict: the first file that does not load stops the run
        publish_flow(paths=[str(drafts)], site_path=str(site), out_dir=str(out), strict=True)
    assert not (out / "web").exists()
    result = publish_flow(paths=[str(drafts)], site_path=str(site), out_dir=str(out))
    assert {Path(item.path).name: item.field for item in result.skipped} == {
        name: field for name, (field, _) in DRAFTS.items()
    }
    assert [(o.report.slug, o.published) for o in result.outcomes] == [(GOOD, True)]
    assert _web_slugs(out) == {GOOD}


# -- issue 24, part 7: bad input named before any work ---------------------------------------------


def test_a_toml_value_error_names_the_key(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(site_text(expires="2027-02-30"), encoding="utf-8")
    result = runner.invoke(app, ["check", "--site", str(site), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {site}: licenses.0.expires: invalid TOML at line "), line
    assert line.endswith("Invalid date or datetime; expected a date as YYYY-MM-DD that exists"), line


@pytest.fixture
def blog() -> Iterator[HTTPFarm]:
    with HTTPFarm() as server:
        page = b"<html><head><title>Family therapy</title></head><body><h1>Family therapy</h1></body></html>"
        server.route("/blog/family-therapy/", Reply(200, {"Content-Type": "text/html"}, page))
        yield server


def test_import_refuses_an_existing_file_before_fetching(
    blog: HTTPFarm, tmp_path: Path, write_site: Callable[..., Path]
) -> None:
    site = write_site(allow_private_hosts='["127.0.0.1"]')
    existing = tmp_path / "family-therapy.md"  # beside the site config: where import writes
    existing.write_text("kept as it is\n", encoding="utf-8")
    result = runner.invoke(app, ["import", blog.url("/blog/family-therapy/"), "--site", str(site)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: {existing}: already exists; expected --force to overwrite it"
    assert list(blog.requests()) == []  # refused before the page was fetched
    assert existing.read_text(encoding="utf-8") == "kept as it is\n"
    forced = runner.invoke(app, ["import", blog.url("/blog/family-therapy/"), "--site", str(site), "--force"])
    assert forced.exit_code == 0, forced.output
    assert list(blog.requests()) == [("GET", "/blog/family-therapy/")]


def test_publish_of_only_bad_files_publishes_nothing_else(
    drafts: Path, site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A content/ folder where the command runs: what a publish without paths would take. Every
    # file named does not load, so nothing is published, and never content/ instead.
    (drafts / "good.md").unlink()
    work = tmp_path / "work"
    (work / "content").mkdir(parents=True)
    _write(work / "content", "trap.md", _front("Not named"))
    monkeypatch.chdir(work)
    out = tmp_path / "out"
    result = runner.invoke(app, ["publish", "--site", str(site), "--out", str(out), str(drafts)])
    assert result.exit_code == 2, result.output
    _assert_every_bad_file_named(result.stderr, drafts, prefect_ran=True)
    assert result.stdout.strip() == f"{SKIPPED_SUMMARY}: not published (a version already live stays live)"
    assert not out.exists()
