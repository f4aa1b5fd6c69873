"""Shared by the hostile corpus and the property tests: is a rendered HTML page inert?

Inert: it parses strictly (lxml, recover=False); it has no element that runs or
loads code (script other than JSON-LD data, iframe, object, embed, base, form,
meta refresh); no ``on*`` attribute; every URL attribute is http(s), mailto,
tel, relative or an in-page anchor, and ``data:`` only as an image.
"""

from __future__ import annotations

import json
import re

from lxml import etree

SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "poster", "background", "cite", "srcset"})
ACTIVE_TAGS = frozenset({"iframe", "frame", "frameset", "object", "embed", "applet", "base", "form"})
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
# Browsers drop these before reading a scheme: "java\tscript:" is javascript:.
_IGNORED_IN_URLS = re.compile(r"[\x00-\x20\x7f]")


def parse_strict(page: str) -> etree._Element:
    """The page as a tree; raises lxml.etree.XMLSyntaxError if the HTML parser reports an error."""
    parser = etree.HTMLParser(recover=False)
    return etree.fromstring(page, parser)


def url_problem(tag: str, name: str, value: str) -> str | None:
    cleaned = _IGNORED_IN_URLS.sub("", value)
    match = _SCHEME.match(cleaned)
    if match is None:
        return None  # relative or an #anchor
    scheme = match.group(1).lower()
    if scheme in SAFE_SCHEMES:
        return None
    if scheme == "data" and tag == "img" and name == "src" and cleaned.lower().startswith("data:image/"):
        return None
    return f"<{tag} {name}={value[:60]!r}>"


def inert_problems(page: str) -> list[str]:
    """Every reason ``page`` is not inert (empty when it is)."""
    problems: list[str] = []
    tree = parse_strict(page)
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions
        tag = element.tag.lower()
        if tag in ACTIVE_TAGS:
            problems.append(f"<{tag}> element")
        if tag == "script":
            if (element.get("type") or "").lower() != "application/ld+json":
                problems.append(f"<script type={element.get('type')!r}>")
            else:
                json.loads(element.text or "null")  # data, and it must stay data
        if tag == "meta" and (element.get("http-equiv") or "").lower() == "refresh":
            problems.append("<meta http-equiv=refresh>")
        if tag == "style" and "@import" in (element.text or ""):
            problems.append("@import in <style>")
        for name, value in element.attrib.items():
            lowered = str(name).lower()
            if lowered.startswith("on"):
                problems.append(f"<{tag} {name}=…> event handler")
            if lowered in URL_ATTRIBUTES or lowered.endswith(":href"):
                why = url_problem(tag, lowered, str(value))
                if why:
                    problems.append(why)
            if lowered == "style" and re.search(r"javascript:|expression\(", str(value), re.IGNORECASE):
                problems.append(f"<{tag} style={value[:60]!r}>")
    return problems


def visible_text(page: str) -> str:
    """The text a reader sees (script and style contents excluded), whitespace collapsed."""
    tree = parse_strict(page)
    for element in tree.iter("script", "style"):
        element.text = ""
    return " ".join("".join(tree.itertext()).split())
