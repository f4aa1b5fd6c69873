"""The publish flow with the facts cache (checks/facts_cache.py): the same reports, nothing worked out twice.

A real Prefect run, real files; the article cites nothing (no network). "A new process" is this
one with its memory of loads, parses and grades cleared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MINIMAL_FRONT_MATTER, WriteArticle
from facts_memory import forget

import clinicpress.checks.readability as readability_module
import clinicpress.sources.loader as loader_module

HARD_BODY = (
    "Pharmacokinetic considerations notwithstanding, multidisciplinary interdisciplinary "
    "psychopharmacological interventions necessitate comprehensive individualized evaluation.\n\n"
    "- a list item\n- another one, [in-page](#top)\n"
)


def _reports(result: object) -> list[dict[str, object]]:
    return [o.report.model_dump() for o in result.outcomes]  # type: ignore[attr-defined]


@pytest.mark.usefixtures("prefect_harness")
def test_a_new_process_publishes_the_same_from_the_facts_cache(
    write_article: WriteArticle,
    write_site: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clinicpress.flows.publish import publish_flow

    site = write_site()
    article = write_article(front_matter=MINIMAL_FRONT_MATTER, body=HARD_BODY, name="hard.md")
    out = tmp_path / "out"
    forget()
    first = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out), use_cache=True)
    assert not (out / ".cache" / "facts.sqlite").exists()  # a new --out: the cache starts with the next run
    forget()
    cold = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out), use_cache=True)
    assert (out / ".cache" / "facts.sqlite").exists()
    forget()
    off = tmp_path / "out-off"
    no_cache = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(off), use_cache=False)
    assert not (off / ".cache" / "facts.sqlite").exists()

    def refuse(*args: object) -> None:
        raise AssertionError("worked out again although the facts were on disk")

    forget()  # a new process: it finds the article, its links and its grade on disk
    monkeypatch.setattr(readability_module, "_grade", refuse)
    monkeypatch.setattr(loader_module, "_split_front_matter", refuse)
    again = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out), use_cache=True)
    assert again.outcomes[0].unchanged
    assert _reports(first) == _reports(cold) == _reports(no_cache) == _reports(again)
    assert any(p.check == "readability" for p in again.outcomes[0].report.problems)
