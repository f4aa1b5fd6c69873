"""Where the registry lives, and whether it exists yet: no SQLAlchemy here.

``clinicpress check`` asks this before it imports SQLAlchemy (~0.2 s): with no registry yet (a
first check, or a site that has never published) there are no sign-off records to read.
"""

from __future__ import annotations

from pathlib import Path

from clinicpress.site import SiteConfig

__all__ = ["REGISTRY_FILE", "registry_exists", "registry_url", "shown_url"]

REGISTRY_FILE = "registry.sqlite"


def registry_url(site: SiteConfig, out_dir: Path) -> str:
    """``[registry] url`` if set, else SQLite in the output folder."""
    return site.registry.url or f"sqlite:///{(out_dir / REGISTRY_FILE).resolve()}"


def registry_exists(url: str) -> bool:
    """False for a SQLite file not created yet (reading must not create a database); a server
    database is assumed to exist (asking costs a connection)."""
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).is_file()


def shown_url(url: str) -> str:
    """The URL without a password that may sit in it, for messages."""
    head, sep, tail = url.rpartition("@")
    return f"{head.split('://')[0]}://…@{tail}" if sep else url
