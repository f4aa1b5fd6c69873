"""Our flows record their parameters as Prefect does, without importing FastAPI (flows/json_flow.py)."""

from __future__ import annotations

import enum
import subprocess
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_FRONT_MATTER, WriteArticle
from prefect import Flow
from prefect.states import Completed

from clinicpress.flows.json_flow import JsonFlow, caller_unquotes, flow


class Colour(enum.Enum):
    RED = "red"


def _everything(**parameters: Any) -> dict[str, Any]:
    return parameters


PARAMETERS: dict[str, Any] = {
    "paths": ["content/a.md", "content/b.md"],
    "site_path": "content/site.toml",
    "strict": False,
    "approval_wait_seconds": 3600,
    "ratio": 0.5,
    "test_to": None,
    "day": date(2026, 11, 30),
    "moment": datetime(2026, 11, 30, 12, 0, 1),
    "folder": Path("/srv/out"),
    "colour": Colour.RED,
    "nested": {"a": [1, 2, {"b": (3, 4)}]},
    "unencodable": object(),
}


def test_parameters_are_recorded_as_prefects_own_encoder_records_them() -> None:
    ours = JsonFlow(_everything, name="ours").serialize_parameters(PARAMETERS)
    theirs = Flow(_everything, name="theirs").serialize_parameters(PARAMETERS)  # fastapi's encoder
    assert ours == theirs
    assert list(ours) == list(PARAMETERS)
    assert ours["unencodable"] == "<object>"


def test_futures_and_states_are_left_to_prefect() -> None:
    state = Completed()
    assert JsonFlow(_everything, name="ours").serialize_parameters({"s": state, "n": 1}) == {
        "s": "<State>",
        "n": 1,
    }


def test_a_whole_publish_process_never_imports_fastapi() -> None:
    # FastAPI (and most of Starlette with it): 0.2-0.45 s of a `clinicpress publish` process that
    # serves nothing. Prefect's client imports two small Starlette modules by itself.
    code = (
        "import sys, clinicpress.cli, clinicpress.flows.publish as p, clinicpress.flows.monitor as m\n"
        "p.publish_flow.serialize_parameters({'paths': ['a.md'], 'strict': True, 'test_to': None})\n"
        "m.monitor_flow.serialize_parameters({'paths': ['a.md']})\n"
        "print(sorted(x for x in ('fastapi', 'starlette.routing') if x in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.usefixtures("prefect_harness")
def test_the_api_keeps_the_parameters_of_a_run(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.context import get_run_context

    @flow(name="json-flow-parameters")
    def record(paths: list[str], strict: bool, day: date, folder: Path) -> str:
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]

    run_id = record(["a.md"], True, date(2026, 11, 30), tmp_path)
    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(run_id).parameters  # type: ignore[arg-type]
    assert stored == {"paths": ["a.md"], "strict": True, "day": "2026-11-30", "folder": str(tmp_path)}


@pytest.mark.usefixtures("prefect_harness")
def test_prefect_does_not_walk_a_publish_result(
    write_article: WriteArticle,
    write_site: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Prefect looks for futures in a flow's return value, object by object (0.3-0.4 s for a
    1,000-article catalog): the publish flow returns its result quoted, and its caller gets the
    result itself."""
    import prefect.futures

    from clinicpress.flows.publish import PublishResult, publish_flow

    walked: list[str] = []  # every object Prefect's walk for futures looked at
    real_collect = prefect.futures._collect_futures

    def counting(futures: Any, expr: Any, context: Any) -> Any:
        walked.append(type(expr).__name__)
        return real_collect(futures, expr, context)

    site = write_site(timeout="2.0", retries="0")
    articles = [
        write_article(front_matter=MINIMAL_FRONT_MATTER.replace("Test Article", name), name=f"{name}.md")
        for name in ("One", "Two", "Three")
    ]
    monkeypatch.setattr(prefect.futures, "_collect_futures", counting)
    result = publish_flow(
        paths=[str(a) for a in articles], site_path=str(site), out_dir=str(tmp_path / "out")
    )
    assert isinstance(result, PublishResult)
    assert [o.published for o in result.outcomes] == [True, True, True]
    assert "PublishResult" in walked  # the walk ran, and saw the result
    assert "ArticleOutcome" not in walked  # but did not go into it


def test_a_flow_not_called_as_a_function_returns_its_value_unquoted() -> None:
    # A deployment's run: its result may be persisted and read by another process (flows/fanout.py).
    value = {"a": 1}
    assert caller_unquotes(value) is value
