"""The one GET the authority lookups make, behind a small protocol so it can be swapped.

The lookups (``license.py``, ``npi.py``) take a :class:`JsonGet`: ``await get(url, params)``
returns a :class:`Reply` and never raises. :func:`vetted_get` is the production one: the
project's one fetch (``clinicpress.network.Fetcher``: the host vetted under ``[checks.links]
allow_private_*``, the connection pinned to the vetted addresses, bounded, a 5xx/429/timeout
asked again ``[checks.links] retries`` times), following no redirect (an authority that sends
us elsewhere is not the authority we asked). Tests reach a stand-in on 127.0.0.1 through it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx

from clinicpress.network import Fetcher, FetchError, Policy, RedirectFailed
from clinicpress.settings.links import LinkCheckSettings

__all__ = ["MAX_REPLY_BYTES", "JsonGet", "Reply", "vetted_get"]

MAX_REPLY_BYTES = 2 * 1024 * 1024  # one record, or a few rows of a layer: far below this


@dataclass(frozen=True)
class Reply:
    """What one GET gave: a parsed JSON body (``status`` 200), or why there is none."""

    status: int | None  # None: no HTTP answer at all
    data: Any = None
    error: str | None = None  # set whenever ``data`` is not a parsed 200 body
    network: bool = False  # the host did not resolve or nothing connected: the network is down

    @property
    def answered(self) -> bool:
        return self.status == 200 and self.error is None


class JsonGet(Protocol):
    """``await get(url, params)``: one GET of a JSON API; never raises."""

    async def __call__(self, url: str, params: Mapping[str, str]) -> Reply: ...


@asynccontextmanager
async def vetted_get(
    links: LinkCheckSettings,
    *,
    backoff: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[JsonGet]:
    """A :class:`JsonGet` on one :class:`Fetcher` for the run (closed on exit).

    ``backoff``: seconds before the first retry (tests pass 0); ``transport``: as for Fetcher.
    """
    policy = replace(Policy.of(links), max_redirects=0, connections=2)
    if backoff is not None:
        policy = replace(policy, backoff=backoff)
    async with Fetcher(policy, transport=transport) as fetcher:

        async def get(url: str, params: Mapping[str, str]) -> Reply:
            try:
                got = await fetcher.fetch(
                    url, accept="application/json", max_bytes=MAX_REPLY_BYTES, params=params
                )
            except RedirectFailed as exc:
                return Reply(exc.status, error=f"HTTP {exc.status}: redirects to {exc.target}; not followed")
            except FetchError as exc:
                return Reply(None, error=exc.reason, network=exc.net is not None)
            if got.status != 200:
                return Reply(got.status, error=f"HTTP {got.status}")
            try:
                return Reply(200, data=got.json())
            except FetchError:
                return Reply(200, error="the reply is not JSON")

        yield get
