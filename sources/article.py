"""The canonical article: YAML front matter plus a Markdown body.

Front-matter keys are exactly the fields of :class:`FrontMatter`; an unknown
key is an error that names it. ``[^N]`` in the body cites ``sources[N-1]``.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from clinicpress.settings.registries import Npi
from clinicpress.validation import single_line

if TYPE_CHECKING:
    from clinicpress.site import SiteConfig

# ``[^3]`` in the body cites the third entry of ``sources``.
CITATION = re.compile(r"\[\^(\d{1,3})\]")
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_SLUG = 80
DEFAULT_REVIEW_MONTHS = 12
_DOI = re.compile(r"^(?:doi:)?(10\.\d{4,9}/\S+)$", re.IGNORECASE)
_PMID = re.compile(r"^pmid:\s*(\d{1,9})$", re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A BCP 47 language tag as the channels print it (html lang, hreflang): es, es-MX, zh-Hant.
LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
# translated_from: the original's content_hash, or its first 12 hex digits at least (as git abbreviates).
MIN_HASH_PREFIX = 12
_HEX_PREFIX = re.compile(rf"^[0-9a-f]{{{MIN_HASH_PREFIX},64}}$")
# Characters a URL cannot hold unencoded (RFC 3986); old DOIs hold '<' and '>'. Encoded once here,
# every channel prints, and the checker fetches, the same URL.
_UNSAFE_IN_URL = re.compile(r'[<>"`{}|\\^]')


def _encode_unsafe(url: str) -> str:
    return _UNSAFE_IN_URL.sub(lambda m: f"%{ord(m.group(0)):02X}", url)


# Device names Windows reserves in every folder: a file web/con/index.html or handouts/nul.pdf
# cannot be created or copied there, so a slug must never be one of them.
RESERVED_SLUGS = frozenset(
    ["con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))]
)


class Channel(enum.StrEnum):
    WEB = "web"
    HANDOUT = "handout"
    NEWSLETTER = "newsletter"


def slugify(text: str) -> str:
    """``Ketamine Therapy Can Help!`` → ``ketamine-therapy-can-help``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:MAX_SLUG].rstrip("-")


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (Jan 31 + 1 → Feb 28)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def _strict_date(value: Any) -> Any:
    """Only ``YYYY-MM-DD`` (or a date object): pydantic alone reads ``0`` as 1970-01-01."""
    if isinstance(value, datetime):
        raise ValueError(f"got {value.isoformat()!r}; expected a date as YYYY-MM-DD (no time)")
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value.strip()):
        return value.strip()
    shown = repr(value) if isinstance(value, str | int | float | bool) else type(value).__name__
    raise ValueError(f"got {shown[:60]}; expected a date as YYYY-MM-DD")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reviewer(_Strict):
    name: str = Field(min_length=1, max_length=120)
    credentials: str | None = Field(default=None, max_length=60)
    npi: Npi | None = Field(default=None, description="Their NPI: looked up in the NPI registry")

    _one_line = field_validator("name", "credentials")(lambda v: single_line(v) if v else v)

    def display(self) -> str:
        return f"{self.name}, {self.credentials}" if self.credentials else self.name


class Source(_Strict):
    """A cited work. ``url`` may be written as ``doi:10.…`` or ``pmid:123``; ``quote`` is optional."""

    title: str = Field(min_length=1, max_length=500)
    url: str
    quote: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description=(
            "The passage the article relies on, as the source words it ('…' for left-out words); "
            "checked against the source's text at publish and by the monitor"
        ),
    )

    _one_line = field_validator("title")(single_line)

    @field_validator("quote")
    @classmethod
    def _quote(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # YAML block scalars keep line breaks; the comparison ignores them, the report prints one line.
        text = " ".join(value.split())
        if len(text.split()) < 3:
            raise ValueError(f"{text[:60]!r} is too short to find reliably; expected at least 3 words")
        return text

    @field_validator("url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        value = value.strip()
        if doi := _DOI.match(value):
            return f"https://doi.org/{_encode_unsafe(doi.group(1))}"
        if pmid := _PMID.match(value):
            return f"https://pubmed.ncbi.nlm.nih.gov/{pmid.group(1)}/"
        scheme = value.split(":", 1)[0].lower() if ":" in value else ""
        if scheme not in ("http", "https") or "//" not in value or any(c.isspace() for c in value):
            raise ValueError(f"{value[:80]!r} is not an http(s) URL; expected https://…, doi:10.… or pmid:…")
        return _encode_unsafe(value)

    @property
    def doi(self) -> str | None:
        prefix = "https://doi.org/"
        return unquote(self.url[len(prefix) :]) if self.url.startswith(prefix) else None

    @property
    def pmid(self) -> str | None:
        match = re.match(r"^https://pubmed\.ncbi\.nlm\.nih\.gov/(\d+)/?$", self.url)
        return match.group(1) if match else None


def _check_year(value: date) -> date:
    if not 1900 <= value.year <= 2200:
        raise ValueError(f"year {value.year} is out of range; expected 1900-2200")
    return value


class FrontMatter(_Strict):
    """The keys allowed in an article's YAML front matter."""

    title: str = Field(min_length=1, max_length=200)
    slug: str | None = None
    summary: str = Field(min_length=1, max_length=400)
    published: date
    last_reviewed: date
    reviewed_by: Reviewer | None = None
    next_review: date | None = None
    channels: list[Channel] = Field(default_factory=lambda: list(Channel), min_length=1)
    sources: list[Source] = Field(default_factory=list)
    # Editions (issue 26): None is the site's [organization] language; a translation names its
    # original's slug and the original's content_hash (a prefix) the translator worked from.
    language: str | None = None
    translation_of: str | None = None
    translated_from: str | None = Field(default=None, validate_default=True)  # judged when left out too

    _one_line = field_validator("title", "summary")(single_line)
    _date_text = field_validator("published", "last_reviewed", "next_review", mode="before")(_strict_date)
    _years = field_validator("published", "last_reviewed", "next_review")(
        lambda v: _check_year(v) if v is not None else v
    )

    @model_validator(mode="before")
    @classmethod
    def _derive_slug(cls, data: Any) -> Any:
        # Derived before field validation so that a derived slug is vetted (and named) as ``slug``.
        if isinstance(data, dict) and data.get("slug") is None and isinstance(data.get("title"), str):
            # An empty result is kept so that the slug validator names the field and the fix.
            data = {**data, "slug": slugify(data["title"])}
        return data

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value == "":
            raise ValueError(
                "is empty (a title without letters or digits a-z, 0-9 gives no slug); "
                "expected slug: set by hand, e.g. slug: ketamine-therapy"
            )
        if value is not None and (not SLUG.match(value) or len(value) > MAX_SLUG):
            raise ValueError(
                f"{value[:80]!r} is not a slug; expected lowercase letters, digits and single "
                f"hyphens, at most {MAX_SLUG} characters"
            )
        if value in RESERVED_SLUGS:
            raise ValueError(
                f"{value!r} is a reserved device name on Windows (con, prn, aux, nul, com0-9, lpt0-9); "
                "expected another slug (set slug: when the title gives this one)"
            )
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and not LANGUAGE_TAG.match(value):
            raise ValueError(f"{value[:40]!r} is not a language tag; expected e.g. es, en or es-MX")
        return value

    @field_validator("translation_of")
    @classmethod
    def _original_slug(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (not SLUG.match(value) or len(value) > MAX_SLUG):
            raise ValueError(
                f"{value[:80]!r} is not a slug; expected the original article's slug, e.g. "
                "translation_of: ketamine-therapy-substance-abuse"
            )
        if value is not None and value == info.data.get("slug"):
            raise ValueError(
                f"names this article's own slug ({value}); expected the original's slug (a translation "
                "has a slug of its own: set slug:, or give it a title of its own)"
            )
        return value

    @field_validator("translated_from", mode="before")
    @classmethod
    def _hash_prefix(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML reads 0123… as an octal number: the digits are lost, so never guess them back.
            raise ValueError(
                "was read as a number (all its digits are 0-9); expected it in quotes, "
                'e.g. translated_from: "123456789012"'
            )
        text = value.strip().lower() if isinstance(value, str) else value
        if not isinstance(text, str) or not _HEX_PREFIX.match(text):
            shown = repr(value)[:80] if isinstance(value, str) else type(value).__name__
            raise ValueError(
                f"got {shown}; expected the original's content_hash (at least its first "
                f"{MIN_HASH_PREFIX} hex digits, as `clinicpress check --format json` shows it)"
            )
        return text

    @field_validator("translated_from")
    @classmethod
    def _with_original(cls, value: str | None, info: ValidationInfo) -> str | None:
        original = info.data.get("translation_of")
        if original is not None and value is None:
            raise ValueError(
                f"is missing; a translation (translation_of: {original}) needs the original's "
                f"content_hash it was made from (at least its first {MIN_HASH_PREFIX} hex digits)"
            )
        if value is not None and original is None and "translation_of" in info.data:
            raise ValueError("is set without translation_of; expected translation_of: <the original's slug>")
        return value

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, value: list[Channel]) -> list[Channel]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _defaults(self) -> Self:
        # Frozen model: fill derived defaults through object.__setattr__.
        if self.slug is None:
            derived = slugify(self.title)
            if not derived:
                raise ValueError("title has no letters or digits to make a slug from; set slug")
            object.__setattr__(self, "slug", derived)
        if self.next_review is None:
            object.__setattr__(self, "next_review", add_months(self.last_reviewed, DEFAULT_REVIEW_MONTHS))
        return self


class EditionNote(_Strict):
    """What a stale translation's page states: its original's language and the day it changed."""

    original_language: str
    updated_on: date


class Alternate(_Strict):
    """Another edition of the same article, live beside it: the page links it (issue 26)."""

    slug: str
    language: str


class Article(FrontMatter):
    """A loaded article: its front matter, Markdown body and file."""

    body: str
    path: Path
    # Set by the publish flow, never by front matter: a stale translation's web page says when its
    # original changed (issue 26, "updated in English on …").
    edition_note: EditionNote | None = None
    # Set by the publish flow, never by front matter: the article's other editions that are live
    # with it (an original's translations, a translation's original and siblings), by language;
    # its page links each (hreflang alternates, a language switch). sources/editions.py decides.
    alternates: tuple[Alternate, ...] = ()

    @property
    def key(self) -> str:
        """The slug, always set after validation."""
        assert self.slug is not None
        return self.slug

    @property
    def review_due(self) -> date:
        assert self.next_review is not None
        return self.next_review

    def cited_numbers(self) -> list[int]:
        """Source numbers cited in the body, in order of first appearance."""
        return list(dict.fromkeys(int(m.group(1)) for m in CITATION.finditer(self.body)))


def edition_language(article: Article, site: SiteConfig) -> str:
    """The language an edition speaks (its channels, its checks, its readers): its front matter
    ``language``, else the site's ``[organization] language``. The one place that decides it."""
    return article.language or site.organization.language
