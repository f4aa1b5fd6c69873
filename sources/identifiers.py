"""Recognise DOIs and PubMed IDs in a cited source, however it is spelled (pure: no I/O).

``doi:10.1000/x``, ``https://doi.org/10.1000/x``, ``http://dx.doi.org/10.1000/x``, a URL at
the configured resolver, ``pmid:123``, ``https://pubmed.ncbi.nlm.nih.gov/123/`` and
``https://www.ncbi.nlm.nih.gov/pubmed/123`` *are* the identifier (``at_resolver``: the link
checker fetches them at the configured resolver). A publisher URL that merely carries a DOI
(``https://journal.example/doi/full/10.1000/x``) is recognised too, with ``at_resolver``
False: it stays fetched at its own URL, the link the reader clicks.

This module is a low layer: it imports nothing from clinicpress (the checks and the integrity
lookups build on it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

__all__ = ["DEFAULT_DOI_RESOLVER", "DEFAULT_PUBMED_RESOLVER", "Identifier", "identifier_of", "resolver_url"]

DEFAULT_DOI_RESOLVER = "https://doi.org/"
DEFAULT_PUBMED_RESOLVER = "https://pubmed.ncbi.nlm.nih.gov/"

# A DOI: "10." + registrant (4-9 digits, optionally sub-divided: 10.1000.10) + "/" + any suffix.
_DOI = re.compile(r"10\.\d{4,9}(?:\.\d+)*/\S+")
_PMID = re.compile(r"\d{1,12}")
_DOI_HOSTS = frozenset({"doi.org", "dx.doi.org", "www.doi.org"})
_PUBMED_HOSTS = frozenset({"pubmed.ncbi.nlm.nih.gov"})
_NCBI_HOSTS = frozenset({"www.ncbi.nlm.nih.gov", "ncbi.nlm.nih.gov"})
# Publisher landing pages that carry the DOI in the path (Atypon, Wiley, SAGE, T&F, ...).
_PUBLISHER_DOI = re.compile(r"/doi/(?:(?:full|abs|pdf|epdf|reader|fullText)/)?(10\.\d{4,9}(?:\.\d+)*/.+)$")
_TRAILING = ".,;"
# Characters kept as they are when a DOI is put back into a resolver URL; the rest is escaped
# (a DOI may contain "#", "?", "%", "<", ">" and spaces must never reach the URL raw).
_DOI_SAFE = "/:;()[]@!$&'*+,=~"


@dataclass(frozen=True)
class Identifier:
    """A DOI or PMID found in a cited source."""

    kind: Literal["doi", "pmid"]
    value: str  # DOI from "10." on, percent-decoded, trailing .,;) stripped; PMID: its digits
    at_resolver: bool  # True: the citation is the identifier; False: a publisher URL carrying a DOI

    @property
    def key(self) -> str:
        """One spelling per work: DOIs are case-insensitive, PMIDs are digits."""
        return f"doi:{self.value.casefold()}" if self.kind == "doi" else f"pmid:{self.value}"


def identifier_of(
    url: str,
    *,
    doi_resolver: str = DEFAULT_DOI_RESOLVER,
    pubmed_resolver: str = DEFAULT_PUBMED_RESOLVER,
) -> Identifier | None:
    """The DOI or PMID ``url`` cites, or None (also for anything malformed: never raises)."""
    text = url.strip()
    scheme, sep, rest = text.partition(":")
    if sep and scheme.lower() == "doi":
        doi = _doi(unquote(rest).strip().lstrip("/"))
        return Identifier("doi", doi, at_resolver=True) if doi else None
    if sep and scheme.lower() == "pmid":
        pmid = _pmid(unquote(rest).strip().rstrip("/"))
        return Identifier("pmid", pmid, at_resolver=True) if pmid else None
    if scheme.lower() not in ("http", "https"):
        return None
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return None
    where = (host, _port(parts.scheme, port))
    path = unquote(parts.path)
    if (rest_of := _under(where, path, doi_resolver)) is not None or host in _DOI_HOSTS:
        doi = _doi(rest_of if rest_of is not None else path[1:])
        if doi:
            return Identifier("doi", doi, at_resolver=True)
    pmid_path: str | None = _under(where, path, pubmed_resolver)
    if pmid_path is None and host in _PUBMED_HOSTS:
        pmid_path = path[1:]
    if pmid_path is None and host in _NCBI_HOSTS and path.startswith("/pubmed/"):
        pmid_path = path[len("/pubmed/") :]
    if pmid_path is not None:
        pmid = _pmid(pmid_path.rstrip("/"))
        if pmid:
            return Identifier("pmid", pmid, at_resolver=True)
    if found := _PUBLISHER_DOI.search(path):
        doi = _doi(found.group(1))
        if doi:
            return Identifier("doi", doi, at_resolver=False)
    return None


def resolver_url(ident: Identifier, *, doi_resolver: str, pubmed_resolver: str) -> str:
    """Where ``ident`` is fetched: ``<doi_resolver><doi>`` or ``<pubmed_resolver><pmid>/``."""
    if ident.kind == "doi":
        return _base(doi_resolver) + quote(ident.value, safe=_DOI_SAFE)
    return f"{_base(pubmed_resolver)}{ident.value}/"


def _doi(text: str) -> str | None:
    value = _strip_trailing(text)
    return value if _DOI.fullmatch(value) else None


def _pmid(text: str) -> str | None:
    return str(int(text)) if _PMID.fullmatch(text) and int(text) > 0 else None


def _strip_trailing(value: str) -> str:
    """Drop what prose glues onto a DOI: a final . , ; or an unbalanced ")".

    A ")" that closes a "(" inside the DOI is kept: 10.1016/S0140-6736(20)30183-5 style
    suffixes can end with one (10.1002/(SICI)...(199812)).
    """
    while value:
        last = value[-1]
        if last in _TRAILING or (last == ")" and value.count(")") > value.count("(")):
            value = value[:-1]
        else:
            break
    return value


def _under(where: tuple[str, int | None], path: str, resolver: str) -> str | None:
    """The rest of ``path`` after the resolver's path, when ``where`` is the resolver's host."""
    try:
        base = urlsplit(resolver)
        host = (base.hostname or "").rstrip(".")
        port = _port(base.scheme, base.port)
    except ValueError:
        return None
    prefix = unquote(base.path) or "/"
    if not prefix.endswith("/"):
        prefix += "/"
    if not host or (host, port) != where or not path.startswith(prefix):
        return None
    return path[len(prefix) :]


def _port(scheme: str, port: int | None) -> int | None:
    """None for the scheme's default port: http://mirror/ and https://mirror/ are one resolver."""
    return None if port == {"http": 80, "https": 443}.get(scheme.lower()) else port


def _base(resolver: str) -> str:
    return resolver if resolver.endswith("/") else resolver + "/"
