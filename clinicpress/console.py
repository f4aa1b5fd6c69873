"""Text output of reports: what ``check`` and ``publish`` print per article."""

from __future__ import annotations

from collections import Counter

from clinicpress.checks.model import ArticleReport, LinkStatus

_ORDER = list(LinkStatus)


def links_line(report: ArticleReport) -> str:
    """``sources: 3 ok, 1 redirected`` in the fixed order of the status vocabulary."""
    if not report.links:
        return "sources: none cited"
    counts = Counter(link.status for link in report.links)
    return "sources: " + ", ".join(f"{counts[s]} {s.value}" for s in _ORDER if counts[s])


def report_lines(report: ArticleReport, *, action: str | None = None) -> list[str]:
    """The block printed for one article: heading, problems, source counts."""
    heading = f"{report.slug}: {report.verdict.value}"
    if action:
        heading += f" — {action}"
    lines = [heading, f"  {links_line(report)}"]
    lines.extend(f"  {p.severity.value:<8} {p.check}: {p.message}" for p in report.problems)
    return lines
