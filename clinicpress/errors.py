"""The one exception tree of clinicpress.

ClinicpressError
├── InputError            bad input from the user: exit code 2
│   ├── ArticleError      an article file (names file, field, what was expected)
│   └── SiteConfigError   the site config (names file, field, what was expected)
├── RenderError           a renderer could not make its artifact (the article is blocked)
├── PublishError          --out cannot be written or switched (nothing half-published): exit code 2
├── RegistryError         the registry database cannot be opened or written: exit code 2
├── DeliveryError         the newsletter could not be sent as asked (its branch, with the SMTP
│                         errors, lives in outputs/delivery/errors.py)
├── LocalServerError      the local Prefect server could not be started or reached: exit code 2
│                         (flows/local_server.py)
└── FetchError            a request of the one vetted fetch had no usable answer (its branch,
                          each kind keeping the foreign error as its cause, lives in
                          clinicpress/network/errors.py)

A broken link is never an exception: checks return results with a status.
"""

from __future__ import annotations

from pathlib import Path


class ClinicpressError(Exception):
    """Base of every error clinicpress raises on purpose."""

    exit_code = 1


class InputError(ClinicpressError):
    """The user's input is wrong: a file, a field, a command-line option.

    The message always reads ``<file>: <field>: <problem>; expected <what>``
    so the user can go straight to the fix.
    """

    exit_code = 2

    def __init__(
        self,
        path: Path | str | None,
        field: str | None,
        problem: str,
        expected: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.field = field
        self.problem = problem
        self.expected = expected
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [p for p in (self.path, self.field) if p]
        text = self.problem if not self.expected else f"{self.problem}; expected {self.expected}"
        return ": ".join([*parts, text])


class ArticleError(InputError):
    """An article file is malformed."""


class SiteConfigError(InputError):
    """The site configuration is malformed."""


class RenderError(ClinicpressError):
    """A renderer failed to produce its artifact."""


class PublishError(ClinicpressError):
    """The output folder refused the operation (locked, in the way, nothing to roll back).

    Nothing was switched live. Exit code 2: it is about the --out given, not a check.
    """

    exit_code = 2


class RegistryError(ClinicpressError):
    """The registry database could not be opened or written (its URL is the user's setting)."""

    exit_code = 2
