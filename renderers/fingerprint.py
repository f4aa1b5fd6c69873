"""The templates' share of an article's version, without importing any renderer.

The publishing process needs it for every article; importing the renderers
(WeasyPrint, ~40 MB) is left to the processes that render.
"""

from __future__ import annotations

import hashlib

from .markdown import ASSETS_DIR, TEMPLATES_DIR


def template_fingerprint() -> str:
    """sha256 over every template and asset (name and bytes, sorted by name).

    Part of the article version, so that a template change re-publishes.
    """
    digest = hashlib.sha256()
    files = [
        p
        for folder in (TEMPLATES_DIR, ASSETS_DIR)
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".")
    ]
    for path in sorted(files, key=lambda p: (p.parent.name, p.name)):
        # Name and length are hashed too: renaming or splitting files changes the digest.
        name = f"{path.parent.name}/{path.name}".encode()
        data = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()
