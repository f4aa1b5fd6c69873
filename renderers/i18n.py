"""The words the channels add around an article, in the edition's language.

Every fixed word a template or a renderer prints (Sources, the review and license lines, the
crisis box, the newsletter's footer, the QR caption, page numbers, dates) goes through gettext
message catalogs read with Babel: ``clinicpress/locale/<lang>/LC_MESSAGES/clinicpress.po``.
The msgids are the English words, so English needs no catalog; another language needs its
``.po`` file, compiled in memory the first time it is used (nothing compiled is checked in, and
a fresh clone works as it is).

A language is all or nothing: a msgid its catalog lacks (or left empty, or marked fuzzy) fails
the render naming the msgid, rather than printing English inside a Spanish handout; an edition
in a language with no catalog fails the same way. ``tests/renderers/test_i18n.py`` checks that
every msgid the templates and the renderers use has its Spanish translation.

The Jinja templates use ``jinja2.ext.i18n`` (``{% trans %}`` and ``_()``, new-style: the
variables are escaped). One environment serves every language: the edition's gettext comes
with the template variables (:func:`template_gettext`), so a template rendered without a
language fails instead of falling back to English.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from clinicpress.errors import RenderError
from clinicpress.site import License, SiteConfig
from clinicpress.sources.article import Article

DOMAIN = "clinicpress"
SOURCE_LANGUAGE = "en"  # the msgids are the English words
LOCALE_DIR = Path(str(resources.files("clinicpress"))) / "locale"


def N_(message: str) -> str:  # gettext's name for "mark for extraction, translate later"
    """Marks a module-level English string for the catalogs; translated where it is printed."""
    return message


def site_language(site: SiteConfig) -> str:
    """The language of the site-wide pages (index, feed): ``[organization] language``."""
    return site.organization.language


def catalog_language(language: str) -> str:
    """The catalog that serves ``language``: ``es-MX`` → ``es``, ``en-US`` → ``en``."""
    primary = language.strip().replace("_", "-").split("-", 1)[0].lower()
    if primary == SOURCE_LANGUAGE or catalog_path(primary).is_file():
        return primary
    raise RenderError(
        f"no message catalog for language {language!r}: the channels' words exist in "
        f"{', '.join(available_languages())}; add clinicpress/locale/{primary or '<lang>'}/LC_MESSAGES/"
        f"{DOMAIN}.po (docs/writing/languages.md)"
    )


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def available_languages() -> list[str]:
    found = {p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    return sorted(found | {SOURCE_LANGUAGE})


class _Untranslated(NullTranslations):
    """The fallback behind a catalog: a msgid it lacks fails the render (never English by stealth)."""

    def __init__(self, language: str) -> None:
        super().__init__()
        self.language = language

    def _missing(self, message: str) -> RenderError:
        return RenderError(
            f"clinicpress/locale/{self.language}/LC_MESSAGES/{DOMAIN}.po has no translation of {message!r} "
            "(an empty or fuzzy msgstr counts as none)"
        )

    def gettext(self, message: str) -> str:
        raise self._missing(message)

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        raise self._missing(msgid1)


class _NoLanguage(NullTranslations):
    """The Jinja environment's own gettext: only reached when a render passed no language."""

    def gettext(self, message: str) -> str:
        raise RenderError(f"a template printed {message!r} without a language (pass template_gettext)")

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        raise RenderError(f"a template printed {msgid1!r} without a language (pass template_gettext)")


@functools.cache
def _catalog(language: str) -> NullTranslations:
    if language == SOURCE_LANGUAGE:
        return NullTranslations()
    path = catalog_path(language)
    try:
        with path.open("rb") as po:
            catalog = read_po(po, locale=language, domain=DOMAIN)
    except (OSError, ValueError) as exc:  # Babel reports a broken .po as ValueError subclasses
        raise RenderError(f"{path}: the message catalog cannot be read ({exc})") from exc
    mo = io.BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    translations = Translations(fp=mo, domain=DOMAIN)
    translations.add_fallback(_Untranslated(language))
    return translations


def translations(language: str) -> NullTranslations:
    """The gettext catalog of ``language`` (compiled once per process)."""
    return _catalog(catalog_language(language))


def tr(language: str, message: str, /, **params: str) -> str:
    """``message`` (an English msgid) in ``language``, with ``%(name)s`` placeholders filled."""
    text = translations(language).gettext(message)
    return text % params if params else text


def template_gettext(language: str) -> dict[str, Callable[..., str]]:
    """The template variables that make ``{% trans %}`` and ``_()`` speak ``language``.

    New-style gettext as ``jinja2.ext.i18n`` defines it: the translated string is Markup under
    autoescape and the variables are substituted (and so escaped) after translation.
    """
    catalog = translations(language)

    @pass_context
    def gettext(context: Context, message: str, /, **variables: Any) -> str:
        text: str = catalog.gettext(message)
        if context.eval_ctx.autoescape:
            text = Markup(text)  # noqa: S704  # our catalog's text; the variables are escaped by %
        return text % variables

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, n: int, /, **variables: Any) -> str:
        variables.setdefault("num", n)
        text: str = catalog.ngettext(singular, plural, n)
        if context.eval_ctx.autoescape:
            text = Markup(text)  # noqa: S704  # as in gettext
        return text % variables

    return {"gettext": gettext, "ngettext": ngettext}


def install(env: Any) -> None:
    """Give a Jinja environment (with ``jinja2.ext.i18n``) new-style gettext that refuses to guess."""
    env.policies["ext.i18n.trimmed"] = True  # {% trans %} text is one line whatever the template's layout
    env.install_gettext_translations(_NoLanguage(), newstyle=True)


@functools.cache
def babel_locale(language: str) -> Locale:
    """The Babel locale of a language tag: ``es-MX`` as written when Babel knows it, else ``es``."""
    tag = language.strip().replace("-", "_")
    for candidate in (tag, tag.split("_", 1)[0]):
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    raise RenderError(f"no date format for language {language!r}; expected a language tag such as es")


def long_date(value: date, language: str) -> str:
    """``April 30, 2027`` in English, ``30 de abril de 2027`` in Spanish (Babel's long format)."""
    return format_date(value, format="long", locale=babel_locale(language))


# --- the sentences every channel prints -------------------------------------------------------


def review_line(article: Article, language: str) -> str:
    """The one review sentence every channel prints (and the consistency check reads back).

    ``Reviewed by Jane Doe, MD on June 1, 2025, next review June 1, 2026``, or
    ``Last reviewed June 1, 2025, next review June 1, 2026`` when no reviewer is named.
    """
    last = long_date(article.last_reviewed, language)
    next_review = long_date(article.review_due, language)
    if article.reviewed_by is not None:
        return tr(
            language,
            "Reviewed by %(reviewer)s on %(last)s, next review %(next)s",
            reviewer=article.reviewed_by.display(),
            last=last,
            next=next_review,
        )
    return tr(language, "Last reviewed %(last)s, next review %(next)s", last=last, next=next_review)


def license_statement(lic: License, language: str) -> str:
    """Who licensed the program; for DHCS in the statute's words (HSC §11831.12): "Licensed by the
    State Department of Health Care Services." (or "Certified by …")."""
    licensed = lic.kind == "licensed"
    if lic.issued_by_dhcs():
        if licensed:
            return tr(language, "Licensed by the State Department of Health Care Services.")
        return tr(language, "Certified by the State Department of Health Care Services.")
    issuer = lic.issuer.rstrip(".")
    if licensed:
        return tr(language, "Licensed by the %(issuer)s.", issuer=issuer)
    return tr(language, "Certified by the %(issuer)s.", issuer=issuer)


def license_particulars(lic: License, language: str) -> str:
    """The number and the expiry (when to renew), printed after :func:`license_statement`."""
    return tr(
        language,
        "Program ID %(program_id)s · valid through %(expires)s",
        program_id=lic.program_id,
        expires=long_date(lic.expires, language),
    )


def license_line(lic: License, language: str) -> str:
    """The license sentence every channel prints (the web links its statement)."""
    return f"{license_statement(lic, language)} {license_particulars(lic, language)}"


def license_lines(site: SiteConfig, language: str) -> list[str]:
    return [license_line(lic, language) for lic in site.licenses]


def license_parts(site: SiteConfig, language: str) -> list[dict[str, str | None]]:
    """Each license as a web footer prints it: the statement, linked to where a reader verifies it
    (HSC §11831.12), then the particulars."""
    return [
        {
            "statement": license_statement(lic, language),
            "particulars": license_particulars(lic, language),
            "url": lic.lookup_url,
        }
        for lic in site.licenses
    ]


def crisis_line(site: SiteConfig, language: str) -> str:
    """The crisis box's text: ``[crisis] text_by_language``, else the default for the language."""
    text = site.crisis.text_for(language)
    if text is None:
        raise RenderError(
            f"no crisis text for language {language!r}: set [crisis] text_by_language.{language} in "
            "site.toml (where to call or text in a crisis, in that language)"
        )
    return text


DISCLAIMERS = {
    "article": N_("This article supports, not replaces, the advice of your care team."),
    "handout": N_("This handout supports, not replaces, the advice of your care team."),
    "newsletter": N_("This newsletter supports, not replaces, the advice of your care team."),
}


def disclaimer(channel: str, language: str) -> str:
    """``This handout supports, not replaces, the advice of your care team.``"""
    return tr(language, DISCLAIMERS[channel])


_PLACEHOLDER = re.compile(r"%\((page|pages)\)s")


def css_string(text: str) -> str:
    """``text`` as a CSS string literal: quotes, backslashes and ``<`` escaped (no ``</style``)."""
    escaped = "".join(f"\\{ord(c):x} " if c in '"\\<>\n\r' else c for c in text)
    return f'"{escaped}"'


def page_numbers_css(language: str) -> Markup:
    """``"Page " counter(page) " of " counter(pages)``: the handout's page numbers in ``language``."""
    # The placeholders are CSS counters, not Python values: the text is split on them, not formatted.
    template = translations(language).gettext("Page %(page)s of %(pages)s")
    parts: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > position:
            parts.append(css_string(template[position : match.start()]))
        parts.append(f"counter({match.group(1)})")
        position = match.end()
    if position < len(template):
        parts.append(css_string(template[position:]))
    return Markup(" ".join(parts))  # noqa: S704  # every literal part escaped by css_string
