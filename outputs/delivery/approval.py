"""A second person's approval of a newsletter send (``[newsletter] approval_required``, issue 15).

With approval_required, the first enqueue of a version's send records it ``awaiting``, with who
triggered the publish (``people.trigger_name``), and ``send.py`` sends an awaiting send to
nobody. Approving it takes, in order: a send of that slug that waits (``choose``), its version
live now, an approver who is not the trigger (``people.approver_problem``); then the approval is
recorded once (awaiting → approved: the guard is the UPDATE's WHERE) and the send runs as every
send does (``send_newsletter``: its lease, one message per recipient). Approving twice, or from
the CLI and the Prefect UI at once, therefore sends once. The CLI (``approve_and_send``) and the
publish flow's pause (``approve_version``) go through the same ``approve``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from clinicpress import clock
from clinicpress.checks.signoff import with_signoff
from clinicpress.errors import InputError
from clinicpress.hints import command
from clinicpress.outputs.delivery.audience import audience, live_editions
from clinicpress.outputs.delivery.people import approver_problem, person
from clinicpress.outputs.delivery.report import SendReport
from clinicpress.outputs.delivery.schema import Approval, sends
from clinicpress.outputs.delivery.send import send_newsletter
from clinicpress.outputs.delivery.store import DeliveryStore
from clinicpress.outputs.edition_texts import as_live
from clinicpress.outputs.registry import REGISTRY_FILE, registry_url
from clinicpress.outputs.release import live_reports, live_versions
from clinicpress.outputs.reviews import load_reviews
from clinicpress.outputs.subscribers import load_subscribers
from clinicpress.renderers.base import RenderContext
from clinicpress.renderers.fingerprint import template_fingerprint
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article
from clinicpress.sources.versioning import article_version

FIELD = "approve-send"


@dataclass(frozen=True)
class SendRecord:
    """A send as its approval sees it."""

    id: int
    slug: str
    version: str
    published_at: datetime
    approval: Approval
    triggered_by: str | None
    approved_by: str | None
    approved_at: datetime | None

    def what(self) -> str:
        return f"newsletter {self.slug} (version {self.version[:12]})"


@dataclass(frozen=True)
class Approved:
    send: SendRecord
    report: SendReport  # the send that followed the approval

    def summary(self) -> str:
        return self.report.summary()  # it names the approver and who published


def sends_of(store: DeliveryStore, slug: str) -> list[SendRecord]:
    """Every send of ``slug``, newest first."""
    c = sends.c
    with store.tx() as conn:
        rows = conn.execute(
            select(
                c.id,
                c.slug,
                c.version,
                c.published_at,
                c.approval,
                c.triggered_by,
                c.approved_by,
                c.approved_at,
            )
            .where(c.slug == slug)
            .order_by(c.id.desc())
        ).all()
    return [
        SendRecord(
            int(row.id),
            str(row.slug),
            str(row.version),
            row.published_at,
            Approval(row.approval),
            row.triggered_by,
            row.approved_by,
            row.approved_at,
        )
        for row in rows
    ]


def choose(found: Sequence[SendRecord], *, slug: str, version: str, live: str | None) -> SendRecord:
    """The send waiting for approval that is meant (``version``: a prefix or ""), or why none is.

    ``found``: the slug's sends, newest first; ``live``: the slug's live version, if any.
    """
    if not found:
        raise InputError(
            None, FIELD, f"no newsletter of {slug!r} was enqueued", "the slug of a published article"
        )
    matching = [f for f in found if f.version.startswith(version)]
    if not matching:
        raise InputError(
            None,
            "--version",
            f"no newsletter of {slug!r} has a version starting {version!r}",
            "a prefix of one",
        )
    current = [f for f in matching if f.version == live]
    if not current:
        now_live = f"live: {live[:12]}" if live else f"{slug} is not live"
        raise InputError(
            None,
            FIELD,
            f"{matching[0].what()} is not live any more ({now_live})",
            f"the live version's send ({command('publish')}; a new version's send waits for approval "
            "in turn)",
        )
    send = current[0]
    if send.approval is Approval.APPROVED:
        when = f" at {send.approved_at:%Y-%m-%d %H:%M} UTC" if send.approved_at else ""
        raise InputError(
            None,
            FIELD,
            f"{send.what()} was approved by {send.approved_by}{when} already; nothing to do",
            None,
        )
    if send.approval is Approval.NOT_REQUIRED:
        raise InputError(
            None, FIELD, f"{send.what()} needs no approval (enqueued without approval_required)", None
        )
    return send


def waiting_send(store: DeliveryStore, out_dir: Path, slug: str, approver: str, version: str) -> SendRecord:
    """The send ``approver`` may approve, after every check; nothing is written."""
    send = choose(sends_of(store, slug), slug=slug, version=version, live=live_versions(out_dir).get(slug))
    problem = approver_problem(approver, send.triggered_by)
    if problem is not None:
        raise InputError(None, "--by", problem, "the approver's name (not who published it)")
    return send


def record_approval(store: DeliveryStore, send: SendRecord, approver: str, at: datetime) -> SendRecord:
    """awaiting → approved, once; an InputError when someone approved it meanwhile."""
    name = person(approver)
    with store.tx() as conn:
        done = conn.execute(
            sends.update()
            .where(sends.c.id == send.id, sends.c.approval == Approval.AWAITING)
            .values(approval=Approval.APPROVED, approved_by=name, approved_at=at)
        ).rowcount
    if done != 1:
        raise InputError(
            None, FIELD, f"{send.what()} was approved by someone else meanwhile; nothing to do", None
        )
    return replace(send, approval=Approval.APPROVED, approved_by=name, approved_at=at)


def _registry(site: SiteConfig, out_dir: Path) -> str:
    default = out_dir / REGISTRY_FILE
    if site.registry.url is None and not default.exists():
        # Opening would create an empty registry in a mistyped --out.
        raise InputError(default, None, "no registry: nothing was published here", "the --out of publish")
    return registry_url(site, out_dir)


def approve_version(
    site: SiteConfig, out_dir: Path | str, slug: str, version: str, approver: str
) -> SendRecord:
    """Record ``approver``'s approval of the send of ``slug`` at ``version`` (the publish flow's form).

    The caller then runs the send (the flow: its send task, as after any release).
    """
    out = Path(out_dir)
    with DeliveryStore(_registry(site, out)) as store:
        send = waiting_send(store, out, slug, approver, version)
        return record_approval(store, send, approver, clock.now())


def article_at(
    site: SiteConfig, out_dir: Path, article: Article, version: str, content_dir: Path | None = None
) -> Article | None:
    """``article`` as it went live at ``version`` (its review line from the sign-off records, its
    editions' note and links as the publish flow renders them), or None.

    None when it is not that version any more: its text, its review, its editions, the site config
    or the templates changed since it was published. ``content_dir``: where a translation's original
    is looked for (default: the article's folder).
    """
    signed, _ = with_signoff(article, load_reviews(site, out_dir, [article.key]))
    folder = content_dir if content_dir is not None else article.path.parent
    rendered = as_live(site, out_dir, signed, folder, clock.local_now().date())
    return rendered if article_version(rendered, site, template_fingerprint()) == version else None


def approve_and_send(
    site: SiteConfig,
    out_dir: Path | str,
    slug: str,
    approver: str,
    *,
    article: Article | None,
    version: str = "",
    content_dir: Path | None = None,
    reconnect_delay: float = 0.5,
) -> Approved:
    """``clinicpress approve-send``: check, record the approval, then send (under the send's lease).

    ``article``: the article file's content for ``slug`` (None: not found); it must still be the
    live version, whose newsletter is rendered from it. Refusals are ``InputError`` (exit 2) and
    change nothing.
    """
    out = Path(out_dir)
    news = site.newsletter
    if news.smtp is None or news.subscribers is None:
        raise InputError(
            None, FIELD, "no SMTP server or subscribers configured", "[newsletter.smtp] and subscribers"
        )
    with DeliveryStore(_registry(site, out)) as store:
        send = waiting_send(store, out, slug, approver, version)
        live = None if article is None else article_at(site, out, article, send.version, content_dir)
        if live is None:
            raise InputError(
                None,
                "SLUG",
                f"the article {slug} beside the site config is not {send.what()} any more (its text, its "
                "review, the site config or the templates changed since)",
                f"{command('publish')} first; the new version's send waits for approval in turn",
            )
        everyone = list(load_subscribers(news.subscribers))  # a bad CSV: refused, nothing recorded
        recipients = audience(everyone, slug, live_editions(live_reports(out)))  # each in their language
        approved = record_approval(store, send, approver, clock.now())
    context = RenderContext(published_at=send.published_at, version=send.version)
    report = send_newsletter(
        live,
        site,
        context,
        out,
        recipients=recipients,
        smtp=news.smtp,
        reconnect_delay=reconnect_delay,
        triggered_by=send.triggered_by,
    )
    return Approved(approved, report)
