"""Text output of reports: what ``check`` and ``publish`` print per article.

One block per article: the verdict, the source counts, the problems that are not about
one link (license, review, network), then the links grouped by status, problems first
and ``ok`` last, each group with its count::

    bad: blocked — nothing published
      sources: 1 broken, 1 redirected, 2 ok
      warning  review: next review was due on May 1, 2026
      broken (1)
        https://example.org/gone — 404 Not Found
      redirected (1)
        https://example.org/old → cite https://example.org/new
      ok (2)
        https://doi.org/10.3389/fpsyt.2018.00277
        https://pubmed.ncbi.nlm.nih.gov/30233240/

When the network is down the report carries one "network" line and the unverified
links are listed without their (identical) reasons.

DOI and PMID sources also show what Crossref/PubMed say (checks/integrity): one count line
(``integrity: 1 retracted, 3 clean``) and, after each link that is not clean, its status and
notice (``[retracted: doi:10.5555/notice-1]``); the integrity problems are listed with the others.

The closing line also counts the files skipped because they do not load, by why (``skipped_line``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from clinicpress.checks.model import ArticleReport, Check, Integrity, LinkResult, LinkStatus
from clinicpress.sources.loader import Skipped

__all__ = [
    "STATUS_ORDER",
    "integrity_line",
    "links_line",
    "links_table",
    "report_lines",
    "skipped_line",
    "summary_line",
]

# Problems first (what blocks, then what warns), ok last.
STATUS_ORDER = (
    LinkStatus.BROKEN,
    LinkStatus.REFUSED,
    LinkStatus.UNVERIFIED,
    LinkStatus.BOT_BLOCKED,
    LinkStatus.REDIRECTED,
    LinkStatus.SKIPPED,
    LinkStatus.OK,
)
TABLE_COLUMNS = ("article", "url", "status", "reason", "http_status", "final_url")


def links_line(report: ArticleReport) -> str:
    """``sources: 1 broken, 3 ok`` — problems first, ok last."""
    if not report.links:
        return "sources: none cited"
    counts = Counter(link.status for link in report.links)
    return "sources: " + ", ".join(f"{counts[s]} {s.value}" for s in STATUS_ORDER if counts[s])


INTEGRITY_ORDER: tuple[Integrity, ...] = ("retracted", "concern", "unknown", "corrected", "clean")


def integrity_line(report: ArticleReport) -> str | None:
    """``integrity: 1 retracted, 3 clean`` over the DOI/PMID links, or None when there are none."""
    counts = Counter(link.integrity for link in report.links if link.integrity is not None)
    if not counts:
        return None
    return "integrity: " + ", ".join(f"{counts[s]} {s}" for s in INTEGRITY_ORDER if counts[s])


def _integrity_note(link: LinkResult) -> str:
    if link.integrity is None or link.integrity == "clean":
        return ""
    notice = f": {link.integrity_notice}" if link.integrity_notice else ""
    return f" [{link.integrity}{notice}]"


def _network_down(report: ArticleReport) -> bool:
    return any(p.check is Check.NETWORK for p in report.problems)


def _link_line(link: LinkResult, *, with_reason: bool) -> str:
    if link.status is LinkStatus.OK or not with_reason:
        return link.url + _integrity_note(link)
    if link.status is LinkStatus.REDIRECTED and link.final_url:
        return f"{link.url} → cite {link.final_url}{_integrity_note(link)}"
    return f"{link.url} — {link.reason}{_integrity_note(link)}"


def report_lines(report: ArticleReport, *, action: str | None = None, list_ok: bool = True) -> list[str]:
    """The block printed for one article (see the module docstring); ``list_ok=False`` counts ok only."""
    heading = f"{report.slug}: {report.verdict.value}"
    if action:
        heading += f" — {action}"
    lines = [heading, f"  {links_line(report)}"]
    if integrity := integrity_line(report):
        lines.append(f"  {integrity}")
    # Link problems are shown in the status groups below; the rest (license, review, network) here.
    lines.extend(
        f"  {p.severity.value:<8} {p.check}: {p.message}"
        for p in report.problems
        if p.check is not Check.LINKS
    )
    # A license found ok at DHCS: the state's record and the day it was read.
    lines.extend(f"  {'ok':<8} license_registry: {note}" for note in report.authority_notes)
    offline = _network_down(report)
    groups: dict[LinkStatus, list[LinkResult]] = {}
    for link in report.links:
        groups.setdefault(link.status, []).append(link)
    for status in STATUS_ORDER:
        members = groups.get(status, [])
        if not members:
            continue
        if status is LinkStatus.OK and not list_ok:
            continue
        lines.append(f"  {status.value} ({len(members)})")
        # Offline, every unverified link has the same reason: the one network line says it.
        with_reason = not (offline and status is LinkStatus.UNVERIFIED)
        lines.extend(f"    {_link_line(link, with_reason=with_reason)}" for link in members)
    return lines


def skipped_line(skipped: Sequence[Skipped]) -> str:
    """``7 files skipped (do not load: 2 unreadable, 2 front matter, 1 body, …)``: why, by field."""
    reasons = Counter(item.reason for item in skipped)
    why = ", ".join(
        f"{count} {field}" for field, count in sorted(reasons.items(), key=lambda r: (-r[1], r[0]))
    )
    return f"{len(skipped)} file{'s' if len(skipped) != 1 else ''} skipped (do not load: {why})"


def summary_line(reports: Iterable[ArticleReport], skipped: Sequence[Skipped] = ()) -> str:
    """One closing line for a run: ``3 articles: 1 blocked, 2 ok · 41 sources: 1 broken, 40 ok``,
    then the files skipped because they do not load, if any (:func:`skipped_line`)."""
    reports = list(reports)
    verdicts = Counter(r.verdict.value for r in reports)
    statuses = Counter(link.status for r in reports for link in r.links)
    parts = ", ".join(f"{verdicts[v]} {v}" for v in ("blocked", "warning", "ok") if verdicts[v])
    line = f"{len(reports)} article{'s' if len(reports) != 1 else ''}: {parts or 'none'}"
    total = sum(statuses.values())
    if total:
        line += f" · {total} source links: " + ", ".join(
            f"{statuses[s]} {s.value}" for s in STATUS_ORDER if statuses[s]
        )
    if skipped:
        line += f" · {skipped_line(skipped)}"
    return line


def links_table(reports: Iterable[ArticleReport]) -> list[dict[str, str]]:
    """Rows for a Prefect table artifact (``create_table_artifact(table=rows)``).

    One row per article and link, problems first then ok (the order of the text output);
    every cell a string ("" when there is none), columns ``TABLE_COLUMNS``.
    """
    rank = {status: i for i, status in enumerate(STATUS_ORDER)}
    rows: list[dict[str, str]] = []
    for report in reports:
        for link in sorted(report.links, key=lambda link: rank[link.status]):
            rows.append(
                {
                    "article": report.slug,
                    "url": link.url,
                    "status": link.status.value,
                    "reason": link.reason,
                    "http_status": "" if link.http_status is None else str(link.http_status),
                    "final_url": link.final_url or "",
                }
            )
    return rows
