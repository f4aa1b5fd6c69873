"""The channels' own words in the edition's language (issue 26, part 2).

Three nets for an English word left in a Spanish edition:

- the catalog: every msgid Babel extracts from the templates (``jinja2.ext.babel_extract``) and
  the renderers' Python has a Spanish msgstr (not empty, not fuzzy, the same placeholders);
- the templates: no words outside ``{% trans %}`` and ``_()`` (their text nodes and the
  attributes a reader or a screen reader gets);
- the artifacts: the Spanish fixture article rendered through the real renderers (web page,
  handout PDFs read back, newsletter parsed) holds none of the words the English rendering of
  the same article adds around it.
"""

from __future__ import annotations

import email
import email.policy
import importlib
import re
from datetime import UTC, date, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import jinja2.ext
import pypdf
import pytest
from babel.dates import format_date
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.pofile import read_po

from clinicpress.errors import RenderError
from clinicpress.renderers import i18n
from clinicpress.renderers.base import Artifact, RenderContext
from clinicpress.renderers.catalog import CatalogEntry, render_catalog
from clinicpress.renderers.handout import HandoutRenderer
from clinicpress.renderers.markdown import TEMPLATES_DIR, review_line
from clinicpress.renderers.newsletter import NewsletterRenderer, render_newsletter_text
from clinicpress.renderers.web import WebRenderer
from clinicpress.settings.crisis import DEFAULT_CRISIS_TEXT, CrisisSettings
from clinicpress.site import SiteConfig
from clinicpress.sources import Article, Reviewer
from clinicpress.sources.loader import load_article

lxml_html: Any = importlib.import_module("lxml.html")

ROOT = Path(__file__).resolve().parents[2]
SPANISH_ARTICLE = ROOT / "tests" / "fixtures" / "i18n" / "terapia-con-ketamina.md"
RENDERERS_DIR = ROOT / "renderers"
CONTEXT = RenderContext(published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC), version="0" * 64)
# How the renderers call gettext: i18n.tr(language, msgid, **params) besides the usual names.
KEYWORDS = {**DEFAULT_KEYWORDS, "tr": (2,)}
# Words a Spanish edition shares with the English one on purpose: abbreviations, words that are
# Spanish too, and the license statement's official name of the State Department (in parentheses).
SHARED_WORDS = {"PDF", "DOI", "PMID", "QR", "web", "crisis", "Crisis"} | {
    "State",
    "Department",
    "Health",
    "Care",
    "Services",
}


# --- what the catalogs must hold ------------------------------------------------------------


def extracted_messages() -> dict[str, list[str]]:
    """msgid → where it is used, as Babel extracts them from the templates and the renderers."""
    found: dict[str, list[str]] = {}
    for path in sorted(TEMPLATES_DIR.glob("*.j2")):
        with path.open("rb") as fileobj:
            messages = list(
                extract(jinja2.ext.babel_extract, fileobj, keywords=KEYWORDS, options={"trimmed": "true"})
            )
        for lineno, message, _comments, _context in messages:
            found.setdefault(str(message), []).append(f"{path.name}:{lineno}")
    for path in sorted(RENDERERS_DIR.glob("*.py")):
        with path.open("rb") as fileobj:
            for lineno, message, _comments, _context in extract("python", fileobj, keywords=KEYWORDS):
                found.setdefault(str(message), []).append(f"{path.name}:{lineno}")
    return found


TRANSLATED = [language for language in i18n.available_languages() if language != i18n.SOURCE_LANGUAGE]


def test_spanish_is_among_the_catalogs() -> None:
    assert "es" in TRANSLATED


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_of_the_templates_and_renderers_has_its_translation(language: str) -> None:
    messages = extracted_messages()
    # The extraction itself works: the words of each channel are there.
    for expected in ("Sources", "Unsubscribe", "Page %(page)s of %(pages)s", "Print this handout (PDF)"):
        assert expected in messages
    with i18n.catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=i18n.DOMAIN)
    problems = []
    for msgid, where in sorted(messages.items()):
        entry = catalog.get(msgid)
        if entry is None or not entry.string:
            problems.append(f"{msgid!r} ({', '.join(where)}) has no {language} msgstr")
        elif entry.fuzzy:
            problems.append(f"{msgid!r} is marked fuzzy (not used until checked)")
    # Placeholders: a msgstr naming another %(name)s than its msgid would fail at render time.
    for entry, errors in catalog.check():
        problems += [f"{entry.id!r}: {error}" for error in errors]
    stale = sorted(str(m.id) for m in catalog if m.id and m.id not in messages)
    assert not problems, "\n".join(problems)
    assert not stale, f"clinicpress.po translates messages no channel prints any more: {stale}"


def test_a_message_missing_from_the_catalog_fails_the_render_not_prints_english() -> None:
    with pytest.raises(RenderError, match=r"locale/es/.*no translation of 'Not in the catalog'"):
        i18n.tr("es", "Not in the catalog")
    assert i18n.tr("en", "Not in the catalog") == "Not in the catalog"


def test_a_language_without_a_catalog_is_refused() -> None:
    with pytest.raises(RenderError, match=r"no message catalog for language 'fr'.*en, es"):
        i18n.translations("fr")
    assert i18n.catalog_language("es-MX") == "es"
    assert i18n.catalog_language("en-US") == "en"


_JINJA = re.compile(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_VISIBLE_TEXT = "//text()[not(ancestor::script or ancestor::style)]"
_READ_ATTRIBUTES = "//@alt | //@title | //@aria-label | //meta[@name='description']/@content"
_READ_TEXT = f"{_VISIBLE_TEXT} | {_READ_ATTRIBUTES}"


def template_literal_words(source: str) -> list[str]:
    """Words a template prints outside ``{% trans %}``, ``_()`` and other Jinja expressions."""
    markup = _JINJA.sub(" ", source).replace('<?xml version="1.0" encoding="utf-8"?>', "")
    root = lxml_html.document_fromstring(markup.encode())
    text = " ".join(str(node) for node in root.xpath(_READ_TEXT))
    return [word for word in re.findall(r"[A-Za-z]{2,}", text) if word not in SHARED_WORDS]


@pytest.mark.parametrize("name", sorted(p.name for p in TEMPLATES_DIR.glob("*.j2")))
def test_no_template_prints_a_word_outside_the_catalog(name: str) -> None:
    assert template_literal_words((TEMPLATES_DIR / name).read_text(encoding="utf-8")) == []


def test_the_template_check_sees_a_word_left_outside_trans() -> None:
    assert template_literal_words('<p class="x">Published {{ date }}</p>') == ["Published"]
    assert template_literal_words('<img alt="QR code {{ url }}">') == ["code"]  # QR is a shared word
    assert template_literal_words("<p>{% trans d=x %}Published {{ d }}{% endtrans %}</p>") == []


# --- the Spanish edition through the real renderers ------------------------------------------


@pytest.fixture(scope="module")
def spanish() -> Article:
    return load_article(SPANISH_ARTICLE)


def render_all(article: Article, site: SiteConfig) -> list[Artifact]:
    return [
        artifact
        for renderer in (WebRenderer(), HandoutRenderer(), NewsletterRenderer())
        for artifact in renderer.render(article, site, CONTEXT)
    ]


def html_text(html: str) -> str:
    """The text a reader sees, then the attributes a screen reader reads, one space between words."""
    root = lxml_html.document_fromstring(html.encode())
    seen = "".join(str(node) for node in root.xpath(_VISIBLE_TEXT))
    heard = " ".join(str(node) for node in root.xpath(_READ_ATTRIBUTES))
    return " ".join(f"{seen} {heard}".split())


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def reader_text(artifact: Artifact) -> str:
    """What a reader gets from an artifact: visible HTML, the PDF's text, both email parts."""
    if artifact.media_type == "text/html":
        return html_text(artifact.data.decode())
    if artifact.media_type == "application/pdf":
        return pdf_text(artifact.data)
    msg = email.message_from_bytes(artifact.data, policy=email.policy.default)
    parts = [msg.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
    text, html = (part.get_content() for part in parts if part is not None)
    return " ".join(text.split()) + " " + html_text(html)


def words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]{3,}", text))


def content_words(article: Article, site: SiteConfig) -> set[str]:
    """The words the article and the site bring (the same in either language's rendering)."""
    org = site.organization
    parts = [article.title, article.summary, article.body, org.name, org.postal_address, org.base_url]
    parts += [f"{s.title} {s.url}" for s in article.sources]
    parts += [f"{lic.issuer} {lic.program_id}" for lic in site.licenses]
    parts += [site.newsletter.unsubscribe_url, article.key]
    return words(" ".join(parts))


@pytest.fixture(scope="module")
def spanish_artifacts(spanish: Article, site: SiteConfig) -> dict[str, Artifact]:
    return {artifact.relpath: artifact for artifact in render_all(spanish, site)}


@pytest.fixture(scope="module")
def english_furniture(spanish: Article, site: SiteConfig) -> dict[str, set[str]]:
    """Per artifact, the words the English rendering of the same article adds around it."""
    english = spanish.model_copy(update={"language": "en"})
    return {
        artifact.relpath: words(reader_text(artifact)) - content_words(spanish, site) - SHARED_WORDS
        for artifact in render_all(english, site)
    }


def test_the_spanish_edition_carries_no_english_words_on_any_channel(
    spanish_artifacts: dict[str, Artifact], english_furniture: dict[str, set[str]]
) -> None:
    relpaths = set(spanish_artifacts)
    assert {"web/terapia-con-ketamina/index.html", "handouts/terapia-con-ketamina.pdf"} <= relpaths
    assert {"newsletter/terapia-con-ketamina.eml", "newsletter/terapia-con-ketamina.html"} <= relpaths
    assert relpaths == set(english_furniture)
    for relpath, artifact in spanish_artifacts.items():
        furniture = english_furniture[relpath]
        # The English rendering does add its words (the comparison is not empty by accident).
        assert "Sources" in furniture, relpath
        leaked = sorted(furniture & words(reader_text(artifact)))
        assert leaked == [], f"{relpath}: English words in the Spanish edition: {leaked}"


def test_the_spanish_edition_speaks_spanish_on_every_channel(
    spanish: Article, site: SiteConfig, spanish_artifacts: dict[str, Artifact]
) -> None:
    last = format_date(spanish.last_reviewed, format="long", locale="es")
    review = f"Última revisión: {last}; próxima revisión: "
    for relpath, artifact in spanish_artifacts.items():
        text = reader_text(artifact)
        assert "Fuentes" in text, relpath
        assert DEFAULT_CRISIS_TEXT["es"] in text, relpath
        assert review in text, relpath
        assert "Programa con licencia del Departamento Estatal de Servicios de Atención Médica" in text
        assert "vigente hasta el 30 de abril de 2027" in text, relpath
    web = reader_text(spanish_artifacts["web/terapia-con-ketamina/index.html"])
    assert "Imprimir este folleto (PDF)" in web
    assert f"Publicado el {format_date(spanish.published, format='long', locale='es')}" in web
    handout = reader_text(spanish_artifacts["handouts/terapia-con-ketamina.pdf"])
    assert re.search(r"Página 1 de \d", handout)
    assert "Escanee el código" in handout
    email_text = reader_text(spanish_artifacts["newsletter/terapia-con-ketamina.eml"])
    assert "Cancelar la suscripción" in email_text
    assert "Recibe este boletín porque se suscribió a él." in email_text


def test_each_channel_names_its_language(spanish_artifacts: dict[str, Artifact]) -> None:
    web = spanish_artifacts["web/terapia-con-ketamina/index.html"].data.decode()
    assert '<html lang="es">' in web
    assert '"inLanguage":"es"' in web
    assert '<meta property="og:locale" content="es_US">' in web
    for relpath, artifact in spanish_artifacts.items():
        if artifact.media_type == "application/pdf":  # WeasyPrint's /Lang, from <html lang>
            assert pypdf.PdfReader(BytesIO(artifact.data)).trailer["/Root"]["/Lang"] == "es", relpath
    eml = spanish_artifacts["newsletter/terapia-con-ketamina.eml"].data
    msg = email.message_from_bytes(eml, policy=email.policy.default)
    assert msg["Content-Language"] == "es"
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    assert '<html lang="es">' in html.get_content()


def test_the_english_edition_names_english(article: Article, site: SiteConfig) -> None:
    msg = email.message_from_bytes(
        NewsletterRenderer().render(article, site, CONTEXT)[0].data, policy=email.policy.default
    )
    assert msg["Content-Language"] == "en"
    [web] = WebRenderer().render(article, site, CONTEXT)
    assert '<html lang="en">' in web.data.decode()


def test_dates_are_babel_long_dates_in_the_edition_language(spanish: Article, site: SiteConfig) -> None:
    reviewed = spanish.model_copy(update={"reviewed_by": Reviewer(name="Ana Ruiz", credentials="MD")})
    day = spanish.last_reviewed
    assert review_line(reviewed, "es").startswith(f"Revisado por Ana Ruiz, MD el {day.day} de noviembre de")
    assert review_line(reviewed, "en").startswith(f"Reviewed by Ana Ruiz, MD on November {day.day}, ")
    [web] = WebRenderer().render(reviewed, site, CONTEXT)
    page = web.data.decode()
    assert f'Revisado por Ana Ruiz, MD el <time datetime="{day.isoformat()}">' in page
    assert "de noviembre de" in page
    assert "November" not in page
    assert i18n.long_date(date(2027, 4, 30), "es-MX") == "30 de abril de 2027"


def test_the_crisis_box_is_the_sites_text_for_the_edition_language(
    spanish: Article, site: SiteConfig
) -> None:
    own = "Si está en crisis, llame a la línea de su condado."
    custom = site.model_copy(update={"crisis": CrisisSettings(text_by_language={"es": own})})
    artifacts = {a.relpath: a for a in render_all(spanish, custom)}
    for relpath, artifact in artifacts.items():
        text = reader_text(artifact)
        assert own in text, relpath
        assert DEFAULT_CRISIS_TEXT["es"] not in text, relpath
    # Other languages keep their default; English stays the US lines.
    english = spanish.model_copy(update={"language": "en"})
    assert DEFAULT_CRISIS_TEXT["en"] in " ".join(render_newsletter_text(english, custom).split())


def test_crisis_settings_validate_and_fall_back() -> None:
    settings = CrisisSettings(text_by_language={"ES-mx": "Llame al 988."})
    assert settings.text_for("es-MX") == "Llame al 988."
    assert settings.text_for("es") == DEFAULT_CRISIS_TEXT["es"]
    assert settings.text_for("en-US") == DEFAULT_CRISIS_TEXT["en"]
    assert settings.text_for("fr") is None
    with pytest.raises(ValueError, match="not a language tag"):
        CrisisSettings(text_by_language={"spanish!": "x"})
    with pytest.raises(ValueError, match="crisis text for es is empty"):
        CrisisSettings(text_by_language={"es": " "})
    with pytest.raises(ValueError, match="crisis text for es must be a single line"):
        CrisisSettings(text_by_language={"es": "a\nb"})


def test_the_site_index_speaks_the_site_language(site: SiteConfig) -> None:
    spanish_site = site.model_copy(
        update={"organization": site.organization.model_copy(update={"language": "es"})}
    )
    entry = CatalogEntry(
        slug="terapia-con-ketamina",
        title="Terapia con ketamina",
        summary="Resumen.",
        published=date(2025, 6, 2),
        last_reviewed=date(2026, 11, 26),
        published_at=CONTEXT.published_at,
    )
    files = {a.relpath: a.data.decode() for a in render_catalog([entry], spanish_site, CONTEXT.published_at)}
    index = files["web/index.html"]
    assert '<html lang="es">' in index
    assert "<h1>Artículos</h1>" in index
    assert "Publicado el <time" in index
    assert "26 de noviembre de 2026</time>" in index
    assert 'xml:lang="es"' in files["web/feed.xml"]


def test_page_numbers_are_a_css_string_even_with_quotes() -> None:
    assert str(i18n.page_numbers_css("en")) == '"Page " counter(page) " of " counter(pages)'
    assert i18n.css_string('a"b\\c</style>') == '"a\\22 b\\5c c\\3c /style\\3e "'


def test_the_release_check_reads_a_spanish_edition_back_as_consistent(
    spanish: Article, site: SiteConfig
) -> None:
    """The consistency check compares each channel with the article in its own language: the
    Spanish license and review lines, and the sources after "Fuentes"."""
    from clinicpress.renderers.consistency import consistency_problems

    assert consistency_problems(spanish, site, render_all(spanish, site)) == []
