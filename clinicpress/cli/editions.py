"""Translated editions (issue 26): ``clinicpress translate-status``, and the edition context the
check command hands to the edition rules (checks/editions.py)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clinicpress import clock
from clinicpress.cli.common import DEFAULT_OUT, EXIT_USAGE, OutOpt, SiteOpt, VerboseOpt, app, errors, fail
from clinicpress.site import DEFAULT_SITE_PATH, SiteConfig, load_site
from clinicpress.sources.article import Article

if TYPE_CHECKING:
    from clinicpress.checks.editions import Editions, Standing


def editions_for(site: SiteConfig, out: Path, articles: list[Article], site_path: Path) -> Editions | None:
    """The originals and their published texts, when a translation is among ``articles``;
    SQLAlchemy is imported only then."""
    if not any(a.translation_of is not None for a in articles):
        return None
    from clinicpress.outputs.edition_texts import edition_context

    return edition_context(site, out, articles, site_path.parent)


def _standings(site: SiteConfig, out: Path, site_path: Path, on: date) -> list[Standing]:
    from clinicpress.checks.editions import standing
    from clinicpress.outputs.edition_texts import edition_context, everything_beside

    articles = list(everything_beside(site_path.parent).values())
    context = edition_context(site, out, articles, site_path.parent)
    if context is None:
        return []
    found = [standing(a, context, site, on) for a in articles if a.translation_of is not None]
    return sorted(found, key=lambda s: (s.original, s.language, s.slug))


@app.command("translate-status")
def translate_status(
    site: SiteOpt = DEFAULT_SITE_PATH,
    out: OutOpt = DEFAULT_OUT,
    output_format: Annotated[
        str, typer.Option("--format", help="text or json", metavar="FORMAT", case_sensitive=False)
    ] = "text",
    verbose: VerboseOpt = False,
) -> None:
    """List every translation beside the site config: current, stale since when (and the day it
    blocks), or blocked, with its original's text hash. Exit 0 whatever they are."""
    fmt = output_format.lower()
    if fmt not in ("text", "json"):
        raise fail(f"--format: {output_format!r} is not a format; expected text or json", EXIT_USAGE)
    with errors(verbose):
        config = load_site(site)
        day = clock.today()
        found = _standings(config, out, site, day)
    if fmt == "json":
        document = {"as_of": day.isoformat(), "editions": [s.as_json() for s in found]}
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    for item in found:
        text = f"text {item.original_hash[:12]}" if item.original_hash else "unknown"
        typer.echo(f"{item.slug} ({item.language}) translation of {item.original} ({text}): {item.line()}")
    counts = Counter(s.state.value for s in found)
    tally = ", ".join(f"{counts[state]} {state}" for state in ("current", "stale", "blocked"))
    typer.echo(f"{len(found)} translation(s): {tally} (as of {day.isoformat()})")
