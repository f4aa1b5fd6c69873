"""The web channel: one static, self-contained HTML5 page per article.

``<out>/web/`` is the web root. The page links its printable handout relatively
(``../handouts/<slug>.pdf``): the release puts each ``handouts/<file>.pdf`` under the web root
too, as ``web/handouts/<file>.pdf`` (``served_handout``), so the link works wherever the folder
is served. The consistency check reads the link back.
"""

from __future__ import annotations

import html
import json
from typing import Any

from markupsafe import Markup

from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel, edition_language

from . import i18n
from .base import Artifact, RenderContext, Renderer
from .markdown import canonical_url, css_markup, disclaimer, jinja_env, page_context, source_entries

TEMPLATE = "web.html.j2"
STYLESHEET = "web.css"
HANDOUTS_DIR = "handouts"  # under --out (clinicians print there) and under the web root (readers)
HANDOUT_LINK_TEXT = i18n.N_("Print this handout (PDF)")  # in the edition's language when printed


def served_handout(relpath: str) -> str | None:
    """Where the handout file ``relpath`` (``handouts/<file>.pdf``) is served under the web root
    (``web/handouts/<file>.pdf``); None for any other file."""
    folder, slash, name = relpath.partition("/")
    if folder != HANDOUTS_DIR or not slash or "/" in name or not name.endswith(".pdf"):
        return None
    return f"web/{HANDOUTS_DIR}/{name}"


def handout_href(article: Article) -> str | None:
    """The page's link to its handout, relative to ``web/<slug>/index.html``; None without one."""
    if Channel.HANDOUT not in article.channels:
        return None
    return f"../{HANDOUTS_DIR}/{article.key}.pdf"


def _citation(number: int, title: str, url: str, doi: str | None, pmid: str | None) -> dict[str, Any]:
    work: dict[str, Any] = {"@type": "CreativeWork", "position": number, "name": title, "url": url}
    identifiers = []
    if doi:
        identifiers.append({"@type": "PropertyValue", "propertyID": "DOI", "value": doi})
    if pmid:
        identifiers.append({"@type": "PropertyValue", "propertyID": "PMID", "value": pmid})
    if identifiers:
        work["@type"] = "ScholarlyArticle"
        work["identifier"] = identifiers
    return work


def json_ld(article: Article, site: SiteConfig) -> dict[str, Any]:
    """schema.org ``MedicalWebPage``: what search engines read about a health page."""
    org = site.organization
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "MedicalWebPage",
        "@id": canonical_url(article, site),
        "url": canonical_url(article, site),
        "name": article.title,
        "headline": article.title,
        "description": article.summary,
        "inLanguage": edition_language(article, site),
        "datePublished": article.published.isoformat(),
        "lastReviewed": article.last_reviewed.isoformat(),
        "publisher": {"@type": "MedicalOrganization", "name": org.name, "url": f"{org.base_url}/"},
    }
    if article.reviewed_by is not None:
        reviewer: dict[str, Any] = {"@type": "Person", "name": article.reviewed_by.name}
        if article.reviewed_by.credentials:
            reviewer["honorificSuffix"] = article.reviewed_by.credentials
        data["reviewedBy"] = reviewer
    if article.sources:
        data["citation"] = [
            _citation(s.number, s.title, s.url, s.doi, s.pmid) for s in source_entries(article)
        ]
    return data


def json_for_script(data: Any) -> Markup:
    """JSON safe inside ``<script>``: ``<``, ``>`` and ``&`` as \\u escapes (still valid JSON)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    # U+2028/2029 are legal in JSON but ended JavaScript string literals before ES2019.
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)  # noqa: S704  # escaped just above for the script context


def _og_locale(language: str) -> str:
    """``en`` → ``en_US``; ``fr-CA`` → ``fr_CA`` (OpenGraph wants language_TERRITORY)."""
    parts = language.replace("-", "_").split("_")
    if len(parts) >= 2:
        return f"{parts[0].lower()}_{parts[1].upper()}"
    return {"en": "en_US", "es": "es_US"}.get(parts[0].lower(), parts[0].lower())


def render_web_html(article: Article, site: SiteConfig, context: RenderContext) -> str:
    """The page as text; pure: every date comes from the article."""
    template = jinja_env().get_template(TEMPLATE)
    language = edition_language(article, site)
    return template.render(
        **page_context(article, site),
        version=context.version,
        css=css_markup(STYLESHEET),
        json_ld=json_for_script(json_ld(article, site)),
        disclaimer=disclaimer("article", language),
        og_locale=_og_locale(language),
        handout_href=handout_href(article),
        handout_link_text=i18n.tr(language, HANDOUT_LINK_TEXT),
        edition_note=_edition_note(article, language),
        editions=_editions(article, site, language),
    )


def _language_name(code: str, in_language: str) -> str:
    """``en`` named in ``in_language`` (Babel's CLDR names: "inglés" in Spanish)."""
    names = i18n.babel_locale(in_language).languages
    wanted = code.replace("-", "_")
    return names.get(wanted) or names.get(wanted.split("_", 1)[0]) or code


def _editions(article: Article, site: SiteConfig, language: str) -> list[dict[str, str]]:
    """The article's other live editions (issue 26): the page's hreflang alternates and its
    language switch, each language named in the page's own ("inglés" on a Spanish page)."""
    return [
        {
            "slug": other.slug,
            "url": f"{site.organization.base_url}/{other.slug}/",
            "language": other.language,
            "name": _language_name(other.language, language),
        }
        for other in article.alternates
    ]


def _edition_note(article: Article, language: str) -> dict[str, str] | None:
    """A stale translation's note (issue 26): its original's language named, and the day, in its own."""
    note = article.edition_note
    if note is None:
        return None
    name = _language_name(note.original_language, language)
    return {"language": name, "date": i18n.long_date(note.updated_on, language)}


class WebRenderer(Renderer):
    channel = Channel.WEB

    def render(self, article: Article, site: SiteConfig, context: RenderContext) -> list[Artifact]:
        html = render_web_html(article, site, context)
        return [
            Artifact(
                channel=self.channel,
                relpath=f"web/{article.key}/index.html",
                data=html.encode("utf-8"),
                media_type="text/html",
            )
        ]


def redirect_page(old_slug: str, new_slug: str, title: str, site: SiteConfig) -> Artifact:
    """``web/<old_slug>/index.html``: a page that sends a reader on to ``new_slug`` (issue 24).

    An article that moved to a new slug leaves this at its old address, so every QR code printed
    with the old one still lands on the article. Relative for the browser (it works wherever the
    web root is served), absolute for search engines (``rel=canonical``); a visible link for a
    browser that does not follow ``refresh``. Listed nowhere (index, feed and sitemap list reports).
    """
    target = f"../{new_slug}/"
    canonical = html.escape(f"{site.organization.base_url}/{new_slug}/", quote=True)
    name = html.escape(title)
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="refresh" content="0; url={target}">\n'
        f'<link rel="canonical" href="{canonical}">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{name}</title>\n</head>\n<body>\n"
        f'<p>This page has moved: <a href="{target}">{name}</a></p>\n'
        "</body>\n</html>\n"
    )
    return Artifact(Channel.WEB, f"web/{old_slug}/index.html", page.encode("utf-8"), "text/html")
