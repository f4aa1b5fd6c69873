"""The newsletter channel: one MIME email (text + HTML) and a browser preview.

The text part comes from the Markdown tokens (``text.py``), the HTML part
from a Jinja template whose CSS is inlined by css-inline (mail clients drop
``<style>``). Headers are checked for line breaks before the message is built,
so a title with CR/LF names itself instead of failing deep in ``email``.
"""

from __future__ import annotations

import email.policy
import email.utils
from email.headerregistry import Address
from email.message import EmailMessage

import css_inline

from clinicpress.errors import RenderError
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article, Channel

from .base import Artifact, RenderContext, Renderer
from .markdown import canonical_url, css_markup, jinja_env, org_line, page_context
from .text import WIDTH, render_article_text, wrap

TEMPLATE = "newsletter.html.j2"
STYLESHEET = "newsletter.css"

# Never fetch a remote stylesheet while inlining: the email is built offline.
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_link_tags=False)


def _check_header(field: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise RenderError(f"newsletter header {field} contains a line break: {value[:80]!r}")
    return value


def list_unsubscribe(site: SiteConfig) -> str:
    """``<https://…>, <mailto:…?subject=unsubscribe>`` (RFC 2369; one-click per RFC 8058)."""
    targets = [f"<{site.newsletter.unsubscribe_url}>"]
    if site.newsletter.unsubscribe_mailto:
        targets.append(f"<mailto:{site.newsletter.unsubscribe_mailto}?subject=unsubscribe>")
    return ", ".join(targets)


def message_id(article: Article, site: SiteConfig, context: RenderContext) -> str:
    """Deterministic: the same article version always gets the same Message-ID."""
    domain = site.newsletter.from_address.rsplit("@", 1)[1]
    return f"<{article.key}.{context.version[:16]}@{domain}>"


def render_newsletter_text(article: Article, site: SiteConfig) -> str:
    """The text/plain part: the article, then the footer every newsletter carries."""
    footer = [
        "-" * 40,
        wrap(org_line(site)),
        *(wrap(lic.line()) for lic in site.licenses),
        # wrap() puts a URL that does not fit on a line of its own, unbroken.
        wrap(f"Read on the web: {canonical_url(article, site)}"),
        wrap(f"Unsubscribe: {site.newsletter.unsubscribe_url}"),
    ]
    return render_article_text(article, site) + "\n" + "\n".join(footer) + "\n"


def render_newsletter_html(article: Article, site: SiteConfig) -> str:
    """The text/html part with every style inlined (also the browser preview)."""
    template = jinja_env().get_template(TEMPLATE)
    html = template.render(
        **page_context(article, site),
        css=css_markup(STYLESHEET),
        unsubscribe_url=site.newsletter.unsubscribe_url,
    )
    result: str = _INLINER.inline(html)
    return result


def build_message(article: Article, site: SiteConfig, context: RenderContext) -> EmailMessage:
    """The email without a recipient: outputs/ adds To (and may personalise) when sending."""
    if context.published_at.tzinfo is None:
        raise RenderError("RenderContext.published_at must be timezone-aware for the Date header")
    news = site.newsletter
    headers = {
        "From name": news.from_name,
        "From address": news.from_address,
        "Reply-To": news.reply_to or "",
        "Subject": article.title,
        "List-Unsubscribe": list_unsubscribe(site),
    }
    for field, value in headers.items():
        _check_header(field, value)
    local, domain = news.from_address.rsplit("@", 1)

    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = Address(display_name=news.from_name, username=local, domain=domain)
    if news.reply_to:
        msg["Reply-To"] = news.reply_to
    msg["Subject"] = article.title
    msg["Date"] = email.utils.format_datetime(context.published_at)
    msg["Message-ID"] = message_id(article, site, context)
    msg["List-Unsubscribe"] = headers["List-Unsubscribe"]
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["MIME-Version"] = "1.0"
    msg.set_content(render_newsletter_text(article, site))
    msg.add_alternative(render_newsletter_html(article, site), subtype="html")
    # email picks a random boundary; one from the version keeps the .eml reproducible.
    msg.set_boundary(f"=_clinicpress_{context.version[:32]}")
    return msg


class NewsletterRenderer(Renderer):
    channel = Channel.NEWSLETTER

    def render(self, article: Article, site: SiteConfig, context: RenderContext) -> list[Artifact]:
        msg = build_message(article, site, context)
        html_part = msg.get_body(preferencelist=("html",))
        assert html_part is not None  # built just above
        preview = html_part.get_content()
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
    "WIDTH",
    "NewsletterRenderer",
    "build_message",
    "list_unsubscribe",
    "message_id",
    "render_newsletter_html",
    "render_newsletter_text",
]
