"""Import a legacy blog page (an HTML file or an http(s) URL) as a canonical article.

The page's own words only: a field the page does not state (a summary, the
clinical review date, a source's link) is left out and reported, never
made up; the loader then names what is missing. The result is written to
``content/<slug>.md`` and is never overwritten without ``force``.

Fetching a URL follows the link checker's SSRF rules (``checks/links.py``):
http(s) only, every hop's host vetted (literal and resolved private,
loopback and link-local addresses refused unless allowed in
``[checks.links] allow_private_hosts``), a timeout and a size cap.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import yaml
from bs4 import BeautifulSoup, Tag
from bs4.element import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction

from clinicpress.checks.links import IPAddress, allowed_hosts, disallowed_reason, host_of, literal_ip
from clinicpress.checks.settings import LinkCheckSettings
from clinicpress.errors import InputError
from clinicpress.sources.article import MAX_SLUG, RESERVED_SLUGS, SLUG, slugify
from clinicpress.sources.loader import load_article

__all__ = ["MAX_PAGE_BYTES", "ImportResult", "fetch_page", "import_page", "page_to_article", "report_lines"]

MAX_PAGE_BYTES = 5 * 1024 * 1024  # a blog page is far smaller; anything bigger is not one
REQUIRED_FIELDS = ("title", "summary", "published", "last_reviewed")

# Removed wherever they are: never content.
_JUNK_TAGS = (
    "script", "style", "noscript", "template", "iframe", "object", "embed", "form", "button",
    "input", "select", "textarea", "svg", "canvas", "dialog", "link", "meta",
)  # fmt: skip
# Page furniture, removed inside the chosen content container.
_FURNITURE_TAGS = ("nav", "aside", "header", "footer")
_FURNITURE_ROLES = frozenset(
    {"navigation", "banner", "complementary", "contentinfo", "search", "dialog", "alertdialog"}
)
# class/id words (split at '-', '_' and spaces) that mark page furniture, not the article.
_FURNITURE_WORDS = frozenset(
    {
        "nav", "navbar", "navigation", "menu", "breadcrumb", "breadcrumbs", "sidebar", "widget",
        "widgets", "cookie", "cookies", "consent", "gdpr", "comment", "comments", "respond",
        "banner", "share", "sharing", "sharedaddy", "social", "related", "footer", "subscribe",
        "newsletter", "popup", "modal", "advert", "ads", "sponsored", "sr", "screen", "skip",
        "author", "byline", "meta", "tags", "categories", "pagination", "postnav",
    }
)  # fmt: skip
# Tried in order: the first that exists holds the article.
_CONTAINERS = (
    ".entry-content", ".post-content", ".article-content", ".article-body", "[itemprop=articleBody]",
    "article", "main", "[role=main]", "#content", "body",
)  # fmt: skip
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "section", "article", "main", "header", "footer", "h1", "h2", "h3", "h4", "h5",
        "h6", "ul", "ol", "li", "blockquote", "table", "pre", "hr", "figure", "figcaption", "dl", "dt",
        "dd", "address", "details", "summary", "center",
    }
)  # fmt: skip
_SOURCES_HEADING = re.compile(
    r"^\s*(sources|references|citations|works cited|bibliography|studies cited)\s*:?\s*$", re.IGNORECASE
)
_LICENSE = re.compile(
    r"(?P<kind>Licensed|Certified)\s+by\s+(?:the\s+)?(?P<issuer>[^|]+?)\s*\|\s*"
    r"Program\s+ID(?:\s+Number)?\s*:\s*(?P<id>[A-Za-z0-9-]+)\s*\|\s*"
    r"Program\s+Expiration\s+Date\s*:\s*(?P<expires>\d{1,2}/\d{1,2}/\d{4}|\d{4}-\d{2}-\d{2})",
    re.IGNORECASE,
)
_TITLE_SUFFIX = re.compile(r"\s+(?:\||–|—|-|·|::)\s+")
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:)\]]")
_DOI_IN_TEXT = re.compile(r"\b(?:doi:\s*|https?://(?:dx\.)?doi\.org/)?(10\.\d{4,9}/[^\s\"<>]+[^\s\"<>.,;)])")
_TEXT_DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%m/%d/%Y", "%Y-%m-%d")
_LINK_SCHEMES = ("http", "https", "mailto", "tel")


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote and what a person must still do."""

    path: Path  # content/<slug>.md
    article_text: str  # the file's text, as written
    missing_fields: list[str]  # required front-matter fields the page did not state
    notes: list[str]  # one line each: what was dropped, guessed at, or must be confirmed
    suggested_site_toml: str | None  # a [[licenses]] block from the page's footer, if it has one
    loader_message: str | None = None  # what `clinicpress check` will say about the file, if anything


@dataclass
class _Page:
    """What was read from the page, before it becomes front matter."""

    title: str | None = None
    summary: str | None = None
    published: date | None = None
    modified: date | None = None
    canonical: str | None = None
    body: str = ""
    sources: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    license_toml: str | None = None


# --------------------------------------------------------------------------------------------
# public API


def import_page(
    source: str,
    *,
    content_dir: Path,
    force: bool = False,
    link_settings: LinkCheckSettings | None = None,
) -> ImportResult:
    """Import ``source`` (an HTML file path or an http(s) URL) into ``content_dir/<slug>.md``.

    Raises :class:`InputError` (exit 2) for a page that cannot be read or fetched, a
    page without any title or slug, and an existing file without ``force``.
    """
    settings = link_settings or LinkCheckSettings()
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source):
        data, base_url, charset = fetch_page(source, settings)
    else:
        data, base_url, charset = _read_file(Path(source)), None, None
    page = page_to_article(data, base_url=base_url, charset=charset, origin=source)
    slug = _choose_slug(page, source)
    text, missing = _article_text(page, slug)
    path = content_dir / f"{slug}.md"
    _write(path, text, force=force)
    loader_message = None
    try:
        load_article(path)
    except InputError as exc:
        loader_message = str(exc)
    notes = list(page.notes)
    if missing:
        notes.insert(0, f"the page does not state {', '.join(missing)}: fill in before publishing")
    return ImportResult(
        path=path,
        article_text=text,
        missing_fields=missing,
        notes=notes,
        suggested_site_toml=page.license_toml,
        loader_message=loader_message,
    )


def page_to_article(
    data: bytes | str, *, base_url: str | None = None, charset: str | None = None, origin: str = "page"
) -> _Page:
    """Read one page into its parts (no file written): title, dates, body, sources, license."""
    soup = BeautifulSoup(data, "lxml", from_encoding=charset) if isinstance(data, bytes) else None
    if soup is None:
        soup = BeautifulSoup(data, "lxml")
    page = _Page()
    page.canonical = _canonical(soup, base_url)
    base = page.canonical or base_url
    page.summary = _meta(soup, "description", "og:description", "twitter:description")
    page.license_toml = _license_block(soup)
    ld = _json_ld(soup)  # before the scripts go
    dated = _meta_dates(soup, ld)  # before the meta tags go

    for junk in soup.find_all(list(_JUNK_TAGS)):
        junk.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()

    container = _container(soup)
    title_tag = _title_tag(soup, container)
    page.title = _title(soup, title_tag)
    page.published, page.modified = _dates(soup, container, dated)
    if title_tag is not None:
        title_tag.decompose()
    _drop_furniture(container, page.notes)
    page.sources = _take_sources(container, base, page.notes)
    page.body = _Markdown(base, page.notes).document(container)
    if page.modified is not None:
        page.notes.append(
            f"the page says it was modified on {page.modified.isoformat()}; that is not a clinical "
            "review date, so last_reviewed is left for a reviewer to set"
        )
    if page.sources:
        page.notes.append(
            f"{len(page.sources)} source(s) taken from the page's list; the body does not cite them "
            "with [^N] yet: add citations where the text relies on them"
        )
    if page.license_toml:
        page.notes.append("a license footer was found: compare the suggested [[licenses]] with site.toml")
    if not page.body.strip():
        page.notes.append(f"no article text found in {origin}")
    return page


def report_lines(result: ImportResult) -> list[str]:
    """What ``clinicpress import`` prints: the file, what is missing, the notes, the license block."""
    lines = [f"wrote {result.path}"]
    if result.missing_fields:
        lines.append(
            f"missing (the page does not state them, nothing was guessed): {', '.join(result.missing_fields)}"
        )
    lines += [f"  - {note}" for note in result.notes]
    if result.loader_message:
        lines.append(f"until then `clinicpress check` says: {result.loader_message}")
    if result.suggested_site_toml:
        lines += ["suggested for content/site.toml:", "", *result.suggested_site_toml.splitlines()]
    return lines


# --------------------------------------------------------------------------------------------
# fetching


def fetch_page(url: str, settings: LinkCheckSettings) -> tuple[bytes, str, str | None]:
    """GET ``url`` under the link checker's rules; returns (body, final URL, charset)."""
    current = url
    with httpx.Client(
        follow_redirects=False,  # by hand: every hop is vetted before we connect
        timeout=httpx.Timeout(settings.timeout),
        trust_env=False,  # an environment proxy would connect where we did not vet
        headers={"User-Agent": settings.user_agent, "Accept": "text/html,application/xhtml+xml"},
    ) as client:
        for _ in range(settings.max_redirects + 1):
            target = _vet(current, settings)
            try:
                with client.stream("GET", target) as response:
                    if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                        current = str(target.join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise InputError(url, None, f"the server answered HTTP {response.status_code}", "200")
                    kind = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                    if kind and kind not in ("text/html", "application/xhtml+xml"):
                        raise InputError(url, None, f"is {kind}", "an HTML page (text/html)")
                    body = _read_capped(response.iter_bytes(), url)
                    return body, str(target), response.charset_encoding
            except httpx.HTTPError as exc:
                raise InputError(url, None, f"could not be fetched ({type(exc).__name__}: {exc})") from None
    raise InputError(url, None, f"more than {settings.max_redirects} redirects", "a page that loads")


def _vet(url: str, settings: LinkCheckSettings) -> httpx.URL:
    """The URL, if we may connect to it: the link checker's rules and helpers (checks/links.py)."""
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InputError(url, None, f"is not a valid URL ({exc})", "an http(s) URL") from None
    if target.scheme not in ("http", "https") or not target.raw_host:
        raise InputError(url, None, "is not an http(s) URL", "an http(s) URL or an HTML file") from None
    host = host_of(target)
    if host.rstrip(".") in allowed_hosts(settings):
        return target
    literal = literal_ip(host)
    addresses = [literal] if literal is not None else _resolve(host, url)
    for address in addresses:
        why = disallowed_reason(address, settings.allow_private_networks)
        if why:
            raise InputError(
                url, None, f"{host} is a {why}, which is refused", "a public address (or allow_private_hosts)"
            )
    return target


def _resolve(host: str, url: str) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(url, None, f"host {host} cannot be resolved ({exc})") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _read_capped(chunks: Iterator[bytes], where: str) -> bytes:
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > MAX_PAGE_BYTES:
            raise InputError(where, None, f"is larger than {MAX_PAGE_BYTES:,} bytes", "a blog page")
    return bytes(data)


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_PAGE_BYTES:
            raise InputError(path, None, f"is {size:,} bytes", f"an HTML page of at most {MAX_PAGE_BYTES:,}")
        if path.is_dir():
            raise InputError(path, None, "is a folder", "an HTML file or an http(s) URL")
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, None, "file not found", "an HTML file or an http(s) URL") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot read ({exc.strerror})") from None


# --------------------------------------------------------------------------------------------
# metadata


def _attr(tag: Tag, name: str) -> str:
    value = tag.get(name)
    if isinstance(value, list):
        return " ".join(value)
    return value or ""


def _text(node: Tag) -> str:
    return " ".join(node.get_text(" ").split())


def _meta(soup: BeautifulSoup, *names: str) -> str | None:
    for name in names:
        for tag in soup.find_all("meta"):
            if name in (_attr(tag, "name").lower(), _attr(tag, "property").lower()):
                content = " ".join(_attr(tag, "content").split())
                if content:
                    return content
    return None


def _canonical(soup: BeautifulSoup, base_url: str | None) -> str | None:
    for tag in soup.find_all("link"):
        if "canonical" in _attr(tag, "rel").lower().split() and _attr(tag, "href"):
            url = urljoin(base_url or "", _attr(tag, "href").strip())
            return url if urlsplit(url).scheme in ("http", "https") else None
    og = _meta(soup, "og:url")
    if og and urlsplit(og).scheme in ("http", "https"):
        return og
    return base_url


def _parse_date(value: str) -> date | None:
    value = " ".join(value.split())
    if re.match(r"^\d{4}-\d{2}-\d{2}", value):
        try:
            day = date.fromisoformat(value[:10])
        except ValueError:
            return None
        return day if 1900 <= day.year <= 2200 else None
    for fmt in _TEXT_DATE_FORMATS:
        try:
            day = datetime.strptime(value, fmt).date()
        except ValueError:
            continue
        return day if 1900 <= day.year <= 2200 else None
    return None


def _json_ld(soup: BeautifulSoup) -> dict[str, str]:
    """datePublished / dateModified from JSON-LD (Yoast and most SEO plugins write it)."""
    found: dict[str, str] = {}
    for script in soup.find_all("script", attrs={"type": "application/ld+json"}):
        try:
            data = json.loads(script.get_text())
        except (ValueError, RecursionError):
            continue
        stack: list[Any] = [data]
        budget = 10_000  # a hostile page gets a bounded walk
        while stack and budget:
            budget -= 1
            item = stack.pop()
            if isinstance(item, dict):
                for key in ("datePublished", "dateModified"):
                    if isinstance(item.get(key), str):
                        found.setdefault(key, item[key])
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return found


def _meta_dates(soup: BeautifulSoup, ld: dict[str, str]) -> tuple[date | None, date | None]:
    published = _meta(soup, "article:published_time", "datePublished", "date") or ld.get("datePublished")
    modified = _meta(soup, "article:modified_time", "dateModified", "og:updated_time") or ld.get(
        "dateModified"
    )
    return (_parse_date(published) if published else None, _parse_date(modified) if modified else None)


def _dates(
    soup: BeautifulSoup, container: Tag, dated: tuple[date | None, date | None]
) -> tuple[date | None, date | None]:
    """Published and modified dates: meta and JSON-LD first, else <time> in the article."""
    found_published, found_modified = dated
    if found_published is None:
        # <time> in the article (its header included); a time in a comment was removed with it.
        scope = container.find_parent("article") or container
        times = [t for t in scope.find_all("time") if not _in_furniture(t, stop=scope, comments_only=True)]
        if not times:
            times = list(soup.find_all("time"))
        for tag in times:
            classes = _attr(tag, "class").lower()
            when = _parse_date(_attr(tag, "datetime") or _text(tag))
            if when is None:
                continue
            if "updated" in classes or "modified" in classes or _attr(tag, "itemprop") == "dateModified":
                found_modified = found_modified or when
            elif found_published is None:
                found_published = when
    return found_published, found_modified


def _title_tag(soup: BeautifulSoup, container: Tag) -> Tag | None:
    scopes = [container, container.find_parent("article"), soup.find("article"), soup.find("main"), soup]
    for scope in scopes:
        if not isinstance(scope, Tag):
            continue
        for h1 in scope.find_all("h1"):
            if _text(h1) and not _in_furniture(h1, stop=None, site_header=True):
                return h1
    return None


def _title(soup: BeautifulSoup, h1: Tag | None) -> str | None:
    if h1 is not None:
        return _text(h1)
    og = _meta(soup, "og:title", "twitter:title")
    if og:
        return og
    if soup.title is not None and _text(soup.title):
        parts = _TITLE_SUFFIX.split(_text(soup.title))
        site = (_meta(soup, "og:site_name") or "").lower()
        kept = [p for p in parts if p.lower() != site] or parts
        return kept[0] if len(parts) > 1 else parts[0]
    return None


def _license_block(soup: BeautifulSoup) -> str | None:
    match = _LICENSE.search(" ".join(soup.get_text(" ").split()))
    if match is None:
        return None
    raw = match.group("expires")
    if "/" in raw:
        month, day, year = (int(x) for x in raw.split("/"))
    else:
        year, month, day = (int(x) for x in raw.split("-"))
    try:
        expires = date(year, month, day).isoformat()
    except ValueError:
        return None
    issuer = " ".join(match.group("issuer").split())
    kind = "licensed" if match.group("kind").lower() == "licensed" else "certified"
    lines = [
        f"# From the page footer: {json.dumps(' '.join(match.group(0).split()), ensure_ascii=False)}",
        "# Confirm it with the issuer's license lookup before adding it to content/site.toml.",
    ]
    if issuer.lower().startswith("state "):
        lines.append("# The footer does not name the state: write the issuer's full name.")
    lines += [
        "[[licenses]]",
        f'kind = "{kind}"',
        f"issuer = {json.dumps(issuer)}",  # a JSON string is a valid TOML basic string
        f"program_id = {json.dumps(match.group('id'))}",
        f"expires = {expires}",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# the content


def _container(soup: BeautifulSoup) -> Tag:
    for selector in _CONTAINERS:
        found = soup.select_one(selector)
        if isinstance(found, Tag) and _text(found):
            return found
    return soup.body or soup


def _words(tag: Tag) -> set[str]:
    text = f"{_attr(tag, 'class')} {_attr(tag, 'id')}".lower()
    return set(re.split(r"[^a-z0-9]+", text)) - {""}


def _is_furniture(tag: Tag) -> bool:
    if tag.name in _FURNITURE_TAGS:
        return True
    if _attr(tag, "role").lower() in _FURNITURE_ROLES:
        return True
    if tag.has_attr("hidden") or _attr(tag, "aria-hidden").lower() == "true":
        return True
    words = _words(tag)
    return bool(words & _FURNITURE_WORDS) or {"screen", "reader"} <= words


def _in_furniture(
    tag: Tag, *, stop: Tag | None, site_header: bool = False, comments_only: bool = False
) -> bool:
    for parent in tag.parents:
        if parent is stop or not isinstance(parent, Tag):
            return False
        words = _words(parent)
        if comments_only:
            if words & {"comment", "comments", "respond"}:
                return True
            continue
        if site_header and (parent.name == "header" and parent.find_parent("article") is None):
            return True
        if site_header and words & {"site", "logo", "branding"} and words & {"title", "logo", "branding"}:
            return True
        if parent.name in ("nav", "aside", "footer") or _attr(parent, "role").lower() in _FURNITURE_ROLES:
            return True
    return False


def _drop_furniture(container: Tag, notes: list[str]) -> None:
    dropped: list[str] = []
    for tag in list(container.find_all(True)):
        if tag.decomposed or not isinstance(tag, Tag):
            continue
        if _is_furniture(tag):
            label = tag.name + "".join(f".{c}" for c in _attr(tag, "class").split()[:2])
            dropped.append(label)
            tag.decompose()
    if dropped:
        shown = ", ".join(dict.fromkeys(dropped))
        notes.append(f"dropped page furniture inside the article: {shown[:300]}")


def _heading_level(tag: Tag) -> int | None:
    if tag.name and re.fullmatch(r"h[1-6]", tag.name):
        return int(tag.name[1])
    return None


def _sources_heading(container: Tag) -> Tag | None:
    for tag in container.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "strong", "b"]):
        if _SOURCES_HEADING.match(_text(tag)):
            # A <strong> alone in a <p> counts as its paragraph.
            while tag.parent is not None and tag.parent is not container and _text(tag.parent) == _text(tag):
                if tag.parent.name not in ("p", "div", "strong", "b"):
                    break
                tag = tag.parent
            return tag
    return None


def _take_sources(container: Tag, base: str | None, notes: list[str]) -> list[dict[str, str]]:
    heading = _sources_heading(container)
    if heading is None:
        return []
    level = _heading_level(heading) or 7
    section: list[Tag | NavigableString] = []
    for sibling in heading.next_siblings:
        if isinstance(sibling, Tag) and (_heading_level(sibling) or 9) <= level:
            break
        if isinstance(sibling, Tag | NavigableString):
            section.append(sibling)
    items: list[Tag] = []
    for node in section:
        if isinstance(node, Tag):
            lis = node.find_all("li") if node.name in ("ul", "ol", "div", "section") else []
            items.extend(lis or ([node] if _text(node) else []))
        elif node.strip():
            wrapper = BeautifulSoup(f"<p>{_escape_html(str(node))}</p>", "lxml").p
            if wrapper is not None:
                items.append(wrapper)
    sources: list[dict[str, str]] = []
    for item in items:
        found = _source_of(item, base)
        if found is None:
            notes.append(f"source without a link, find and confirm it: {_text(item)[:200]}")
        else:
            sources.append(found)
    if not items:
        notes.append(
            f"the page has a {_text(heading)!r} heading with nothing under it (the links were lost): "
            "find and confirm the sources; none were made up"
        )
    for node in [heading, *section]:
        node.extract()
    return sources


def _source_of(item: Tag, base: str | None) -> dict[str, str] | None:
    text = _text(item)
    url = None
    for link in item.find_all("a"):
        href = urljoin(base or "", _attr(link, "href").strip())
        if urlsplit(href).scheme in ("http", "https"):
            url = href
            break
    if url is None:
        doi = _DOI_IN_TEXT.search(text)
        plain = _URL_IN_TEXT.search(text)
        if plain is not None and not (doi and "doi.org" in plain.group(0)):
            url = plain.group(0)
        elif doi is not None:
            url = f"https://doi.org/{doi.group(1)}"
    if url is None:
        return None
    title = text.replace(url, "").strip(" .–—-:") or url
    return {"title": title[:500], "url": url}


def _escape_html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Markdown:
    """HTML elements → CommonMark (the subset the renderers use), text escaped."""

    def __init__(self, base: str | None, notes: list[str]) -> None:
        self.base = base
        self.notes = notes

    def document(self, container: Tag) -> str:
        return "\n\n".join(b for b in self.blocks(container) if b.strip()).strip() + "\n"

    # -- blocks ----------------------------------------------------------------
    def blocks(self, parent: Tag) -> list[str]:
        out: list[str] = []
        run: list[Any] = []

        def flush() -> None:
            text = self.inline_nodes(run).strip()
            if text:
                out.append(_escape_line_start(text))
            run.clear()

        for child in parent.children:
            if isinstance(child, Tag) and child.name in _BLOCK_TAGS:
                flush()
                out.extend(self.block(child))
            else:
                run.append(child)
        flush()
        return out

    def block(self, tag: Tag) -> list[str]:
        level = _heading_level(tag)
        if level is not None:
            text = " ".join(self.inline(tag).replace("\\\n", " ").split())
            return [f"{'#' * max(level, 2)} {text}"] if text else []
        name = tag.name
        if name in ("ul", "ol"):
            return [self.list_block(tag)]
        if name == "blockquote":
            inner = "\n\n".join(self.blocks(tag))
            return ["\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))] if inner else []
        if name == "table":
            table = self.table(tag)
            return [table] if table else []
        if name == "pre":
            code = tag.get_text()
            fence = "~~~~" if "```" in code else "```"
            return [f"{fence}\n{code.rstrip()}\n{fence}"]
        if name == "hr":
            return ["* * *"]
        return self.blocks(tag)

    def list_block(self, tag: Tag) -> str:
        ordered = tag.name == "ol"
        items: list[str] = []
        number = 1
        for li in tag.find_all("li", recursive=False):
            marker = f"{number}. " if ordered else "- "
            inner = self.blocks(li) or [""]
            body = "\n".join(inner)
            lines = body.split("\n")
            items.append("\n".join([marker + lines[0], *(" " * len(marker) + ln for ln in lines[1:])]))
            number += 1
        return "\n".join(items)

    def table(self, tag: Tag) -> str:
        rows: list[list[str]] = []
        for tr in tag.find_all("tr"):
            cells = [
                " ".join(self.inline(cell).replace("\\\n", " ").split())  # '|' is escaped already
                for cell in tr.find_all(["th", "td"])
            ]
            if cells:
                rows.append(cells)
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)

    # -- inline ----------------------------------------------------------------
    def inline(self, tag: Tag) -> str:
        return self.inline_nodes(list(tag.children))

    def inline_nodes(self, nodes: list[Any]) -> str:
        parts: list[str] = []
        for node in nodes:
            if isinstance(node, Comment | Declaration | Doctype | ProcessingInstruction):
                continue
            if isinstance(node, NavigableString):
                parts.append(_escape(re.sub(r"\s+", " ", str(node))))
            elif isinstance(node, Tag):
                parts.append(self.inline_tag(node))
        return re.sub(r"[ \t\r\f\v]+", " ", "".join(parts))

    def inline_tag(self, tag: Tag) -> str:
        name = tag.name
        if name == "br":
            return "\\\n"
        if name == "img":
            return self.image(tag)
        if name in _BLOCK_TAGS:  # a block inside an inline element: keep its words
            return " " + " ".join(self.blocks(tag)) + " "
        inner = self.inline(tag)
        if name == "a":
            return self.link(tag, inner)
        if not inner.strip():
            return inner
        if name in ("strong", "b"):
            return _wrap(inner, "**")
        if name in ("em", "i", "cite"):
            return _wrap(inner, "*")
        if name == "code":
            code = tag.get_text().replace("\n", " ")
            tick = "``" if "`" in code else "`"
            return f"{tick}{code}{tick}" if code.strip() else ""
        return inner

    def link(self, tag: Tag, inner: str) -> str:
        href = _attr(tag, "href").strip()
        if not href or href.startswith("#"):
            return inner
        url = urljoin(self.base or "", href)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in _LINK_SCHEMES:
            self.notes.append(f"a link with a {scheme or 'relative'} URL was kept as text: {url[:80]}")
            return inner
        label = inner.strip() or _escape(url)
        return f"[{label}]({_destination(url)})"

    def image(self, tag: Tag) -> str:
        src = _attr(tag, "src").strip() or _attr(tag, "data-src").strip()
        if not src:
            return ""
        url = urljoin(self.base or "", src)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            self.notes.append(f"an image with a non-http(s) address was dropped: {url[:80]}")
            return ""
        if not tag.has_attr("alt"):
            self.notes.append(f"image without alt text, describe it: {url[:120]}")
        alt = _escape(" ".join(_attr(tag, "alt").split()))
        return f"![{alt}]({_destination(url)})"


def _wrap(inner: str, mark: str) -> str:
    # Emphasis must hug its text: "** x **" is not bold in CommonMark.
    stripped = inner.strip()
    lead = " " if inner[:1].isspace() else ""
    trail = " " if inner[-1:].isspace() else ""
    return f"{lead}{mark}{stripped}{mark}{trail}"


def _destination(url: str) -> str:
    for char, code in ((" ", "%20"), ("|", "%7C"), ("(", "%28"), (")", "%29"), ("<", "%3C"), (">", "%3E")):
        url = url.replace(char, code)
    return url


_ESCAPED = re.compile(r"([\\`*_\[\]<>~|])")


def _escape(text: str) -> str:
    """Text stays text: no emphasis, link, citation ([^N]) or raw HTML can come out of it."""
    text = _ESCAPED.sub(r"\\\1", text)
    return re.sub(r"&(?=#?\w+;)", r"\\&", text)


def _escape_line_start(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        line = re.sub(r"^([#>+=-])", r"\\\1", line)
        line = re.sub(r"^(\d+)([.)])", r"\1\\\2", line)
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# writing


def _choose_slug(page: _Page, source: str) -> str:
    """From the legacy URL's last path segment (keeps old links mappable), else from the title."""
    candidates: list[str] = []
    for url in (page.canonical, source):
        if url and urlsplit(url).scheme in ("http", "https"):
            segment = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
            candidates.append(slugify(re.sub(r"\.(html?|php|aspx?)$", "", segment)))
    if page.title:
        candidates.append(slugify(page.title))
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source):
        candidates.append(slugify(Path(source).stem))
    for slug in candidates:
        if slug and SLUG.match(slug) and len(slug) <= MAX_SLUG and slug not in RESERVED_SLUGS | {"index"}:
            return slug
    raise InputError(
        source, "title", "the page has no title (h1, og:title or <title>) to name the article", "an h1"
    )


def _article_text(page: _Page, slug: str) -> tuple[str, list[str]]:
    front: dict[str, Any] = {}
    missing: list[str] = []
    values: dict[str, Any] = {
        "title": page.title,
        "summary": page.summary,
        "published": page.published,
        "last_reviewed": None,  # a clinical review is never read off a web page
    }
    for key in REQUIRED_FIELDS:
        if values[key] in (None, ""):
            missing.append(key)
        else:
            front[key] = values[key]
        if key == "title":
            front["slug"] = slug
    if page.sources:
        front["sources"] = page.sources
    # width: long titles stay on one line, so no continuation line can look like a '---' fence.
    dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1_000_000)
    comments = ["# Imported from a legacy page by `clinicpress import`."]
    if missing:
        comments.append(f"# Missing (the page does not state them; never guessed): {', '.join(missing)}")
    if "last_reviewed" in missing:
        comments.append("# last_reviewed: the date a clinician reviewed this text (YYYY-MM-DD).")
    return "---\n" + "\n".join(comments) + "\n" + dumped + "---\n" + page.body, missing


def _write(path: Path, text: str, *, force: bool) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not force:
            # "x": fails if the file exists, even one created a moment ago: never overwrite.
            with path.open("x", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            return
        # Write beside it, then rename: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except FileExistsError:
        raise InputError(path, None, "already exists", "--force to overwrite it") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot write ({exc.strerror})") from None
