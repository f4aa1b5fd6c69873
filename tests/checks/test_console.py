"""Text output of ``check``/``publish`` and the rows of the Prefect table artifact."""

from __future__ import annotations

from clinicpress.checks.model import ArticleReport, LinkResult, LinkStatus, Problem, Severity, Verdict
from clinicpress.checks.report_text import TABLE_COLUMNS, links_line, links_table, report_lines, summary_line


def _link(url: str, status: LinkStatus, reason: str = "r", **kw: object) -> LinkResult:
    return LinkResult(url=url, status=status, reason=reason, **kw)  # type: ignore[arg-type]


REPORT = ArticleReport(
    path="content/a.md",
    slug="a",
    verdict=Verdict.BLOCKED,
    problems=[
        Problem(check="review", severity=Severity.WARNING, message="next review was due on May 1, 2026"),
        Problem(
            check="links", severity=Severity.BLOCKED, message="source 2 https://x.org/gone: broken — 404"
        ),
    ],
    links=[
        _link("https://x.org/ok-1", LinkStatus.OK, "200 OK", http_status=200),
        _link("https://x.org/gone", LinkStatus.BROKEN, "404 Not Found", http_status=404),
        _link(
            "https://x.org/old",
            LinkStatus.REDIRECTED,
            "moved",
            http_status=200,
            final_url="https://x.org/new",
        ),
        _link("https://x.org/ok-2", LinkStatus.OK, "200 OK", http_status=200),
        _link("mailto:a@x.org", LinkStatus.SKIPPED, "email address: not checked"),
    ],
)


def test_grouped_by_status_problems_first_ok_last() -> None:
    assert report_lines(REPORT, action="nothing published") == [
        "a: blocked — nothing published",
        "  sources: 1 broken, 1 redirected, 1 skipped, 2 ok",
        "  warning  review: next review was due on May 1, 2026",
        "  broken (1)",
        "    https://x.org/gone — 404 Not Found",
        "  redirected (1)",
        "    https://x.org/old → cite https://x.org/new",
        "  skipped (1)",
        "    mailto:a@x.org — email address: not checked",
        "  ok (2)",
        "    https://x.org/ok-1",
        "    https://x.org/ok-2",
    ]


def test_ok_links_can_be_counted_only() -> None:
    lines = report_lines(REPORT, list_ok=False)
    assert lines[0] == "a: blocked"
    assert "  ok (2)" not in lines
    assert "    https://x.org/ok-1" not in lines


def test_network_down_is_said_once() -> None:
    summary = "network down: none of 2 sources could be reached (DNS/connect failed); all left unverified"
    report = ArticleReport(
        path="a.md",
        slug="a",
        verdict=Verdict.WARNING,
        problems=[Problem(check="network", severity=Severity.WARNING, message=summary)],
        links=[
            _link(
                f"https://h{i}.invalid/", LinkStatus.UNVERIFIED, f"network down: h{i}.invalid did not resolve"
            )
            for i in (1, 2)
        ],
    )
    lines = report_lines(report, action="published")
    assert lines[0] == "a: warning — published"
    assert "  sources: 2 unverified" in lines
    assert sum("network" in line for line in lines) == 1
    assert "    https://h1.invalid/" in lines


def test_no_sources() -> None:
    empty = ArticleReport(path="a.md", slug="a", verdict=Verdict.OK)
    assert report_lines(empty) == ["a: ok", "  sources: none cited"]
    assert links_line(empty) == "sources: none cited"


def test_summary_line() -> None:
    ok = ArticleReport(path="b.md", slug="b", verdict=Verdict.OK, links=[_link("https://y/", LinkStatus.OK)])
    assert summary_line([REPORT, ok]) == (
        "2 articles: 1 blocked, 1 ok · 6 source links: 1 broken, 1 redirected, 1 skipped, 3 ok"
    )


def test_links_table_rows_are_strings_in_report_order() -> None:
    rows = links_table([REPORT])
    assert [r["status"] for r in rows] == ["broken", "redirected", "skipped", "ok", "ok"]
    assert all(tuple(r) == TABLE_COLUMNS for r in rows)
    assert all(isinstance(v, str) for r in rows for v in r.values())
    assert rows[0] == {
        "article": "a",
        "url": "https://x.org/gone",
        "status": "broken",
        "reason": "404 Not Found",
        "http_status": "404",
        "final_url": "",
    }
    assert rows[1]["final_url"] == "https://x.org/new"
    assert links_table([]) == []
