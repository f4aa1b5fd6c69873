"""Write verified, rendered articles into a new release and switch it live.

Each handout is in the release twice, under one inode: ``handouts/<slug>.pdf`` where clinicians
print it, and ``web/handouts/<slug>.pdf`` under the web root, where the article's page links it.
Both names are listed in the article's report, so they go live, are dropped and roll back together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from clinicpress.checks.model import ArticleReport
from clinicpress.errors import PublishError
from clinicpress.faults import fault_point
from clinicpress.hints import command
from clinicpress.outputs.release import RELEASES, Release, live_versions, release_ids, release_versions
from clinicpress.outputs.reports import published_report, report_relpath
from clinicpress.renderers.base import AnyArtifact, Artifact, SpooledArtifact
from clinicpress.renderers.catalog import CatalogEntry, render_catalog
from clinicpress.renderers.web import redirect_page, served_handout
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article


@dataclass(frozen=True)
class ReadyArticle:
    """An article that passed its checks, with every artifact of its channels."""

    article: Article
    report: ArticleReport
    version: str
    artifacts: list[AnyArtifact]


@dataclass(frozen=True)
class PublishedRelease:
    release_id: str | None  # None: nothing new went live
    release_dir: Path | None
    files: dict[str, list[str]]  # slug → paths under --out, report included
    already_live: list[str]  # slugs whose version a concurrent run made live first
    withdrawn: list[str] = field(default_factory=list)  # slugs taken down in this release


def _catalog(release: Release) -> list[CatalogEntry]:
    entries = []
    for relpath in release.files("reports", "*.json"):
        data = json.loads(release.read(relpath) or b"{}")
        entries.append(
            CatalogEntry(
                slug=data["slug"],
                title=data["title"],
                summary=data["summary"],
                published=date.fromisoformat(data["published"]),
                last_reviewed=date.fromisoformat(data["last_reviewed"]),
                published_at=datetime.fromisoformat(data["published_at"]),
                language=data.get("language") or "",  # reports from before issue 26 have none
                translation_of=data.get("translation_of"),
            )
        )
    return entries


def _served_copies(release: Release, artifacts: list[AnyArtifact]) -> list[SpooledArtifact]:
    """The web root's name for each handout staged in ``release`` (the same file, hard-linked)."""
    copies = []
    for artifact in artifacts:
        served = served_handout(artifact.relpath)
        if served is not None:
            staged = release.staged(artifact.relpath)
            copies.append(SpooledArtifact(artifact.channel, served, staged, artifact.media_type))
    return copies


def _previous_files(release: Release, slug: str) -> list[str]:
    old = release.read(report_relpath(slug))
    if old is None:
        return []
    channels: dict[str, list[str]] = json.loads(old).get("channels", {})
    return [path for paths in channels.values() for path in paths]


def _unredirected(release: Release, moves: Mapping[str, str], site: SiteConfig) -> list[tuple[str, Artifact]]:
    """The redirect pages still to write: each old slug whose article is live at its new slug, but
    whose page is not yet that redirect (the old article, an older redirect of a chain, or none)."""
    pages = []
    for old, new in sorted(moves.items()):
        report = release.read(report_relpath(new))
        if report is None:
            continue  # the new address is not live (blocked, held): the old page stays as it is
        title = json.loads(report).get("title") or new
        page = redirect_page(old, new, str(title), site)
        if release.read(report_relpath(old)) is not None or release.read(page.relpath) != page.data:
            pages.append((old, page))
    return pages


def _take_down(release: Release, slug: str) -> None:
    """Every file of the article, and its report, so that it is listed nowhere."""
    for stale in _previous_files(release, slug):
        release.remove(stale)
    release.remove(report_relpath(slug))


def _redirect(release: Release, old: str, page: Artifact) -> None:
    """The old address becomes a redirect page: its article's files go (the handout PDF and the
    newsletter of the old slug are not kept: a printed QR code leads to the web page, which now
    redirects to the current one), and so does its report, so it is listed nowhere."""
    _take_down(release, old)
    release.write(page.relpath, page.data)


# A second publish of the same articles waits for the first instead of failing.
LOCK_WAIT_SECONDS = 600.0


def publish_release(
    out_dir: Path,
    ready: list[ReadyArticle],
    site: SiteConfig,
    published_at: datetime,
    *,
    force: bool = False,
    redirects: Mapping[str, str] | None = None,
    withdraw: Sequence[str] = (),
) -> PublishedRelease | None:
    """All channels of every ready article go live together, or none do.

    Returns None (and writes nothing) when no article is ready. Under the lock,
    an article whose version went live meanwhile (a concurrent run of the same
    trigger) is left out, unless ``force``: one version, one release.

    ``redirects``: old slug → the slug its article moved to (sources/addresses.py). Once the new
    address is live, the old one's files go and ``web/<old>/index.html`` becomes a redirect page,
    carried into every later release (each starts as a copy of the live one).

    ``withdraw``: slugs taken down in the same release (a translation blocked past its grace, issue
    26: unlike other blocks, its live version must not stay in patients' hands).
    """
    redirects = redirects or {}
    if not ready and not withdraw:
        return None
    files: dict[str, list[str]] = {}
    release = Release(out_dir, keep=site.publishing.keep_releases, wait=LOCK_WAIT_SECONDS)
    fault_point("publish.lock")  # where a test lines up two runs of the same trigger
    with release:
        live = {} if force else live_versions(out_dir)
        already = [item.article.key for item in ready if live.get(item.article.key) == item.version]
        todo = [item for item in ready if item.article.key not in already]
        moves = {old: new for old, new in redirects.items() if old not in {i.article.key for i in ready}}
        withdrawn = [slug for slug in withdraw if release.read(report_relpath(slug)) is not None]
        if not todo and not _unredirected(release, moves, site) and not withdrawn:
            return PublishedRelease(None, None, {}, already)
        for slug in withdrawn:
            _take_down(release, slug)
        for item in todo:
            slug = item.article.key
            # A channel dropped since the last publish must not linger.
            for stale in _previous_files(release, slug):
                release.remove(stale)
            for artifact in item.artifacts:
                if isinstance(artifact, SpooledArtifact):
                    release.link(artifact.relpath, artifact.path)
                else:
                    release.write(artifact.relpath, artifact.data)
            served = _served_copies(release, item.artifacts)
            for copy in served:
                release.link(copy.relpath, copy.path)
            artifacts = [*item.artifacts, *served]
            report = published_report(
                item.report,
                item.article,
                version=item.version,
                published_at=published_at,
                artifacts=artifacts,
            )
            release.write(report_relpath(slug), report)
            files[slug] = [a.relpath for a in artifacts] + [report_relpath(slug)]
        for old, page in _unredirected(release, moves, site):
            _redirect(release, old, page)
        for artifact in render_catalog(_catalog(release), site, published_at):
            release.write(artifact.relpath, artifact.data)
        fault_point("stage")
        release_dir = release.commit()
    return PublishedRelease(release.release_id, release_dir, files, already, withdrawn)


@dataclass(frozen=True)
class RolledBack:
    release_id: str  # the new live release
    slug: str
    from_version: str
    to_version: str
    source_release: str  # where the restored files came from
    from_text: str | None = None  # the content hash of the version rolled back from (None: unknown)
    to_text: str | None = None  # and of the version restored


def _rollback_source(out_dir: Path, slug: str) -> tuple[str, str, str]:
    """(live version, version to restore, the release holding it); call with the lock held, so
    no publish can prune that release before its files are copied."""
    current = live_versions(out_dir).get(slug)
    if current is None:
        raise PublishError(f"{out_dir}: {slug!r} is not live, so it cannot be rolled back")
    for release_id in reversed(release_ids(out_dir)):
        version = release_versions(out_dir, release_id).get(slug)
        if version is not None and version != current:
            return current, version, release_id
    raise PublishError(f"{out_dir}: no earlier version of {slug!r} is kept (see {command('releases')})")


def rollback_article(out_dir: Path, slug: str, site: SiteConfig, now: datetime) -> RolledBack:
    """Make the previous version of one article live again, in a new release (one switch).

    The previous version is the newest kept release holding a different
    version of ``slug``; its files are restored as they were published.
    Which versions and which release are decided under the output folder's lock.
    """
    _rollback_source(out_dir, slug)  # refuse at once, creating nothing, when there is nothing to do
    fault_point("rollback.lock")  # where a test lets a publish prune releases first
    with Release(out_dir, keep=site.publishing.keep_releases) as release:
        # Again, under the lock: a publish may have pruned that release or changed what is live.
        current, version, release_id = _rollback_source(out_dir, slug)
        source = out_dir / RELEASES / release_id
        from_text = _content_hash(release.read(report_relpath(slug)))  # the live report, before it goes
        for stale in _previous_files(release, slug):
            release.remove(stale)
        try:
            report = (source / report_relpath(slug)).read_bytes()
            channels: dict[str, list[str]] = json.loads(report).get("channels", {})
            for relpath in [path for paths in channels.values() for path in paths]:
                # Hard links to the kept release's files: the bytes as they were published.
                release.link(relpath, source / relpath)
        except (OSError, ValueError) as exc:
            raise PublishError(f"{source}: cannot restore {slug!r} from this release ({exc})") from exc
        release.write(report_relpath(slug), report)
        for artifact in render_catalog(_catalog(release), site, now):
            release.write(artifact.relpath, artifact.data)
        release.commit()
    return RolledBack(
        release.release_id, slug, current, version, release_id, from_text, _content_hash(report)
    )


def _content_hash(report: bytes | None) -> str | None:
    """The ``content_hash`` of a published report (None: no report, or an older one without it)."""
    try:
        value = json.loads(report or b"{}").get("content_hash")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
