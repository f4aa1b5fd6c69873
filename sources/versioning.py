"""An article's version (content, site config, templates) and its reviewable content hash.

Two hashes on purpose: the *version* decides what is rendered and sent (a license renewal is a
new version); the *content hash* is what a clinician signs off (``content_hash``): the text and
its sources only, so a license renewal or a template change never voids a clinical review.
"""

from __future__ import annotations

import hashlib

from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article
from clinicpress.sources.markdown import article_images

# The parts of the site config that appear in the artifacts. Settings that only steer
# checks, delivery or monitoring (the SMTP server, the subscribers file, alert URLs, …)
# must not make a new version: a new version re-renders every channel (a new version of the same
# text continues that text's newsletter send rather than mailing it again: delivery/store.py).
_SITE_PARTS_RENDERED: dict[str, bool | set[str]] = {
    "organization": True,
    "licenses": True,
    "handout": True,
    "newsletter": {"from_name", "from_address", "reply_to", "unsubscribe_url", "unsubscribe_mailto"},
}

_EDITION_FIELDS = ("language", "translation_of", "translated_from", "edition_note", "alternates")


def article_version(article: Article, site: SiteConfig, templates: str) -> str:
    """Hex sha256 over what decides the artifacts; the file's path is not part of it."""
    digest = hashlib.sha256()
    # The edition keys (issue 26) count only when set: an article that is no edition keeps the
    # version it had before they existed (a new version re-renders the article on every channel).
    unset = {name for name in _EDITION_FIELDS if getattr(article, name) in (None, ())}
    for part in (
        article.model_dump_json(exclude={"path", *unset}),
        site.model_dump_json(include=_SITE_PARTS_RENDERED),
        templates,
    ):
        digest.update(part.encode())
        digest.update(b"\x00")
    # The local images' bytes (issue 24): editing an image republishes the article. Only an
    # article that has one hashes them, so every other article keeps the version it had.
    for src, image in article_images(article.body, len(article.sources), article.path).items():
        digest.update(f"image {src} {image.digest or '-'}".encode())  # '-': no file to show
        digest.update(b"\x00")
    return digest.hexdigest()


def reviewed_text(article: Article) -> str:
    """The text a clinician reviews, as lines a diff can show: title, summary, body, sources.

    Not the dates, the reviewer, the channels or the file's path: changing those is not a new
    text to review. A source's quote is part of it (the claim rests on it).
    """
    lines = [f"title: {article.title}", f"summary: {article.summary}", "", article.body.rstrip("\n"), ""]
    for number, source in enumerate(article.sources, start=1):
        lines.append(f"[{number}] {source.title} <{source.url}>")
        if source.quote is not None:
            lines.append(f"    quote: {source.quote}")
    return "\n".join(lines) + "\n"


def content_hash(article: Article) -> str:
    """Hex sha256 of :func:`reviewed_text`: what a review record is bound to."""
    return hashlib.sha256(reviewed_text(article).encode()).hexdigest()
