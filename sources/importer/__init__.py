"""Import a legacy blog page (an HTML file or an http(s) URL) as a canonical article.

The page's own words only: a field the page does not state (a summary, the clinical
review date, a source's link) is left out and reported, never made up; the loader then
names what is missing. The result is written to ``content/<slug>.md`` and is never
overwritten without ``force``.

One module per step, in the order a page goes through them:

- ``fetch``: read the file, or fetch the URL under the link checker's SSRF rules (pinned);
- ``metadata``: title, summary, dates and the page's addresses (canonical, og:url, <base>);
- ``license_footer``: the footer's license line → a suggested ``[[licenses]]`` block;
- ``sources_list``: the page's "Sources" list → ``sources:`` (nothing invented);
- ``extract``: the main content (trafilatura, with a fallback for short pages);
- ``convert``: HTML → Markdown (markdownify, shaped to the article format);
- ``images``: each image downloaded (the one fetch, size and type capped) beside the article;
- ``write``: the slug, the front matter and the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup

from clinicpress.errors import InputError
from clinicpress.hints import command
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.sources.importer.convert import to_markdown
from clinicpress.sources.importer.extract import main_content
from clinicpress.sources.importer.fetch import MAX_PAGE_BYTES, fetch_page, is_url, read_file
from clinicpress.sources.importer.images import download_images, remote_images
from clinicpress.sources.importer.license_footer import take_license
from clinicpress.sources.importer.metadata import addresses, dates, meta, title, title_tag
from clinicpress.sources.importer.sources_list import take_sources
from clinicpress.sources.importer.write import (
    ImportedPage,
    address_slug,
    article_text,
    choose_slug,
    exists_error,
    save,
)
from clinicpress.sources.loader import load_article

__all__ = [
    "MAX_PAGE_BYTES",
    "ImportResult",
    "ImportedPage",
    "fetch_page",
    "import_page",
    "page_to_article",
    "report_lines",
]


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote and what a person must still do."""

    path: Path  # content/<slug>.md
    article_text: str  # the file's text, as written
    missing_fields: list[str]  # required front-matter fields the page did not state
    notes: list[str]  # one line each: what was dropped, guessed at, or must be confirmed
    suggested_site_toml: str | None  # a [[licenses]] block from the page's footer, if it has one
    loader_message: str | None = None  # what `clinicpress check` will say about the file, if anything


def import_page(
    source: str,
    *,
    content_dir: Path,
    force: bool = False,
    link_settings: LinkCheckSettings | None = None,
    site_url: str | None = None,
    images: bool | None = None,
) -> ImportResult:
    """Import ``source`` (an HTML file path or an http(s) URL) into ``content_dir/<slug>.md``.

    ``site_url`` (the site's ``[organization] base_url``) resolves relative links of a saved
    page that names no address of its own. ``images``: download the page's images into
    ``content_dir/images/<slug>/`` under the same rules as the page (``images.py``); None: when
    the page itself was fetched from a URL (a saved page's images are left remote). Raises
    :class:`InputError` (exit 2) for a page that cannot be read or fetched, a page without any
    title or slug, and an existing file without ``force``.
    """
    settings = link_settings or LinkCheckSettings()
    if is_url(source):
        # The file the address names is there already: refused before the page is fetched (the
        # page's canonical address, read after the fetch, may still name another file).
        if not force and (slug := address_slug(source)) and (content_dir / f"{slug}.md").exists():
            raise exists_error(content_dir / f"{slug}.md")
        data, fetched, charset = fetch_page(source, settings)
    else:
        data, fetched, charset = read_file(Path(source)), None, None
    page = page_to_article(data, base_url=fetched, charset=charset, origin=source, site_url=site_url)
    slug = choose_slug(page, source)
    path = content_dir / f"{slug}.md"
    if not force and path.exists():  # refused before any image is downloaded for it
        raise exists_error(path)
    if images if images is not None else is_url(source):
        page.body = download_images(page.body, slug, content_dir, settings, page.notes, force=force)
    elif remote := remote_images(page.body):
        page.notes.append(
            f"{len(remote)} image(s) left at their remote address (a saved page): import the page from "
            "its URL to download them beside the article"
        )
    text, missing = article_text(page, slug)
    save(path, text, force=force)
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
    data: bytes | str,
    *,
    base_url: str | None = None,
    charset: str | None = None,
    origin: str = "page",
    site_url: str | None = None,
) -> ImportedPage:
    """Read one page into its parts (no file written): title, dates, body, sources, license.

    ``base_url`` is where the page was fetched from; ``site_url`` the site's base URL.
    """
    soup = BeautifulSoup(data, "lxml", from_encoding=charset if isinstance(data, bytes) else None)
    page = ImportedPage()
    # Everything read off <head> and the whole page comes first: the extraction takes the page apart.
    where = addresses(soup, base_url, site_url)
    base, base_name = where.base()
    page.canonical = where.own
    page.summary = meta(soup, "description", "og:description", "twitter:description")
    page.published, page.modified = dates(soup)
    page.license_toml = take_license(soup)
    h1 = title_tag(soup)
    page.title = title(soup, h1)
    if h1 is not None:
        h1.decompose()  # the title is front matter, not the body's first line
    page.sources = take_sources(soup, base, page.notes)
    page.body = to_markdown(main_content(soup, page.notes), base, page.notes, base_name=base_name)
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
        lines.append(f"until then `{command('check', str(result.path))}` says: {result.loader_message}")
    if result.suggested_site_toml:
        lines += ["suggested for content/site.toml:", "", *result.suggested_site_toml.splitlines()]
    return lines
