"""Small BeautifulSoup helpers the importer's modules share: attribute text, visible text, furniture.

"Furniture" is what a site wraps around every article (navigation, banners, sidebars,
footers, comment threads); the importer never takes a title, a date or a sources list from it.
"""

from __future__ import annotations

import re

from bs4 import Tag

# Removed wherever they are: never content.
JUNK_TAGS = (
    "script", "style", "noscript", "template", "iframe", "object", "embed", "form", "button",
    "input", "select", "textarea", "svg", "canvas", "dialog", "link", "meta",
)  # fmt: skip
FURNITURE_TAGS = frozenset({"nav", "aside", "header", "footer"})
FURNITURE_ROLES = frozenset(
    {"navigation", "banner", "complementary", "contentinfo", "search", "dialog", "alertdialog"}
)
# class/id words (split at '-', '_' and spaces) that mark page furniture, not the article.
FURNITURE_WORDS = frozenset(
    {
        "nav", "navbar", "navigation", "menu", "breadcrumb", "breadcrumbs", "sidebar", "widget",
        "widgets", "cookie", "cookies", "consent", "gdpr", "comment", "comments", "respond",
        "banner", "share", "sharing", "sharedaddy", "social", "related", "footer", "subscribe",
        "newsletter", "popup", "modal", "advert", "ads", "sponsored", "sr", "screen", "skip",
        "author", "byline", "meta", "tags", "categories", "pagination", "postnav",
    }
)  # fmt: skip
_COMMENT_WORDS = frozenset({"comment", "comments", "respond"})


def attr(tag: Tag, name: str) -> str:
    """An attribute as one string ('' when absent; class lists joined with spaces)."""
    value = tag.get(name)
    if isinstance(value, list):
        return " ".join(value)
    return value or ""


def text(node: Tag) -> str:
    """The element's visible words, whitespace collapsed."""
    return " ".join(node.get_text(" ").split())


def words(tag: Tag) -> set[str]:
    """The words of the element's class and id."""
    found = f"{attr(tag, 'class')} {attr(tag, 'id')}".lower()
    return set(re.split(r"[^a-z0-9]+", found)) - {""}


def is_furniture(tag: Tag) -> bool:
    """The element itself is page furniture: by tag, ARIA role, hidden, or class/id words."""
    if tag.name in FURNITURE_TAGS or attr(tag, "role").lower() in FURNITURE_ROLES:
        return True
    if tag.has_attr("hidden") or attr(tag, "aria-hidden").lower() == "true":
        return True
    found = words(tag)
    return bool(found & FURNITURE_WORDS) or {"screen", "reader"} <= found


def in_furniture(tag: Tag, *, site_header: bool = False, comments_only: bool = False) -> bool:
    """An ancestor of ``tag`` is furniture: nav/aside/footer or a furniture role (``comments_only``:
    a comment thread only; ``site_header``: also the site's own header and branding)."""
    for parent in tag.parents:
        if not isinstance(parent, Tag):
            return False
        found = words(parent)
        if comments_only:
            if found & _COMMENT_WORDS:
                return True
            continue
        if site_header and parent.name == "header" and parent.find_parent("article") is None:
            return True
        if site_header and found & {"site", "logo", "branding"} and found & {"title", "logo", "branding"}:
            return True
        if parent.name in ("nav", "aside", "footer") or attr(parent, "role").lower() in FURNITURE_ROLES:
            return True
    return False
