"""A person's verdict on an ``uncertain`` recipient, after reading the mail server's log.

SMTP cannot tell whether a message whose reply never came was delivered, so
such a recipient is never resent automatically. Whoever checked the server's
log says ``--sent`` (→ accepted) or ``--not-sent`` (→ pending: the next
publish of that version sends it). ``choose`` decides which record is meant,
or why none is; the update is ``DeliveryStore.resolve``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinicpress import clock
from clinicpress.errors import InputError
from clinicpress.hints import command
from clinicpress.outputs.delivery.schema import State
from clinicpress.outputs.delivery.store import DeliveryStore, Found
from clinicpress.outputs.registry import REGISTRY_FILE, registry_url
from clinicpress.outputs.subscribers import address_key
from clinicpress.site import SiteConfig

FIELD = "newsletter resolve"


@dataclass(frozen=True)
class Resolved:
    slug: str
    version: str
    address: str
    state: State  # accepted or pending

    def summary(self) -> str:
        what = f"{self.address} in newsletter {self.slug} (version {self.version[:12]})"
        if self.state is State.ACCEPTED:
            return f"{what}: uncertain → accepted (sent, by hand); it will not be sent again"
        return f"{what}: uncertain → pending (not sent, by hand); the next {command('publish')} sends it"


def choose(found: Sequence[Found], *, slug: str, address: str, version: str, slug_known: bool) -> Found:
    """The one uncertain record meant (``found``: the address in the slug's sends, newest first)."""
    which = f"newsletter {slug}" + (f" (version {version[:12]}…)" if version else "")
    if not slug_known:
        raise InputError(None, FIELD, f"no newsletter of {slug!r} was sent", "the slug of a sent article")
    if not found:
        raise InputError(
            None, FIELD, f"{address!r} is not a recipient of {which}", "an address it was sent to"
        )
    uncertain = [f for f in found if f.state == State.UNCERTAIN]
    if not uncertain:
        states = ", ".join(f"{f.state} in version {f.version[:12]}" for f in found)
        raise InputError(
            None, FIELD, f"{address!r} is not uncertain in {which} ({states})", "an uncertain recipient"
        )
    if len(uncertain) > 1:
        versions = ", ".join(f.version[:12] for f in uncertain)
        raise InputError(
            None,
            FIELD,
            f"{address!r} is uncertain in {len(uncertain)} versions of {which} ({versions})",
            "--version naming one of them",
        )
    return uncertain[0]


def verdict(delivered: bool) -> tuple[State, dict[str, Any]]:
    """The state and columns a person's verdict sets."""
    if delivered:
        return State.ACCEPTED, {"smtp_response": "confirmed by hand", "finished_at": clock.now()}
    # Back to the start: the next run claims it like any pending recipient.
    return State.PENDING, {"data_started": False, "run_id": None, "finished_at": None}


def resolve(store: DeliveryStore, slug: str, address: str, *, delivered: bool, version: str = "") -> Resolved:
    """Record the verdict on ``address`` in the send of ``slug`` where it is uncertain.

    ``version`` (a prefix) is needed only when it is uncertain in more than one version.
    Raises ``InputError`` (exit code 2) for an unknown slug or address, or one not uncertain.
    """
    key = address_key(address)
    found = store.find_recipient(slug, key, version)
    chosen = choose(
        found, slug=slug, address=address, version=version, slug_known=bool(found) or store.has_send(slug)
    )
    state, values = verdict(delivered)
    if not store.resolve(chosen.id, state, **values):  # a run resolved it meanwhile
        raise InputError(None, FIELD, f"{address!r} is no longer uncertain in newsletter {slug}", None)
    return Resolved(slug, chosen.version, address, state)


def resolve_uncertain(
    site: SiteConfig, out_dir: Path | str, slug: str, version: str, address: str, *, delivered: bool
) -> Resolved:
    """``resolve`` in the site's registry database (``version``: a prefix, or "" for any)."""
    default = Path(out_dir) / REGISTRY_FILE
    if site.registry.url is None and not default.exists():
        # Opening would create an empty registry in a mistyped --out.
        raise InputError(default, None, "no registry: nothing was published here", "the --out of publish")
    with DeliveryStore(registry_url(site, Path(out_dir))) as store:
        return resolve(store, slug, address, delivered=delivered, version=version)
