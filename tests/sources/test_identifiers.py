"""sources/identifiers.py: DOIs and PMIDs recognised however they are spelled (pure; no network)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinicpress.sources.identifiers import Identifier, identifier_of, resolver_url

MIRROR_DOI = "http://127.0.0.1:8080/doi/"
MIRROR_PUBMED = "http://127.0.0.1:8080/pubmed/"


@pytest.mark.parametrize(
    ("url", "value"),
    [
        ("doi:10.1234/x", "10.1234/x"),
        ("DOI:10.1234/X", "10.1234/X"),
        ("doi: 10.1234/x", "10.1234/x"),
        ("https://doi.org/10.1234/x", "10.1234/x"),
        ("http://doi.org/10.1234/x", "10.1234/x"),
        ("http://dx.doi.org/10.1234/x", "10.1234/x"),
        ("https://www.doi.org/10.1234/x", "10.1234/x"),
        ("https://DOI.ORG/10.1234/x#section", "10.1234/x"),
        ("https://doi.org/10.1000/a%2Fb", "10.1000/a/b"),  # percent-decoded
        ("https://doi.org/10.1234/x.", "10.1234/x"),  # prose punctuation glued on
        ("doi:10.1234/x);", "10.1234/x"),
        ("https://doi.org/10.1016/S0140-6736(20)30183-5", "10.1016/S0140-6736(20)30183-5"),  # balanced: kept
        ("doi:10.1000.10/123", "10.1000.10/123"),  # a sub-divided registrant
    ],
)
def test_dois_at_the_resolver(url: str, value: str) -> None:
    assert identifier_of(url) == Identifier("doi", value, at_resolver=True)


@pytest.mark.parametrize(
    "url",
    [
        "pmid:30233240",
        "PMID:30233240",
        "pmid:030233240",  # leading zeros: one PMID
        "https://pubmed.ncbi.nlm.nih.gov/30233240/",
        "https://pubmed.ncbi.nlm.nih.gov/30233240",
        "https://www.ncbi.nlm.nih.gov/pubmed/30233240",
        "http://www.ncbi.nlm.nih.gov/pubmed/30233240/",
    ],
)
def test_pmids_at_the_resolver(url: str) -> None:
    assert identifier_of(url) == Identifier("pmid", "30233240", at_resolver=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://journal.example/doi/10.1056/NEJMoa2034577",
        "https://journal.example/doi/full/10.1056/NEJMoa2034577",
        "https://journal.example/doi/abs/10.1056/NEJMoa2034577",
        "https://journal.example/doi/pdf/10.1056/NEJMoa2034577",
        "https://www.tandfonline.com/doi/full/10.1056/NEJMoa2034577?scroll=top",
    ],
)
def test_publisher_urls_carry_a_doi_but_are_not_at_the_resolver(url: str) -> None:
    assert identifier_of(url) == Identifier("doi", "10.1056/NEJMoa2034577", at_resolver=False)


def test_the_configured_resolvers_are_recognised() -> None:
    doi = identifier_of(f"{MIRROR_DOI}10.1234/x", doi_resolver=MIRROR_DOI, pubmed_resolver=MIRROR_PUBMED)
    pmid = identifier_of(f"{MIRROR_PUBMED}123/", doi_resolver=MIRROR_DOI, pubmed_resolver=MIRROR_PUBMED)
    assert doi == Identifier("doi", "10.1234/x", at_resolver=True)
    assert pmid == Identifier("pmid", "123", at_resolver=True)
    # The same paths on another port are not the resolver; a /doi/ path still carries the DOI.
    assert identifier_of("http://127.0.0.1:9/doi/10.1234/x", doi_resolver=MIRROR_DOI) == Identifier(
        "doi", "10.1234/x", at_resolver=False
    )
    assert identifier_of("http://127.0.0.1:9/pubmed/123/", pubmed_resolver=MIRROR_PUBMED) is None
    # http and https on their default ports are one resolver.
    assert identifier_of("http://mirror.example/10.1/x", doi_resolver="https://mirror.example/") is None
    assert identifier_of("https://mirror.example/10.1234/x", doi_resolver="http://mirror.example/") == (
        Identifier("doi", "10.1234/x", at_resolver=True)
    )


@pytest.mark.parametrize(
    "url",
    [
        "",
        "doi:",
        "doi:11.1/x",
        "doi:10.12/x",  # registrant too short
        "doi:10.1234/",
        "doi:10.1234/a b",
        "pmid:",
        "pmid:abc",
        "pmid:0",
        "https://doi.org/",
        "https://doi.org/about",
        "https://pubmed.ncbi.nlm.nih.gov/?term=ketamine",
        "https://pubmed.ncbi.nlm.nih.gov/trending/",
        "https://example.org/10.1234/x",
        "mailto:doi@example.org",
        "http://[::1",  # malformed: None, never an exception
        "https://doi.org:bad/10.1234/x",
    ],
)
def test_not_an_identifier(url: str) -> None:
    assert identifier_of(url) is None


def test_key_folds_doi_case() -> None:
    assert identifier_of("doi:10.1056/NEJMoa1").key == "doi:10.1056/nejmoa1"  # type: ignore[union-attr]
    assert identifier_of("https://doi.org/10.1056/nejmoa1").key == "doi:10.1056/nejmoa1"  # type: ignore[union-attr]
    assert Identifier("pmid", "123", at_resolver=True).key == "pmid:123"


def test_resolver_url() -> None:
    kw = {"doi_resolver": MIRROR_DOI, "pubmed_resolver": MIRROR_PUBMED}
    assert resolver_url(Identifier("doi", "10.1234/x", True), **kw) == f"{MIRROR_DOI}10.1234/x"
    assert resolver_url(Identifier("pmid", "123", True), **kw) == f"{MIRROR_PUBMED}123/"
    # Characters that would end the path are escaped, not lost.
    odd = Identifier("doi", "10.1002/a#b?c d%", True)
    assert resolver_url(odd, **kw) == f"{MIRROR_DOI}10.1002/a%23b%3Fc%20d%25"
    assert resolver_url(
        Identifier("doi", "10.1234/x", True), doi_resolver="https://doi.org", pubmed_resolver=""
    ) == ("https://doi.org/10.1234/x")


_SUFFIX = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N"), include_characters="-_.;()/:<>#?%+"),
    min_size=1,
    max_size=30,
).filter(lambda s: s[-1] not in ".,;)" and s[0] != "/")


@given(registrant=st.integers(1000, 999_999_999), suffix=_SUFFIX)
def test_a_doi_survives_the_round_trip_through_the_resolver(registrant: int, suffix: str) -> None:
    ident = Identifier("doi", f"10.{registrant}/{suffix}", at_resolver=True)
    url = resolver_url(ident, doi_resolver=MIRROR_DOI, pubmed_resolver=MIRROR_PUBMED)
    assert identifier_of(url, doi_resolver=MIRROR_DOI) == ident
    assert identifier_of(f"doi:{ident.value}") == ident or "#" in suffix or "%" in suffix


@given(st.text(max_size=60))
def test_never_raises(text: str) -> None:
    found = identifier_of(text)
    assert found is None or found.kind in ("doi", "pmid")


def test_the_low_layers_import_nothing_above_them() -> None:
    """clinicpress.network and sources/identifiers.py sit below sources and checks: they may
    import clinicpress.errors, the product's clock (a Retry-After date is read against it) and
    themselves, nothing else of clinicpress."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    allowed = ("clinicpress.network", "clinicpress.errors", "clinicpress.clock")
    files = [*sorted((root / "clinicpress" / "network").glob("*.py")), root / "sources" / "identifiers.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):  # "from clinicpress import clock" imports clinicpress.clock
                module = node.module or ""
                names = [f"{module}.{a.name}" for a in node.names] if module == "clinicpress" else [module]
            for name in names:
                if name.startswith("clinicpress"):
                    assert path.name != "identifiers.py", name  # pure: no clinicpress at all
                    assert name.startswith(allowed), (path.name, name)
