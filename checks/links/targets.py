"""Read a cited URL: what to fetch and what to check on the page, or an outcome without fetching.

http(s) URLs are fetched as cited, except DOIs and PubMed IDs however they are spelled
(``doi:10.…``, doi.org/dx.doi.org URLs, ``pmid:…``, pubmed URLs): those are fetched at the
configured ``doi_resolver`` / ``pubmed_resolver`` (a mirror, or a test's stand-in), while the
report keeps the URL as cited. A publisher URL that merely carries a DOI stays fetched at its
own URL: that is the link the reader clicks. ``mailto:``/``tel:`` are checked for form only;
other schemes are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

import httpx

from clinicpress.checks.links.report import LinkOutcome
from clinicpress.checks.model import LinkStatus
from clinicpress.network import disallowed_reason, literal_ip
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.sources.identifiers import Identifier, identifier_of, resolver_url

__all__ = ["Target", "TargetReader"]

_MAILTO = re.compile(r"^[^@\s,;<>()\[\]\\\"]+@[^@\s,;<>()\[\]\\\"]+\.[^@\s,;<>()\[\]\\\".]+$")
_TEL = re.compile(r"^\+?[0-9().\- ]+$")
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_SCHEMES = ("http", "https", "mailto", "tel", "doi", "pmid")


@dataclass(frozen=True)
class Target:
    """One input URL, read: what to fetch, and what to check on the page."""

    url: str  # as cited: the report's key
    fetch: httpx.URL  # without fragment
    fragment: str | None
    kind: Literal["doi", "pmid"] | None = None
    ident: str = ""  # the DOI or PMID


class TargetReader:
    """Reads input URLs under one run's settings (exclusions, resolvers)."""

    def __init__(self, settings: LinkCheckSettings) -> None:
        self.settings = settings
        self.excludes = [re.compile(p) for p in settings.exclude]

    def read(self, url: str) -> Target | LinkOutcome:
        # Browsers drop tabs/newlines and outer control characters; read the scheme as they would.
        cleaned = re.sub(r"[\t\n\r]", "", url).strip(_C0_AND_SPACE)
        scheme, sep, rest = cleaned.partition(":")
        scheme = scheme.lower() if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme) else ""
        if scheme not in _SCHEMES:
            return LinkOutcome(url, LinkStatus.REFUSED, _scheme_reason(scheme))
        for pattern in self.excludes:
            if pattern.search(url):
                return LinkOutcome(url, LinkStatus.SKIPPED, f"excluded by config ({pattern.pattern})")
        if scheme in ("mailto", "tel"):
            return _vet_non_http(url, scheme, rest)
        if scheme in ("doi", "pmid"):
            ident = self.identifier(cleaned)
            if ident is None:
                example = "doi:10.1000/xyz123" if scheme == "doi" else "pmid:12345678"
                return LinkOutcome(url, LinkStatus.BROKEN, f"malformed {scheme}: link (expected {example})")
            return Target(url, self.at_resolver(ident), None, ident.kind, ident.value)
        try:
            target = httpx.URL(cleaned)
        except (httpx.InvalidURL, ValueError) as exc:
            # httpx rejects some spellings browsers accept (0177.0.0.1): still name an address we refuse.
            try:
                literal = literal_ip(urlsplit(cleaned).hostname or "")
            except ValueError:
                literal = None
            why = disallowed_reason(literal) if literal is not None else None
            if why:
                return LinkOutcome(url, LinkStatus.REFUSED, f"{why} is not allowed")
            return LinkOutcome(url, LinkStatus.BROKEN, f"not a valid URL ({exc})")
        if not target.raw_host:
            return LinkOutcome(url, LinkStatus.BROKEN, "not a valid URL (no host)")
        fragment = target.fragment or None
        ident = self.identifier(str(target.copy_with(fragment=None)))
        if ident is not None:
            return Target(url, self.at_resolver(ident), fragment, ident.kind, ident.value)
        return Target(url, target.copy_with(fragment=None), fragment)

    def identifier(self, url: str) -> Identifier | None:
        """The DOI or PMID ``url`` *is* (publisher URLs carrying a DOI are not: None)."""
        ident = identifier_of(
            url, doi_resolver=self.settings.doi_resolver, pubmed_resolver=self.settings.pubmed_resolver
        )
        return ident if ident is not None and ident.at_resolver else None

    def at_resolver(self, ident: Identifier) -> httpx.URL:
        where = resolver_url(
            ident, doi_resolver=self.settings.doi_resolver, pubmed_resolver=self.settings.pubmed_resolver
        )
        return httpx.URL(where).copy_with(fragment=None)


def _vet_non_http(url: str, scheme: str, rest: str) -> LinkOutcome:
    if scheme == "mailto":
        addresses = [a.strip() for a in unquote(rest.split("?", 1)[0]).split(",")]
        if addresses and all(_MAILTO.match(a) for a in addresses):
            return LinkOutcome(url, LinkStatus.SKIPPED, "email address: not checked")
        return LinkOutcome(
            url, LinkStatus.REFUSED, "malformed mailto: link (expected mailto:name@example.org)"
        )
    number = unquote(rest).split(";", 1)[0]
    if _TEL.match(number) and sum(c.isdigit() for c in number) >= 3:
        return LinkOutcome(url, LinkStatus.SKIPPED, "phone number: not checked")
    return LinkOutcome(url, LinkStatus.REFUSED, "malformed tel: link (expected tel:+1-555-0100)")


def _scheme_reason(scheme: str) -> str:
    if not scheme:
        return "not an absolute http(s) URL (write https://…)"
    return f"{scheme}: links are not allowed in sources (only http, https, mailto, tel)"
