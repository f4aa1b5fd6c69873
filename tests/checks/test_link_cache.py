"""The link cache (checks/cache.py) with the real checker and the loopback server."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from httpfarm import HTTPFarm, Reply

from clinicpress.checks.cache import LinkCache, open_cache, settings_fingerprint
from clinicpress.checks.links import LinkReport, check_urls_async
from clinicpress.checks.model import LinkResult, LinkStatus
from clinicpress.site import LinkCheckSettings

FAST = LinkCheckSettings(allow_private_hosts=["127.0.0.1"], timeout=0.5, retries=0, min_interval=0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def farm() -> Iterator[HTTPFarm]:
    with HTTPFarm() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(tmp_path: Path, clock: Clock) -> LinkCache:
    return LinkCache(tmp_path / ".cache" / "links.sqlite", max_age_hours=1, clock=clock)


def run(urls: Sequence[str], cache: LinkCache | None, settings: LinkCheckSettings = FAST) -> LinkReport:
    return asyncio.run(check_urls_async(urls, settings, cache=cache, backoff=0.01))


def test_hit_skips_the_request_and_returns_the_same_result(farm: HTTPFarm, cache: LinkCache) -> None:
    url = farm.route("/c-ok", Reply(200))
    first = run([url], cache)
    second = run([url], cache)
    assert farm.hits("/c-ok") == 1
    assert second.results == first.results
    assert cache.path.is_file()


def test_redirected_is_cached_too(farm: HTTPFarm, cache: LinkCache) -> None:
    farm.route("/c-new", Reply(200))
    url = farm.route("/c-moved", Reply.redirect(301, "/c-new"))
    assert run([url], cache).results[url].status is LinkStatus.REDIRECTED
    again = run([url], cache).results[url]
    assert again.status is LinkStatus.REDIRECTED
    assert again.final_url == farm.url("/c-new")
    assert farm.hits("/c-moved") == 1


def test_miss_for_a_new_url(farm: HTTPFarm, cache: LinkCache) -> None:
    a, b = farm.route("/c-a", Reply(200)), farm.route("/c-b", Reply(200))
    run([a], cache)
    run([a, b], cache)
    assert (farm.hits("/c-a"), farm.hits("/c-b")) == (1, 1)


def test_expired_results_are_checked_again(farm: HTTPFarm, cache: LinkCache, clock: Clock) -> None:
    url = farm.route("/c-expiry", Reply(200))
    run([url], cache)
    clock.now += 3599
    run([url], cache)
    assert farm.hits("/c-expiry") == 1
    clock.now += 2
    run([url], cache)
    assert farm.hits("/c-expiry") == 2
    assert cache.purge() == 0  # the re-check refreshed the row


@pytest.mark.parametrize("reply", [Reply(404), Reply(503), Reply(403, {"cf-mitigated": "challenge"})])
def test_failures_are_never_cached(farm: HTTPFarm, cache: LinkCache, reply: Reply) -> None:
    path = f"/c-fail-{reply.status}"
    url = farm.route(path, reply)
    run([url], cache)
    run([url], cache)
    assert farm.hits(path) == 2


def test_a_failure_evicts_an_older_success(farm: HTTPFarm, cache: LinkCache, clock: Clock) -> None:
    url = farm.route("/c-flip", Reply(200))
    run([url], cache)
    farm.route("/c-flip", Reply(404))
    clock.now += 7200  # expired: checked again, now broken
    assert run([url], cache).results[url].status is LinkStatus.BROKEN
    clock.now -= 7200  # even "back in time" the old success is gone
    assert cache.get(url, FAST) is None


def test_bypass_with_no_cache(farm: HTTPFarm, cache: LinkCache, tmp_path: Path) -> None:
    url = farm.route("/c-bypass", Reply(200))
    run([url], cache)
    run([url], None)
    assert farm.hits("/c-bypass") == 2
    assert open_cache(tmp_path, FAST, enabled=False) is None
    opened = open_cache(tmp_path, FAST)
    assert opened is not None
    assert opened.path == tmp_path / ".cache" / "links.sqlite"


def test_other_rules_do_not_reuse_results(farm: HTTPFarm, cache: LinkCache) -> None:
    url = farm.route("/c-rules", Reply(200)) + "#gone"
    no_fragments = FAST.model_copy(update={"check_fragments": False})
    assert run([url], cache, no_fragments).results[url].status is LinkStatus.OK
    assert run([url], cache).results[url].status is LinkStatus.BROKEN  # not the cached ok
    assert settings_fingerprint(FAST) == settings_fingerprint(FAST.model_copy(update={"timeout": 3.0}))


def test_shared_across_articles_one_fetch(farm: HTTPFarm, cache: LinkCache) -> None:
    url = farm.route("/c-shared", Reply(200))
    run([url] * 50, cache)
    assert farm.hits("/c-shared") == 1


def test_cached_results_are_not_network_evidence(cache: LinkCache) -> None:
    # Only cached successes plus a DNS failure: nothing shows the network works right now.
    cache.put_many([LinkResult(url="https://cached.example/", status=LinkStatus.OK, reason="200 OK")], FAST)
    report = run(["https://cached.example/", "https://gone.invalid/"], cache)
    assert report.results["https://cached.example/"].status is LinkStatus.OK
    assert report.network_down
    assert report.results["https://gone.invalid/"].status is LinkStatus.UNVERIFIED


def test_an_unreadable_cache_file_is_ignored(farm: HTTPFarm, tmp_path: Path) -> None:
    bad = tmp_path / "links.sqlite"
    bad.write_bytes(b"not a database" * 100)
    cache = LinkCache(bad)
    url = farm.route("/c-corrupt", Reply(200))
    assert run([url], cache).results[url].status is LinkStatus.OK
    assert run([url], cache).results[url].status is LinkStatus.OK
    assert farm.hits("/c-corrupt") == 2


def test_every_write_removes_expired_rows(tmp_path: Path, cache: LinkCache, clock: Clock) -> None:
    """Expired rows are never read again: a write clears them, so the file does not grow forever."""
    old = [LinkResult(url=f"https://example.org/{i}", status=LinkStatus.OK, reason="200") for i in range(50)]
    cache.put_many(old, FAST)
    clock.now += 3601  # every row is past its max age
    cache.put_many([LinkResult(url="https://example.org/new", status=LinkStatus.OK, reason="200")], FAST)
    path = tmp_path / ".cache" / "links.sqlite"
    with sqlite3.connect(path) as conn:
        [(rows,)] = conn.execute("SELECT count(*) FROM link_results").fetchall()
    assert rows == 1
