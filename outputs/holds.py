"""A rolled-back version is held: a plain publish does not put it back (issue 24).

``rollback SLUG`` (or a whole-site rollback) takes a version out of live because something in it
was wrong; a later ``publish`` of the unchanged file would make that exact version live again,
silently. So the registry keeps each version a rollback took out (``held_versions``), and
:func:`held_back` (pure) says which articles of a publish are skipped for it. A new version (the
article's text edited) is not held; ``publish --force`` publishes the held version and lifts its
hold.

Held is the exact version (slug + version hash), and the same text under any version: the version
also hashes the site config and the templates, and a license renewal or a template change must not
put a text back that was rolled back for what it says. So a hold matches the version or the text's
``content_hash`` (title, summary, body, sources: what a clinician reviews); an edit of the text lifts
it, an edit of a date alone does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

SKIPPED_AS_HELD = "skipped-as-held"


@dataclass(frozen=True)
class Hold:
    """One version a rollback took out of live, as the registry keeps it."""

    slug: str
    version: str
    held_by: str
    held_at: datetime
    release_id: str  # the release live after the rollback
    content_hash: str | None = None  # the held version's text (None: not known)


class HeldArticle(BaseModel):
    """An article a publish skipped because its version is held (in the publish result and its JSON)."""

    model_config = ConfigDict(frozen=True)

    slug: str
    version: str
    path: str
    held_by: str
    held_at: datetime
    release_id: str
    status: str = SKIPPED_AS_HELD

    def as_json(self) -> dict[str, str]:
        return {
            "slug": self.slug,
            "version": self.version,
            "path": self.path,
            "status": self.status,
            "held_by": self.held_by,
            "held_at": self.held_at.isoformat(),
            "release_id": self.release_id,
        }


def held_back(
    candidates: Mapping[str, tuple[str, str]], live: Mapping[str, str], holds: Iterable[Hold], *, force: bool
) -> dict[str, Hold]:
    """Slug → the hold that keeps this article out, for the articles of a publish.

    ``candidates``: slug → (the version this publish would make live, its text's content hash);
    ``live``: slug → the version live now. A version live already is not held (nothing would
    change: a rollback may have made it live on purpose); ``force`` holds nothing (it lifts the
    holds of what it publishes).
    """
    if force:
        return {}
    by_version = {(hold.slug, hold.version): hold for hold in holds}
    by_text = {(hold.slug, hold.content_hash): hold for hold in holds if hold.content_hash}
    found: dict[str, Hold] = {}
    for slug, (version, text) in candidates.items():
        if live.get(slug) == version:
            continue
        hold = by_version.get((slug, version)) or by_text.get((slug, text))
        if hold is not None:
            found[slug] = hold
    return found


def went_out(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """Slug → version of each article version a rollback took out of live (``before`` → ``after``,
    slug → version): what it holds. A version still live, anywhere, is not taken out."""
    return {slug: version for slug, version in before.items() if after.get(slug) != version}


def held_text(before: Mapping[str, str], after: Mapping[str, str], slug: str) -> str | None:
    """The text (content hash) a rollback holds for ``slug`` besides its version: the text live
    before (``before``: slug → content hash), unless the same text is live after (a rollback of
    a template or site change takes out a version, not a text) or it is not known."""
    text = before.get(slug) or None
    return None if text is None or after.get(slug) == text else text


def held_line(held: HeldArticle, force_command: str) -> str:
    """One line for a skipped article: who rolled it back, when, and the two ways on."""
    return (
        f"held     {held.slug}: version {held.version[:12]} was rolled back by {held.held_by} on "
        f"{held.held_at:%Y-%m-%d %H:%M} UTC (release {held.release_id}); not published. To publish: "
        f"edit the article's text (a new text is not held), or publish it again with {force_command}"
    )
