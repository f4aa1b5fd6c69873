"""Network safety below both sources and checks: SSRF address rules, a vetted resolver, a pinned
transport (DNS-rebinding proof), and the one way to fetch a URL (:mod:`.fetch`) that every
request of the tool goes through.

Imports nothing from clinicpress but this package, clinicpress.errors (its exceptions are a
branch of that tree: :mod:`.errors`) and clinicpress.clock (a Retry-After date is read against
the product's clock).
"""

from clinicpress.network.addresses import (
    IPAddress,
    IPNetwork,
    disallowed_reason,
    host_of,
    literal_ip,
    normalise_hosts,
    refusal,
)
from clinicpress.network.errors import (
    ConnectFailed,
    Dropped,
    FetchError,
    Hop,
    NoAnswer,
    NotResolved,
    RedirectFailed,
    Refused,
    TLSFailed,
    TooLarge,
    Unreadable,
)
from clinicpress.network.fetch import Fetcher, fetch, parse
from clinicpress.network.policy import LinkRules, Policy
from clinicpress.network.replies import Fetched, Read, Walked, read_if_ok, retry_after, retryable
from clinicpress.network.resolver import NetFailure, Resolution, VettedResolver, Vetting, vet
from clinicpress.network.transport import tls_context

__all__ = [
    "ConnectFailed",
    "Dropped",
    "FetchError",
    "Fetched",
    "Fetcher",
    "Hop",
    "IPAddress",
    "IPNetwork",
    "LinkRules",
    "NetFailure",
    "NoAnswer",
    "NotResolved",
    "Policy",
    "Read",
    "RedirectFailed",
    "Refused",
    "Resolution",
    "TLSFailed",
    "TooLarge",
    "Unreadable",
    "VettedResolver",
    "Vetting",
    "Walked",
    "disallowed_reason",
    "fetch",
    "host_of",
    "literal_ip",
    "normalise_hosts",
    "parse",
    "read_if_ok",
    "refusal",
    "retry_after",
    "retryable",
    "tls_context",
    "vet",
]
