"""Integrity of cited works (issue 14): parsers, verdicts, title matching, the client, end to end.

Loopback only: Crossref, PubMed and both resolvers are tests/integrity_standin.py on 127.0.0.1,
which the test site allows (``allow_private_hosts``). Every DOI is a fake ``10.5555/…``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_FRONT_MATTER, WriteArticle, site_text
from integrity_standin import DOIS, OTHER_TITLE, PMIDS, TITLE, IntegrityStandin, notice, summary, work
from pydantic import ValidationError
from typer.testing import CliRunner

from clinicpress.checks.integrity.cache import IntegrityCache
from clinicpress.checks.integrity.client import IntegrityReport, lookup_async, user_agent
from clinicpress.checks.integrity.crossref import parse_work
from clinicpress.checks.integrity.pubmed import parse_summary
from clinicpress.checks.integrity.record import Notice, Record, normalise_kind
from clinicpress.checks.integrity.titles import compare, normalise
from clinicpress.checks.integrity.verdict import classify, judge
from clinicpress.checks.model import Severity
from clinicpress.cli import app
from clinicpress.settings.integrity import IntegritySettings
from clinicpress.settings.links import LinkCheckSettings
from clinicpress.sources.identifiers import Identifier

runner = CliRunner()
RESOLVER = "https://pubmed.example/"


def _work(**kwargs: Any) -> Record:
    return parse_work(work("10.5555/x", **kwargs), key="doi:10.5555/x", shown="doi:10.5555/x")


# -- Crossref parser (pure) -------------------------------------------------------------------------


def test_crossref_reads_title_authors_years_and_a_publisher_retraction() -> None:
    record = _work(updated_by=[notice("retraction", "10.5555/n", date(2023, 1, 5), "publisher")])
    assert record.titles == (TITLE,)
    assert record.authors == ("Loopback", "Fixture")
    assert 2018 in record.years
    assert record.notices == (
        Notice(
            kind="retraction", source="publisher", doi="10.5555/n", date=date(2023, 1, 5), label="Retraction"
        ),
    )


@pytest.mark.parametrize(
    ("entry", "kind", "source", "day", "record_id"),
    [
        # Retraction Watch, spelled with a capital and a record id.
        (
            {"updated": {"date-parts": [[2024, 6, 2]]}, "DOI": "10.5555/n", "type": "Retraction",
             "source": "retraction-watch", "record-id": 48213},
            "retraction", "retraction-watch", date(2024, 6, 2), "48213",
        ),
        # Older Crossmark update: no source (the publisher deposited it), hyphenated type, year only.
        (
            {"updated": {"date-parts": [[2019]]}, "DOI": "10.5555/n", "type": "expression-of-concern"},
            "expression_of_concern", "publisher", date(2019, 1, 1), None,
        ),
        # Only a date-time; type with spaces.
        (
            {"updated": {"date-time": "2021-03-04T10:00:00Z"}, "DOI": "10.5555/n",
             "type": "Partial Retraction"},
            "partial_retraction", "publisher", date(2021, 3, 4), None,
        ),
        # A type nobody told us about: kept, never dropped.
        (
            {"DOI": "10.5555/n", "type": "reinstatement", "source": "publisher"},
            "reinstatement", "publisher", None, None,
        ),
    ],
)  # fmt: skip
def test_crossref_notice_shapes(
    entry: dict[str, Any], kind: str, source: str, day: date | None, record_id: str | None
) -> None:
    [found] = _work(updated_by=[entry]).notices
    assert (found.kind, found.source, found.date, found.record_id) == (kind, source, day, record_id)


def test_crossref_lenient_shapes() -> None:
    reply = work("10.5555/x")
    reply["message"]["updated-by"] = {"DOI": "10.5555/n", "type": "withdrawal"}  # not wrapped in a list
    record = parse_work(reply, key="k", shown="doi:10.5555/x")
    assert [n.kind for n in record.notices] == ["withdrawal"]
    reply["message"]["updated-by"] = ["garbage"]
    assert [n.kind for n in parse_work(reply, key="k", shown="s").notices] == ["unknown"]
    reply["message"]["update-to"] = [{"DOI": "10.5555/original", "type": "retraction"}]
    assert parse_work(reply, key="k", shown="s").is_notice
    reply["message"]["title"] = ["A <i>loopback</i> &amp; fake title"]
    assert parse_work(reply, key="k", shown="s").titles == ("A loopback & fake title",)


@pytest.mark.parametrize("reply", [None, [], {"status": "error"}, {"status": "ok", "message": "x"}, "text"])
def test_crossref_reply_that_is_not_a_work_is_an_error_not_clean(reply: object) -> None:
    record = parse_work(reply, key="k", shown="s")
    assert not record.answered
    assert judge(record, where="source 1").status == "unknown"


# -- PubMed parser (pure) ---------------------------------------------------------------------------


def test_pubmed_reads_pubtypes_relations_and_errors() -> None:
    reply = {
        "result": {
            "uids": ["1", "2", "3"],
            "1": summary("1"),
            "2": summary(
                "2",
                pubtype=("Journal Article", "Retracted Publication"),
                references=[{"refsource": "J. 2024", "reftype": "Retraction in", "pmid": "9"}],
            ),
            "3": {"uid": "3", "error": "cannot get document summary"},
        }
    }
    records = parse_summary(reply, ["1", "2", "3", "4"], pubmed_resolver=RESOLVER)
    assert records["1"].titles == (TITLE + ".",)
    assert records["1"].authors == ("Loopback",)
    assert records["1"].years == (2018,)
    assert records["1"].notices == ()
    # The pubtype and the relation describe one retraction: one notice, naming the notice record.
    assert [(n.kind, n.url) for n in records["2"].notices] == [("retraction", RESOLVER + "9/")]
    assert records["3"].not_found
    assert records["4"].error  # left out of the reply: unknown, never clean
    assert parse_summary({"error": "API rate limit exceeded"}, ["1"], pubmed_resolver=RESOLVER)["1"].error


def test_pubmed_notice_records_and_corrections() -> None:
    reply = {
        "result": {
            "5": summary("5", pubtype=("Retraction of Publication",)),
            "6": summary("6", references=[{"reftype": "Erratum in", "pmid": "7", "refsource": "J. 2023"}]),
            "8": summary("8", references=[{"reftype": "Comment in", "pmid": "9", "refsource": "J."}]),
        }
    }
    records = parse_summary(reply, ["5", "6", "8"], pubmed_resolver=RESOLVER)
    assert records["5"].is_notice
    assert records["5"].notices == ()
    assert judge(records["6"], where="source 1").status == "corrected"
    assert judge(records["8"], where="source 1").status == "clean"  # a comment says nothing of standing


# -- verdicts (pure) --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "severity"),
    [
        ("retraction", "retracted", Severity.BLOCKED),
        ("partial_retraction", "retracted", Severity.BLOCKED),
        ("withdrawal", "retracted", Severity.BLOCKED),
        ("removal", "retracted", Severity.BLOCKED),
        ("correction", "corrected", Severity.WARNING),
        ("erratum", "corrected", Severity.WARNING),
        ("corrigendum", "corrected", Severity.WARNING),
        ("expression_of_concern", "concern", Severity.WARNING),
        ("something_new", "unknown", Severity.WARNING),
    ],
)
def test_verdict_per_notice_kind(kind: str, status: str, severity: Severity) -> None:
    record = _work(updated_by=[notice(kind, "10.5555/n", date(2023, 1, 5), "publisher")])
    verdict = judge(record, where="source 2")
    assert (verdict.status, verdict.notice) == (status, "doi:10.5555/n")
    [problem] = verdict.problems
    assert problem.check == "integrity"
    assert problem.severity is severity
    assert problem.message.startswith("source 2 doi:10.5555/x: ")
    assert "doi:10.5555/n" in problem.message
    assert "2023-01-05" in problem.message


def test_retraction_message_names_notice_date_and_who_reported_it() -> None:
    both = [
        notice("retraction", "10.5555/n", date(2023, 1, 5), "publisher"),
        notice("Retraction", "10.5555/n", date(2023, 1, 9), "retraction-watch", record_id=7),
        notice("correction", "10.5555/c", date(2022, 1, 1), "publisher"),
    ]
    verdict = judge(_work(updated_by=both), where="source 3")
    assert verdict.status == "retracted"
    blocked, warned = verdict.problems  # one retraction reported twice is one problem; the correction too
    assert blocked.severity is Severity.BLOCKED
    assert "reported by Retraction Watch (record 7) and the publisher" in blocked.message
    assert "dated 2023-01-05" in blocked.message
    assert warned.severity is Severity.WARNING
    assert "doi:10.5555/c" in warned.message


def test_no_answer_is_unknown_with_a_warning_never_clean() -> None:
    for record in (
        Record(key="k", shown="doi:10.5555/x", registry="crossref", error="HTTP 404", not_found=True),
        Record(
            key="k", shown="doi:10.5555/x", registry="crossref", error="Crossref gave no answer: HTTP 500"
        ),
    ):
        verdict = judge(record, where="source 1")
        assert verdict.status == "unknown"
        assert [p.severity for p in verdict.problems] == [Severity.WARNING]
    assert (
        "not registered at Crossref"
        in judge(
            Record(key="k", shown="doi:10.5555/x", registry="crossref", error="HTTP 404", not_found=True),
            where="s",
        )
        .problems[0]
        .message
    )
    assert judge(_work(), where="source 1").status == "clean"


def test_kind_spellings_are_normalised() -> None:
    assert normalise_kind("Expression-of-Concern") == "expression_of_concern"
    assert normalise_kind(" partial retraction ") == "partial_retraction"
    assert normalise_kind(None) == "unknown"
    assert classify(normalise_kind("Retraction")) == "retracted"


# -- titles (pure) ----------------------------------------------------------------------------------

REGISTERED = "Efficacy of an Example Therapy in the Treatment of Loopback Use Disorders: A Systematic Review"


@pytest.mark.parametrize(
    "cited",
    [
        REGISTERED,
        "Efficacy of an example therapy in the treatment of loopback use disorders",  # shortened, other case
        "Doe AB, Roe C, Poe D. Efficacy of an Example Therapy in the Treatment of Loopback Use "
        "Disorders: A Systematic Review. J Example Med. 2018;9:277.",
        "“Efficacy of an example therapy in the treatment of loopback-use disorders — a systematic review”",
    ],
)
def test_titles_that_match(cited: str) -> None:
    match = compare(cited, [REGISTERED], ["Doe", "Roe", "Poe"], [2018])
    assert match.ok, match


def test_titles_that_do_not_match() -> None:
    match = compare(REGISTERED, ["Sleep hygiene among loopback mice: an unrelated fake cohort"])
    assert not match.title_ok
    wrong_author = compare(f"Smith AB, Doe C. {REGISTERED}. 2018.", [REGISTERED], ["Roe"], [2018])
    assert wrong_author.title_ok
    assert wrong_author.author_mismatch == "Smith"
    wrong_year = compare(f"{REGISTERED}. J Example Med. 2009;9:277.", [REGISTERED], [], [2018])
    assert wrong_year.year_mismatch == 2009


def test_normalise_drops_tags_accents_and_punctuation() -> None:
    assert normalise("Café <i>au</i> lait &amp; “coffee”: a study!") == "cafe au lait coffee a study"


# -- settings ---------------------------------------------------------------------------------------


def test_settings_defaults_and_validation() -> None:
    settings = IntegritySettings()
    assert settings.model_dump() == {
        "enabled": True,
        "crossref_api": "https://api.crossref.org/",
        "pubmed_api": "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/",
        "mailto": "",
        "cache_max_age_hours": 24,
    }
    for bad in ({"crossref_api": "https://api.crossref.org"}, {"mailto": "not-an-address"}, {"extra": 1}):
        with pytest.raises(ValidationError):
            IntegritySettings(**bad)
    assert "mailto:web@example.org" in user_agent("clinicpress/0.1", "web@example.org")


def test_site_config_integrity_table_errors_name_the_field(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        site_text().replace('crossref_api = "https://api.crossref.org/"', 'crossref_api = "ftp://x"')
    )
    result = runner.invoke(app, ["check", "--site", str(site), "--format", "json"])
    assert result.exit_code == 2
    assert "checks.integrity.crossref_api" in result.stderr


# -- the client against the stand-in ----------------------------------------------------------------


@pytest.fixture(scope="module")
def standin() -> Iterator[IntegrityStandin]:
    with IntegrityStandin() as server:
        yield server


def _settings(standin: IntegrityStandin) -> tuple[IntegritySettings, LinkCheckSettings]:
    links = LinkCheckSettings(
        allow_private_hosts=["127.0.0.1"],
        doi_resolver=f"{standin.base}/doi/",
        pubmed_resolver=f"{standin.base}/pubmed/",
        timeout=2.0,
        retries=0,
    )
    integrity = IntegritySettings(
        crossref_api=f"{standin.base}/crossref/", pubmed_api=f"{standin.base}/eutils/"
    )
    return integrity, links


def _lookup(
    standin: IntegrityStandin, idents: list[Identifier], cache: IntegrityCache | None = None, **kw: Any
) -> IntegrityReport:
    integrity, links = _settings(standin)
    links = links.model_copy(update=kw)
    return asyncio.run(
        lookup_async(idents, integrity, links, contact="web@example.org", cache=cache, backoff=0.05)
    )


def test_client_dedupes_honours_429_and_reports_unknowns(standin: IntegrityStandin) -> None:
    standin.busy_left[DOIS["busy"]] = 1
    before = standin.hits(f"/crossref/works/{DOIS['busy']}")
    idents = [
        Identifier("doi", DOIS["busy"], True),
        Identifier("doi", DOIS["busy"].upper(), True),  # DOIs are case-insensitive: one request
        Identifier("doi", DOIS["unknown"], True),
        Identifier("doi", DOIS["error"], True),
        Identifier("pmid", PMIDS["retracted"], True),
        Identifier("pmid", PMIDS["unknown"], True),
    ]
    report = _lookup(standin, idents)
    assert standin.hits(f"/crossref/works/{DOIS['busy']}") - before == 2  # 429, then the record
    status = {k: judge(r, where="source 1").status for k, r in report.records.items()}
    assert status == {
        f"doi:{DOIS['busy']}": "clean",
        f"doi:{DOIS['unknown']}": "unknown",
        f"doi:{DOIS['error']}": "unknown",
        f"pmid:{PMIDS['retracted']}": "retracted",
        f"pmid:{PMIDS['unknown']}": "unknown",
    }
    assert report.records[f"doi:{DOIS['unknown']}"].not_found
    assert not report.network_down
    assert "(mailto:web@example.org)" in standin.agents[-1]


def test_client_refuses_loopback_unless_allowed(standin: IntegrityStandin) -> None:
    before = standin.hits(f"/crossref/works/{DOIS['clean']}")
    report = _lookup(standin, [Identifier("doi", DOIS["clean"], True)], allow_private_hosts=[])
    record = report.records[f"doi:{DOIS['clean']}"]
    assert "not allowed" in (record.error or "")
    assert judge(record, where="source 1").status == "unknown"
    assert standin.hits(f"/crossref/works/{DOIS['clean']}") == before


def test_client_network_down_is_one_summary(standin: IntegrityStandin) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    links = LinkCheckSettings(allow_private_hosts=["127.0.0.1"], timeout=1.0)
    dead = f"http://127.0.0.1:{port}/"
    integrity = IntegritySettings(crossref_api=dead, pubmed_api=dead)
    idents = [Identifier("doi", DOIS["clean"], True), Identifier("pmid", PMIDS["clean"], True)]
    report = asyncio.run(lookup_async(idents, integrity, links, backoff=0.01))
    assert report.network_down
    assert report.summary is not None
    assert report.summary.startswith("network down:")
    assert all(r.network for r in report.records.values())


def test_cache_keeps_answers_not_failures(standin: IntegrityStandin, tmp_path: Path) -> None:
    cache = IntegrityCache(tmp_path / "integrity.sqlite")
    idents = [Identifier("doi", DOIS["retracted-rw"], True), Identifier("doi", DOIS["unknown"], True)]
    listed, unknown = "/crossref/works", f"/crossref/works/{DOIS['unknown']}"
    before = (standin.hits(listed), standin.hits(unknown))

    def asked() -> tuple[int, int]:
        return standin.hits(listed) - before[0], standin.hits(unknown) - before[1]

    _lookup(standin, idents, cache)
    assert asked() == (1, 1)  # one list request; the DOI it left out asked alone (404)
    again = _lookup(standin, idents, cache)
    assert asked() == (1, 2)  # the answer came from the cache, the 404 was asked again
    assert judge(again.records[f"doi:{DOIS['retracted-rw']}"], where="s").status == "retracted"
    _lookup(standin, idents, None)  # --no-cache: asked again
    assert asked() == (2, 3)


def test_client_batches_dois_and_honours_429_on_the_list(standin: IntegrityStandin) -> None:
    standin.list_busy_left = 1
    keys = ["clean", "retracted-publisher", "corrected", "concern", "mismatch"]
    before = standin.hits("/crossref/works")
    report = _lookup(standin, [Identifier("doi", DOIS[k], True) for k in keys])
    assert standin.hits("/crossref/works") - before == 2  # 429 (Retry-After: 1), then the list
    assert [judge(r, where="s").status for r in report.records.values()] == [
        "clean",
        "retracted",
        "corrected",
        "concern",
        "clean",
    ]


# -- end to end: check and publish ------------------------------------------------------------------


def _site(standin: IntegrityStandin, tmp_path: Path, **replacements: str) -> Path:
    path = tmp_path / "site.toml"
    text = site_text(allow_private_hosts='["127.0.0.1"]', timeout="2.0", retries="0", **replacements)
    path.write_text(standin.site_toml(text), encoding="utf-8")
    return path


def _article(write_article: WriteArticle, name: str, *sources: tuple[str, str]) -> Path:
    lines = "".join(f"  - title: {json.dumps(title)}\n    url: '{url}'\n" for title, url in sources)
    front = MINIMAL_FRONT_MATTER.replace("Test Article", name.title()) + f"sources:\n{lines}"
    body = "".join(f"A claim.[^{i}]\n" for i in range(1, len(sources) + 1))
    return write_article(front_matter=front, body=body, name=f"{name}.md")


def _integrity(problems: list[dict[str, str]]) -> list[dict[str, str]]:
    return [p for p in problems if p["check"] in ("integrity", "network")]


def test_check_json_reports_integrity_of_every_doi_and_pmid(
    standin: IntegrityStandin, write_article: WriteArticle, tmp_path: Path
) -> None:
    s = standin
    article = _article(
        write_article,
        "sources",
        (TITLE, s.doi_url(DOIS["clean"])),
        (f"Loopback A, Fixture B. {TITLE}. J Loopback Med. 2018;1:1.", s.doi_url(DOIS["retracted-rw"])),
        (TITLE, s.doi_url(DOIS["corrected"])),
        (TITLE, s.doi_url(DOIS["concern"])),
        (TITLE, s.doi_url(DOIS["mismatch"])),
        (TITLE, s.pubmed_url(PMIDS["retracted"])),
        ("A page that is not a DOI", f"{s.base}/pubmed/"),
    )
    result = runner.invoke(app, ["check", "--site", str(_site(s, tmp_path)), "--out", str(tmp_path / "o"),
                                 "--format", "json", str(article)])  # fmt: skip
    assert result.exit_code == 1, result.output
    [report] = json.loads(result.stdout)["articles"]
    assert report["verdict"] == "blocked"
    fields = [(link["integrity"], link["integrity_notice"]) for link in report["links"]]
    assert fields == [
        ("clean", None),
        ("retracted", "doi:10.5555/notice-2"),
        ("corrected", "doi:10.5555/erratum-3"),
        ("concern", "doi:10.5555/eoc-4"),
        ("clean", None),
        ("retracted", f"{s.base}/pubmed/90000102/"),
        (None, None),
    ]
    problems = _integrity(report["problems"])
    blocked = [p["message"] for p in problems if p["severity"] == "blocked"]
    assert blocked == [
        "source 2 doi:10.5555/retracted-rw: retracted (notice doi:10.5555/notice-2, dated 2024-06-02, "
        "reported by Retraction Watch (record 48213)); replace this source",
        f"source 6 pmid:90000002: retracted (notice {s.base}/pubmed/90000102/, reported by PubMed, "
        "J Loopback Med. 2024;1:1); replace this source",
    ]
    messages = "\n".join(p["message"] for p in problems)
    assert f"source 5 cites '{TITLE}', but doi:10.5555/other-paper is '{OTHER_TITLE}'" in messages
    assert "source 3 doi:10.5555/corrected: has a correction (notice doi:10.5555/erratum-3" in messages
    assert "source 4 doi:10.5555/concern: under an expression of concern" in messages
    assert "source 1" not in messages  # clean and matching: nothing to say


def test_check_text_shows_integrity_and_disabled_means_null(
    standin: IntegrityStandin, write_article: WriteArticle, tmp_path: Path
) -> None:
    article = _article(write_article, "one", (TITLE, standin.doi_url(DOIS["retracted-publisher"])))
    site = _site(standin, tmp_path)
    text = runner.invoke(app, ["check", "--site", str(site), "--no-cache", str(article)])
    assert text.exit_code == 1
    assert "integrity: 1 retracted" in text.stdout
    assert f"{standin.doi_url(DOIS['retracted-publisher'])} [retracted: doi:10.5555/notice-1]" in text.stdout
    assert "dated 2023-01-05, reported by the publisher" in text.stdout

    off = site.read_text().replace(
        "[checks.integrity]\nenabled = true", "[checks.integrity]\nenabled = false"
    )
    assert off != site.read_text()
    site.write_text(off)
    path = f"/crossref/works/{DOIS['retracted-publisher']}"
    before = standin.hits(path)
    result = runner.invoke(
        app, ["check", "--site", str(site), "--no-cache", "--format", "json", str(article)]
    )
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)["articles"]
    assert [(link["integrity"], link["integrity_notice"]) for link in report["links"]] == [(None, None)]
    assert standin.hits(path) == before


@pytest.mark.usefixtures("prefect_harness")
def test_publish_blocks_a_retracted_source_and_writes_nothing_of_it(
    standin: IntegrityStandin, write_article: WriteArticle, tmp_path: Path
) -> None:
    good = _article(write_article, "good", (TITLE, standin.doi_url(DOIS["clean"])))
    bad = _article(write_article, "bad", (TITLE, standin.doi_url(DOIS["retracted-publisher"])))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["publish", "--site", str(_site(standin, tmp_path)), "--out", str(out), str(good), str(bad)]
    )
    assert result.exit_code == 1, result.output
    assert "bad: blocked — nothing published" in result.stdout
    assert "good: ok — published" in result.stdout or "good: warning — published" in result.stdout
    assert (
        "retracted (notice doi:10.5555/notice-1, dated 2023-01-05, reported by the publisher)"
        in result.stdout
    )
    assert (out / "web" / "good" / "index.html").is_file()
    assert not (out / "web" / "bad").exists()
    assert not (out / "handouts" / "bad.pdf").exists()
    assert not (out / "newsletter" / "bad.eml").exists()
    assert not (out / "reports" / "bad.json").exists()
    report = json.loads((out / "reports" / "good.json").read_text())
    assert report["links"][0]["integrity"] == "clean"


# -- monitor: clean, then retracted -----------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_monitor_alerts_once_on_the_first_run_that_sees_a_retraction(
    standin: IntegrityStandin, write_article: WriteArticle, tmp_path: Path
) -> None:
    from conftest import TODAY

    from clinicpress.flows.monitor import monitor_flow
    from clinicpress.flows.publish import publish_flow

    doi = "10.5555/monitored"
    standin.set_work(doi, work(doi))
    article = _article(write_article, "watched", (TITLE, standin.doi_url(doi)))
    site, out = _site(standin, tmp_path), tmp_path / "out"
    published = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out))
    assert published.outcomes[0].published
    assert published.outcomes[0].report.links[0].integrity == "clean"

    def run() -> list[Any]:
        return monitor_flow(site_path=str(site), out_dir=str(out), today=TODAY).alerts

    try:
        assert run() == []  # clean, as at publish
        standin.set_work(
            doi,
            work(
                doi,
                updated_by=[notice("retraction", "10.5555/notice-9", date(2026, 1, 2), "retraction-watch")],
            ),
        )
        [alert] = run()  # the first run that sees it: no failures_before_alert delay
        assert alert.kind == "source.retracted"
        assert alert.title == "[clinicpress] A cited source was retracted"
        assert standin.doi_url(doi) in alert.body
        assert "notice doi:10.5555/notice-9, dated 2026-01-02, reported by Retraction Watch" in alert.body
        assert "Watched (watched) — handout" in alert.body
        assert "Reprint needed: printed handouts cite this retracted source." in alert.body
        assert (
            "Archived copy (as it was cited): https://web.archive.org/web/20240101000000/cited" in alert.body
        )
        assert run() == []  # still retracted: no second alert
    finally:
        standin.set_work(doi, work(doi))


# -- quotes -----------------------------------------------------------------------------------------

ARTICLE_PAGE = """<!doctype html><html><head><title>A fake loopback study</title></head><body>
<nav>Home · Journals · Log in</nav>
<article><h1>A fake loopback study</h1>
<p>Methods were fictional. In this made-up cohort, “ketamine-assisted therapy reduced
cravings” in most participants over twelve weeks of follow&#8209;up.</p>
<p>Limitations: the whole study is a test fixture on 127.0.0.1 and proves nothing.</p>
</article><footer>© Loopback Press</footer></body></html>"""


@pytest.mark.parametrize(
    ("quote", "found"),
    [
        ("ketamine-assisted therapy reduced cravings", True),
        ('"Ketamine assisted therapy  reduced\n cravings"', True),  # case, spaces, straight quotes
        ("ketamine‑assisted therapy reduced cravings in most participants", True),  # a non-breaking hyphen
        ("In this made-up cohort … over twelve weeks", True),  # an ellipsis for left-out words
        ("over twelve weeks … In this made-up cohort", False),  # the parts out of order
        ("ketamine-assisted therapy eliminated cravings", False),
    ],
)
def test_quote_found_normalises_both_sides(quote: str, found: bool) -> None:
    from clinicpress.checks.integrity.quotes import main_text, quote_found

    text = main_text(ARTICLE_PAGE.encode(), "text/html").text
    assert text is not None
    assert "Log in" not in text  # the page's main text, not its navigation
    assert quote_found(quote, text) is found


def test_quote_in_a_pdf_source() -> None:
    import weasyprint

    from clinicpress.checks.integrity.quotes import main_text, quote_found

    pdf = weasyprint.HTML(
        string="<p>Among fake participants, cravings fell by a made-up third.</p>"
    ).write_pdf()
    text = main_text(pdf, "application/pdf")
    assert text.kind == "pdf"
    assert text.text is not None
    assert quote_found("cravings fell by a made-up third", text.text)


def test_quote_front_matter_is_validated(write_article: WriteArticle) -> None:
    from clinicpress.errors import ArticleError
    from clinicpress.sources.loader import load_article

    front = (
        MINIMAL_FRONT_MATTER + "sources:\n  - {title: T, url: 'https://example.org/a', quote: 'too short'}\n"
    )
    with pytest.raises(ArticleError, match=r"sources\.0\.quote: .*at least 3 words"):
        load_article(write_article(front_matter=front, body="A claim.[^1]\n"))
    front = front.replace("quote: 'too short'", "quote: 'three words here'")
    assert load_article(write_article(front_matter=front, body="A claim.[^1]\n")).sources[0].quote == (
        "three words here"
    )


def test_check_warns_when_a_quote_is_not_in_its_source(
    standin: IntegrityStandin, write_article: WriteArticle, tmp_path: Path
) -> None:
    url = standin.set_page("study", ARTICLE_PAGE.encode())
    lines = (
        f"  - {{title: A fake study, url: '{url}', quote: 'ketamine-assisted therapy reduced cravings'}}\n"
        f"  - {{title: The same fake study, url: '{url}#x', quote: 'ketamine cured every participant'}}\n"
    )
    front = MINIMAL_FRONT_MATTER + f"sources:\n{lines}"
    article = write_article(front_matter=front, body="A.[^1] B.[^2]\n", name="quoted.md")
    result = runner.invoke(
        app,
        ["check", "--site", str(_site(standin, tmp_path)), "--no-cache", "--format", "json", str(article)],
    )
    [report] = json.loads(result.stdout)["articles"]
    quotes = [p for p in report["problems"] if p["check"] == "quote"]
    assert quotes == [
        {
            "check": "quote",
            "severity": "warning",
            "message": "source 2: quote 'ketamine cured every participant' is not in the source's text "
            "(html main text); check the source still says it",
        }
    ]
    assert standin.hits("/page/study") == 2  # the link check, then one read for both quotes


@pytest.mark.usefixtures("prefect_harness")
def test_monitor_alerts_once_when_a_found_quote_is_gone(
    standin: IntegrityStandin, write_article: WriteArticle, tmp_path: Path
) -> None:
    from conftest import TODAY

    from clinicpress.flows.monitor import monitor_flow
    from clinicpress.flows.publish import publish_flow
    from clinicpress.outputs.registry import Registry

    url = standin.set_page("changing", ARTICLE_PAGE.encode())
    quoted = "quote: 'reduced cravings in most participants'"
    front = MINIMAL_FRONT_MATTER + f"sources:\n  - {{title: A fake study, url: '{url}', {quoted}}}\n"
    article = write_article(front_matter=front, body="A claim.[^1]\n", name="quoting.md")
    site, out = _site(standin, tmp_path), tmp_path / "out"
    published = publish_flow(paths=[str(article)], site_path=str(site), out_dir=str(out))
    assert published.outcomes[0].published
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        [row] = registry.quotes(["test-article"])
        slug, recorded_url, quote, found, mark = row.slug, row.url, row.quote, row.found, row.fingerprint
    assert (slug, recorded_url, quote, found) == (
        "test-article",
        url,
        "reduced cravings in most participants",
        True,
    )
    assert mark is not None
    assert len(mark) == 32

    def run() -> list[Any]:
        return monitor_flow(site_path=str(site), out_dir=str(out), today=TODAY).alerts

    assert run() == []
    standin.set_page("changing", ARTICLE_PAGE.replace("reduced", "did not change").encode())
    [alert] = run()
    assert alert.kind == "source.quote-missing"
    assert '"reduced cravings in most participants"' in alert.body
    assert "Test Article (test-article) — handout" in alert.body
    assert run() == []
    with Registry(f"sqlite:///{out / 'registry.sqlite'}") as registry:
        [row] = registry.quotes(["test-article"])
        found, new_mark = row.found, row.fingerprint
    assert found is False
    assert new_mark != mark


def test_doi_and_pmid_spellings_are_looked_up_once_each(
    standin: IntegrityStandin, write_article: WriteArticle, tmp_path: Path
) -> None:
    doi, pmid = DOIS["corrected"], PMIDS["erratum"]
    article = _article(
        write_article,
        "spellings",
        (TITLE, f"doi:{doi}"),
        (TITLE, f"https://doi.org/{doi.upper()}"),
        (TITLE, f"https://dx.doi.org/{doi}"),
        (TITLE, f"pmid:{pmid}"),
        (TITLE, f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"),
    )
    before = (
        standin.hits("/crossref/works"),
        standin.hits(f"/crossref/works/{doi}"),
        standin.hits("/eutils/esummary.fcgi"),
    )
    result = runner.invoke(
        app,
        ["check", "--site", str(_site(standin, tmp_path)), "--no-cache", "--format", "json", str(article)],
    )
    [report] = json.loads(result.stdout)["articles"]
    # doi:… is https://doi.org/… once loaded: 4 distinct URLs, all checked at the stand-in's resolvers.
    assert [link["status"] for link in report["links"]] == ["ok"] * 4
    assert [link["integrity"] for link in report["links"]] == ["corrected"] * 4
    after = (
        standin.hits("/crossref/works"),
        standin.hits(f"/crossref/works/{doi}"),
        standin.hits("/eutils/esummary.fcgi"),
    )
    assert (after[0] - before[0]) + (after[1] - before[1]) == 1  # one request for the one DOI
    assert after[2] - before[2] == 1


# -- transitions (pure) -----------------------------------------------------------------------------


def test_integrity_transitions_alert_once_per_new_notice() -> None:
    from datetime import UTC, datetime

    from clinicpress.checks.transitions import Kind, integrity_transition, quote_transition

    now = datetime(2026, 11, 27, tzinfo=UTC)
    state, kinds = None, []
    for status, notice_ref in [
        ("clean", None),
        ("unknown", None),  # no answer says nothing
        ("corrected", "doi:10.5555/c1"),
        ("corrected", "doi:10.5555/c1"),  # the same notice again: no second alert
        ("corrected", "doi:10.5555/c2"),  # a new correction: a new alert
        ("unknown", None),
        ("retracted", "doi:10.5555/r"),
        ("retracted", "doi:10.5555/r"),
        ("clean", None),  # the notice went away: the state changes, nobody is paged
    ]:
        state, kind = integrity_transition(state, status, notice_ref, now)
        kinds.append(kind)
        assert len(state.state) <= 32  # the registry's state column
    assert kinds == [
        None,
        None,
        Kind.SOURCE_CORRECTED,
        None,
        Kind.SOURCE_CORRECTED,
        None,
        Kind.SOURCE_RETRACTED,
        None,
        None,
    ]
    _, kind = integrity_transition(None, "concern", "doi:10.5555/e", now)
    assert kind is Kind.SOURCE_CONCERN  # no baseline: the first run that sees it alerts

    quote_state, quote_kinds = None, []
    for found in [True, None, False, False, True, False]:
        quote_state, kind = quote_transition(quote_state, found, now)
        quote_kinds.append(kind)
    missing = Kind.SOURCE_QUOTE_MISSING
    assert quote_kinds == [None, None, missing, None, None, missing]


def test_offline_integrity_is_unknown_in_one_line(write_article: WriteArticle, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: every connection is refused
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    text = site_text(allow_private_hosts='["127.0.0.1"]', timeout="2.0", retries="0")
    text = text.replace(
        "[checks.links]\n", f'[checks.links]\ndoi_resolver = "{dead}/doi/"\npubmed_resolver = "{dead}/pm/"\n'
    )
    text = text.replace('crossref_api = "https://api.crossref.org/"', f'crossref_api = "{dead}/"')
    text = text.replace(
        'pubmed_api = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"', f'pubmed_api = "{dead}/"'
    )
    site = tmp_path / "offline.toml"
    site.write_text(text, encoding="utf-8")
    article = _article(write_article, "offline", (TITLE, "doi:10.5555/clean"), (TITLE, "pmid:90000001"))
    result = runner.invoke(app, ["check", "--site", str(site), "--no-cache", str(article)])
    assert result.exit_code == 0, result.output  # offline warns, never blocks (--strict would)
    assert "integrity: 2 unknown" in result.stdout
    assert len([line for line in result.stdout.splitlines() if "network" in line]) == 1
    assert "integrity:" not in result.stdout.replace("integrity: 2 unknown", "")  # no per-source lines
    data = json.loads(
        runner.invoke(
            app, ["check", "--site", str(site), "--no-cache", "--format", "json", str(article)]
        ).stdout
    )
    assert [link["integrity"] for link in data["articles"][0]["links"]] == ["unknown", "unknown"]


def test_every_cache_write_removes_expired_answers(tmp_path: Path) -> None:
    """Expired answers are never read again: a write clears them, so the file does not grow forever."""
    now = [1_000_000.0]
    cache = IntegrityCache(tmp_path / "integrity.sqlite", max_age_hours=1, clock=lambda: now[0])
    settings = IntegritySettings()
    old = [
        Record(key=f"doi:10.5555/old-{i}", shown=f"doi:10.5555/old-{i}", registry="crossref")
        for i in range(20)
    ]
    cache.put_many(old, settings)
    now[0] += 3601  # past the max age
    cache.put_many([Record(key="doi:10.5555/new", shown="doi:10.5555/new", registry="crossref")], settings)
    with sqlite3.connect(tmp_path / "integrity.sqlite") as conn:
        [(rows,)] = conn.execute("SELECT count(*) FROM integrity_records").fetchall()
    assert rows == 1
