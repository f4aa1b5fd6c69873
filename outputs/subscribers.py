"""The newsletter's subscribers: a CSV file with the header
``email[,unsubscribe_url][,name][,language]``.

``language`` (issue 26) is the language tag the subscriber reads (``es``, ``es-MX``): they get the
edition of an article in that language when one is live, else the original (outputs/delivery/audience.py).

Every problem names the file, the line and the field, so the person who
exported the list can fix it (exit code 2, like any bad input). Addresses
are deduplicated case-insensitively (the first line wins): a subscriber who
signed up twice must still get one message.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clinicpress.addresses import address_problem, unsubscribe_url_problem
from clinicpress.errors import InputError

COLUMNS = ("email", "unsubscribe_url", "name", "language")
# A BCP 47 language tag as people write them: "es", "es-MX", "zh-Hant".
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
MAX_SUBSCRIBERS_BYTES = 64 * 1024 * 1024


class SubscribersError(InputError):
    """The subscribers CSV is malformed (names file, line and field)."""


@dataclass(frozen=True)
class Subscriber:
    email: str
    unsubscribe_url: str | None = None  # None: the site's [newsletter] unsubscribe_url
    name: str | None = None
    language: str | None = None  # None: the original edition

    @property
    def key(self) -> str:
        """What makes two subscribers the same person: the address, case-insensitively."""
        return address_key(self.email)


@dataclass(frozen=True)
class SubscriberList(Sequence[Subscriber]):
    path: Path
    subscribers: tuple[Subscriber, ...]
    # (line, address) of each later duplicate that was dropped.
    duplicates: tuple[tuple[int, str], ...] = field(default=())

    def __len__(self) -> int:
        return len(self.subscribers)

    def __iter__(self) -> Iterator[Subscriber]:
        return iter(self.subscribers)

    def __getitem__(self, index: int) -> Subscriber:  # type: ignore[override]
        return self.subscribers[index]


def address_key(address: str) -> str:
    return address.strip().lower()


def _error(path: Path, line: int | None, column: str | None, problem: str, expected: str) -> SubscribersError:
    where = ": ".join(p for p in (f"line {line}" if line else None, column) if p) or None
    return SubscribersError(path, where, problem, expected)


def load_subscribers(path: Path | str) -> SubscriberList:
    """Read and validate the subscribers CSV."""
    csv_path = Path(path)
    try:
        raw = csv_path.read_bytes()
    except FileNotFoundError as exc:
        raise _error(csv_path, None, None, "file not found", "a CSV of subscribers") from exc
    except IsADirectoryError as exc:
        raise _error(csv_path, None, None, "is a folder", "a CSV file of subscribers") from exc
    except OSError as exc:
        raise _error(csv_path, None, None, f"cannot read ({exc.strerror})", "a readable file") from exc
    if len(raw) > MAX_SUBSCRIBERS_BYTES:
        raise _error(
            csv_path, None, None, f"file is {len(raw):,} bytes", f"at most {MAX_SUBSCRIBERS_BYTES:,}"
        )
    if b"\x00" in raw:
        raise _error(csv_path, None, None, "is a binary file", "a UTF-8 CSV")
    try:
        text = raw.decode("utf-8-sig")  # spreadsheets add a BOM
    except UnicodeDecodeError as exc:
        raise _error(
            csv_path, None, None, f"not UTF-8 text (bad byte at offset {exc.start})", "a UTF-8 CSV"
        ) from exc

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise _error(
                csv_path,
                1,
                None,
                "the file is empty",
                "a header line: email[,unsubscribe_url][,name][,language]",
            )
        columns = [c.strip().lower() for c in header]
        unknown = [c for c in columns if c not in COLUMNS]
        if unknown or "email" not in columns or len(set(columns)) != len(columns):
            problem = (
                f"unknown column {unknown[0]!r}"
                if unknown
                else "no email column"
                if "email" not in columns
                else "a column appears twice"
            )
            raise _error(
                csv_path,
                1,
                "header",
                problem,
                "the columns email, unsubscribe_url, name, language (all but email optional)",
            )
        seen: dict[str, int] = {}
        found: list[Subscriber] = []
        duplicates: list[tuple[int, str]] = []
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines are harmless
            if len(row) != len(columns):
                raise _error(
                    csv_path, line, None, f"has {len(row)} fields", f"{len(columns)} ({', '.join(columns)})"
                )
            values = dict(zip(columns, (cell.strip() for cell in row), strict=True))
            subscriber = _subscriber(csv_path, line, values)
            if subscriber.key in seen:
                duplicates.append((line, subscriber.email))
                continue
            seen[subscriber.key] = line
            found.append(subscriber)
    except csv.Error as exc:
        raise _error(csv_path, reader.line_num, None, f"malformed CSV ({exc})", "RFC 4180 quoting") from exc
    return SubscriberList(csv_path, tuple(found), tuple(duplicates))


def _subscriber(path: Path, line: int, values: dict[str, str]) -> Subscriber:
    email = values["email"]
    problem = address_problem(email)
    if problem:
        raise _error(path, line, "email", f"{email[:80]!r} {problem}", "an address like name@example.org")
    url = values.get("unsubscribe_url") or None
    if url is not None and (problem := unsubscribe_url_problem(url)):
        raise _error(path, line, "unsubscribe_url", f"{url[:80]!r} {problem}", "https://… or an empty field")
    name = values.get("name") or None
    if name is not None and ("\r" in name or "\n" in name):
        raise _error(path, line, "name", "contains a line break", "a name on one line")
    language = values.get("language") or None
    if language is not None and not LANGUAGE_TAG.fullmatch(language):
        problem = f"{language[:40]!r} is not a language tag"
        raise _error(path, line, "language", problem, "e.g. en, es or es-MX")
    return Subscriber(email=email, unsubscribe_url=url, name=name, language=language)


__all__ = [
    "Subscriber",
    "SubscriberList",
    "SubscribersError",
    "address_key",
    "address_problem",
    "load_subscribers",
]
