"""The preview's HTML: the index, the side-by-side page and its parts, as pure functions of state.

Everything interpolated is escaped here (titles, paths, messages and URLs come from the
article file). The pages load one script, ``/_/preview.js`` (no external JS): it polls the
versions of the open page's parts and reloads only the parts that changed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape

from clinicpress.checks.collect import article_urls
from clinicpress.checks.model import Severity
from clinicpress.sources.article import Channel

from .state import CHECKING, Entry, problems_of, source_rows, verdict_label

POLL_MS = 300  # well inside the 1 s promise; a version poll costs well under a millisecond

CHANNEL_NAMES = {Channel.WEB: "Web page", Channel.HANDOUT: "Handout", Channel.NEWSLETTER: "Newsletter"}

STYLESHEET = """
:root { color-scheme: light; --line: #d0d4da; --muted: #555b66; --bad: #a40e26; --warn: #8a5300;
  --ok: #1d6b35; --bg: #f3f4f6; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 0; background: var(--bg); color: #1b1f24; line-height: 1.45; }
.bar { display: flex; gap: 1rem; align-items: baseline; padding: .5rem 1rem; background: #1b2a3a;
  color: #fff; font-size: .9rem; }
.bar a { color: #cfe3ff; }
.bar .where { color: #c7ced8; overflow-wrap: anywhere; }
main { padding: 1rem; max-width: 1800px; margin: 0 auto; }
h1 { font-size: 1.4rem; margin: 0; }
.headline { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; margin: 0 0 .25rem; }
h2 { font-size: 1.05rem; margin: 0; }
.meta { color: var(--muted); margin: 0 0 .75rem; font-size: .9rem; overflow-wrap: anywhere; }
.report { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1rem; }
.verdict { display: inline-block; padding: .1rem .6rem; border-radius: 1rem; font-weight: 600;
  background: #e6e8eb; white-space: nowrap; }
.verdict.ok { background: #dff3e4; color: var(--ok); }
.verdict.warning { background: #fff1d6; color: var(--warn); }
.verdict.blocked, .verdict.does-not-load { background: #fde2e4; color: var(--bad); }
.error { border-left: 4px solid var(--bad); background: #fff5f5; padding: .5rem .75rem; margin: .5rem 0;
  overflow-wrap: anywhere; }
.error-line { color: var(--bad); overflow-wrap: anywhere; }
.problems { margin: .5rem 0; padding-left: 1.25rem; font-size: .9rem; }
.problems .blocked { color: var(--bad); }
.problems .warning { color: var(--warn); }
table { border-collapse: collapse; width: 100%; font-size: .85rem; background: #fff; }
th, td { text-align: left; border-bottom: 1px solid var(--line); padding: .25rem .5rem; vertical-align: top; }
a.url { display: block; max-width: 60ch; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  font-size: .8rem; }
.status { font-weight: 600; white-space: nowrap; }
.status.ok, .status.skipped { color: var(--ok); }
.status.redirected, .status.unverified, .status.bot-blocked { color: var(--warn); }
.status.broken, .status.refused { color: var(--bad); }
.status.checking, .stale { color: var(--muted); font-style: italic; }
.channels { display: grid; grid-template-columns: minmax(0, 1.25fr) minmax(0, 1fr) minmax(0, 1fr);
  gap: 1rem; margin-top: 1rem; }
@media (max-width: 1100px) { .channels { grid-template-columns: minmax(0, 1fr); } }
.channel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .75rem;
  display: flex; flex-direction: column; gap: .5rem; min-width: 0; }
.channel header { display: flex; gap: .75rem; align-items: baseline; flex-wrap: wrap; }
.channel header a { font-size: .85rem; }
.channel iframe { width: 100%; border: 1px solid var(--line); background: #fff; }
.frame-tall { height: 78vh; }
.frame-half { height: 46vh; }
.frame-low { height: 30vh; }
.pages { height: 78vh; overflow: auto; background: #e4e6ea; padding: .5rem; border: 1px solid var(--line); }
.pages img { display: block; width: 100%; height: auto; margin: 0 0 .5rem; background: #fff;
  box-shadow: 0 1px 3px rgba(0,0,0,.25); }
.note { color: var(--muted); font-size: .85rem; margin: 0; }
.absent { color: var(--muted); font-style: italic; }
"""

SCRIPT = """// clinicpress preview: keep the open page current without reloading it by hand.
(function () {
  "use strict";
  var body = document.body;
  var poll = body.getAttribute("data-poll");
  var seen = JSON.parse(body.getAttribute("data-versions") || "{}");
  var delay = POLL_MS;

  function reloadFrame(frame, version) {
    var x = 0, y = 0;
    try { x = frame.contentWindow.scrollX; y = frame.contentWindow.scrollY; } catch (e) {}
    frame.addEventListener("load", function restore() {
      frame.removeEventListener("load", restore);
      try { frame.contentWindow.scrollTo(x, y); } catch (e) {}
    });
    frame.src = frame.getAttribute("data-src") + "?v=" + version;
  }

  function reloadPart(element, part) {
    fetch("part/" + part, {cache: "no-store"}).then(function (response) {
      if (!response.ok) { throw new Error(response.status); }
      return response.text();
    }).then(function (html) {
      var scroll = element.scrollTop;
      element.innerHTML = html;
      element.scrollTop = scroll;
    }).catch(function () {});
  }

  function update(part, version) {
    if (part === "page") { location.reload(); return true; }
    var elements = document.querySelectorAll("[data-part='" + part + "']");
    for (var i = 0; i < elements.length; i++) {
      if (elements[i].tagName === "IFRAME") { reloadFrame(elements[i], version); }
      else { reloadPart(elements[i], part); }
    }
    return false;
  }

  function tick() {
    fetch(poll, {cache: "no-store"}).then(function (response) {
      if (response.status === 404) { location.reload(); return null; }  // the slug changed
      return response.json();
    }).then(function (versions) {
      delay = POLL_MS;
      if (!versions) { return; }
      var keys = Object.keys(versions);
      for (var i = 0; i < keys.length; i++) {
        if (versions[keys[i]] !== seen[keys[i]] && update(keys[i], versions[keys[i]])) { return; }
      }
      seen = versions;
    }).catch(function () {
      delay = Math.min(delay * 2, 5000);  // the preview stopped: ask less often until it is back
    }).then(function () { setTimeout(tick, delay); });
  }
  if (poll) { setTimeout(tick, delay); }
})();
""".replace("POLL_MS", str(POLL_MS))


def e(value: object) -> str:
    """Escaped for HTML text and attribute values alike."""
    return escape(str(value), quote=True)


def _document(title: str, body: str, *, poll: str, versions: dict[str, int]) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(title)}</title>\n"
        '<link rel="stylesheet" href="/_/preview.css">\n'
        '<script src="/_/preview.js" defer></script>\n</head>\n'
        f'<body data-poll="{e(poll)}" data-versions="{e(json.dumps(versions))}">\n{body}</body>\n</html>\n'
    )


def _bar(where: str, *, home: bool) -> str:
    link = '<a href="/">All articles</a>' if home else "<strong>clinicpress preview</strong>"
    return f'<header class="bar">{link}<span class="where">{e(where)}</span></header>\n'


def _verdict(label: str) -> str:
    css = "checking" if label == CHECKING else label.replace(" ", "-")
    return f'<span class="verdict {e(css)}">{e(label)}</span>'


def _site_banner(site_error: str | None) -> str:
    if site_error is None:
        return ""
    return (
        f'<p class="error" role="alert"><strong>The site config does not load:</strong> {e(site_error)}. '
        "Every page shows the last config that did.</p>\n"
    )


def index_page(entries: Sequence[Entry], *, version: int, site_error: str | None = None) -> str:
    """``GET /``: every article file with its verdict, or the one line that says why it does not load."""
    rows = []
    for entry in entries:
        label = verdict_label(entry)
        if entry.article is not None and entry.slug is not None:
            name = f'<a href="/{e(entry.slug)}/">{e(entry.article.title)}</a>'
        else:
            name = f'<span class="absent">{e(entry.path.name)}</span>'
        problems = problems_of(entry)
        detail = f"{len(problems)} problem(s)" if problems else ""
        if entry.error is not None:
            detail = f'<span class="error-line">{e(entry.error)}</span>'
            label = "does not load"
        rows.append(
            f"<tr><td>{name}</td><td>{e(entry.path)}</td><td>{_verdict(label)}</td><td>{detail}</td></tr>"
        )
    table = (
        "<table>\n<thead><tr><th>Article</th><th>File</th><th>Verdict</th><th>Problems</th></tr></thead>\n"
        f"<tbody>\n{chr(10).join(rows)}\n</tbody>\n</table>\n"
        if rows
        else '<p class="absent">No articles yet: add a .md file.</p>\n'
    )
    body = (
        _bar(f"{len(entries)} article file(s)", home=False)
        + "<main>\n<h1>Articles</h1>\n"
        + '<p class="meta">Saving a file updates this list and the open previews.</p>\n'
        + _site_banner(site_error)
        + table
        + "</main>\n"
    )
    return _document("clinicpress preview", body, poll="/_/version", versions={"page": version})


def report_part(entry: Entry, *, site_error: str | None = None) -> str:
    """The check results above the channels: verdict, problems, sources with their statuses."""
    article = entry.article
    title = article.title if article is not None else entry.path.name
    channels = ", ".join(c.value for c in entry.channels)
    label = verdict_label(entry)
    note = "sources are being checked" if entry.links_pending else ""
    out = [
        f'<div class="headline"><h1>{e(title)}</h1><span>Verdict: {_verdict(label)}</span>'
        f'<span class="note">{e(note)}</span></div>\n',
        f'<p class="meta">slug {e(entry.slug)} · channels: {e(channels)}</p>\n',
    ]
    out.append(_site_banner(site_error))
    if entry.error is not None:
        out.append(
            f'<p class="error" role="alert"><strong>The file does not load:</strong> {e(entry.error)}<br>'
            "The channels below show the last version that did.</p>\n"
        )
    problems = problems_of(entry)
    for channel, message in sorted(entry.channel_errors.items()):
        out.append(f'<p class="error"><strong>{e(channel)}:</strong> {e(message)}</p>\n')
    if problems:
        items = "".join(
            f'<li class="{e(p.severity.value)}"><strong>{e(p.severity.value)}</strong> '
            f"[{e(p.check)}] {e(p.message)}</li>\n"
            for p in sorted(problems, key=lambda p: p.severity is not Severity.BLOCKED)
        )
        out.append(f'<ul class="problems">\n{items}</ul>\n')
    if article is not None:
        rows = []
        for row in source_rows(entry, article_urls(article)):
            status_css = "checking" if row.status == CHECKING else row.status
            stale = ' <span class="stale">(re-checking)</span>' if row.stale else ""
            rows.append(
                f"<tr><td>{e(row.number or '')}</td><td>{e(row.title)}"
                f'<a class="url" href="{e(row.url)}" rel="noreferrer noopener" target="_blank">'
                f'{e(row.url)}</a></td><td class="status {e(status_css)}">{e(row.status)}{stale}</td>'
                f"<td>{e(row.reason)}</td></tr>\n"
            )
        if rows:
            out.append(
                "<table>\n<thead><tr><th>#</th><th>Source</th><th>Status</th><th>Reason</th></tr>"
                f"</thead>\n<tbody>\n{''.join(rows)}</tbody>\n</table>\n"
            )
    return "".join(out)


def handout_part(entry: Entry) -> str:
    """The handout's pages as images, or why there are none yet."""
    error = entry.channel_errors.get(Channel.HANDOUT.value)
    handout = entry.handout
    out = []
    if entry.handout_pending:
        out.append('<p class="note" role="status">Rendering the handout…</p>\n')
    if error is not None and not entry.handout_pending:
        out.append(f'<p class="error">{e(error)}</p>\n')
    if handout is not None:
        version = entry.parts.get("handout", 0)
        count = len(handout.pages)
        out.extend(
            f'<img src="handout-{n}.png?v={version}" alt="Handout page {n} of {count}" width="765">\n'
            for n in range(1, count + 1)
        )
    return "".join(out)


def _channel(channel: Channel, entry: Entry, inner: str, links: str) -> str:
    name = CHANNEL_NAMES[channel]
    if channel not in entry.channels:
        inner = (
            f'<p class="absent">Not a channel of this article (channels: {e(", ".join(entry.channels))}).</p>'
        )
        links = ""
    return (
        f'<section class="channel {channel.value}" aria-label="{e(name)}">\n'
        f"<header><h2>{e(name)}</h2>{links}</header>\n{inner}\n</section>\n"
    )


def _frame(part: str, src: str, title: str, version: int, size: str) -> str:
    # sandbox without allow-scripts: the channels run no script; same origin keeps the scroll on refresh.
    return (
        f'<iframe class="{size}" title="{e(title)}" data-part="{e(part)}" data-src="{e(src)}" '
        f'src="{e(src)}?v={version}" sandbox="allow-same-origin"></iframe>'
    )


def article_page(entry: Entry, *, site_error: str | None = None) -> str:
    """``GET /<slug>/``: the check results, then the three channels side by side."""
    versions = entry.versions()
    web = _channel(
        Channel.WEB,
        entry,
        _frame("web", "web", "The web page", versions["web"], "frame-tall"),
        '<a href="web" target="_blank">open alone</a>',
    )
    handout = _channel(
        Channel.HANDOUT,
        entry,
        f'<div class="pages" data-part="handout">{handout_part(entry)}</div>',
        '<a href="handout.pdf" target="_blank">PDF</a>',
    )
    email = _channel(
        Channel.NEWSLETTER,
        entry,
        _frame("email", "email", "The newsletter email, HTML part", versions["email"], "frame-half")
        + '\n<h3 class="note">Text part</h3>\n'
        + _frame("email", "email.txt", "The newsletter email, text part", versions["email"], "frame-low"),
        '<a href="email" target="_blank">HTML</a> <a href="email.txt" target="_blank">text</a>',
    )
    title = entry.article.title if entry.article is not None else entry.path.name
    body = (
        _bar(str(entry.path), home=True)
        + "<main>\n"
        + '<section class="report" data-part="report" aria-live="polite">\n'
        + report_part(entry, site_error=site_error)
        + "</section>\n"
        + f'<div class="channels">\n{web}{handout}{email}</div>\n'
        + "</main>\n"
    )
    return _document(f"Preview: {title}", body, poll="version", versions=versions)


def message_page(title: str, message: str, *, version: int | None = None) -> str:
    """A 404 or other one-message page, with the way back to the index.

    With ``version`` (the preview's), it reloads itself when articles change: a slug typed
    back into the file brings its page back.
    """
    body = (
        _bar(title, home=True)
        + f'<main>\n<h1>{e(title)}</h1>\n<p>{e(message)}</p>\n<p><a href="/">All articles</a></p>\n</main>\n'
    )
    if version is None:
        return _document(title, body, poll="", versions={})
    return _document(title, body, poll="/_/version", versions={"page": version})


def channel_error_page(channel: str, message: str) -> str:
    """What a channel's frame shows when there is nothing to show: why."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Not shown</title></head>'
        f'<body style="font-family: sans-serif; padding: 1rem"><p><strong>The {e(channel)}:</strong> '
        f"{e(message)}</p></body></html>\n"
    )
