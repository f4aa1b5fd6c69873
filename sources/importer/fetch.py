"""Reading the page: a local HTML file, or an http(s) URL fetched under the link checker's rules.

Fetching follows the link checker's SSRF rules (``clinicpress.network``): http(s) only,
every hop's host vetted (literal and resolved private, loopback and link-local addresses
refused unless allowed in ``[checks.links] allow_private_hosts``), the connection pinned to
the vetted address (no second DNS answer), a timeout and a size cap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx

from clinicpress.errors import InputError
from clinicpress.network import VettedResolver, host_of, sync_transport
from clinicpress.settings.links import LinkCheckSettings

MAX_PAGE_BYTES = 5 * 1024 * 1024  # a blog page is far smaller; anything bigger is not one

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(source: str) -> bool:
    """``source`` names a URL (any scheme: the fetch refuses what it may not fetch), not a file."""
    return _URL.match(source) is not None


def fetch_page(url: str, settings: LinkCheckSettings) -> tuple[bytes, str, str | None]:
    """GET ``url`` under the link checker's rules; returns (body, final URL, charset).

    Every hop's host is vetted by one :class:`VettedResolver`, and the client connects only
    to the addresses it vetted (the pinned transport never resolves a name again), so a DNS
    answer that changes between the vetting and the connection cannot steer it elsewhere.
    """
    current = url
    resolver = VettedResolver(
        allowed_hosts=settings.allow_private_hosts,
        allowed_networks=settings.allow_private_networks,
        timeout=settings.timeout,
    )
    with httpx.Client(
        follow_redirects=False,  # by hand: every hop is vetted before we connect
        timeout=httpx.Timeout(settings.timeout),
        transport=sync_transport(resolver.pinned),
        trust_env=False,  # an environment proxy would connect where we did not vet
        headers={"User-Agent": settings.user_agent, "Accept": "text/html,application/xhtml+xml"},
    ) as client:
        for _ in range(settings.max_redirects + 1):
            target = _vet(current, resolver)
            try:
                with client.stream("GET", target) as response:
                    if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                        current = str(target.join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise InputError(url, None, f"the server answered HTTP {response.status_code}", "200")
                    kind = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                    if kind and kind not in ("text/html", "application/xhtml+xml"):
                        raise InputError(url, None, f"is {kind}", "an HTML page (text/html)")
                    body = _read_capped(response.iter_bytes(), url)
                    return body, str(target), response.charset_encoding
            except httpx.HTTPError as exc:
                raise InputError(url, None, f"could not be fetched ({type(exc).__name__}: {exc})") from exc
    raise InputError(url, None, f"more than {settings.max_redirects} redirects", "a page that loads")


def _vet(url: str, resolver: VettedResolver) -> httpx.URL:
    """The URL, if we may connect to it: the link checker's rules (clinicpress.network)."""
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InputError(url, None, f"is not a valid URL ({exc})", "an http(s) URL") from exc
    if target.scheme not in ("http", "https") or not target.raw_host:
        raise InputError(url, None, "is not an http(s) URL", "an http(s) URL or an HTML file")
    host = host_of(target)
    vetting = resolver.vet_sync(host)
    if vetting.failure is not None:
        raise InputError(url, None, f"host {host} cannot be resolved ({vetting.detail})")
    if vetting.why is not None:
        raise InputError(
            url,
            None,
            f"{host} is a {vetting.why}, which is refused",
            "a public address (or allow_private_hosts)",
        )
    return target


def _read_capped(chunks: Iterator[bytes], where: str) -> bytes:
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > MAX_PAGE_BYTES:
            raise InputError(where, None, f"is larger than {MAX_PAGE_BYTES:,} bytes", "a blog page")
    return bytes(data)


def read_file(path: Path) -> bytes:
    """A saved page's bytes, under the same size cap as a fetch."""
    try:
        size = path.stat().st_size
        if size > MAX_PAGE_BYTES:
            raise InputError(path, None, f"is {size:,} bytes", f"an HTML page of at most {MAX_PAGE_BYTES:,}")
        if path.is_dir():
            raise InputError(path, None, "is a folder", "an HTML file or an http(s) URL")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(path, None, "file not found", "an HTML file or an http(s) URL") from exc
    except OSError as exc:
        raise InputError(path, None, f"cannot read ({exc.strerror})") from exc
