"""Every channel shows an article's local image (issue 24 part 5), and the handout fetches nothing.

The web page shows it from ``web/<slug>/images/<name>``, a file of the release under the web
root; the handout embeds the file itself (read back with pypdf: an image XObject on the page);
the email links the published copy by its absolute URL. A remote image is never fetched by the
handout (a stand-in on 127.0.0.1 counts the requests): its alt text is printed, with nothing on
stderr; the check report carries the warning (tests/sources/test_images.py).
"""

from __future__ import annotations

import email
import email.policy
import io
import logging
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urljoin

import pytest
from conftest import MINIMAL_FRONT_MATTER, WriteArticle
from httpfarm import HTTPFarm, Reply
from pngs import png
from pypdf import PdfReader

from clinicpress.checks.model import ArticleReport, Verdict
from clinicpress.outputs.publish import ReadyArticle, publish_release
from clinicpress.renderers.base import Artifact, RenderContext
from clinicpress.renderers.handout import FetchRefused, LocalOnlyURLFetcher, render_handout_pdf
from clinicpress.renderers.pool import Checked, render_and_check_here
from clinicpress.site import SiteConfig
from clinicpress.sources.article import Article
from clinicpress.sources.loader import load_article

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CONTEXT = RenderContext(published_at=AT, version="0" * 64)
SLUG = "test-article"  # MINIMAL_FRONT_MATTER's title
ALT = "A chart of weekly attendance"


def _with_image(
    write_article: WriteArticle, body: str = f"Text.\n\n![{ALT}](images/t/Chart.png)\n"
) -> Article:
    path = write_article(front_matter=MINIMAL_FRONT_MATTER, body=body)
    (path.parent / "images" / "t").mkdir(parents=True, exist_ok=True)
    (path.parent / "images" / "t" / "Chart.png").write_bytes(png(30, 20))
    return load_article(path)


def _rendered(article: Article, site: SiteConfig) -> dict[str, Artifact]:
    [checked] = render_and_check_here([(article, site, CONTEXT)])
    assert isinstance(checked, Checked)
    assert checked.problems == []
    return {a.relpath: a for a in checked.artifacts if isinstance(a, Artifact)}


def _img_srcs(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', html)


def _images_on_pages(pdf: bytes) -> list[int]:
    counts = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        xobjects = page["/Resources"].get_object().get("/XObject")
        found = [
            x
            for x in (xobjects.get_object().values() if xobjects else [])
            if x.get_object()["/Subtype"] == "/Image"
        ]
        counts.append(len(found))
    return counts


def test_every_channel_shows_a_local_image(write_article: WriteArticle, site: SiteConfig) -> None:
    article = _with_image(write_article)
    artifacts = _rendered(article, site)
    # The web page: beside it, in the release, the bytes as the article's folder holds them.
    served = f"web/{SLUG}/images/chart.png"
    assert artifacts[served].data == png(30, 20)
    page = artifacts[f"web/{SLUG}/index.html"].data.decode()
    [src] = _img_srcs(page)
    assert urljoin(f"https://root.invalid/web/{SLUG}/index.html", src) == f"https://root.invalid/{served}"
    assert f'alt="{ALT}"' in page
    # The handout embeds it: an image on the PDF's page (both editions when there are two).
    for relpath, artifact in artifacts.items():
        if relpath.startswith("handouts/"):
            assert sum(_images_on_pages(artifact.data)) >= 1, relpath
    # The email links the published copy by its absolute URL (preview and the message's HTML part).
    published = f"{site.organization.base_url}/{SLUG}/images/chart.png"
    assert _img_srcs(artifacts[f"newsletter/{SLUG}.html"].data.decode()) == [published]
    message = email.message_from_bytes(artifacts[f"newsletter/{SLUG}.eml"].data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(("html",))
    assert html_part is not None
    assert _img_srcs(html_part.get_content()) == [published]


def test_the_web_root_serves_the_image_and_drops_it_with_the_article(
    write_article: WriteArticle, site: SiteConfig, tmp_path: Path
) -> None:
    article = _with_image(write_article)
    out = tmp_path / "out"
    report = ArticleReport(path=str(article.path), slug=SLUG, verdict=Verdict.OK)
    publish_release(
        out, [ReadyArticle(article, report, "v1", list(_rendered(article, site).values()))], site, AT
    )
    assert (out / "web" / SLUG / "images" / "chart.png").read_bytes() == png(30, 20)
    # The image taken out of the article: its file leaves the web root with the next release.
    article.path.write_text(f"---\n{MINIMAL_FRONT_MATTER}---\nText.\n", encoding="utf-8")
    plain = load_article(article.path)
    publish_release(out, [ReadyArticle(plain, report, "v2", list(_rendered(plain, site).values()))], site, AT)
    assert not (out / "web" / SLUG / "images" / "chart.png").exists()


def test_the_handout_never_fetches_a_remote_image_and_prints_nothing_on_stderr(
    write_article: WriteArticle,
    site: SiteConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with HTTPFarm() as farm:
        farm.route("/x.png", Reply(200, {"Content-Type": "image/png"}, png()))
        path = write_article(body=f"Text.\n\n![A remote chart]({farm.url('/x.png')})\n")
        article = load_article(path)
        with caplog.at_level(logging.DEBUG):
            pdf = render_handout_pdf(article, site)
        assert farm.hits("/x.png", "GET") == 0
    assert _images_on_pages(pdf) == [0] * len(_images_on_pages(pdf))
    # WeasyPrint says what it could not fetch through its logger (stderr by default): nothing, here.
    # (Only the render's own loggers: a thread another test left may log meanwhile.)
    mine = [r for r in caplog.records if r.name.startswith(("weasyprint", "clinicpress.renderers"))]
    assert [r for r in mine if r.levelno >= logging.WARNING] == []
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "A remote chart" in text  # its alt text stands in


def test_a_missing_image_is_its_alt_text_in_every_channel(
    write_article: WriteArticle, site: SiteConfig
) -> None:
    article = load_article(write_article(body="Text.\n\n![A lost chart](images/none.png)\n"))
    artifacts = _rendered(article, site)
    assert not [r for r in artifacts if "/images/" in r]
    for relpath in (f"web/{SLUG}/index.html", f"newsletter/{SLUG}.html"):
        html = artifacts[relpath].data.decode()
        assert _img_srcs(html) == [], relpath
        assert "A lost chart" in html, relpath


def test_the_handout_fetcher_serves_the_articles_images_and_nothing_else(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine.png", tmp_path / "other.png"
    mine.write_bytes(png())
    other.write_bytes(png())
    fetcher = LocalOnlyURLFetcher(images={mine.resolve(): "image/png"})
    assert fetcher.fetch(mine.as_uri()) is not None
    with pytest.raises(FetchRefused):
        fetcher.fetch(other.as_uri())
