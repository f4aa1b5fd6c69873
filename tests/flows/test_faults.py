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
slow and runs in ``make test-slow`` and CI. The CLI renders an edited article
in a worker process it started before Prefect (``renderers/pool.py``
``use_pool``): a kill at a render or consistency point kills that worker, and
the run reports the article blocked and exits 1 with the old release live.

A catalog (``CATALOG`` articles, at least ``POOL_THRESHOLD``) takes the other
path: renders in worker processes, artifacts in a spool, hard-linked into
staging. Its own cases: a worker SIGKILLed mid-render, the publishing process
SIGKILLed while linking the spool into staging, and right after the switch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MINIMAL_FRONT_MATTER, ROOT, site_text
from pypdf import PdfReader
from smtpserver import SMTPTestServer

from clinicpress.faults import ACTIONS, FAULT_ENV, GO, POINTS
from clinicpress.outputs.registry import REGISTRY_FILE, Registry
from clinicpress.outputs.release import STAGING_PREFIX
from clinicpress.renderers.pool import POOL_THRESHOLD
from clinicpress.renderers.spool import SPOOL_PREFIX

SUBSCRIBERS = ("ann@example.org", "bob@example.org", "cy@example.org")
SLUG = "test-article"  # from the title
QUICK = {("stage", "kill"), ("switched", "kill")}
# Points reached in the render worker, not in the publishing process.
IN_WORKER = {point for point in POINTS if point.startswith("render.") or point == "check.consistency"}


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
        if action == "kill" and point in IN_WORKER:
            assert faulted.returncode == 1, said
            assert "the render worker died" in said, said  # the point was reached, in the worker
        elif action == "kill":
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


# -- a catalog: the render pool and the spool ------------------------------------------------------

CATALOG = 8
CATALOG_SLUGS = tuple(f"article-{n}" for n in range(CATALOG))
CATALOG_QUICK = {"worker-killed"}


def _catalog_article(n: int, marker: str) -> str:
    front = MINIMAL_FRONT_MATTER.replace("Test Article", f"Article {n}")
    return f"---\n{front}---\nArticle {n} says {marker}.\n"


def _write_catalog(folder: Path, marker: str) -> None:
    for n in range(CATALOG):
        (folder / f"a{n}.md").write_text(_catalog_article(n, marker), encoding="utf-8")


def _catalog_command(folder: Path) -> list[str]:
    articles = [str(folder / f"a{n}.md") for n in range(CATALOG)]
    out = str(folder / "out")
    site = str(folder / "site.toml")
    return [sys.executable, "-m", "clinicpress", "publish", "--site", site, "--out", out, *articles]


def _catalog_env(fault: str | None = None) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return env


def _publish_catalog(folder: Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _catalog_command(folder),
        cwd=ROOT,
        env=_catalog_env(fault),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _catalog_marker(release: Path, slug: str) -> str:
    """The one marker every channel of ``slug`` says in ``release``: a mix of versions fails."""
    report = json.loads((release / "reports" / f"{slug}.json").read_text(encoding="utf-8"))
    assert set(report["channels"]) == {"web", "handout", "newsletter"}
    for files in report["channels"].values():
        for relpath in files:
            assert (release / relpath).is_file(), relpath
    web = (release / "web" / slug / "index.html").read_text(encoding="utf-8")
    eml = (release / "newsletter" / f"{slug}.eml").read_text(encoding="utf-8")
    pdf = " ".join(page.extract_text() for page in PdfReader(release / "handouts" / f"{slug}.pdf").pages)
    said = {m for m in ("ALPHA", "BRAVO") if m in web}
    assert len(said) == 1, (slug, said)
    [marker] = said
    assert marker in eml, slug
    assert marker in " ".join(pdf.split()), slug
    return marker


def _catalog_versions(out: Path) -> dict[str, str]:
    versions = {}
    for slug in CATALOG_SLUGS:
        data = json.loads((_live(out) / "reports" / f"{slug}.json").read_text(encoding="utf-8"))
        versions[slug] = data["version"]
    return versions


def _files_of(snapshot: dict[str, str], slug: str) -> dict[str, str]:
    """The files of one article (``web/<slug>/…``, ``handouts/<slug>.pdf``, …) in a snapshot."""
    return {
        path: digest
        for path, digest in snapshot.items()
        if len(Path(path).parts) > 1 and Path(path).parts[1].split(".")[0] == slug
    }


@pytest.fixture(scope="module")
def catalog_one(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Published:
    """Version 1 of a catalog big enough for the render pool, live."""
    assert CATALOG >= POOL_THRESHOLD
    folder = tmp_path_factory.mktemp("catalog-v1")
    (folder / "site.toml").write_text(site_text(timeout="2.0", retries="0"), encoding="utf-8")
    _write_catalog(folder, "ALPHA")
    first = _publish_catalog(folder)
    assert first.returncode == 0, first.stdout + first.stderr
    out = folder / "out"
    assert all(_catalog_marker(_live(out), slug) == "ALPHA" for slug in CATALOG_SLUGS)
    return Published(folder, _live(out).name, _snapshot(_live(out)), json.dumps(_catalog_versions(out)))


def _kill_a_worker_mid_render(folder: Path, held: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """Publish with the workers held inside their first render; SIGKILL one; return (run, its slug)."""
    held.mkdir()
    run = subprocess.Popen(
        _catalog_command(folder),
        cwd=ROOT,
        env=_catalog_env(f"render.handout:pause:{held}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (waiting := sorted(held.glob("*.waiting"))):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "no render worker reached the handout"
            time.sleep(0.05)
        pid = int(waiting[0].name.removesuffix(".waiting"))
        # The render is in a worker process, not the publishing one, and its artifacts go to a spool.
        assert pid != run.pid
        assert [p for p in (folder / "out").glob(f"{SPOOL_PREFIX}*") if p.is_dir()], "no spool in use"
        os.kill(pid, signal.SIGKILL)
    finally:
        (held / GO).touch()
    stdout, stderr = run.communicate(timeout=600)
    said = stdout + stderr
    died = re.findall(r"(article-\d+): the render worker died", said)
    assert len(died) == 1, said
    return subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr), died[0]


def _catalog_cases() -> Iterator[object]:
    for case in ("worker-killed", "stage.link", "switched"):
        marks = () if case in CATALOG_QUICK else (pytest.mark.slow,)
        yield pytest.param(case, marks=marks, id=case if case == "worker-killed" else f"{case}-kill")


@pytest.mark.parametrize("case", list(_catalog_cases()))
def test_a_fault_on_the_catalog_path_leaves_old_or_new_whole_and_a_rerun_completes(
    catalog_one: Published, tmp_path: Path, case: str
) -> None:
    folder = tmp_path / "site"
    shutil.copytree(catalog_one.folder, folder, symlinks=True)  # version 1 of every article live
    out = folder / "out"
    _write_catalog(folder, "BRAVO")

    if case == "worker-killed":
        faulted, lost = _kill_a_worker_mid_render(folder, tmp_path / "held")
        # The publisher lives on: the dead worker's article is blocked, the other seven go live.
        assert faulted.returncode == 1, faulted.stdout + faulted.stderr
        live = _live(out)
        assert live.name != catalog_one.release
        for slug in CATALOG_SLUGS:
            assert _catalog_marker(live, slug) == ("ALPHA" if slug == lost else "BRAVO"), slug
        # The article whose render died is version 1 byte for byte.
        assert _files_of(_snapshot(live), lost) == _files_of(catalog_one.files, lost)
        assert _files_of(catalog_one.files, lost), "no files matched the lost article"
    else:
        faulted = _publish_catalog(folder, f"{case}:kill")
        assert faulted.returncode == -signal.SIGKILL, faulted.stdout + faulted.stderr  # reached
        # The dead run's spool is left (it held the catalog's artifacts: the pool path was taken).
        assert list(out.glob(f"{SPOOL_PREFIX}*")), "the catalog did not go through a spool"
        if case == "stage.link":
            assert _live(out).name == catalog_one.release
            assert _snapshot(_live(out)) == catalog_one.files  # the old release, byte for byte
        else:
            assert _live(out).name != catalog_one.release
            assert all(_catalog_marker(_live(out), slug) == "BRAVO" for slug in CATALOG_SLUGS)

    rerun = _publish_catalog(folder)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert all(_catalog_marker(_live(out), slug) == "BRAVO" for slug in CATALOG_SLUGS)
    assert not list((out / "releases").glob(f"{STAGING_PREFIX}*")), "half-built release left behind"
    versions = _catalog_versions(out)
    assert set(versions.values()).isdisjoint(json.loads(catalog_one.version).values())
    with Registry(f"sqlite:///{out / REGISTRY_FILE}") as registry:
        assert registry.unrecorded(versions) == set()
    leftover = sorted(p.name for p in out.glob(f"{SPOOL_PREFIX}*"))
    assert leftover == [], f"spool left behind: {leftover}"


# -- the pause kind of fault point ------------------------------------------------------------------


def test_a_pause_holds_until_go_then_later_passes_do_not_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from clinicpress import faults

    monkeypatch.setenv(FAULT_ENV, f"stage:pause:{tmp_path}")
    faults.fault_point("switch")  # another point: not held
    assert list(tmp_path.iterdir()) == []
    held = threading.Thread(target=faults.fault_point, args=("stage",))
    held.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / f"{os.getpid()}.waiting").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    assert held.is_alive(), "the point did not wait for go"
    (tmp_path / GO).touch()
    held.join(timeout=5)
    assert not held.is_alive()
    faults.fault_point("stage")  # released: passes straight through


def test_a_pause_never_released_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clinicpress import faults

    monkeypatch.setattr(faults, "PAUSE_TIMEOUT", 0.2)
    monkeypatch.setenv(FAULT_ENV, f"stage:pause:{tmp_path}")
    with pytest.raises(faults.InjectedFault, match="never appeared"):
        faults.fault_point("stage")
