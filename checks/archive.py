"""Archived snapshots of sources, looked up at publish (the Wayback Machine's availability API).

A later "broken" alert then carries a ready fallback. The endpoint is configurable
(``[archive] endpoint``); tests point it at a loopback stand-in. Failures are quiet: no
snapshot is a fact to record, not an error.

The archive is a third party, so what it is told is chosen with care: every lookup goes through
the one fetch (``clinicpress.network``: the endpoint vetted and pinned under ``[checks.links]``'s
rules, redirects vetted hop by hop, the reply capped), and a source is named to it only when
:meth:`Fetcher.shareable` says its host is public without any allowance. A source that only
``allow_private_hosts`` / ``allow_private_networks`` let through (an intranet page) is never
sent: it is simply not looked up. A DOI or PMID is asked about at its canonical public address
(``https://doi.org/…``, ``https://pubmed.ncbi.nlm.nih.gov/…/``), never at a mirror's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from clinicpress.checks.model import Archived
from clinicpress.network import Fetcher, FetchError, Policy
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.site import Archive
from clinicpress.sources.identifiers import (
    DEFAULT_DOI_RESOLVER,
    DEFAULT_PUBMED_RESOLVER,
    identifier_of,
    resolver_url,
)

__all__ = ["lookup_archives"]

_CONCURRENCY = 4  # be polite to the archive
_MAX_REPLY_BYTES = 256 * 1024  # one small JSON object


def _snapshot(payload: object) -> Archived | None:
    if not isinstance(payload, dict):
        return None
    closest = (payload.get("archived_snapshots") or {}).get("closest") or {}
    if not isinstance(closest, dict) or not closest.get("available") or not closest.get("url"):
        return None
    url = str(closest["url"])
    if not url.startswith(("https://", "http://")):
        return None
    return Archived(url=url.replace("http://", "https://", 1), timestamp=str(closest.get("timestamp", "")))


async def _public_form(fetcher: Fetcher, url: str, links: LinkCheckSettings) -> str | None:
    """What the archive may be asked about for the cited ``url``, or None: nothing."""
    ident = identifier_of(url, doi_resolver=links.doi_resolver, pubmed_resolver=links.pubmed_resolver)
    if ident is not None and ident.at_resolver:
        # The identifier's own public address: the default resolvers, never the configured ones.
        return resolver_url(ident, doi_resolver=DEFAULT_DOI_RESOLVER, pubmed_resolver=DEFAULT_PUBMED_RESOLVER)
    return url if await fetcher.shareable(url) else None


async def _lookup_all(
    urls: Sequence[str], settings: Archive, links: LinkCheckSettings
) -> dict[str, Archived | None]:
    gate = asyncio.Semaphore(_CONCURRENCY)
    policy = replace(Policy.of(links), timeout=settings.timeout, retries=0, connections=_CONCURRENCY)
    async with Fetcher(policy) as fetcher:

        async def one(url: str) -> tuple[str, Archived | None] | None:
            asked = await _public_form(fetcher, url, links)
            if asked is None:
                return None  # not for a third party's eyes: not looked up
            async with gate:
                try:
                    got = await fetcher.fetch(
                        settings.endpoint,
                        params={"url": asked},
                        accept="application/json",
                        max_bytes=_MAX_REPLY_BYTES,
                    )
                    return (url, _snapshot(got.json())) if got.status == 200 else None
                except FetchError:
                    return None  # not an answer: asked again at the next publish

        answers = await asyncio.gather(*(one(url) for url in urls))
        return dict(answer for answer in answers if answer is not None)


def lookup_archives(
    urls: Sequence[str], settings: Archive, links: LinkCheckSettings | None = None
) -> dict[str, Archived | None]:
    """The closest snapshot of each URL the archive answered for (None: it has none).

    ``links`` (``[checks.links]``) gives the address rules the endpoint is reached under.
    URLs whose lookup failed (timeout, network down) or that may not be named to the archive
    are absent from the result.
    """
    if not settings.enabled or not urls:
        return {}
    return asyncio.run(_lookup_all(list(dict.fromkeys(urls)), settings, links or LinkCheckSettings()))
