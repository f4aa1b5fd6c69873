"""Fold integrity records into one article's report: link fields, problems. Pure.

Called by ``checks/verify.py`` for each article with the run's :class:`IntegrityReport`:
each DOI/PMID link gains ``integrity``/``integrity_notice``; each notice that matters and
each citation that names another work than its identifier's record becomes a problem
(check ``integrity``). When the registries could not be reached at all, the per-source
"unknown" warnings give way to one line, as the link checker's network line does.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path

from clinicpress.checks.integrity.cache import IntegrityCache
from clinicpress.checks.integrity.client import IntegrityReport
from clinicpress.checks.integrity.quotes import quote_key
from clinicpress.checks.integrity.titles import compare, mismatch_message
from clinicpress.checks.integrity.verdict import CHECK, IntegrityVerdict, judge
from clinicpress.checks.model import Check, LinkResult, Problem, Severity
from clinicpress.settings.integrity import IntegritySettings
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.sources.article import Article
from clinicpress.sources.identifiers import Identifier, identifier_of, resolver_url

__all__ = [
    "apply_integrity",
    "contact_address",
    "identifiers",
    "integrity_cache_beside",
    "quote_requests",
    "resolver_targets",
    "verdicts_by_url",
]


def identify(url: str, links: LinkCheckSettings) -> Identifier | None:
    return _identify(url, links.doi_resolver, links.pubmed_resolver)


# A catalog cites the same URL from many articles: each is read once per process.
@functools.lru_cache(maxsize=65536)
def _identify(url: str, doi_resolver: str, pubmed_resolver: str) -> Identifier | None:
    return identifier_of(url, doi_resolver=doi_resolver, pubmed_resolver=pubmed_resolver)


def identifiers(urls: Sequence[str], links: LinkCheckSettings) -> list[Identifier]:
    """The distinct DOIs and PMIDs among ``urls`` (one per ``Identifier.key``)."""
    found: dict[str, Identifier] = {}
    for url in urls:
        ident = identify(url, links)
        if ident is not None:
            found.setdefault(ident.key, ident)
    return list(found.values())


def quote_requests(
    articles: Sequence[Article], links: LinkCheckSettings
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Every (source URL, quote) pair, and where each quoted DOI/PMID source is fetched (its resolver)."""
    pairs = dict.fromkeys(
        (source.url, source.quote)
        for article in articles
        for source in article.sources
        if source.quote is not None
    )
    return list(pairs), resolver_targets((url for url, _ in pairs), links)


def resolver_targets(urls: Iterable[str], links: LinkCheckSettings) -> dict[str, str]:
    """Where each DOI/PMID source's text is fetched, by URL (its resolver); other URLs are read as
    they are. The one rule for ``check``/``publish`` (above) and the monitor's quote readings."""
    fetch_at: dict[str, str] = {}
    for url in urls:
        ident = identify(url, links)
        if ident is not None and ident.at_resolver:
            fetch_at[url] = resolver_url(
                ident, doi_resolver=links.doi_resolver, pubmed_resolver=links.pubmed_resolver
            )
    return fetch_at


def _quoted(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote_problems(article: Article, report: IntegrityReport) -> list[Problem]:
    """A warning per quote not found in its source's text, or not checked (the text could not be read)."""
    problems: list[Problem] = []
    for number, source in enumerate(article.sources, start=1):
        if source.quote is None:
            continue
        result = report.quotes.get(quote_key(source.url, source.quote))
        if result is None or result.found:
            continue
        if result.found is None:
            message = f"source {number}: quote '{_quoted(source.quote)}' not checked — {result.reason}"
        else:
            message = (
                f"source {number}: quote '{_quoted(source.quote)}' is not in the source's text "
                f"({result.reason}); check the source still says it"
            )
        problems.append(Problem(check=Check.QUOTE, severity=Severity.WARNING, message=message))
    return problems


def contact_address(mailto: str, reply_to: str | None, from_address: str) -> str:
    """Who Crossref may write to: ``[checks.integrity] mailto``, else the newsletter's reply-to/from."""
    return mailto or reply_to or from_address


def integrity_cache_beside(
    link_cache_path: Path | None, settings: IntegritySettings
) -> IntegrityCache | None:
    """The integrity cache next to the link cache's file; none when the link cache is off (--no-cache)."""
    if link_cache_path is None:
        return None
    return IntegrityCache(
        link_cache_path.with_name("integrity.sqlite"), max_age_hours=settings.cache_max_age_hours
    )


def apply_integrity(
    article: Article,
    results: Sequence[LinkResult],
    report: IntegrityReport,
    links: LinkCheckSettings,
    *,
    network_line: bool,
) -> tuple[list[LinkResult], list[Problem]]:
    """``results`` with their integrity fields, and the integrity problems of ``article``.

    ``network_line``: a "network" line is in the report already (the link check's), so the
    registries' being unreachable needs none of its own.
    """
    numbers: dict[str, list[int]] = {}
    for index, source in enumerate(article.sources, start=1):
        numbers.setdefault(source.url, []).append(index)
    problems: list[Problem] = []
    if report.network_down and report.summary and not network_line:
        problems.append(Problem(check=Check.NETWORK, severity=Severity.WARNING, message=report.summary))
    updated: list[LinkResult] = []
    for result in results:
        ident = identify(result.url, links)
        if ident is None:
            updated.append(result)
            continue
        cited = numbers.get(result.url, [])
        where = f"source {', '.join(map(str, cited))}" if cited else "link in body"
        record = report.records.get(ident.key)
        if record is None:
            updated.append(result.model_copy(update={"integrity": "unknown"}))
            problems.append(
                Problem(check=CHECK, severity=Severity.WARNING, message=f"{where} {ident.key}: not looked up")
            )
            continue
        verdict = judge(record, where=where)
        updated.append(
            result.model_copy(update={"integrity": verdict.status, "integrity_notice": verdict.notice})
        )
        if not (report.network_down and record.network):  # offline: the one line says it
            problems.extend(verdict.problems)
        if not record.answered:
            continue
        for number in cited:
            cited_text = article.sources[number - 1].title
            match = compare(cited_text, record.titles, record.authors, record.years)
            if not match.ok:
                message = mismatch_message(f"source {number}", record.shown, cited_text, match, record.years)
                problems.append(Problem(check=CHECK, severity=Severity.WARNING, message=message))
    return updated, [*problems, *quote_problems(article, report)]


def verdicts_by_url(
    urls: Sequence[str], report: IntegrityReport, links: LinkCheckSettings
) -> dict[str, IntegrityVerdict]:
    """The verdict on each DOI/PMID URL among ``urls`` (what the monitor compares with its state)."""
    verdicts: dict[str, IntegrityVerdict] = {}
    for url in urls:
        ident = identify(url, links)
        record = report.records.get(ident.key) if ident is not None else None
        if record is not None:
            verdicts[url] = judge(record, where="source")
    return verdicts
