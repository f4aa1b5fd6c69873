"""``clinicpress translate-status`` (issue 26): every translation, current, stale or blocked.

Uses the hand-written fixture edition (tests/fixtures/editions/) beside a site config; the
original's publishes are recorded in the registry as the publish flow records them
(outputs/edition_texts.py), on the product clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from editions import ORIGINAL, TRANSLATION, edit_original, edition_folder, edition_site, load_slug
from typer.testing import CliRunner

from clinicpress import clock
from clinicpress.cli import app
from clinicpress.outputs.edition_texts import record_texts
from clinicpress.sources.versioning import content_hash

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return edition_folder(tmp_path)


def _status(folder: Path, out: Path, *more: str) -> str:
    result = runner.invoke(
        app, ["translate-status", "--site", str(folder / "site.toml"), "--out", str(out), *more]
    )
    assert result.exit_code == 0, result.output  # whatever the editions' state
    return result.stdout


def test_translate_status_lists_current_stale_and_blocked(
    folder: Path,
    tmp_path: Path,
    pin_clock: Callable[[date], None],
) -> None:
    out, site, start = tmp_path / "published", edition_site(folder), clock.today()
    original = load_slug(folder, ORIGINAL)
    record_texts(site, out, [original], clock.now())
    text = _status(folder, out)
    assert (
        f"{TRANSLATION} (es) translation of {ORIGINAL} (text {content_hash(original)[:12]}): current" in text
    )
    assert "1 translation(s): 1 current, 0 stale, 0 blocked" in text

    edited = edit_original(folder)
    assert "stale (the original's new text is not published yet)" in _status(folder, out)
    pin_clock(start + timedelta(days=2))
    record_texts(site, out, [edited], clock.now())
    changed = (start + timedelta(days=2)).isoformat()
    blocks = (start + timedelta(days=16)).isoformat()
    text = _status(folder, out)
    assert f"(text {content_hash(edited)[:12]}): stale since {changed} (blocked on {blocks})" in text

    pin_clock(start + timedelta(days=16))
    text = _status(folder, out)
    assert ": blocked: stale since" in text
    assert "0 current, 0 stale, 1 blocked" in text
    [entry] = json.loads(_status(folder, out, "--format", "json"))["editions"]
    assert entry == {
        "slug": TRANSLATION,
        "translation_of": ORIGINAL,
        "language": "es",
        "state": "blocked",
        "original_hash": content_hash(edited),
        "translated_from": content_hash(original)[:12],
        "stale_since": changed,
        "blocked_on": blocks,
        "reason": entry["reason"],
    }


def test_translate_status_bad_input_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["translate-status", "--site", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2
    assert "file not found" in result.output
    result = runner.invoke(app, ["translate-status", "--site", str(tmp_path / "x.toml"), "--format", "xml"])
    assert result.exit_code == 2
