"""A fault at every publish step, raised and SIGKILLed: nothing lost, nothing doubled.

Version 1 of an article is live and its newsletter sent. Version 2 is
published by a real CLI process with ``CLINICPRESS_FAULT=<point>:<raise|kill>``
(see ``clinicpress/faults.py``), against the session's real Prefect API and a
real SMTP server. Afterwards either the old release is live, byte for byte,
and no newsletter went out, or the new release is live complete and no email
went out yet (the faults after the switch come before any send). A re-run
without the fault then publishes version 2 whole, records it, and sends each
subscriber exactly one copy.

Two cases run in ``make test``; the whole matrix (13 points x 2) is marked
slow and runs in ``make test-slow`` and CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MINIMAL_FRONT_MATTER, ROOT, site_text
from pypdf import PdfReader
from smtpserver import SMTPTestServer

from clinicpress.faults import ACTIONS, FAULT_ENV, POINTS
from clinicpress.outputs.registry import REGISTRY_FILE, Registry
from clinicpress.outputs.release import STAGING_PREFIX

SUBSCRIBERS = ("ann@example.org", "bob@example.org", "cy@example.org")
SLUG = "test-article"  # from the title
QUICK = {("stage", "kill"), ("switched", "kill")}


def _article(marker: str) -> str:
    return f"---\n{MINIMAL_FRONT_MATTER}---\nThis version says {marker}.\n"


def _site(subscribers: Path, smtp_port: int) -> str:
    return site_text(timeout="2.0", retries="0").replace(
        'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"',
        'unsubscribe_mailto = "unsubscribe@serenitymaliburehab.com"\n'
        f'subscribers = "{subscribers}"\n\n'
        f'[newsletter.smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\ntimeout = 5',
    )


def _publish(folder: Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    """``clinicpress publish`` in a fresh process, against the test session's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    command = [sys.executable, "-m", "clinicpress", "publish"]
    command += ["--site", str(folder / "site.toml"), "--out", str(folder / "out"), str(folder / "a.md")]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _live(out: Path) -> Path:
    return (out / "current").resolve()


def _snapshot(release: Path) -> dict[str, str]:
    """Every file of a release and its sha256: "unchanged" means byte for byte."""
    return {
        str(p.relative_to(release)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(release.rglob("*"))
        if p.is_file()
    }


def _report(out: Path) -> dict[str, object]:
    data = json.loads((_live(out) / "reports" / f"{SLUG}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _assert_live_whole(out: Path, marker: str) -> None:
    """Every channel of the live article says ``marker``: no mix of versions."""
    live = _live(out)
    channels = _report(out)["channels"]
    assert isinstance(channels, dict)
    assert set(channels) == {"web", "handout", "newsletter"}
    for files in channels.values():
        for relpath in files:
            assert (live / relpath).is_file(), relpath
    assert marker in (live / "web" / SLUG / "index.html").read_text(encoding="utf-8")
    assert marker in (live / "newsletter" / f"{SLUG}.eml").read_text(encoding="utf-8")
    pdf = " ".join(page.extract_text() for page in PdfReader(live / "handouts" / f"{SLUG}.pdf").pages)
    assert marker in " ".join(pdf.split())


@dataclass(frozen=True)
class Published:
    """Version 1, published with its newsletter sent: the state every case starts from."""

    folder: Path
    release: str
    files: dict[str, str]
    version: str


@pytest.fixture(scope="module")
def version_one(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Published:
    folder = tmp_path_factory.mktemp("faults-v1")
    subscribers = folder / "subscribers.csv"
    subscribers.write_text("email\n" + "\n".join(SUBSCRIBERS) + "\n", encoding="utf-8")
    (folder / "a.md").write_text(_article("ALPHA"), encoding="utf-8")
    with SMTPTestServer() as server:
        (folder / "site.toml").write_text(_site(subscribers, server.port), encoding="utf-8")
        first = _publish(folder)
        assert first.returncode == 0, first.stdout + first.stderr
        assert len(server.accepted) == len(SUBSCRIBERS)
    out = folder / "out"
    version = _report(out)["version"]
    assert isinstance(version, str)
    return Published(folder, _live(out).name, _snapshot(_live(out)), version)


def _cases() -> Iterator[object]:
    for point in POINTS:
        for action in ACTIONS:
            marks = () if (point, action) in QUICK else (pytest.mark.slow,)
            yield pytest.param(point, action, marks=marks, id=f"{point}-{action}")


@pytest.mark.parametrize(("point", "action"), list(_cases()))
def test_a_fault_at_any_step_leaves_old_or_new_whole_and_a_rerun_completes(
    version_one: Published, tmp_path: Path, point: str, action: str
) -> None:
    folder = tmp_path / "site"
    shutil.copytree(version_one.folder, folder, symlinks=True)  # version 1 live, newsletter sent
    out = folder / "out"
    (folder / "a.md").write_text(_article("BRAVO"), encoding="utf-8")
    with SMTPTestServer() as server:
        (folder / "site.toml").write_text(_site(version_one.folder / "subscribers.csv", server.port))

        faulted = _publish(folder, f"{point}:{action}")
        said = faulted.stdout + faulted.stderr
        if action == "kill":
            assert faulted.returncode == -signal.SIGKILL, said  # the point was reached
        else:
            assert faulted.returncode != 0, said
            assert f"fault injected at {point!r}" in said, said
        assert server.accepted == [], "no email may go out from a faulted run"
        if POINTS.index(point) < POINTS.index("switched"):
            # The old release is live, byte for byte.
            assert _live(out).name == version_one.release
            assert _snapshot(_live(out)) == version_one.files
        else:
            assert _live(out).name != version_one.release
            _assert_live_whole(out, "BRAVO")

        rerun = _publish(folder)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        _assert_live_whole(out, "BRAVO")
        assert not list((out / "releases").glob(f"{STAGING_PREFIX}*")), "half-built release left behind"
        # Exactly one copy of version 2 per subscriber.
        for address in SUBSCRIBERS:
            [message] = server.messages_to(address)
            assert "BRAVO" in message.message().get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert len(server.accepted) == len(SUBSCRIBERS)

    version = _report(out)["version"]
    assert isinstance(version, str)
    assert version != version_one.version
    with Registry(f"sqlite:///{out / REGISTRY_FILE}") as registry:
        assert registry.unrecorded({SLUG: version}) == set()
        assert [p.version for p in registry.latest_publishes({SLUG: version})] == [version]
