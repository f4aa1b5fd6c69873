"""The link checker's entry points: check URLs (a whole run, or one batch of a run).

Every distinct URL gets one status, never an exception; cached successes are not fetched
again (failures always are). Rules and vocabulary: docs/writing/verified.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

from clinicpress.checks.links.fetch import LinkRun
from clinicpress.checks.links.report import (
    BatchItem,
    LinkBatch,
    LinkOutcome,
    LinkReport,
    internal_error,
    merge_batches,
)
from clinicpress.settings.links import LinkCheckSettings

if TYPE_CHECKING:
    from clinicpress.checks.cache import LinkCache

__all__ = ["DEFAULT_BACKOFF", "check_batch", "check_batch_async", "check_urls", "check_urls_async"]

DEFAULT_BACKOFF = 0.5  # seconds; first retry waits ~this, doubling, with jitter


def check_urls(
    urls: Sequence[str], settings: LinkCheckSettings, cache: LinkCache | None = None
) -> LinkReport:
    """Synchronous wrapper; from async code call :func:`check_urls_async`."""
    return asyncio.run(check_urls_async(urls, settings, cache=cache))


async def check_urls_async(
    urls: Sequence[str],
    settings: LinkCheckSettings,
    *,
    cache: LinkCache | None = None,
    backoff: float = DEFAULT_BACKOFF,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LinkReport:
    """Check every distinct URL; ``backoff`` is the first retry delay (tests shrink it).

    ``transport`` replaces the pinned network transport (tests: ``httpx.MockTransport``).
    """
    batch = await check_batch_async(urls, settings, cache=cache, backoff=backoff, transport=transport)
    return merge_batches([batch])


def check_batch(
    urls: Sequence[str], settings: LinkCheckSettings, cache: LinkCache | None = None
) -> LinkBatch:
    """One batch (e.g. one Prefect task): raw outcomes; merge all batches with :func:`merge_batches`."""
    return asyncio.run(check_batch_async(urls, settings, cache=cache))


async def check_batch_async(
    urls: Sequence[str],
    settings: LinkCheckSettings,
    *,
    cache: LinkCache | None = None,
    backoff: float = DEFAULT_BACKOFF,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LinkBatch:
    unique = list(dict.fromkeys(urls))
    hits = cache.get_many(unique, settings) if cache is not None else {}
    todo = [url for url in unique if url not in hits]
    fresh: dict[str, LinkOutcome] = {}
    run = LinkRun(settings, backoff, transport)
    async with run.fetcher:
        done = await asyncio.gather(*run.start(todo), return_exceptions=True) if todo else []
        fresh = {
            url: item if isinstance(item, LinkOutcome) else internal_error(url, item)
            for url, item in zip(todo, done, strict=True)
        }
    items = [
        BatchItem(**hits[url].model_dump(), cached=True) if url in hits else fresh[url].item()
        for url in unique
    ]
    if cache is not None:
        cache.put_many((fresh[url].result() for url in todo), settings)
    return LinkBatch(items=items, network_seen=run.network_seen)
