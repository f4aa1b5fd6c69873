"""A rollback is not undone by accident (issue 24, part 3).

After ``rollback``, the version rolled back from is held: a plain ``publish`` skips it, saying who
rolled it back, when, and how to go on; an edited article (a new version) is not held;
``publish --force`` publishes it again and lifts the hold; ``releases`` shows what is held. A
whole-site rollback holds every article version it took out of live, in the Prefect flow too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import LICENSE_EXPIRES, MINIMAL_FRONT_MATTER, WriteArticle
from typer.testing import CliRunner

from clinicpress.cli import app
from clinicpress.outputs.holds import SKIPPED_AS_HELD
from clinicpress.outputs.registry import Registry
from clinicpress.outputs.release import live_versions

runner = CliRunner()


def _write(write_article: WriteArticle, name: str, body: str) -> Path:
    front = MINIMAL_FRONT_MATTER.replace("Test Article", name.title())
    return write_article(front_matter=front, body=body, name=f"{name}.md")


def _publish(*args: str) -> str:
    result = runner.invoke(app, ["publish", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _holds(out: Path) -> set[tuple[str, str, str]]:
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        return {(h.slug, h.version, h.held_by) for h in registry.holds()}


@pytest.mark.usefixtures("prefect_harness")
def test_a_rolled_back_version_is_held_until_the_article_changes_or_force(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = write_site()
    out = tmp_path / "out"
    where = ["--site", str(site), "--out", str(out)]
    alpha = _write(write_article, "alpha", "Alpha, first version.\n")
    _publish(*where, str(alpha))
    v1 = live_versions(out)["alpha"]
    _write(write_article, "alpha", "Alpha, second version: the wrong dose.\n")
    _publish(*where, str(alpha))
    v2 = live_versions(out)["alpha"]
    assert v2 != v1

    rolled = runner.invoke(app, ["rollback", "alpha", "--by", "Dr Ana Rivera", *where])
    assert rolled.exit_code == 0, rolled.output
    assert f"held: alpha version {v2[:12]}" in rolled.stdout
    assert _holds(out) == {("alpha", v2, "Dr Ana Rivera")}

    # A plain publish of the unchanged file: skipped, saying who, when and how to go on.
    again = runner.invoke(app, ["publish", *where, str(alpha)])
    assert again.exit_code == 0, again.output
    assert live_versions(out) == {"alpha": v1}
    [line] = [line for line in again.stdout.splitlines() if line.startswith("held ")]
    assert f"alpha: version {v2[:12]} was rolled back by Dr Ana Rivera on " in line
    assert "edit the article" in line
    assert f"clinicpress publish {alpha} --force" in line
    assert "1 held (rolled back): not published" in again.stdout
    assert "\npublished" not in again.stdout

    listing = runner.invoke(app, ["releases", *where])
    assert listing.exit_code == 0, listing.output
    assert f"alpha@{v2[:8]} (held)" in listing.stdout
    assert f"held: alpha@{v2[:8]} rolled back by Dr Ana Rivera" in listing.stdout

    # --force publishes that version again and lifts the hold.
    forced = runner.invoke(app, ["publish", "--force", "--by", "Dr Ana Rivera", *where, str(alpha)])
    assert forced.exit_code == 0, forced.output
    assert live_versions(out) == {"alpha": v2}
    assert _holds(out) == set()
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        assert [e["action"] for e in registry.events()] == ["rollback", "hold-lifted"]
    assert "held:" not in runner.invoke(app, ["releases", *where]).stdout

    # Rolled back again (by the OS user this time); an edit is a new version: not held.
    rolled = runner.invoke(app, ["rollback", "alpha", *where])
    assert rolled.exit_code == 0, rolled.output
    assert live_versions(out) == {"alpha": v1}
    assert {(slug, version) for slug, version, _ in _holds(out)} == {("alpha", v2)}
    _write(write_article, "alpha", "Alpha, third version: the dose corrected.\n")
    edited = runner.invoke(app, ["publish", *where, str(alpha)])
    assert edited.exit_code == 0, edited.output
    assert "held " not in edited.stdout
    assert "third version" in (out / "web" / "alpha" / "index.html").read_text(encoding="utf-8")


@pytest.mark.usefixtures("prefect_harness")
def test_a_site_rollback_holds_every_version_it_took_out_in_the_flow_too(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from clinicpress.flows.publish import publish_flow, summary_markdown

    site = write_site()
    out = tmp_path / "out"
    alpha = _write(write_article, "alpha", "Alpha, first version.\n")
    beta = _write(write_article, "beta", "Beta, first version.\n")
    gamma = _write(write_article, "gamma", "Gamma, the only version.\n")
    paths = [str(alpha), str(beta), str(gamma)]
    publish_flow(paths=paths, site_path=str(site), out_dir=str(out))
    v1 = live_versions(out)
    _write(write_article, "alpha", "Alpha, second version.\n")
    _write(write_article, "beta", "Beta, second version.\n")
    publish_flow(paths=paths, site_path=str(site), out_dir=str(out))
    v2 = live_versions(out)

    rolled = runner.invoke(app, ["rollback", "--by", "Dr Ana Rivera", "--site", str(site), "--out", str(out)])
    assert rolled.exit_code == 0, rolled.output
    assert live_versions(out) == v1
    # gamma did not change: its version is live before and after, so it is not held (unless the
    # templates changed between the two publishes: then that version went out too).
    went_out = {slug for slug in v2 if v2[slug] != v1[slug]}
    assert went_out >= {"alpha", "beta"}
    assert _holds(out) == {(slug, v2[slug], "Dr Ana Rivera") for slug in went_out}

    result = publish_flow(paths=paths, site_path=str(site), out_dir=str(out))
    assert result.release_id is None
    assert live_versions(out) == v1
    assert {(h.slug, h.status, h.held_by) for h in result.held} == {
        ("alpha", SKIPPED_AS_HELD, "Dr Ana Rivera"),
        ("beta", SKIPPED_AS_HELD, "Dr Ana Rivera"),
    }
    assert {o.report.slug for o in result.outcomes} == {"gamma"}
    assert SKIPPED_AS_HELD in summary_markdown(result)
    assert {h["slug"] for h in result.model_dump(mode="json")["held"]} == {"alpha", "beta"}

    # A license renewal makes a new version of every article: the rolled-back texts stay held.
    renewed = site.read_text(encoding="utf-8")
    site.write_text(
        re.sub(r"(?m)^expires = .*$", f"expires = {LICENSE_EXPIRES + timedelta(days=365)}", renewed)
    )
    result = publish_flow(paths=paths, site_path=str(site), out_dir=str(out))
    assert {h.slug for h in result.held} == {"alpha", "beta"}
    assert {slug for slug, version in live_versions(out).items() if version != v1[slug]} == {"gamma"}
    assert "first version" in (out / "web" / "alpha" / "index.html").read_text(encoding="utf-8")


# -- the registry's two new tables (schema 10), on SQLite and PostgreSQL ---------------------------


def test_a_version_9_registry_gains_holds_and_addresses(registry: Registry) -> None:
    from sqlalchemy import inspect, text

    from clinicpress.outputs.registry import SCHEMA_VERSION

    with registry.engine.begin() as conn:  # today's schema, taken back to what version 9 had
        conn.execute(text("DROP TABLE held_versions"))
        conn.execute(text("DROP TABLE article_addresses"))
        conn.execute(text("UPDATE schema_info SET version = 9"))
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    with Registry(registry.url) as upgraded:
        assert {"held_versions", "article_addresses"} <= set(inspect(upgraded.engine).get_table_names())
        with upgraded.engine.connect() as conn:
            assert conn.execute(text("SELECT version FROM schema_info")).scalar() == SCHEMA_VERSION >= 10
        upgraded.record_rollback(
            release_id="r2", slug=None, detail="site", at=at, by="Ana",
            held={"a": ("v2", "t2"), "b": ("w2", None)}, restored={"a": ("v1", "t1")},
        )  # fmt: skip
        assert {(h.slug, h.version, h.content_hash, h.held_by) for h in upgraded.holds()} == {
            ("a", "v2", "t2", "Ana"),
            ("b", "w2", None, "Ana"),
        }
        # The same text under a new version (a license renewal) lifts the hold on that text.
        assert upgraded.lift_holds({"a": ("v3", "t2")}, release_id="r3", by="Bo", at=at) == ["a"]
        assert [h.slug for h in upgraded.holds()] == ["b"]
        assert [e["action"] for e in upgraded.events()] == ["rollback", "hold-lifted"]
        # Addresses: a move makes a new current slug; publishing the current one again changes nothing.
        upgraded.record_addresses({"x": "a.md", "y": "b.md"}, at)
        upgraded.record_addresses({"z": "a.md"}, at)
        upgraded.record_addresses({"z": "a.md", "y": "b.md"}, at)
        assert upgraded.addresses() == {"a.md": ["x", "z"], "b.md": ["y"]}
        upgraded.record_addresses({"x": "a.md"}, at)  # moved back: x is current again
        assert upgraded.addresses() == {"a.md": ["z", "x"], "b.md": ["y"]}
