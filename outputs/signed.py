"""The articles as the channels print them: each with its sign-off record applied (issue 15).

One function for every command that needs it (``check``, ``publish`` and its head start, the
review flow), instead of a CLI copy and a flow copy of different shapes (issue 27). What a record
means is pure, in ``checks/signoff.py``; reading the records is ``outputs/reviews.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clinicpress.checks.signoff import ReviewRecord, ReviewSource, with_signoff
from clinicpress.outputs.registry_location import registry_exists, registry_url
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article


@dataclass(frozen=True)
class SignedOff:
    """The articles with their review line, the records read, and where each line came from."""

    articles: list[Article]
    records: list[ReviewRecord]
    sources: dict[str, ReviewSource]


def signed_off(site: SiteConfig, out_dir: Path, articles: Sequence[Article]) -> SignedOff:
    """Each article with the review line its approving record gives it (the front matter's when
    none); SQLAlchemy is imported only once a registry exists (a first ``check`` stays quick)."""
    if not registry_exists(registry_url(site, out_dir)):
        return SignedOff(list(articles), [], {a.key: ReviewSource.FRONT_MATTER for a in articles})
    from clinicpress.outputs.reviews import load_reviews

    records = load_reviews(site, out_dir, [a.key for a in articles])
    signed = [with_signoff(article, records) for article in articles]
    return SignedOff([a for a, _ in signed], records, {a.key: source for a, source in signed})


__all__ = ["SignedOff", "signed_off"]
