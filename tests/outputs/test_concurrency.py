"""One trigger, one run: two publishes (or two newsletter sends) of one version at once do it once.

The runs are real CLI processes against the session's Prefect API, made to
overlap with a ``pause`` fault point (``clinicpress/faults.py``): each holds
at the named point until the test creates the pause folder's ``go`` file, so
the race is forced every time instead of left to the scheduler.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, WriteArticle
from smtpserver import SMTPTestServer

from clinicpress.faults import FAULT_ENV, GO
from clinicpress.outputs.registry import REGISTRY_FILE

SUBSCRIBERS = ("ann@example.org", "bob@example.org", "cy@example.org")


def _start(site: Path, out: Path, article: Path, pause: tuple[str, Path] | None) -> subprocess.Popen[str]:
    """``clinicpress publish`` in a new process, held at ``pause`` (point, folder) if given."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env.pop(FAULT_ENV, None)
    if pause is not None:
        point, folder = pause
        folder.mkdir(parents=True, exist_ok=True)
        env[FAULT_ENV] = f"{point}:pause:{folder}"
    command = [sys.executable, "-m", "clinicpress", "publish", "--site", str(site), "--out", str(out)]
    return subprocess.Popen(
        [*command, str(article)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_held(folder: Path, count: int, runs: list[subprocess.Popen[str]], timeout: float = 240) -> None:
    """Until ``count`` processes wait in ``folder`` (a run that exits first fails the test)."""
    deadline = time.monotonic() + timeout
    while len(list(folder.glob("*.waiting"))) < count:
        for run in runs:
            if run.poll() is not None:
                out, err = run.communicate()
                pytest.fail(f"a run ended before it was held (exit {run.returncode}):\n{out}\n{err}")
        assert time.monotonic() < deadline, f"not {count} runs held in {folder} after {timeout} s"
        time.sleep(0.05)


def _finish(runs: list[subprocess.Popen[str]]) -> list[tuple[str, str]]:
    try:
        return [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()


@pytest.mark.usefixtures("prefect_harness")
def test_two_simultaneous_publishes_make_one_release(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    article = write_article(body="One version of one article.\n")
    site = write_site()
    out = tmp_path / "out"
    held = tmp_path / "held"
    # Both render (neither finds the version live: nothing is), then both wait just before the lock
    # and are let go together: only the under-lock check can stop the second release.
    runs = [_start(site, out, article, ("publish.lock", held)) for _ in range(2)]
    try:
        _wait_held(held, 2, runs)
    finally:
        (held / GO).touch()
    outputs = _finish(runs)
    assert [run.returncode for run in runs] == [0, 0], outputs
    releases = [p.name for p in (out / "releases").iterdir() if not p.name.startswith(".")]
    assert len(releases) == 1, outputs
    said = sorted("— published" in stdout for stdout, _ in outputs)
    assert said == [False, True], outputs  # one published it; the other says it was live already
    loser = next(stdout for stdout, _ in outputs if "— published" not in stdout)
    assert "unchanged, this version is live already" in loser
    with sqlite3.connect(out / REGISTRY_FILE) as db:
        rows = db.execute("SELECT slug, release_id FROM publishes").fetchall()
    assert rows == [("test-article", releases[0])]


@pytest.mark.usefixtures("prefect_harness")
def test_two_sends_of_one_newsletter_at_once_send_one_message_per_recipient(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    article = write_article(body="One version of one newsletter.\n")
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text("email\n" + "\n".join(SUBSCRIBERS) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    with SMTPTestServer() as server:
        site = write_site(
            unsubscribe_mailto='"unsubscribe@serenitymaliburehab.com"\n'
            f'subscribers = "{subscribers}"\n\n'
            f'[newsletter.smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\ntimeout = 5'
        )
        # Run A publishes, claims its first recipient (committed, the lease held) and is held before
        # a byte goes on the wire. Run B, the same trigger again, runs whole meanwhile: it finds the
        # version live and resumes its newsletter; the lease must keep it out (were B let in, it
        # would take A's claimed recipient back and A would have to stop before the data). Then A
        # goes on.
        held = tmp_path / "held"
        first = _start(site, out, article, ("newsletter.claimed", held))
        try:
            _wait_held(held, 1, [first])
            second = _start(site, out, article, None)
            [(second_out, second_err)] = _finish([second])
        finally:
            (held / GO).touch()
        [(first_out, first_err)] = _finish([first])
        said = f"A:\n{first_out}{first_err}\nB:\n{second_out}{second_err}"
        # aiosmtpd's count: one message per recipient, whichever run sent it.
        counts = {address: len(server.messages_to(address)) for address in SUBSCRIBERS}
        assert counts == dict.fromkeys(SUBSCRIBERS, 1), said
        assert len(server.accepted) == len(SUBSCRIBERS), said
        assert first.returncode == 0, said
        assert second.returncode == 0, said
        assert "unchanged, this version is live already" in second_out, said
    assert "another run" in second_out + second_err, said  # B saw the send busy and said so
