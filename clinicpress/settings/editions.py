"""Settings of translated editions (issue 26): the ``[editions]`` table of site.toml.

    [editions]
    stale_grace_days = 14   # a stale translation publishes with a note this long, then blocks

The grace period is counted from the day the changed original was first published (the registry
keeps each published text and when it first went live: outputs/edition_texts.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EditionsSettings"]


class EditionsSettings(BaseModel):
    """How long a translation may lag behind its original."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stale_grace_days: int = Field(
        default=14,
        ge=0,
        le=365,
        description=(
            "Days after the changed original was first published during which a stale translation "
            "still publishes (with a warning and a note on its page); after them it is blocked"
        ),
    )
