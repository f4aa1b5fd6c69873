"""The page's images, downloaded beside the article: ``content/images/<slug>/<name>`` (issue 24).

Each remote image of the converted body is fetched through the one fetch
(:class:`clinicpress.network.Fetcher`, the link checker's rules: http(s) only, every hop
vetted, the connection pinned), at most :data:`MAX_IMAGE_BYTES`, and kept only when the
server names an allowed type (PNG, JPEG, GIF, WebP; never SVG, which can carry scripts) and
the bytes' magic numbers are that type. The body then references the file relatively
(``images/<slug>/<name>``, from ``content/<slug>.md``). An image that cannot be had is a
line in the import report and keeps its remote URL: the check then verifies it like a source.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from clinicpress.network import Fetcher, FetchError, Policy, TooLarge
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.sources.markdown import IMAGE_TYPES, sniff_image

MAX_IMAGE_BYTES = 5 * 1024 * 1024  # a photo for a blog post is far smaller
IMAGES_DIR = "images"
_ACCEPT = ", ".join(IMAGE_TYPES)
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
# The image syntax as the converter writes it: ``![escaped alt](destination)`` (convert.py).
_IMAGE = re.compile(r"(!\[(?:[^\]\\]|\\.)*\])\(([^()\s]+)\)")
_NAME_CHARS = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class Got:
    """One image: its bytes and type, or why it was not kept."""

    url: str
    data: bytes | None = None
    media_type: str | None = None
    why: str | None = None


def remote_images(body: str) -> list[str]:
    """The http(s) image addresses of a converted body, in order, once each."""
    urls = (m.group(2) for m in _IMAGE.finditer(body))
    return list(dict.fromkeys(u for u in urls if urlsplit(u).scheme.lower() in ("http", "https")))


def judge_image(declared: str, data: bytes) -> tuple[str | None, str | None]:
    """(media type, None) for an image the article may keep, else (None, why): pure."""
    declared = _ALIASES.get(declared, declared)
    sniffed = sniff_image(data)
    if declared == "image/svg+xml":
        return None, "is SVG, which is not accepted (it can carry scripts); expected PNG, JPEG, GIF or WebP"
    if declared not in IMAGE_TYPES:
        return None, f"is {declared or 'of no stated type'}; expected PNG, JPEG, GIF or WebP"
    if sniffed != declared:
        found = sniffed or "not an image of an allowed type"
        return None, f"says it is {declared} but its bytes are {found}"
    return declared, None


async def _one(fetcher: Fetcher, url: str) -> Got:
    try:
        got = await fetcher.fetch(url, accept=_ACCEPT, max_bytes=MAX_IMAGE_BYTES)
    except TooLarge:
        return Got(url, why=f"is larger than {MAX_IMAGE_BYTES:,} bytes")
    except FetchError as exc:
        return Got(url, why=exc.reason)
    if got.status != 200:
        return Got(url, why=f"the server answered HTTP {got.status}")
    media_type, why = judge_image(got.content_type, got.body)
    return Got(url, got.body, media_type, why) if why is None else Got(url, why=why)


async def _all(urls: list[str], policy: Policy) -> list[Got]:
    async with Fetcher(policy) as fetcher:
        return list(await asyncio.gather(*(_one(fetcher, url) for url in urls)))


def fetch_images(urls: list[str], settings: LinkCheckSettings) -> list[Got]:
    """Every URL fetched (at once, through one fetcher) and judged."""
    return asyncio.run(_all(urls, Policy.of(settings))) if urls else []


def file_name(url: str, media_type: str) -> str:
    """``.../Family Session.JPEG?x=1`` → ``family-session.jpg``: the URL's last segment, cleaned."""
    stem = Path(unquote(urlsplit(url).path)).stem.lower()
    stem = _NAME_CHARS.sub("-", stem).strip("-_")[:60] or "image"
    return f"{stem}{IMAGE_TYPES[media_type]}"


def _write(path: Path, data: bytes) -> None:
    """Beside it, then renamed: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _place(folder: Path, name: str, data: bytes, taken: set[str], force: bool) -> str:
    """A file name in ``folder`` for ``data``: the same bytes there already are reused; a file of
    other bytes is replaced only with ``force`` (a new import of the same page), else a ``-N`` name."""
    stem, suffix = name.rsplit(".", 1)
    count = 1
    while True:
        candidate = name if count == 1 else f"{stem}-{count}.{suffix}"
        path = folder / candidate
        if candidate not in taken:
            if not path.exists() or path.read_bytes() == data:
                break
            if force and path.is_file():
                break
        count += 1
    taken.add(candidate)
    if not path.exists() or path.read_bytes() != data:
        _write(path, data)
    return candidate


def download_images(
    body: str, slug: str, content_dir: Path, settings: LinkCheckSettings, notes: list[str], *, force: bool
) -> str:
    """``body`` with each remote image downloaded to ``content_dir/images/<slug>/`` and referenced
    there; an image that cannot be had keeps its URL, with a line in ``notes``."""
    urls = remote_images(body)
    if not urls:
        return body
    folder = content_dir / IMAGES_DIR / slug
    local: dict[str, str] = {}
    taken: set[str] = set()
    for got in fetch_images(urls, settings):
        if got.data is None or got.media_type is None:
            notes.append(f"image not downloaded, it keeps its remote URL: {got.url[:160]} ({got.why})")
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            name = _place(folder, file_name(got.url, got.media_type), got.data, taken, force)
        except OSError as exc:
            notes.append(f"image not saved, it keeps its remote URL: {got.url[:160]} ({exc.strerror or exc})")
            continue
        local[got.url] = f"{IMAGES_DIR}/{slug}/{name}"
    if local:
        notes.append(f"{len(local)} image(s) downloaded into {folder}: the article references them there")

    def relink(match: re.Match[str]) -> str:
        where = local.get(match.group(2))
        return f"{match.group(1)}({where})" if where else match.group(0)

    return _IMAGE.sub(relink, body)


__all__ = ["MAX_IMAGE_BYTES", "Got", "download_images", "fetch_images", "judge_image", "remote_images"]
