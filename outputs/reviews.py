"""The review records in the registry database (the ``reviews`` table): write one, read them back.

Kept out of ``outputs/registry.py`` (one class already over many tables): a review is written by
``clinicpress review`` and read by ``publish``, ``check`` and ``clinicpress reviews``, never in a
transaction with anything else. The decision what a record means is pure, in checks/signoff.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from sqlalchemy import RowMapping, select

from clinicpress.checks.signoff import Decision, ReviewRecord
from clinicpress.errors import RegistryError
from clinicpress.outputs.registry_location import registry_exists, registry_url, shown_url
from clinicpress.outputs.registry_schema import (
    new_id,
    open_migrated,
    reviews,
    transaction,
)
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Reviewer


def record_review(site: SiteConfig, out_dir: Path, record: ReviewRecord) -> ReviewRecord:
    """Insert one review; returns it with its row id."""
    url = registry_url(site, out_dir)
    engine = open_migrated(url)
    try:
        with transaction(engine, f"registry {shown_url(url)}", RegistryError) as conn:
            inserted = conn.execute(
                reviews.insert().values(
                    slug=record.slug,
                    content_hash=record.content_hash,
                    reviewer_name=record.reviewer.name,
                    reviewer_credentials=record.reviewer.credentials,
                    reviewer_npi=record.reviewer.npi,
                    reviewed_on=record.reviewed_on,
                    recorded_at=record.recorded_at,
                    decision=record.decision.value,
                    comment=record.comment,
                    text=record.text,
                )
            )
            row_id = new_id(inserted.inserted_primary_key)
    finally:
        engine.dispose()
    return replace(record, id=row_id)


def load_reviews(site: SiteConfig, out_dir: Path, slugs: Iterable[str] | None = None) -> list[ReviewRecord]:
    """The records of these articles (None: all), newest first; none when no registry exists yet."""
    url = registry_url(site, out_dir)
    if not registry_exists(url):
        return []
    engine = open_migrated(url)
    query = select(reviews).order_by(reviews.c.recorded_at.desc(), reviews.c.id.desc())
    if slugs is not None:
        query = query.where(reviews.c.slug.in_(sorted(set(slugs))))
    try:
        with transaction(engine, f"registry {shown_url(url)}", RegistryError) as conn:
            rows = conn.execute(query).mappings().all()
    finally:
        engine.dispose()
    return [_record(row) for row in rows]


def _record(row: RowMapping) -> ReviewRecord:
    return ReviewRecord(
        id=row["id"],
        slug=row["slug"],
        content_hash=row["content_hash"],
        reviewer=Reviewer(
            name=row["reviewer_name"], credentials=row["reviewer_credentials"], npi=row["reviewer_npi"]
        ),
        reviewed_on=row["reviewed_on"],
        recorded_at=row["recorded_at"],
        decision=Decision(row["decision"]),
        comment=row["comment"],
        text=row["text"],
    )
