"""Where a publish works and how (issue 27): a ``Workspace`` and the ``PublishOptions``.

A publish used to carry ``site_path``/``out_dir`` strings and five loose flags (``strict, force,
use_cache, test_to, triggered_by``) through 9- to 11-parameter functions, rebuilding
``Path(out_dir)`` at each step. The CLI now builds one ``Workspace`` and one frozen
``PublishOptions``; the flows take them apart only at their Prefect signature, which stays flat:
a deployment's parameters (``prefect deployment run … -p strict=true``, the work pool's batch
runs) are the flows' public interface (docs/operating/work-pool.md), and a nested model there
would break every schedule a clinic has saved.

Pure values: no I/O here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Workspace:
    """The site config a command reads and the output folder (``--out``) it writes, with the
    state kept there (the release folders, the registry's default SQLite file, the caches)."""

    site_path: Path
    out_dir: Path

    @classmethod
    def of(cls, site_path: str | Path, out_dir: str | Path) -> Workspace:
        return cls(Path(site_path), Path(out_dir))

    @property
    def content_dir(self) -> Path:
        """The folder of site.toml: where content files, term exceptions and imports live."""
        return self.site_path.parent

    def resolved(self) -> Workspace:
        """Absolute paths: what a work pool's workers, each in its own directory, need."""
        return Workspace(self.site_path.resolve(), self.out_dir.resolve())

    def flow_parameters(self) -> dict[str, Any]:
        """The flows' ``site_path``/``out_dir`` parameters (strings: a deployment's JSON)."""
        return {"site_path": str(self.site_path), "out_dir": str(self.out_dir)}


@dataclass(frozen=True)
class PublishOptions:
    """How one publish runs; fixed when the command starts (frozen)."""

    strict: bool = False  # a file that does not load, or an unanswered lookup, blocks the run
    force: bool = False  # re-render versions already live; publish a held (rolled-back) version
    use_cache: bool = True  # the facts and link caches in --out (--no-cache: off)
    test_to: str | None = None  # one [TEST] message to this address instead of the subscribers
    triggered_by: str | None = None  # who publishes, recorded with a new newsletter send
    approval_wait_seconds: int = 3600  # a deployment's pause for the approval form (CLI: 0)

    def flow_parameters(self, *, approval_wait: bool = True) -> dict[str, Any]:
        """The flows' flat parameters (``approval_wait``: the publish flow has that one, the
        catalog flow does not)."""
        values = asdict(self)
        if not approval_wait:
            del values["approval_wait_seconds"]
        return values


__all__ = ["PublishOptions", "Workspace"]
