"""Clinical sign-off bound to the exact text (issue 15, part 2).

The pure decision (checks/signoff.py) as a table; the records in the registry
(outputs/reviews.py); and the CLI end to end with ``[review] required = true`` through a real
Prefect run: approve → publish, edit → blocked naming the reviewer with the diff, approve again →
the new review line on the web page, the email and the handout PDF.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import LAST_REVIEWED, MINIMAL_FRONT_MATTER, TODAY, WriteArticle
from typer.testing import CliRunner

from clinicpress import clock
from clinicpress.checks.model import Severity
from clinicpress.checks.signoff import (
    CHECK,
    Decision,
    ReviewRecord,
    ReviewSource,
    signoff_problems,
    with_signoff,
)
from clinicpress.cli import app
from clinicpress.pdftext import read_pdf_content
from clinicpress.site import format_date, load_site
from clinicpress.sources.article import Article, Reviewer, add_months
from clinicpress.sources.loader import load_article
from clinicpress.sources.versioning import content_hash, reviewed_text

runner = CliRunner()
ANA = Reviewer(name="Ana Ruiz", credentials="MD")
BEN = Reviewer(name="Ben Okafor", credentials="DO")


def _record(
    article: Article, decision: Decision, who: Reviewer = ANA, days_ago: int = 0, n: int = 1
) -> ReviewRecord:
    return ReviewRecord(
        slug=article.key,
        content_hash=content_hash(article),
        reviewer=who,
        reviewed_on=TODAY - timedelta(days=days_ago),
        recorded_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
        decision=decision,
        comment="",
        text=reviewed_text(article),
        id=n,
    )


@pytest.fixture
def versions(write_article: WriteArticle) -> tuple[Article, Article]:
    """(reviewed, edited): one article before and after an edit of its body."""
    before = load_article(write_article(body="Ketamine can help.\nAsk your care team.\n", name="v1.md"))
    after = load_article(write_article(body="Ketamine always helps.\nAsk your care team.\n", name="v2.md"))
    return before, after


# -- the pure decision ---------------------------------------------------------------------------


def test_not_required_never_blocks(versions: tuple[Article, Article]) -> None:
    _, edited = versions
    assert signoff_problems(edited, [], required=False) == []


def test_required_without_a_record_says_no_review_recorded(versions: tuple[Article, Article]) -> None:
    reviewed, _ = versions
    [problem] = signoff_problems(reviewed, [], required=True)
    assert problem.check == CHECK
    assert problem.severity is Severity.BLOCKED
    assert "no review recorded" in problem.message
    # A record of another article is not this one's.
    other = replace(_record(reviewed, Decision.APPROVED), slug="another-article")
    assert "no review recorded" in signoff_problems(reviewed, [other], required=True)[0].message


def test_approval_of_this_exact_text_passes(versions: tuple[Article, Article]) -> None:
    reviewed, _ = versions
    assert signoff_problems(reviewed, [_record(reviewed, Decision.APPROVED)], required=True) == []


def test_an_edit_after_approval_blocks_naming_the_reviewer_and_the_diff(
    versions: tuple[Article, Article],
) -> None:
    reviewed, edited = versions
    approval = _record(reviewed, Decision.APPROVED, days_ago=3)
    [problem] = signoff_problems(edited, [approval], required=True)
    assert "Ana Ruiz, MD approved an earlier version" in problem.message
    assert content_hash(reviewed)[:12] in problem.message
    assert format_date(TODAY - timedelta(days=3)) in problem.message
    assert "-Ketamine can help." in problem.message
    assert "+Ketamine always helps." in problem.message
    assert "Ask your care team." in problem.message  # one line of context


def test_changes_requested_after_an_approval_withdraws_it(versions: tuple[Article, Article]) -> None:
    reviewed, _ = versions
    records = [
        _record(reviewed, Decision.APPROVED, n=1),
        replace(_record(reviewed, Decision.CHANGES_REQUESTED, BEN, n=2), comment="cite the trial"),
    ]
    [problem] = signoff_problems(reviewed, records, required=True)
    assert "Ben Okafor, DO requested changes to this text" in problem.message
    assert "cite the trial" in problem.message
    # …and a later approval of the same text settles it again.
    assert (
        signoff_problems(reviewed, [*records, _record(reviewed, Decision.APPROVED, n=3)], required=True) == []
    )


def test_the_diff_is_cut_short(write_article: WriteArticle) -> None:
    long_before = load_article(write_article(body="".join(f"line {i}\n\n" for i in range(40)), name="l1.md"))
    long_after = load_article(write_article(body="".join(f"row {i}\n\n" for i in range(40)), name="l2.md"))
    [problem] = signoff_problems(long_after, [_record(long_before, Decision.APPROVED)], required=True)
    assert "more diff line(s)" in problem.message
    assert len(problem.message.splitlines()) < 20


def test_the_review_line_comes_from_the_record_else_the_front_matter(
    versions: tuple[Article, Article],
) -> None:
    reviewed, edited = versions
    approval = _record(reviewed, Decision.APPROVED, days_ago=1)
    signed, source = with_signoff(reviewed, [approval])
    assert source is ReviewSource.RECORD
    assert signed.reviewed_by == ANA
    assert signed.last_reviewed == TODAY - timedelta(days=1)
    assert signed.next_review == add_months(TODAY - timedelta(days=1), 12)  # the default follows
    assert content_hash(signed) == content_hash(reviewed)  # the reviewer is not the reviewed text
    # An approval of an earlier text does not lend its reviewer to the edited one.
    fallback, source = with_signoff(edited, [approval])
    assert source is ReviewSource.FRONT_MATTER
    assert fallback is edited
    assert fallback.last_reviewed == LAST_REVIEWED


def test_a_sign_off_keeps_the_npi_the_front_matter_gives_the_same_reviewer(
    versions: tuple[Article, Article],
) -> None:
    reviewed, _ = versions
    typed = reviewed.model_copy(update={"reviewed_by": Reviewer(name="ana  ruiz", npi="1234567893")})
    signed, _ = with_signoff(typed, [_record(typed, Decision.APPROVED)])
    assert signed.reviewed_by is not None
    assert (signed.reviewed_by.name, signed.reviewed_by.npi) == ("Ana Ruiz", "1234567893")
    # Another person's NPI is not lent to the record's reviewer.
    other = reviewed.model_copy(update={"reviewed_by": Reviewer(name="Bo Lee", npi="1234567893")})
    signed, _ = with_signoff(other, [_record(other, Decision.APPROVED)])
    assert signed.reviewed_by is not None
    assert signed.reviewed_by.npi is None


def test_content_hash_covers_text_and_sources_not_dates_or_reviewer(write_article: WriteArticle) -> None:
    base = MINIMAL_FRONT_MATTER + "sources:\n  - {title: A study, url: 'https://example.org/a'}\n"
    one = load_article(write_article(front_matter=base, name="h1.md"))
    redated = load_article(
        write_article(
            front_matter=base.replace(str(LAST_REVIEWED), str(TODAY))
            + "reviewed_by: {name: Someone, credentials: RN}\n",
            name="h2.md",
        )
    )
    quoted = load_article(
        write_article(front_matter=base.replace("a'}", "a', quote: 'the passage relied on'}"), name="h3.md")
    )
    assert content_hash(one) == content_hash(redated)
    assert content_hash(one) != content_hash(quoted)
    assert "quote: the passage relied on" in reviewed_text(quoted)


# -- the records in the registry --------------------------------------------------------------


def test_records_round_trip_newest_first_and_reading_creates_no_database(
    versions: tuple[Article, Article], write_site: Callable[..., Path], tmp_path: Path
) -> None:
    from sqlalchemy import create_engine, text

    from clinicpress.outputs.registry_schema import SCHEMA_VERSION
    from clinicpress.outputs.reviews import load_reviews, record_review

    reviewed, edited = versions
    site = load_site(write_site())
    out = tmp_path / "out"
    assert load_reviews(site, out) == []
    assert not out.exists()  # `check` reads; it never creates a registry
    first = record_review(site, out, replace(_record(reviewed, Decision.APPROVED, n=1), id=None))
    second = record_review(site, out, replace(_record(edited, Decision.CHANGES_REQUESTED, BEN, n=2), id=None))
    assert (first.id, second.id) == (1, 2)
    assert load_reviews(site, out) == [second, first]
    assert load_reviews(site, out, ["nope"]) == []
    with create_engine(f"sqlite:///{out / 'registry.sqlite'}").connect() as conn:
        # Recording a review brings the registry to the current schema (the reviews table is v5's).
        assert conn.execute(text("select version from schema_info")).scalar() == SCHEMA_VERSION >= 5


# -- the CLI, end to end -------------------------------------------------------------------------


def _required_site(write_site: Callable[..., Path]) -> Path:
    path = write_site(timeout="2.0", retries="0")
    path.write_text(path.read_text() + "\n[review]\nrequired = true\n", encoding="utf-8")
    return path


def _channels_text(out: Path, slug: str) -> dict[str, str]:
    """The web page, the email's text part and the handout's pages, whitespace folded."""
    # The page as read: tags dropped (the review line wraps its dates in <time>).
    web = re.sub(r"<[^>]+>", " ", (out / "web" / slug / "index.html").read_text())
    message = email.message_from_bytes(
        (out / "newsletter" / f"{slug}.eml").read_bytes(), policy=email.policy.default
    )
    plain = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    assert plain is not None
    pdf = read_pdf_content((out / "handouts" / f"{slug}.pdf").read_bytes())
    texts = {"web": web, "email": plain.get_content(), "handout": " ".join(pdf.pages)}
    return {channel: " ".join(value.split()) for channel, value in texts.items()}


def _publish(site: Path, out: Path, article: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["publish", "--site", str(site), "--out", str(out), str(article)])
    return result.exit_code, result.stdout


def test_review_usage_errors_exit_2_in_one_line(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    write_article(name="a.md")
    site = _required_site(write_site)
    base = ["review", "test-article", "--by", "Ana Ruiz", "--credentials", "MD", "--site", str(site)]
    base += ["--out", str(tmp_path / "out")]
    neither = runner.invoke(app, base)
    both = runner.invoke(app, [*base, "--approve", "--request-changes"])
    unknown = runner.invoke(app, [*(["review", "nope", *base[2:]]), "--approve"])
    for result in (neither, both, unknown):
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1
    assert "exactly one of --approve or --request-changes" in both.stderr
    assert "no article 'nope'" in unknown.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_required_without_a_review_blocks_and_writes_nothing(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = _required_site(write_site)
    article = write_article(name="a.md")
    out = tmp_path / "out"
    code, stdout = _publish(site, out, article)
    assert code == 1, stdout
    assert "review-signoff: not signed off: no review recorded" in stdout
    assert not (out / "web").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_approve_publish_edit_blocks_approve_again_publishes_the_new_review_line(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = _required_site(write_site)
    article = write_article(body="Ketamine can help some people.\n\nAsk your care team.\n", name="a.md")
    slug = "test-article"
    out = tmp_path / "out"
    review = ["review", slug, "--site", str(site), "--out", str(out)]

    # Approved: published, and every channel prints the record's reviewer and day.
    done = runner.invoke(app, [*review, "--by", "Ana Ruiz", "--credentials", "MD", "--approve"])
    assert done.exit_code == 0, done.output
    assert f"{slug} text" in done.stdout
    assert "approved by Ana Ruiz, MD" in done.stdout
    code, stdout = _publish(site, out, article)
    assert code == 0, stdout
    assert "review line from the sign-off record" in stdout
    first_line = f"Reviewed by Ana Ruiz, MD on {format_date(clock.today())}"
    for channel, text in _channels_text(out, slug).items():
        assert first_line in text, channel
    # The report says which line was printed and where it came from: published, and `check`.
    expected = {
        "reviewed_by": "Ana Ruiz, MD",
        "last_reviewed": clock.today().isoformat(),
        "source": "sign-off record",
    }
    assert json.loads((out / "reports" / f"{slug}.json").read_text())["review_line"] == expected
    as_json = runner.invoke(
        app, ["check", "--format", "json", "--site", str(site), "--out", str(out), str(article)]
    )
    [checked] = json.loads(as_json.stdout)["articles"]
    assert checked["review_line"] == expected

    # Edited after the approval: blocked, naming the reviewer and the change.
    article.write_text(article.read_text().replace("can help some people", "cures everyone"))
    code, stdout = _publish(site, out, article)
    assert code == 1, stdout
    assert "Ana Ruiz, MD approved an earlier version" in stdout
    assert "-Ketamine can help some people." in stdout
    assert "+Ketamine cures everyone." in stdout
    # `check` says the same, and the live release is still the approved text.
    check = runner.invoke(app, ["check", "--site", str(site), "--out", str(out), str(article)])
    assert check.exit_code == 1
    assert "approved an earlier version" in check.stdout
    assert "can help some people" in (out / "web" / slug / "index.html").read_text()

    listing = runner.invoke(app, ["reviews", slug, "--site", str(site), "--out", str(out)])
    assert listing.exit_code == 0, listing.output
    assert "approved  Ana Ruiz, MD" in listing.stdout
    assert "(earlier text)" in listing.stdout

    # Approved again, by someone else: published with the new review line on all three channels.
    again = runner.invoke(
        app, [*review, "--by", "Ben Okafor", "--credentials", "DO", "--approve", "--comment", "ok now"]
    )
    assert again.exit_code == 0, again.output
    code, stdout = _publish(site, out, article)
    assert code == 0, stdout
    for channel, text in _channels_text(out, slug).items():
        assert "Reviewed by Ben Okafor, DO on" in text, channel
        assert "Ana Ruiz" not in text, channel
        assert "cures everyone" in text, channel
    listing = runner.invoke(app, ["reviews", "--site", str(site), "--out", str(out)])
    lines = listing.stdout.splitlines()
    assert "Ben Okafor, DO" in lines[0]
    assert "(current text)" in lines[0]
    assert "ok now" in lines[0]
    assert "Ana Ruiz, MD" in lines[1]


@pytest.mark.usefixtures("prefect_harness")
def test_not_required_publishes_with_the_front_matter_line_and_says_so(
    write_article: WriteArticle, write_site: Callable[..., Path], tmp_path: Path
) -> None:
    site = write_site(timeout="2.0", retries="0")
    front = MINIMAL_FRONT_MATTER + "reviewed_by: {name: Imported Author, credentials: RN}\n"
    article = write_article(front_matter=front, name="a.md")
    out = tmp_path / "out"
    code, stdout = _publish(site, out, article)
    assert code == 0, stdout
    assert "review line from the front matter" in stdout
    line = f"Reviewed by Imported Author, RN on {format_date(LAST_REVIEWED)}"
    assert line in _channels_text(out, "test-article")["web"]
    report = json.loads((out / "reports" / "test-article.json").read_text())
    assert report["review_line"] == {
        "reviewed_by": "Imported Author, RN",
        "last_reviewed": LAST_REVIEWED.isoformat(),
        "source": "front matter",
    }
