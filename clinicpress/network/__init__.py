"""Network safety below both sources and checks: SSRF address rules, a vetted resolver, and
HTTP transports that connect only to vetted addresses (DNS-rebinding proof).

Imports nothing from clinicpress but this package (and clinicpress.errors, if ever needed).
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
from clinicpress.network.resolver import NetFailure, Resolution, VettedResolver, Vetting, vet
from clinicpress.network.transport import (
    HAPPY_EYEBALLS_DELAY,
    PinnedAsyncBackend,
    PinnedConnectError,
    PinnedConnectTimeout,
    PinnedSyncBackend,
    Vetted,
    async_transport,
    first_to_connect,
    sync_transport,
    tls_context,
)

__all__ = [
    "HAPPY_EYEBALLS_DELAY",
    "IPAddress",
    "IPNetwork",
    "NetFailure",
    "PinnedAsyncBackend",
    "PinnedConnectError",
    "PinnedConnectTimeout",
    "PinnedSyncBackend",
    "Resolution",
    "Vetted",
    "VettedResolver",
    "Vetting",
    "async_transport",
    "disallowed_reason",
    "first_to_connect",
    "host_of",
    "literal_ip",
    "normalise_hosts",
    "refusal",
    "sync_transport",
    "tls_context",
    "vet",
]
