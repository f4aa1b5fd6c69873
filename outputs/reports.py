"""The verification report written beside each published article (``reports/<slug>.json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from clinicpress.checks.model import ArticleReport
from clinicpress.renderers.base import AnyArtifact
from clinicpress.sources.article import Article
from clinicpress.sources.versioning import content_hash, reviewed_text


def report_relpath(slug: str) -> str:
    return f"reports/{slug}.json"


def published_report(
    report: ArticleReport,
    article: Article,
    *,
    version: str,
    published_at: datetime,
    artifacts: Sequence[AnyArtifact],
) -> bytes:
    """The check report (the JSON of `check --format json`) plus what was published and when.

    The extra keys (``title``, ``summary``, ``channels`` …) let the site index
    and, later, the monitor read what is live without re-loading articles; ``text`` and
    ``content_hash`` let the review flow diff a new text against the live one.
    """
    data: dict[str, Any] = report.as_json()
    data.update(
        {
            "title": article.title,
            "summary": article.summary,
            "translation_of": article.translation_of,  # the sitemap links an article's editions
            "published": article.published.isoformat(),
            "last_reviewed": article.last_reviewed.isoformat(),
            "next_review": article.review_due.isoformat(),
            "version": version,
            "published_at": published_at.isoformat(),
            "channels": {a.channel.value: [] for a in artifacts},
            # What a sign-off binds, and the text itself: a review diffs a new text against it.
            "content_hash": content_hash(article),
            "text": reviewed_text(article),
        }
    )
    for artifact in artifacts:
        data["channels"][artifact.channel.value].append(artifact.relpath)
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()
