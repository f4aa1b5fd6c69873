"""The registry reads a catalog in a bounded number of queries, whatever its size."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

from clinicpress.outputs.registry import PublishRecord, Registry
from clinicpress.site import License

LICENSE = License(issuer="Dept", program_id="190655AP", expires=date(2027, 4, 30))


def _record(number: int) -> PublishRecord:
    return PublishRecord(
        slug=f"article-{number}",
        version=f"v{number}",
        title=f"Article {number}",
        published_at=datetime(2026, 11, 27, tzinfo=UTC),
        release_id="r1",
        channels={"web": [f"web/article-{number}/index.html"]},
        licenses=[LICENSE],
        last_reviewed=date(2026, 11, 1),
        next_review=date(2027, 11, 1),
        cited=[(f"Source {i}", f"https://example.org/{number}/{i}") for i in range(3)],
    )


def test_latest_publishes_reads_a_catalog_in_a_few_queries(tmp_path: Path) -> None:
    articles = 900  # more than one chunk of ids
    with Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}") as registry:
        registry.record_publishes([_record(n) for n in range(articles)])
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(registry.engine, "before_cursor_execute", count)
        try:
            latest = registry.latest_publishes()
            live = registry.latest_publishes({f"article-{n}": f"v{n}" for n in range(0, articles, 2)})
        finally:
            event.remove(registry.engine, "before_cursor_execute", count)
    assert len(latest) == articles
    assert len(live) == articles // 2
    assert [s.url for s in latest[0].sources] == [f"https://example.org/0/{i}" for i in range(3)]
    assert [s.position for s in latest[0].sources] == sorted(s.position for s in latest[0].sources)
    # One query for the articles, one per 400 of them for their citations (was one per article).
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 2 * (1 + 3), selects[:5]
