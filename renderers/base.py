"""The one small base every channel renderer implements.

A renderer is a pure function of (article, site config, context) to
artifacts: it reads no clock, fetches nothing and writes no file. Where the
artifacts go is the business of ``outputs/``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeAlias

from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel


@dataclass(frozen=True)
class RenderContext:
    """What a render needs beyond the article and the site: fixed by the caller."""

    published_at: datetime  # timezone-aware; the Date header, "published on" lines
    version: str  # the article version (hex hash of content, site config and templates)


@dataclass(frozen=True)
class Artifact:
    """One file a renderer made, addressed relative to ``--out``."""

    channel: Channel
    relpath: str  # e.g. "web/<slug>/index.html", always with forward slashes
    data: bytes
    media_type: str


@dataclass(frozen=True)
class SpooledArtifact:
    """An artifact whose bytes wait in a file a render worker wrote (``Spool``), not in memory.

    A catalog's PDFs and emails would otherwise all sit in the publishing
    process at once; this keeps its memory flat however many articles it renders.
    """

    channel: Channel
    relpath: str
    path: Path  # the file holding the bytes
    media_type: str

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()


AnyArtifact: TypeAlias = Artifact | SpooledArtifact


class Renderer(abc.ABC):
    """One builder per channel, as in Sphinx."""

    channel: Channel

    @abc.abstractmethod
    def render(self, article: Article, site: SiteConfig, context: RenderContext) -> list[Artifact]:
        """Make this channel's artifacts for one article."""
