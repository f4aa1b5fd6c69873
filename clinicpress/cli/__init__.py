"""The ``clinicpress`` command line (docs/reference/cli.md): thin commands over the library.

``common`` holds what every command shares (the app, the options, the one error handler);
``publishing`` the commands that verify and publish; ``operations`` the ones that run a site;
``mailing`` the newsletter's.
Exit codes: 0 success (warnings allowed), 1 blocked by a check, 2 bad input or usage.
"""

from __future__ import annotations

from clinicpress.cli.common import app

# isort: off
# Importing a module registers its commands on app, in the order `--help` lists them.
from clinicpress.cli import publishing  # noqa: F401
from clinicpress.cli import operations  # noqa: F401
from clinicpress.cli import mailing  # noqa: F401
from clinicpress.cli import editions  # noqa: F401

# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
