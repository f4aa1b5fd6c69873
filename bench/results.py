"""What every benchmark shares with `make bench` (bench/suite.py): its results as JSON, the load average."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def load_average() -> float:
    """The 1-minute load average now: printed beside every number (the machine is shared)."""
    return round(os.getloadavg()[0], 2)


def write_json(path: str | Path | None, data: dict[str, Any]) -> None:
    """With ``--json PATH``: the benchmark's medians for bench/suite.py's table."""
    if path:
        Path(path).write_text(json.dumps(data, indent=2), encoding="utf-8")
