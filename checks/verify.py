"""Turn check results into one report per article: problems and a verdict.

This is the whole of ``clinicpress check``; the publish flow calls the same
functions as Prefect tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date

from clinicpress.checks.authority.run import (
    AuthorityReport,
    article_npi,
    authority_verdict,
    lookup_authorities,
)
from clinicpress.checks.cache import LinkCache
from clinicpress.checks.collect import article_urls
from clinicpress.checks.dates import check_licenses, check_review
from clinicpress.checks.editions import Editions, edition_problems
from clinicpress.checks.facts_cache import FactsCache, facts_beside, prime_facts
from clinicpress.checks.images import image_problems
from clinicpress.checks.integrity.apply import (
    apply_integrity,
    contact_address,
    identifiers,
    integrity_cache_beside,
    quote_requests,
)
from clinicpress.checks.integrity.cache import IntegrityCache
from clinicpress.checks.integrity.client import IntegrityReport, lookup, lookup_async, run_quietly
from clinicpress.checks.language import article_language_problems
from clinicpress.checks.links import LinkReport, check_urls_async
from clinicpress.checks.model import (
    ArticleReport,
    Check,
    LinkResult,
    LinkStatus,
    Problem,
    ReviewLine,
    Severity,
    verdict_of,
)
from clinicpress.checks.readability_es import readability_problems_in
from clinicpress.checks.signoff import ReviewRecord, ReviewSource, approval_of, signoff_problems
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, edition_language
from clinicpress.sources.versioning import content_hash


def _describe_link(numbers: dict[str, list[str]], result: LinkResult) -> str:
    cited_as = numbers.get(result.url)
    where = f"source {', '.join(cited_as)}" if cited_as else "link in body"
    text = f"{where} {result.url}: {result.status.value} — {result.reason}"
    if result.status is LinkStatus.REDIRECTED and result.final_url:
        text += f"; cite {result.final_url} instead"
    return text


def link_problems(
    article: Article, results: Sequence[LinkResult], network_summary: str | None
) -> list[Problem]:
    """One problem per link that is not ok, or one line when the network is down."""
    numbers: dict[str, list[str]] = {}  # url → its source numbers, built once per article
    for index, source in enumerate(article.sources, start=1):
        numbers.setdefault(source.url, []).append(str(index))
    problems: list[Problem] = []
    if network_summary:
        problems.append(Problem(check=Check.NETWORK, severity=Severity.WARNING, message=network_summary))
    for result in results:
        if result.status.blocks:
            problems.append(
                Problem(check=Check.LINKS, severity=Severity.BLOCKED, message=_describe_link(numbers, result))
            )
        elif result.status.warns and not (network_summary and result.status is LinkStatus.UNVERIFIED):
            problems.append(
                Problem(check=Check.LINKS, severity=Severity.WARNING, message=_describe_link(numbers, result))
            )
    return problems


def verify_article(
    article: Article,
    site: SiteConfig,
    links: LinkReport,
    *,
    on: date,
    strict: bool = False,
    integrity: IntegrityReport | None = None,
    reviews: Sequence[ReviewRecord] | None = None,
    authority: AuthorityReport | None = None,
    editions: Editions | None = None,
) -> ArticleReport:
    """The verdict of one article on day ``on``, from already-checked links and integrity records.

    ``integrity`` None: not looked up (``[checks.integrity] enabled = false``), the fields stay null.
    ``authority``: what DHCS and the NPI registry answered (None: not asked, the preview).
    ``reviews``: the review records the caller read from the registry; None: not read (the
    preview), so ``[review] required`` is not judged here.
    ``editions``: every article by slug and the originals' published texts (checks/editions.py);
    None: a translation is not judged against its original.
    """
    results = [links.results[url] for url in article_urls(article) if url in links.results]
    language = edition_language(article, site)
    problems = [
        *check_licenses(site.licenses, on, site.checks.license_warn_days),
        *check_review(article, on),
        *readability_problems_in(article, language, site.checks.max_grade_for(language)),
        *article_language_problems(article, site.checks.language, language),
        *image_problems(article),
        *link_problems(article, results, links.summary if links.network_down else None),
    ]
    if reviews is not None:
        problems += signoff_problems(article, reviews, required=site.review.required)
    if editions is not None:
        problems += edition_problems(article, editions, site, on)
    if integrity is not None:
        results, found = apply_integrity(
            article, results, integrity, site.checks.links, network_line=links.network_down
        )
        problems += found
    at_authority = authority_verdict(article, site, authority) if authority is not None else None
    if at_authority is not None:
        problems += at_authority.problems
    return ArticleReport(
        path=str(article.path),
        slug=article.key,
        content_hash=content_hash(article),
        language=language,
        verdict=verdict_of(problems, strict=strict),
        problems=problems,
        links=results,
        review_line=None if reviews is None else review_line(article, reviews),
        license_registry=at_authority.license_registry if at_authority else [],
        reviewer_registry=at_authority.reviewer_registry if at_authority else None,
        authority_notes=at_authority.notes if at_authority else [],
    )


def review_line(article: Article, reviews: Sequence[ReviewRecord]) -> ReviewLine:
    """The review line as printed (``article`` is the one the channels render) and its source."""
    signed = approval_of(article, reviews) is not None
    return ReviewLine(
        reviewed_by=article.reviewed_by.display() if article.reviewed_by is not None else None,
        last_reviewed=article.last_reviewed.isoformat(),
        source=ReviewSource.RECORD.value if signed else ReviewSource.FRONT_MATTER.value,
    )


def all_urls(articles: Sequence[Article]) -> list[str]:
    """Every URL of every article, once: the same source cited twice is fetched once."""
    return list(dict.fromkeys(url for article in articles for url in article_urls(article)))


def site_contact(site: SiteConfig) -> str:
    """The address the integrity lookups give Crossref and NCBI."""
    news = site.newsletter
    return contact_address(site.checks.integrity.mailto, news.reply_to, news.from_address)


def check_integrity(
    articles: Sequence[Article], site: SiteConfig, cache: IntegrityCache | None = None
) -> IntegrityReport | None:
    """Look up every DOI/PMID the articles cite; None when ``[checks.integrity] enabled = false``."""
    if not site.checks.integrity.enabled:
        return None
    quotes, fetch_at = quote_requests(articles, site.checks.links)
    return lookup(
        identifiers(all_urls(articles), site.checks.links),
        site.checks.integrity,
        site.checks.links,
        contact=site_contact(site),
        cache=cache,
        quotes=quotes,
        fetch_at=fetch_at,
    )


def site_npis(articles: Sequence[Article], site: SiteConfig) -> list[str]:
    """Every reviewer's NPI the articles print, once."""
    return list(dict.fromkeys(npi for a in articles if (npi := article_npi(a, site)) is not None))


def check_authorities(
    articles: Sequence[Article], site: SiteConfig, cache: LinkCache | None
) -> AuthorityReport:
    """The licenses at DHCS and the reviewers at the NPI registry: what check and publish both run."""
    return run_quietly(
        lookup_authorities(site, site_npis(articles, site), link_cache_path=cache.path if cache else None)
    )


async def _check_all(
    articles: Sequence[Article], site: SiteConfig, cache: LinkCache | None
) -> tuple[LinkReport, IntegrityReport | None, AuthorityReport]:
    """The link check, the integrity and the authority lookups at once: the lookups add little
    wall time."""
    urls = all_urls(articles)
    links = check_urls_async(urls, site.checks.links, cache=cache)
    authority = lookup_authorities(
        site, site_npis(articles, site), link_cache_path=cache.path if cache else None
    )
    if not site.checks.integrity.enabled:
        checked, found = await asyncio.gather(links, authority)
        return checked, None, found
    quotes, fetch_at = quote_requests(articles, site.checks.links)
    records = lookup_async(
        identifiers(urls, site.checks.links),
        site.checks.integrity,
        site.checks.links,
        contact=site_contact(site),
        cache=integrity_cache_beside(cache.path if cache else None, site.checks.integrity),
        quotes=quotes,
        fetch_at=fetch_at,
    )
    return await asyncio.gather(links, records, authority)


def check_articles(
    articles: Sequence[Article],
    site: SiteConfig,
    *,
    on: date,
    strict: bool = False,
    cache: LinkCache | None = None,
    reviews: Sequence[ReviewRecord] | None = None,
    facts: FactsCache | bool = True,
    editions: Editions | None = None,
) -> list[ArticleReport]:
    """Verify articles directly (no Prefect): what ``clinicpress check`` runs.

    The integrity cache and the facts cache (each body's links and grade, ``facts`` True) live
    beside the link cache (``--no-cache`` turns all three off); ``facts`` False: none.
    """
    if isinstance(facts, FactsCache):
        prime_facts(articles, facts, site)
    elif facts:
        prime_facts(articles, facts_beside(cache.path if cache else None), site)
    report, integrity, authority = run_quietly(_check_all(articles, site, cache))
    return [
        verify_article(
            a,
            site,
            report,
            on=on,
            strict=strict,
            integrity=integrity,
            reviews=reviews,
            authority=authority,
            editions=editions,
        )
        for a in articles
    ]
