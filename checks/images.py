"""The rules for an article's images (issue 24 part 5): what blocks, what warns, what is link-checked.

An image is judged from the one parse of the body (``sources/markdown.py``: :func:`body_images`)
and, for a local one, from where its file is (:func:`locate_image`, which never looks outside
the article's folder). :func:`judge` is pure: the facts in, the problems out.

- no alt text: blocked (a reader who cannot see the image gets nothing, and health content
  must not depend on a picture);
- a local path that is absolute or leads outside the article's folder (``..``, a symlink): blocked;
- a local file that is missing: blocked;
- a local file that is not PNG, JPEG, GIF or WebP by its bytes: a warning (no channel shows it;
  its alt text stands in);
- a remote image: link-checked like a source (:func:`image_urls`), and a warning, since the
  handout never fetches anything and prints its alt text instead;
- any other address (``ftp:``, ``c:/…``): blocked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from clinicpress.checks.model import Check, Problem, Severity
from clinicpress.sources.article import Article
from clinicpress.sources.markdown import BodyImage, LocalImage, article_images, body_images

CHECK = Check.IMAGES
SHOWN = 120


def _shown(src: str) -> str:
    return src if len(src) <= SHOWN else src[: SHOWN - 1] + "…"


def judge(file: str, images: Sequence[BodyImage], located: Mapping[str, LocalImage]) -> list[Problem]:
    """The problems of the images of the article in ``file`` (pure: ``located`` holds the facts)."""
    problems: list[Problem] = []

    def add(severity: Severity, image: BodyImage, what: str) -> None:
        message = f"{file}, line {image.line}: image {_shown(image.src)!r} {what}"
        problems.append(Problem(check=CHECK, severity=severity, message=message))

    for image in images:
        if not image.alt:
            add(Severity.BLOCKED, image, "has no alt text; expected ![what it shows](…)")
        if image.remote:
            add(
                Severity.WARNING,
                image,
                "is remote: the handout fetches nothing and prints its alt text instead "
                "(clinicpress import downloads images beside the article)",
            )
        elif image.src.startswith("data:"):
            continue  # embedded in the article itself: every channel shows it as it is
        elif not image.local:
            add(Severity.BLOCKED, image, "is neither a file beside the article nor an http(s) URL")
        elif (found := located.get(image.src)) is None:
            add(Severity.BLOCKED, image, "was not looked for")  # a caller's mistake: fail closed
        elif found.problem is not None:
            add(Severity.BLOCKED, image, found.problem)
        elif found.media_type is None:
            add(
                Severity.WARNING,
                image,
                "is not a PNG, JPEG, GIF or WebP file (by its bytes): no channel shows it, "
                "its alt text stands in",
            )
    return problems


def image_problems(article: Article) -> list[Problem]:
    """:func:`judge` of one article, its local files looked up beside it."""
    images = body_images(article.body, len(article.sources))
    if not images:
        return []
    located = article_images(article.body, len(article.sources), article.path)
    return judge(str(article.path), images, located)


def image_urls(article: Article) -> list[str]:
    """The remote images' URLs: verified like a source by the link check."""
    return [image.src for image in body_images(article.body, len(article.sources)) if image.remote]


__all__ = ["CHECK", "image_problems", "image_urls", "judge"]
