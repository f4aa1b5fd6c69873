"""Archived snapshots of sources, looked up at publish (the Wayback Machine's availability API).

A later "broken" alert then carries a ready fallback. The endpoint is
configurable (``[archive] endpoint``); tests point it at a loopback fake.
Failures are quiet: no snapshot is a fact to record, not an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from clinicpress.checks.model import Archived
from clinicpress.site import Archive

_CONCURRENCY = 4  # be polite to the archive


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


async def _lookup_all(urls: Sequence[str], settings: Archive) -> dict[str, Archived | None]:
    gate = asyncio.Semaphore(_CONCURRENCY)
    async with httpx.AsyncClient(timeout=settings.timeout, trust_env=False, follow_redirects=True) as client:

        async def one(url: str) -> tuple[str, Archived | None] | None:
            async with gate:
                try:
                    response = await client.get(settings.endpoint, params={"url": url})
                    response.raise_for_status()
                    return url, _snapshot(response.json())
                except (httpx.HTTPError, ValueError):
                    return None  # not an answer: asked again at the next publish

        answers = await asyncio.gather(*(one(url) for url in urls))
        return dict(answer for answer in answers if answer is not None)


def lookup_archives(urls: Sequence[str], settings: Archive) -> dict[str, Archived | None]:
    """The closest snapshot of each URL the archive answered for (None: it has none).

    URLs whose lookup failed (timeout, network down) are absent from the result.
    """
    if not settings.enabled or not urls:
        return {}
    return asyncio.run(_lookup_all(list(dict.fromkeys(urls)), settings))
