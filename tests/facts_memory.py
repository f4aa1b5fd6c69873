"""This process's memory of loaded articles, body parses and grades, cleared: what a new process sees.

Shared by the facts-cache tests (tests/checks/test_facts_cache.py, tests/flows/test_publish_facts.py).
"""

from __future__ import annotations

import clinicpress.checks.body as body_module
import clinicpress.checks.language as language_module
import clinicpress.checks.readability as readability_module
import clinicpress.sources.loader as loader_module


def forget() -> None:
    body_module.body_facts.cache_clear()
    body_module._parse.cache_clear()
    body_module._KNOWN_LINKS.clear()
    readability_module._readability.cache_clear()
    readability_module._KNOWN.clear()
    language_module._KNOWN.clear()
    loader_module._parse_article.cache_clear()
    loader_module._recalled.cache_clear()
    loader_module._PARSED.clear()
