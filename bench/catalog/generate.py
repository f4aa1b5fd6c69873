"""A catalog of N articles derived from the reference article, citing sources on a loopback farm.

    .venv/bin/python -m bench.catalog.generate --articles 100 --out /tmp/catalog [--base-url URL]

Each article takes a random subset of the reference article's sections (in
order), repeats some to vary the length (1-5 handout pages), gets its own
title, slug and summary, and cites 3-15 sources, each cited at least once in
the body. Source URLs are ``<base-url>/paper/<k>``: a pool of 4 distinct URLs
per article, so articles share some sources (the link check deduplicates).
The site config is the reference one with loopback allowed, link-check
limits for one local host, and the archive lookup off (loopback only).
Without ``--base-url`` the benchmarks start their own farm (``tests/httpfarm.py``).
"""

from __future__ import annotations

import argparse
import random
import re
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "content" / "ketamine-therapy-substance-abuse.md"
REFERENCE_SITE = ROOT / "content" / "site.toml"

LINK_SETTINGS = """\
[checks.links]
allow_private_hosts = ["127.0.0.1"]
timeout = 10.0
concurrency = 32
per_host = 32          # the whole farm is one host: do not throttle it like a real one
min_interval = 0.0
retries = 1
max_redirects = 10
"""

TOPICS = [
    "Alcohol Use Disorder",
    "Opioid Recovery",
    "Family Support",
    "Relapse Prevention",
    "Sleep in Early Recovery",
    "Anxiety and Cravings",
    "Aftercare Planning",
    "Medication-Assisted Treatment",
    "Mindfulness Practice",
    "Nutrition During Detox",
]


@dataclass(frozen=True)
class Catalog:
    content: Path  # the folder holding site.toml and the articles
    site: Path
    articles: list[Path]
    urls: list[str]  # every distinct source URL cited


def _sections(body: str) -> tuple[str, list[str]]:
    """The intro and the ``## `` sections of the reference body, citations removed."""
    body = re.sub(r"\[\^\d+\]", "", body)
    parts = re.split(r"(?m)^(?=## )", body)
    return parts[0].strip(), [p.strip() for p in parts[1:]]


def _cite(text: str, numbers: list[int], rng: random.Random) -> str:
    """Append the citations to sentence ends of ``text`` (every number at least once)."""
    paragraphs = text.split("\n\n")
    prose = [i for i, p in enumerate(paragraphs) if p and not p.startswith(("#", "-", "*", "|", "1."))]
    for number in numbers:
        i = rng.choice(prose)
        paragraphs[i] = paragraphs[i].rstrip() + f"[^{number}]"
    return "\n\n".join(paragraphs)


def _yaml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_site(folder: Path) -> Path:
    text = REFERENCE_SITE.read_text(encoding="utf-8")
    head, _, rest = text.partition("[checks.links]")
    tail = rest[rest.index("\n[", 1) :] if "\n[" in rest else ""
    text = head + LINK_SETTINGS + tail
    text = re.sub(r"(?m)^enabled = true", "enabled = false", text)  # no Wayback lookups: loopback only
    path = folder / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def make_catalog(folder: Path, articles: int, base_url: str, seed: int = 2026) -> Catalog:
    """Write ``site.toml`` and ``articles`` Markdown files into ``folder``."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    site = write_site(folder)
    reference = REFERENCE.read_text(encoding="utf-8")
    _, front, body = reference.split("---\n", 2)
    intro, sections = _sections(body)
    distinct = max(20, articles * 4)
    today = date.today()
    paths: list[Path] = []
    used: set[str] = set()
    for n in range(articles):
        topic = TOPICS[n % len(TOPICS)]
        count = rng.randint(3, 15)
        numbers = list(range(1, count + 1))
        chosen = sorted(rng.sample(range(len(sections)), rng.randint(2, len(sections))))
        parts = [intro] + [sections[i] for i in chosen]
        # Vary the length: 1-5 handout pages (extra sections repeat, retitled).
        extra = rng.choice([0, 0, 1, 2, 4, 6])
        parts += [
            sections[rng.randrange(len(sections))].replace("## ", f"## {topic}: ", 1) for _ in range(extra)
        ]
        text = _cite("\n\n".join(parts), numbers, rng)
        sources = []
        for i in numbers:
            url = f"{base_url}/paper/{rng.randrange(distinct)}"
            used.add(url)
            sources.append(
                f"  - title: {_yaml_str(f'Study {i} on {topic.lower()} and ketamine-assisted care ({n})')}\n"
                f"    url: {url}\n"
            )
        slug = f"article-{n:04d}"
        reviewed = today - timedelta(days=rng.randint(0, 200))
        head = (
            f"title: {_yaml_str(f'{topic}: What Ketamine Therapy Can and Cannot Do ({n})')}\n"
            f"slug: {slug}\n"
            f"summary: {_yaml_str(f'What the research says about ketamine therapy for {topic.lower()}.')}\n"
            f"published: {(reviewed - timedelta(days=30)).isoformat()}\n"
            f"last_reviewed: {reviewed.isoformat()}\n"
            "sources:\n" + "".join(sources)
        )
        path = folder / f"{slug}.md"
        path.write_text(f"---\n{head}---\n{text}\n", encoding="utf-8")
        paths.append(path)
    del front  # the reference front matter is not reused: every article has its own
    return Catalog(content=folder, site=site, articles=paths, urls=sorted(used))


def touch_one(catalog: Catalog, index: int = 0) -> Path:
    """Change one article's body (a content edit): its version changes, no other's does."""
    path = catalog.articles[index]
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.rstrip("\n") + f"\n\nEdited for the benchmark ({time.time_ns()}).\n", encoding="utf-8"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base-url", default="http://127.0.0.1:8999")
    args = parser.parse_args()
    catalog = make_catalog(args.out, args.articles, args.base_url.rstrip("/"))
    print(f"{len(catalog.articles)} articles, {len(catalog.urls)} distinct sources, site: {catalog.site}")


if __name__ == "__main__":
    main()
