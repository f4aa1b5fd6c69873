"""``clinicpress preview``: the three channels of an article side by side, current as you save.

One job per module: :mod:`.state` (what is known of each article; pure), :mod:`.render`
(loading, rendering and checking; the handout and the sources in background workers),
:mod:`.cache` (the link cache, read from ``--out`` and never written there), :mod:`.pages`
(the HTML; pure) and :mod:`.server` (HTTP on 127.0.0.1 and the file watcher).

This file imports none of them: the CLI reads ``DEFAULT_PORT`` without loading the renderers.
"""

from __future__ import annotations

HOST = "127.0.0.1"  # never another address: drafts are not for the network
DEFAULT_PORT = 8765

__all__ = ["DEFAULT_PORT", "HOST"]
