"""The templates' share of an article's version, without importing any renderer.

The publishing process needs it for every article; importing the renderers
(WeasyPrint, ~40 MB) is left to the processes that render.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from .markdown import ASSETS_DIR, TEMPLATES_DIR

# The message catalogs (renderers/i18n.py reads them; not imported here: Babel is slower to load).
LOCALE_DIR = Path(str(resources.files("clinicpress"))) / "locale"


def template_fingerprint() -> str:
    """sha256 over every template, asset, font and message catalog (name and bytes, sorted by name).

    Part of the article version, so that a template change, or a changed translation, re-publishes.
    """
    digest = hashlib.sha256()
    files = [
        p
        for folder in (TEMPLATES_DIR, ASSETS_DIR, ASSETS_DIR / "fonts")
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".")
    ]
    named = [(f"{path.parent.name}/{path.name}", path) for path in files]
    named += [(str(path.relative_to(LOCALE_DIR)), path) for path in LOCALE_DIR.glob("*/LC_MESSAGES/*.po")]
    for label, path in sorted(named, key=lambda item: item[0]):
        # Name and length are hashed too: renaming or splitting files changes the digest.
        name = label.encode()
        data = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()
