"""The newsletter channel: one MIME email (text + HTML) and a browser preview.

The text part comes from the Markdown tokens (``text.py``), the HTML part
from a Jinja template whose CSS is inlined by css-inline (many mail clients
drop ``<style>``); the at-rules (``@media`` for narrow screens and dark mode)
cannot be inlined and stay in one ``<style>`` block. Header values are checked
for line breaks before the message is built, so a title with CR/LF names
itself instead of failing deep in ``email``.

Sending is per recipient: :func:`render_message_template` renders the body
once, :func:`personalise` makes each recipient's message from it (To, the
recipient's unsubscribe URL, a Message-ID of its own) without re-rendering.
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import html
from dataclasses import dataclass, replace
from email.headerregistry import Address
from email.message import EmailMessage

import css_inline

from clinicpress.addresses import address_problem, unsubscribe_url_problem
from clinicpress.errors import RenderError
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel, edition_language

from . import i18n
from .base import Artifact, RenderContext, Renderer
from .markdown import (
    canonical_url,
    channel_images,
    css_markup,
    disclaimer,
    jinja_env,
    org_line,
    page_context,
)
from .text import WIDTH, render_article_text, wrap

TEMPLATE = "newsletter.html.j2"
STYLESHEET = "newsletter.css"
# Gmail clips a message body over ~102 KB; stay under 100 KB for the whole message.
MAX_MESSAGE_BYTES = 100 * 1024
DISCLAIMER = disclaimer("newsletter")  # in English; an edition prints disclaimer("newsletter", language)

# Never fetch a remote stylesheet while inlining: the email is built offline.
# keep_at_rules: @media (narrow screens, dark mode) cannot be inlined; they stay in <style>.
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_link_tags=False, keep_at_rules=True)


_RECIPIENT_POLICY = email.policy.default.clone(max_line_length=998)


def _check_header(field: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise RenderError(f"newsletter header {field} contains a line break: {value[:80]!r}")
    return value


def _check_address(field: str, value: str) -> str:
    _check_header(field, value)
    if problem := address_problem(value):
        raise RenderError(f"newsletter header {field}: {value[:80]!r} {problem}")
    return value


def _check_unsubscribe_url(value: str) -> str:
    _check_header("unsubscribe URL", value)
    if problem := unsubscribe_url_problem(value):
        raise RenderError(f"unsubscribe URL {value[:80]!r} {problem}")
    return value


def list_unsubscribe(unsubscribe_url: str, mailto: str | None) -> str:
    """``<https://…>, <mailto:…?subject=unsubscribe>`` (RFC 2369; one-click per RFC 8058)."""
    targets = [f"<{unsubscribe_url}>"]
    if mailto:
        targets.append(f"<mailto:{mailto}?subject=unsubscribe>")
    return ", ".join(targets)


def message_id(article: Article, site: SiteConfig, context: RenderContext) -> str:
    """Deterministic: the same article version always gets the same Message-ID."""
    domain = site.newsletter.from_address.rsplit("@", 1)[1]
    return f"<{article.key}.{context.version[:16]}@{domain}>"


def render_newsletter_text(article: Article, site: SiteConfig) -> str:
    """The text/plain part: the article, then the footer every newsletter carries."""
    language = edition_language(article, site)
    footer = [
        "-" * 40,
        wrap(disclaimer("newsletter", language)),
        wrap(i18n.crisis_line(site, language)),
        "",
        wrap(org_line(site)),
        *(wrap(line) for line in i18n.license_lines(site, language)),
        # wrap() puts a URL that does not fit on a line of its own, unbroken.
        wrap(i18n.tr(language, "Read on the web: %(url)s", url=canonical_url(article, site))),
        # On a line of its own: personalise() swaps in a longer per-recipient URL without rewrapping.
        i18n.tr(language, "Unsubscribe:"),
        site.newsletter.unsubscribe_url,
    ]
    return render_article_text(article, site) + "\n" + "\n".join(footer) + "\n"


def render_newsletter_html(article: Article, site: SiteConfig) -> str:
    """The text/html part with every style inlined (also the browser preview).

    A local image is linked where the web root serves it (absolute: a mail client has no page to be
    relative to); the email carries no image bytes itself (its size stays far under the clip limit).
    """
    template = jinja_env().get_template(TEMPLATE)
    page = template.render(
        **page_context(article, site, channel_images(article, Channel.NEWSLETTER, site)),
        css=css_markup(STYLESHEET),
        unsubscribe_url=site.newsletter.unsubscribe_url,
        disclaimer=disclaimer("newsletter", edition_language(article, site)),
    )
    result: str = _INLINER.inline(page)
    # css-inline puts the kept <style> first in <head>; the charset must stay in the first 1024 bytes.
    charset = '<meta charset="utf-8">'
    if charset in result and result.index(charset) > 512:
        result = result.replace(charset, "", 1).replace("<head>", "<head>" + charset, 1)
    return result


@dataclass(frozen=True)
class MessageTemplate:
    """A rendered newsletter without a recipient: the body is made once per article version.

    ``unsubscribe_url`` is the one written into ``text`` and ``html``;
    :func:`personalise` swaps it for each recipient's own.
    """

    subject: str
    from_name: str
    from_address: str
    reply_to: str | None
    date: str
    message_id: str
    unsubscribe_url: str
    unsubscribe_mailto: str | None
    text: str
    html: str
    boundary: str
    language: str  # the edition's (Content-Language)


def render_message_template(article: Article, site: SiteConfig, context: RenderContext) -> MessageTemplate:
    """Render the newsletter once; every recipient's message is made from this."""
    if context.published_at.tzinfo is None:
        raise RenderError("RenderContext.published_at must be timezone-aware for the Date header")
    news = site.newsletter
    _check_header("From name", news.from_name)
    _check_address("From address", news.from_address)
    if news.reply_to:
        _check_address("Reply-To", news.reply_to)
    if news.unsubscribe_mailto:
        _check_address("unsubscribe mailto", news.unsubscribe_mailto)
    _check_header("Subject", article.title)
    _check_unsubscribe_url(news.unsubscribe_url)
    return MessageTemplate(
        subject=article.title,
        from_name=news.from_name,
        from_address=news.from_address,
        reply_to=news.reply_to,
        date=email.utils.format_datetime(context.published_at),
        message_id=message_id(article, site, context),
        unsubscribe_url=news.unsubscribe_url,
        unsubscribe_mailto=news.unsubscribe_mailto,
        text=render_newsletter_text(article, site),
        html=render_newsletter_html(article, site),
        # email picks a random boundary; one from the version keeps the .eml reproducible.
        boundary=f"=_clinicpress_{context.version[:32]}",
        language=_check_header("Content-Language", edition_language(article, site)),
    )


def _recipient_message_id(template: MessageTemplate, to: str) -> str:
    # Deterministic per (article version, recipient): a resend is recognisably the same message.
    local, domain = template.message_id.strip("<>").rsplit("@", 1)
    digest = hashlib.sha256(to.lower().encode()).hexdigest()[:12]
    return f"<{local}.{digest}@{domain}>"


def personalise(
    template: MessageTemplate,
    to: str | None = None,
    unsubscribe_url: str | None = None,
    subject_prefix: str = "",
) -> EmailMessage:
    """One recipient's message: To, their unsubscribe URL (headers and both parts), no re-render.

    With no ``to`` this is the outbox copy (no To header, the site's unsubscribe URL).
    ``subject_prefix`` is for test sends, e.g. ``"[TEST] "``.
    """
    if unsubscribe_url is not None and unsubscribe_url != template.unsubscribe_url:
        _check_unsubscribe_url(unsubscribe_url)
        template = replace(
            template,
            unsubscribe_url=unsubscribe_url,
            text=template.text.replace(template.unsubscribe_url, unsubscribe_url),
            # The template wrote the URL HTML-escaped (& → &amp;) in href and text alike.
            html=template.html.replace(html.escape(template.unsubscribe_url), html.escape(unsubscribe_url)),
        )
    subject = _check_header("Subject", subject_prefix + template.subject)

    local, domain = template.from_address.rsplit("@", 1)
    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = Address(display_name=template.from_name, username=local, domain=domain)
    if to is not None:
        _check_address("To", to)
        to_local, to_domain = to.rsplit("@", 1)
        msg["To"] = Address(username=to_local, domain=to_domain)
    if template.reply_to:
        msg["Reply-To"] = template.reply_to
    msg["Subject"] = subject
    msg["Date"] = template.date
    msg["Message-ID"] = template.message_id if to is None else _recipient_message_id(template, to)
    msg["List-Unsubscribe"] = list_unsubscribe(template.unsubscribe_url, template.unsubscribe_mailto)
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["MIME-Version"] = "1.0"
    msg.set_content(template.text)
    msg.add_alternative(template.html, subtype="html")
    msg.set_boundary(template.boundary)
    # RFC 3282, the language the reader is addressed in. After the parts: set_content and
    # add_alternative move or drop the message's Content-* headers.
    msg["Content-Language"] = template.language
    if to is not None:
        # A recipient's signed List-Unsubscribe link (~170 characters) would be folded by the default
        # policy into RFC 2047 encoded words, which no mail client reads as a link: headers are written
        # with lines up to RFC 5322's 998. Set after the parts: their encoding (76-character lines,
        # RFC 2045) was chosen under the default policy. The outbox copy (no recipient) is unchanged.
        msg.policy = _RECIPIENT_POLICY
    size = len(msg.as_bytes())
    if size > MAX_MESSAGE_BYTES:
        raise RenderError(
            f"the newsletter is {size} bytes; at most {MAX_MESSAGE_BYTES} (mail clients clip it)"
        )
    return msg


def build_message(article: Article, site: SiteConfig, context: RenderContext) -> EmailMessage:
    """The email without a recipient (the outbox copy); delivery uses :func:`personalise`."""
    return personalise(render_message_template(article, site, context))


class NewsletterRenderer(Renderer):
    channel = Channel.NEWSLETTER

    def render(self, article: Article, site: SiteConfig, context: RenderContext) -> list[Artifact]:
        msg = build_message(article, site, context)
        html_part = msg.get_body(preferencelist=("html",))
        assert html_part is not None  # built just above
        # The preview is byte for byte the HTML part a subscriber's client decodes.
        preview: str = html_part.get_content()
        return [
            Artifact(
                channel=self.channel,
                relpath=f"newsletter/{article.key}.eml",
                data=msg.as_bytes(),
                media_type="message/rfc822",
            ),
            Artifact(
                channel=self.channel,
                relpath=f"newsletter/{article.key}.html",
                data=preview.encode("utf-8"),
                media_type="text/html",
            ),
        ]


__all__ = [
    "MAX_MESSAGE_BYTES",
    "WIDTH",
    "MessageTemplate",
    "NewsletterRenderer",
    "build_message",
    "list_unsubscribe",
    "message_id",
    "personalise",
    "render_message_template",
    "render_newsletter_html",
    "render_newsletter_text",
]
