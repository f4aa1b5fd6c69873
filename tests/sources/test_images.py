"""An article's images (issue 24 part 5): imported beside the article, judged, and part of its version.

``clinicpress import`` of a page served on 127.0.0.1 (tests/httpfarm.py) downloads each image
through the one fetch into ``content/images/<slug>/`` and references it there; an image that
cannot be had (SVG, bytes that are not the type named, 404, too large, a host not allowed) is a
line in the report and keeps its remote URL. The rules of checks/images.py name the file and
the image: no alt text, a path out of the article's folder, a missing file block; a remote image
warns (the handout never fetches) and is link-checked. Editing an image makes a new version.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MINIMAL_FRONT_MATTER, WriteArticle, site_text
from httpfarm import HTTPFarm, Reply
from pngs import png
from typer.testing import CliRunner

from clinicpress.checks.images import image_problems, image_urls
from clinicpress.checks.model import Severity
from clinicpress.cli import app
from clinicpress.renderers.fingerprint import template_fingerprint
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.site import SiteConfig
from clinicpress.sources.importer import images as importer_images
from clinicpress.sources.importer import import_page, report_lines
from clinicpress.sources.loader import load_article
from clinicpress.sources.markdown import sniff_image
from clinicpress.sources.versioning import article_version

LOOPBACK = LinkCheckSettings(allow_private_hosts=["127.0.0.1"], timeout=2.0, retries=0)
HTML = {"Content-Type": "text/html; charset=utf-8"}


PAGE = """<!doctype html><html><head><title>Family therapy</title></head><body><article>
<h1>Family therapy in recovery</h1>
<p>Families heal together.</p>
<p><img src="/img/chart.png" alt="A chart of attendance"></p>
<p><img src="/img/logo.svg" alt="The clinic's logo"></p>
<p><img src="/img/fake.png" alt="Not a picture"></p>
<p><img src="/img/gone.png" alt="Gone picture"></p>
<p><img src="/img/huge.png" alt="Huge picture"></p>
<p><img src="{elsewhere}" alt="Another host"></p>
</article></body></html>"""


@pytest.fixture
def blog() -> HTTPFarm:
    with HTTPFarm() as farm:
        elsewhere = farm.url("/img/other.png").replace("127.0.0.1", "localhost")
        farm.route("/blog/family-therapy/", Reply(200, HTML, PAGE.format(elsewhere=elsewhere).encode()))
        farm.route("/img/chart.png", Reply(200, {"Content-Type": "image/png"}, png()))
        farm.route("/img/other.png", Reply(200, {"Content-Type": "image/png"}, png()))
        farm.route("/img/logo.svg", Reply(200, {"Content-Type": "image/svg+xml"}, b"<svg onload='x'></svg>"))
        farm.route("/img/fake.png", Reply(200, {"Content-Type": "image/png"}, b"<html>not an image</html>"))
        farm.route("/img/gone.png", Reply(404))
        farm.route("/img/huge.png", Reply(200, {"Content-Type": "image/png"}, png(40, 40)))
        yield farm


def test_import_downloads_images_beside_the_article_and_reports_the_rest(
    blog: HTTPFarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer_images, "MAX_IMAGE_BYTES", len(png()) + 10)  # huge.png is over it
    content = tmp_path / "content"
    result = import_page(blog.url("/blog/family-therapy/"), content_dir=content, link_settings=LOOPBACK)
    body = result.article_text.split("---\n", 2)[2]
    saved = content / "images" / "family-therapy" / "chart.png"
    assert saved.read_bytes() == png()
    assert sniff_image(saved.read_bytes()) == "image/png"
    # Referenced relatively from content/family-therapy.md: the file moves with the folder.
    assert "![A chart of attendance](images/family-therapy/chart.png)" in body
    assert blog.hits("/img/chart.png", "GET") == 1
    # Every image that could not be had keeps its remote URL and is a line of the report, with why.
    lines = "\n".join(report_lines(result))
    for path, why in [
        ("/img/logo.svg", "SVG"),
        ("/img/fake.png", "bytes are not an image"),
        ("/img/gone.png", "HTTP 404"),
        ("/img/huge.png", "larger than"),
    ]:
        assert f"]({blog.url(path)})" in body, path
        assert any(blog.url(path) in line and why in line for line in lines.splitlines()), (path, lines)
    # The image on a host the rules do not allow (localhost: loopback, not in allow_private_hosts)
    # is refused by the vetted fetch before any connection.
    assert blog.hits("/img/other.png", "GET") == 0
    assert "localhost" in lines
    assert "not allowed" in lines
    assert sorted(p.name for p in saved.parent.iterdir()) == ["chart.png"]


def test_cli_import_prints_a_failed_image_as_a_report_line_not_a_crash(
    blog: HTTPFarm, tmp_path: Path
) -> None:
    content = tmp_path / "content"
    content.mkdir()
    site = content / "site.toml"
    site.write_text(site_text(allow_private_hosts='["127.0.0.1"]'), encoding="utf-8")
    result = CliRunner().invoke(app, ["import", blog.url("/blog/family-therapy/"), "--site", str(site)])
    assert result.exit_code == 0, result.output
    assert "image not downloaded, it keeps its remote URL" in result.output
    assert blog.url("/img/gone.png") in result.output
    assert (content / "images" / "family-therapy" / "chart.png").read_bytes() == png()


def test_an_existing_article_is_refused_before_any_image_is_fetched(blog: HTTPFarm, tmp_path: Path) -> None:
    content = tmp_path / "content"
    import_page(blog.url("/blog/family-therapy/"), content_dir=content, link_settings=LOOPBACK)
    with pytest.raises(Exception, match="already exists"):
        import_page(blog.url("/blog/family-therapy/"), content_dir=content, link_settings=LOOPBACK)
    assert blog.hits("/img/chart.png", "GET") == 1


@pytest.mark.parametrize(
    ("declared", "data", "kept"),
    [
        ("image/png", png(), True),
        ("image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 16, True),
        ("image/gif", b"GIF89a" + b"\x00" * 16, True),
        ("image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", True),
        ("image/svg+xml", b"<svg/>", False),
        ("image/png", b"\xff\xd8\xff\xe0" + b"\x00" * 16, False),  # JPEG bytes named PNG
        ("text/html", png(), False),
        ("", png(), False),
    ],
)
def test_an_image_is_kept_only_when_its_type_and_its_bytes_agree(
    declared: str, data: bytes, kept: bool
) -> None:
    media_type, why = importer_images.judge_image(declared, data)
    assert (media_type is not None) is kept, why


# -- the rules (checks/images.py) --------------------------------------------------------------------


def _article(write_article: WriteArticle, body: str) -> Path:
    path = write_article(front_matter=MINIMAL_FRONT_MATTER, body=body)
    (path.parent / "images").mkdir(exist_ok=True)
    (path.parent / "images" / "chart.png").write_bytes(png())
    return path


def _problems(path: Path) -> list[tuple[Severity, str]]:
    return [(p.severity, p.message) for p in image_problems(load_article(path))]


def test_an_image_without_alt_text_blocks_naming_the_file_and_the_image(write_article: WriteArticle) -> None:
    path = _article(write_article, "Text.\n\n![](images/chart.png)\n")
    [(severity, message)] = _problems(path)
    assert severity is Severity.BLOCKED
    assert str(path) in message
    assert "images/chart.png" in message
    assert "alt text" in message
    assert _problems(_article(write_article, "Text.\n\n![A chart](images/chart.png)\n")) == []


@pytest.mark.parametrize("src", ["../../etc/passwd", "/etc/passwd", "images/../../outside.png", "out.png"])
def test_a_local_image_outside_the_article_folder_blocks(
    write_article: WriteArticle, tmp_path: Path, src: str
) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (tmp_path / "outside.png").write_bytes(png())
    (content / "out.png").symlink_to(tmp_path / "outside.png")  # a symlink that leads out
    path = write_article(body=f"Text.\n\n![A chart]({src})\n", name="content/a.md")
    [(severity, message)] = _problems(path)
    assert severity is Severity.BLOCKED
    assert str(path) in message
    assert src in message
    assert "outside the article's folder" in message or "absolute path" in message


def test_a_missing_local_image_blocks_naming_the_file_and_the_image(write_article: WriteArticle) -> None:
    path = _article(write_article, "Text.\n\n![A chart](images/nope.png)\n")
    [(severity, message)] = _problems(path)
    assert severity is Severity.BLOCKED
    assert str(path) in message
    assert "images/nope.png" in message
    assert "missing" in message


def test_a_remote_image_is_link_checked_and_warns_that_the_handout_prints_its_alt(
    write_article: WriteArticle,
) -> None:
    path = _article(
        write_article, "Text.\n\n![A chart](https://clinic.example/x.png) [a link](https://a.example/)\n"
    )
    article = load_article(path)
    assert image_urls(article) == ["https://clinic.example/x.png"]
    [(severity, message)] = _problems(path)
    assert severity is Severity.WARNING
    assert "handout" in message
    assert "https://clinic.example/x.png" in message


def test_a_local_image_of_another_type_warns(write_article: WriteArticle) -> None:
    path = _article(write_article, "Text.\n\n![A logo](images/logo.svg)\n")
    (path.parent / "images" / "logo.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    [(severity, message)] = _problems(path)
    assert severity is Severity.WARNING
    assert "images/logo.svg" in message


# -- the version --------------------------------------------------------------------------------------


def test_editing_an_image_makes_a_new_version(write_article: WriteArticle, site: SiteConfig) -> None:
    path = _article(write_article, "Text.\n\n![A chart](images/chart.png)\n")
    templates = template_fingerprint()
    before = article_version(load_article(path), site, templates)
    assert article_version(load_article(path), site, templates) == before  # stable
    (path.parent / "images" / "chart.png").write_bytes(png(rgb=(0, 0, 255)))
    assert article_version(load_article(path), site, templates) != before
