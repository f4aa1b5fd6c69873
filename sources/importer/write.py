"""The imported article as a file: its slug, its front matter and body, written without clobbering.

Only fields the page stated go into the front matter; the missing ones are named in a
comment and in the report (``last_reviewed`` always: a clinical review is never read off a
web page). The file is never overwritten without ``force``, and with it, replaced atomically.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from clinicpress.errors import InputError
from clinicpress.sources.article import MAX_SLUG, RESERVED_SLUGS, SLUG, slugify

REQUIRED_FIELDS = ("title", "summary", "published", "last_reviewed")


@dataclass
class ImportedPage:
    """What was read from the page, before it becomes front matter."""

    title: str | None = None
    summary: str | None = None
    published: date | None = None
    modified: date | None = None
    canonical: str | None = None  # the address the page names for itself (names the slug)
    body: str = ""
    sources: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    license_toml: str | None = None


def _usable(slug: str) -> bool:
    return (
        bool(slug)
        and bool(SLUG.match(slug))
        and len(slug) <= MAX_SLUG
        and slug not in RESERVED_SLUGS | {"index"}
    )


def address_slug(url: str | None) -> str | None:
    """The slug an http(s) address gives by its last path segment, if that makes a usable one."""
    if not url or urlsplit(url).scheme not in ("http", "https"):
        return None
    segment = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    slug = slugify(re.sub(r"\.(html?|php|aspx?)$", "", segment))
    return slug if _usable(slug) else None


def choose_slug(page: ImportedPage, source: str) -> str:
    """From the legacy URL's last path segment (keeps old links mappable), else from the title."""
    candidates = [address_slug(page.canonical), address_slug(source)]
    if page.title:
        candidates.append(slugify(page.title))
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source):
        candidates.append(slugify(Path(source).stem))
    for slug in candidates:
        if slug is not None and _usable(slug):
            return slug
    raise InputError(
        source, "title", "the page has no title (h1, og:title or <title>) to name the article", "an h1"
    )


def article_text(page: ImportedPage, slug: str) -> tuple[str, list[str]]:
    """The file's text (front matter, then the body) and the required fields the page did not state."""
    front: dict[str, Any] = {}
    missing: list[str] = []
    values: dict[str, Any] = {
        "title": page.title,
        "summary": page.summary,
        "published": page.published,
        "last_reviewed": None,  # a clinical review is never read off a web page
    }
    for key in REQUIRED_FIELDS:
        if values[key] in (None, ""):
            missing.append(key)
        else:
            front[key] = values[key]
        if key == "title":
            front["slug"] = slug
    if page.sources:
        front["sources"] = page.sources
    # width: long titles stay on one line, so no continuation line can look like a '---' fence.
    dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1_000_000)
    comments = ["# Imported from a legacy page by `clinicpress import`."]
    if missing:
        comments.append(f"# Missing (the page does not state them; never guessed): {', '.join(missing)}")
    if "last_reviewed" in missing:
        comments.append("# last_reviewed: the date a clinician reviewed this text (YYYY-MM-DD).")
    return "---\n" + "\n".join(comments) + "\n" + dumped + "---\n" + page.body, missing


def save(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path``: never over an existing file without ``force``; atomically with it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not force:
            # "x": fails if the file exists, even one created a moment ago: never overwrite.
            with path.open("x", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            return
        # Write beside it, then rename: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except FileExistsError as exc:
        raise exists_error(path) from exc
    except OSError as exc:
        raise InputError(path, None, f"cannot write ({exc.strerror})") from exc


def exists_error(path: Path) -> InputError:
    """An import never writes over an article without ``--force``."""
    return InputError(path, None, "already exists", "--force to overwrite it")
