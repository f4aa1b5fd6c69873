"""Is ``[organization] postal_address`` an address CAN-SPAM accepts? One pure decision.

CAN-SPAM (15 U.S.C. 7704(a)(5)(A)(iii)) asks every commercial email for "a valid physical postal
address of the sender": a street address, or a post office box registered with the USPS. A city
alone is not one. The address is read by ``usaddress`` (a parser trained on US addresses); a send
to subscribers waits until the parts it needs are there (``outputs/delivery/send.py``), while the
``.eml`` outbox, which sends nothing, never does. An address outside the US is not judged by US
rules: it is accepted, with a warning that nobody checked it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import usaddress  # type: ignore[import-untyped]  # ships no types

__all__ = ["PostalCheck", "check_postal_address"]

# The states, DC and the territories the USPS delivers to, by name and by code: an address naming
# none of them (nor a ZIP, nor the country) is taken for a foreign one.
_US_STATES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN",
    "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD",
    "massachusetts": "MA", "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO",
    "montana": "MT", "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ",
    "new mexico": "NM", "new york": "NY", "north carolina": "NC", "north dakota": "ND", "ohio": "OH",
    "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI",
    "south carolina": "SC", "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT",
    "vermont": "VT", "virginia": "VA", "washington": "WA", "west virginia": "WV", "wisconsin": "WI",
    "wyoming": "WY", "puerto rico": "PR", "guam": "GU", "virgin islands": "VI",
    "american samoa": "AS", "northern mariana islands": "MP",
}  # fmt: skip
_US_CODES = set(_US_STATES.values())
_US_COUNTRY = {"us", "usa", "u.s.", "u.s.a.", "united states", "united states of america"}
_ZIP = re.compile(r"\b\d{5}(?:-\d{4})?\b")


@dataclass(frozen=True)
class PostalCheck:
    """What the address lacks for a send (empty: complete), and whether US rules applied."""

    missing: tuple[str, ...]
    us: bool

    @property
    def complete(self) -> bool:
        return not self.missing

    def reason(self) -> str:
        """One line for a report: why a send to subscribers waits, or why nothing was checked."""
        if not self.us:
            return (
                "[organization] postal_address is not a US address: CAN-SPAM's street-address rule "
                "was not checked; make sure it is a valid physical address"
            )
        return (
            f"[organization] postal_address lacks {', '.join(self.missing)}: CAN-SPAM needs a street "
            "address or a USPS post office box in every newsletter sent to subscribers"
        )


def _is_state(text: str) -> bool:
    text = text.strip().rstrip(".")
    return text.lower() in _US_STATES or text.upper() in _US_CODES


def _looks_american(address: str, tags: dict[str, str]) -> bool:
    """A US country name, state or ZIP code, unless the address ends with another country's name.

    An address that ends with a word that is neither a state nor a ZIP ("…, Spain", "…, Malibu")
    is taken for a foreign one: accepted with a warning, never silently judged by US rules."""
    parts = [part.strip() for part in address.split(",") if part.strip()]
    last = parts[-1].lower().rstrip(".") if parts else ""
    if last in _US_COUNTRY or last in {"u.s", "u.s.a"}:
        return True
    words = last.split()
    if words and all(word.isalpha() for word in words) and not (_is_state(last) or _is_state(words[-1])):
        return False
    return (
        bool(_ZIP.search(address))
        or any(_is_state(part) for part in parts)
        or _is_state(tags.get("StateName", ""))
    )


def _tags(address: str) -> dict[str, str]:
    try:
        tagged, _kind = usaddress.tag(address)
    except usaddress.RepeatedLabelError as exc:  # e.g. two street numbers: keep the first of each
        tagged = {}
        for text, label in exc.parsed_string:
            tagged.setdefault(label, text)
    return {str(label): str(text) for label, text in tagged.items()}


def check_postal_address(address: str) -> PostalCheck:
    """The parts a US sending address lacks: a street number and street (or a PO box), a city,
    a state and a ZIP code. A foreign address: ``us`` False, nothing missing."""
    tags = _tags(address)
    if not _looks_american(address, tags):
        return PostalCheck(missing=(), us=False)
    missing: list[str] = []
    if not tags.get("USPSBoxID"):
        if not tags.get("AddressNumber"):
            missing.append("a street number")
        if not tags.get("StreetName"):
            missing.append("a street")
    # Without a street the parser cannot tell a city from a name ("Serenity Malibu, Malibu"): the
    # city is asked for only once the street is there.
    if not missing and not tags.get("PlaceName"):
        missing.append("a city")
    if not tags.get("StateName") and not any(_is_state(part) for part in address.split(",")):
        missing.append("a state")
    if not _ZIP.search(tags.get("ZipCode", "")):
        missing.append("a ZIP code")
    return PostalCheck(missing=tuple(missing), us=True)
