"""A loopback stand-in for Crossref, PubMed's E-utilities and the DOI/PubMed resolvers (tests only).

Records have the documented shapes (Crossref's "Get Retraction Watch metadata from Crossref's
API", 2025; E-utilities esummary JSON). Every DOI is a clearly fake ``10.5555/…`` on 127.0.0.1;
nothing here names a real paper. Paths::

    /crossref/works/<doi>                      Crossref work (404 for an unknown DOI)
    /crossref/works?filter=doi:A,doi:B&rows=N  Crossref work list (unknown DOIs left out; so are the
                                               429-then-ok and 500 DOIs: they are served alone)
    /eutils/esummary.fcgi?db=pubmed&id=1,2     PubMed summaries ("error" for an unknown PMID)
    /doi/<doi>                                 the DOI resolver (the link check): 200 or 404
    /pubmed/<pmid>/                            the PubMed resolver: 200
    /wayback?url=…                             an archived snapshot (the Wayback availability API);
                                               ``archive_asked`` lists every ``url`` it was asked about
    /page/<name>                               a source page (``set_page``), for quotes

Usage::

    with IntegrityStandin() as standin:
        standin.site_toml_lines()          # [checks.links]/[checks.integrity] keys pointing here
        standin.set_work(DOIS["clean"], work(...))   # change a record between monitor runs
        standin.hits("/crossref/works/10.5555/clean")
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

TITLE = "Loopback ketamine trial in substance use disorders: a randomised fake study"
OTHER_TITLE = "Sleep hygiene among loopback mice: an unrelated fake cohort"


def notice(
    kind: str, doi: str, day: date, source: str, *, record_id: int | None = None, label: str | None = None
) -> dict[str, Any]:
    """One ``updated-by`` entry as Crossref documents it."""
    entry: dict[str, Any] = {
        "updated": {
            "date-parts": [[day.year, day.month, day.day]],
            "date-time": f"{day.isoformat()}T00:00:00Z",
            "timestamp": 0,
        },
        "DOI": doi,
        "type": kind,
        "source": source,
        "label": label or kind.replace("_", " ").capitalize(),
    }
    if record_id is not None:
        entry["record-id"] = record_id
    return entry


def work(
    doi: str,
    title: str = TITLE,
    *,
    authors: Sequence[str] = ("Loopback", "Fixture"),
    year: int = 2018,
    updated_by: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A Crossref ``works/{doi}`` reply."""
    message: dict[str, Any] = {
        "DOI": doi,
        "type": "journal-article",
        "title": [title],
        "author": [{"given": "A", "family": name, "sequence": "additional"} for name in authors],
        "issued": {"date-parts": [[year]]},
        "published-online": {"date-parts": [[year, 3, 1]]},
        "container-title": ["Journal of Loopback Medicine"],
    }
    if updated_by:
        message["updated-by"] = list(updated_by)
    return {"status": "ok", "message-type": "work", "message-version": "1.0.0", "message": message}


def summary(
    pmid: str,
    title: str = TITLE,
    *,
    pubtype: Sequence[str] = ("Journal Article",),
    references: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """One PubMed esummary document."""
    doc: dict[str, Any] = {
        "uid": pmid,
        "pubdate": "2018 Mar 1",
        "epubdate": "2018 Feb 20",
        "source": "J Loopback Med",
        "authors": [{"name": "Loopback A", "authtype": "Author", "clusterid": ""}],
        "title": title + ".",
        "pubtype": list(pubtype),
    }
    if references:
        doc["references"] = list(references)
    return doc


DOIS = {
    "clean": "10.5555/clean",
    "retracted-publisher": "10.5555/retracted-publisher",
    "retracted-rw": "10.5555/retracted-rw",
    "corrected": "10.5555/corrected",
    "concern": "10.5555/concern",
    "unknown": "10.5555/unregistered",
    "busy": "10.5555/busy",
    "error": "10.5555/server-error",
    "mismatch": "10.5555/other-paper",
}
PMIDS = {"clean": "90000001", "retracted": "90000002", "erratum": "90000003", "unknown": "90000009"}


def default_works() -> dict[str, dict[str, Any]]:
    d = DOIS
    return {
        d["clean"]: work(d["clean"]),
        d["retracted-publisher"]: work(
            d["retracted-publisher"],
            updated_by=[notice("retraction", "10.5555/notice-1", date(2023, 1, 5), "publisher")],
        ),
        d["retracted-rw"]: work(
            d["retracted-rw"],
            updated_by=[
                notice(
                    "Retraction", "10.5555/notice-2", date(2024, 6, 2), "retraction-watch", record_id=48213
                )
            ],
        ),
        d["corrected"]: work(
            d["corrected"],
            updated_by=[notice("correction", "10.5555/erratum-3", date(2022, 9, 9), "publisher")],
        ),
        d["concern"]: work(
            d["concern"],
            updated_by=[
                notice(
                    "expression-of-concern",
                    "10.5555/eoc-4",
                    date(2025, 2, 1),
                    "publisher",
                    label="Expression of Concern",
                )
            ],
        ),
        d["busy"]: work(d["busy"]),
        d["mismatch"]: work(d["mismatch"], OTHER_TITLE, authors=("Elsewhere",), year=2009),
    }


def default_summaries() -> dict[str, dict[str, Any]]:
    p = PMIDS
    return {
        p["clean"]: summary(p["clean"]),
        p["retracted"]: summary(
            p["retracted"],
            pubtype=("Journal Article", "Retracted Publication"),
            references=[
                {"refsource": "J Loopback Med. 2024;1:1", "reftype": "Retraction in", "pmid": "90000102"}
            ],
        ),
        p["erratum"]: summary(
            p["erratum"],
            references=[
                {"refsource": "J Loopback Med. 2023;2:2", "reftype": "Erratum in", "pmid": "90000103"}
            ],
        ),
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: IntegrityStandin


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 5
    disable_nagle_algorithm = True  # headers and body go as two writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:
        status, headers, body = self.server.standin._answer(self.path, self.headers.get("User-Agent", ""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


_JSON = {"Content-Type": "application/json"}
_HTML = {"Content-Type": "text/html; charset=utf-8"}


class IntegrityStandin:
    """Crossref, PubMed and both resolvers on one loopback port; requests are counted."""

    def __init__(self) -> None:
        # By DOI, casefolded: DOIs are case-insensitive.
        self.works: dict[str, dict[str, Any]] = {d.casefold(): r for d, r in default_works().items()}
        self.summaries = default_summaries()
        self.busy_left = {DOIS["busy"]: 1}  # 429s to serve before the record
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.list_busy_left = 0  # 429s to serve to list requests before answering
        self.agents: list[str] = []
        self.archive_asked: list[str] = []  # the ``url`` of every /wayback request, in order
        self._hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> IntegrityStandin:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def doi_url(self, doi: str) -> str:
        return f"{self.base}/doi/{doi}"

    def pubmed_url(self, pmid: str) -> str:
        return f"{self.base}/pubmed/{pmid}/"

    def site_toml(self, text: str) -> str:
        """``text`` (a site.toml) pointing every resolver and API here, loopback allowed."""
        text = text.replace(
            "[checks.links]\n",
            f'[checks.links]\ndoi_resolver = "{self.base}/doi/"\npubmed_resolver = "{self.base}/pubmed/"\n',
            1,
        )
        text = text.replace(
            'crossref_api = "https://api.crossref.org/"', f'crossref_api = "{self.base}/crossref/"'
        )
        text = text.replace(
            'pubmed_api = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"',
            f'pubmed_api = "{self.base}/eutils/"',
        )
        text = text.replace('mailto = ""', 'mailto = "integrity-tests@example.org"', 1)
        text = text.replace(
            'endpoint = "https://archive.org/wayback/available"', f'endpoint = "{self.base}/wayback"'
        )
        return text

    # -- what it serves --------------------------------------------------------------------
    def add_works(self, works: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            self.works.update((doi.casefold(), reply) for doi, reply in works.items())

    def set_work(self, doi: str, reply: dict[str, Any]) -> None:
        with self._lock:
            self.works[doi.casefold()] = reply

    def set_page(self, name: str, body: bytes, content_type: str = "text/html; charset=utf-8") -> str:
        """Serve ``body`` at ``/page/<name>``; returns its URL."""
        with self._lock:
            self.pages[name] = (content_type, body)
        return f"{self.base}/page/{name}"

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits[path]

    def _answer(self, raw: str, agent: str) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(raw)
        path = unquote(parts.path)
        with self._lock:
            self._hits[path] += 1
            self.agents.append(agent)
            if path == "/crossref/works":
                if self.list_busy_left > 0:
                    self.list_busy_left -= 1
                    return 429, {**_JSON, "Retry-After": "1"}, b'{"status": "error"}'
                wanted = [
                    f.removeprefix("doi:")
                    for f in ",".join(parse_qs(parts.query).get("filter", [""])).split(",")
                ]
                special = {DOIS["busy"], DOIS["error"]}
                items = [
                    self.works[d.casefold()]["message"]
                    for d in wanted
                    if d.casefold() in self.works and d not in special
                ]
                message = {"total-results": len(items), "items": items, "items-per-page": len(items)}
                reply = {
                    "status": "ok",
                    "message-type": "work-list",
                    "message-version": "1.0.0",
                    "message": message,
                }
                return 200, _JSON, json.dumps(reply).encode()
            if path.startswith("/crossref/works/"):
                doi = path[len("/crossref/works/") :]
                if doi == DOIS["error"]:
                    return 500, _JSON, b'{"status": "error"}'
                if self.busy_left.get(doi, 0) > 0:
                    self.busy_left[doi] -= 1
                    return (
                        429,
                        {**_JSON, "Retry-After": "1"},
                        b'{"status": "error", "message": "rate limited"}',
                    )
                found = self.works.get(doi.casefold())
                if found is None:
                    return 404, {"Content-Type": "text/plain"}, b"Resource not found."
                return 200, _JSON, json.dumps(found).encode()
            if path == "/eutils/esummary.fcgi":
                ids = ",".join(parse_qs(parts.query).get("id", [""])).split(",")
                result: dict[str, Any] = {"uids": ids}
                for pmid in ids:
                    result[pmid] = self.summaries.get(
                        pmid, {"uid": pmid, "error": "cannot get document summary"}
                    )
                return (
                    200,
                    _JSON,
                    json.dumps({"header": {"type": "esummary", "version": "0.3"}, "result": result}).encode(),
                )
            if path.startswith("/doi/"):
                doi = path[len("/doi/") :]
                if doi.casefold() in self.works or doi == DOIS["error"]:
                    return 200, _HTML, f"<html><title>{TITLE}</title><body>{doi}</body></html>".encode()
                return 404, _HTML, b"<html><title>Error: DOI Not Found</title></html>"
            if path == "/wayback":  # the Wayback Machine's availability API: one snapshot for anything
                self.archive_asked.extend(parse_qs(parts.query).get("url", [""]))
                snapshot = {"available": True, "status": "200", "timestamp": "20240101000000",
                            "url": "http://web.archive.org/web/20240101000000/cited"}  # fmt: skip
                return 200, _JSON, json.dumps({"archived_snapshots": {"closest": snapshot}}).encode()
            if path.startswith("/page/") and path[len("/page/") :] in self.pages:
                content_type, body = self.pages[path[len("/page/") :]]
                return 200, {"Content-Type": content_type}, body
            if path.startswith("/pubmed/"):
                return 200, _HTML, f"<html><title>{TITLE}</title></html>".encode()
            return 404, {"Content-Type": "text/plain"}, b"not found"
