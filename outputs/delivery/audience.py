"""Who gets which edition of a newsletter (issue 26): pure.

An article and its translations are editions of one text. A subscriber whose CSV ``language``
names the language of a live edition gets that edition (an exact tag first, then the same primary
language: ``es-MX`` reads ``es``); everyone else, a subscriber with no language included, gets the
original. So each send goes to its own readers, and nobody gets two editions of one article.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from clinicpress.outputs.subscribers import Subscriber
from clinicpress.sources.editions import LiveEdition, live_editions


def _primary(tag: str) -> str:
    return tag.split("-", 1)[0].casefold()


def edition_for(subscriber: Subscriber, editions: Sequence[LiveEdition]) -> str:
    """The slug of the edition ``subscriber`` reads among one article's live ``editions``."""
    original = editions[0].original
    wanted = subscriber.language
    if wanted is None:
        return original
    exact = [e for e in editions if e.language.casefold() == wanted.casefold()]
    near = [e for e in editions if e.language and _primary(e.language) == _primary(wanted)]
    # An original in the wanted language wins over a translation in it.
    for found in (exact, near):
        if found:
            return min(found, key=lambda e: (e.slug != original, e.slug)).slug
    return original


def audience(
    subscribers: Sequence[Subscriber], slug: str, live: Mapping[str, LiveEdition]
) -> list[Subscriber]:
    """The subscribers who get ``slug``'s newsletter: all of them unless the article has editions."""
    me = live.get(slug)
    if me is None:
        return list(subscribers)
    editions = sorted(
        (e for e in live.values() if e.original == me.original), key=lambda e: (e.slug != me.original, e.slug)
    )
    if editions == [me] and me.slug == me.original:
        return list(subscribers)  # an original with no translation live: everyone
    # (A translation whose original is not live goes to its own readers only.)
    return [s for s in subscribers if edition_for(s, editions) == slug]


__all__ = ["LiveEdition", "audience", "edition_for", "live_editions"]
