"""The article's main content, found by trafilatura, as simple HTML for the Markdown converter.

trafilatura (``output_format="xml"``) decides what is article and what is page furniture;
its XML keeps what its own HTML output loses (ordered lists), and is mapped here onto plain
HTML tags. Where trafilatura falls short we work around it, and say so in comments:

- a page with little text (under trafilatura's own minimum, where it flattens everything
  into one paragraph), and a page where it keeps less than half of the article container's
  words, are converted from that container (<article>, <main>, …, furniture removed);
- a space alone between two inline elements, which it drops ("onetwo"), is moved into
  the element's text, where it keeps it; captions and <cite> are given tags it keeps;
- blocks and images it left out are listed in a note, so a person can check them.
"""

from __future__ import annotations

import trafilatura
from bs4 import BeautifulSoup, Comment, Tag
from bs4.element import NavigableString

from clinicpress.sources.importer.dom import JUNK_TAGS, attr, is_furniture, text

# trafilatura's MIN_EXTRACTED_SIZE: below it, it falls back to a flat text dump.
SHORT_PAGE_CHARS = 250
# Tried in order: the first that exists (with text) holds the article, for the fallback.
_CONTAINERS: tuple[tuple[str | bool, str, str], ...] = (  # (tag, attribute, value); True: any tag
    (True, "class", "entry-content"), (True, "class", "post-content"), (True, "class", "article-content"),
    (True, "class", "article-body"), (True, "itemprop", "articleBody"), ("article", "", ""),
    ("main", "", ""), (True, "role", "main"), (True, "id", "content"), ("body", "", ""),
)  # fmt: skip
_BLOCKS = ("p", "li", "h2", "h3", "h4", "h5", "h6", "figcaption", "td", "th", "dd", "dt")
# trafilatura's XML vocabulary → HTML.
_HI = {"#b": "strong", "#i": "em", "#t": "code", "#u": "u", "#sub": "sub", "#sup": "sup"}
_INLINE_PARENTS = frozenset({"p", "item", "cell", "hi", "head", "ref", "quote", "del"})
_RENAME = {"item": "li", "row": "tr", "quote": "blockquote", "lb": "br", "main": "div"}
_KEPT_ATTRS = {"a": ("href",), "img": ("src", "alt", "title")}
_INLINE = frozenset(
    {
        "a", "abbr", "b", "cite", "code", "del", "em", "i", "img", "kbd", "mark", "q", "s", "samp",
        "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var",
    }
)  # fmt: skip


def main_content(soup: BeautifulSoup, notes: list[str]) -> BeautifulSoup:
    """The main content of ``soup`` (title, sources and license line already taken out) as HTML.

    Takes ``soup`` apart: read everything else off the page first."""
    for junk in soup.find_all(list(JUNK_TAGS)):
        junk.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    # What trafilatura would drop or flatten, said in tags it keeps: a caption is the
    # article's words, and a <cite> is the emphasis the old posts used for a quote's source.
    for caption in soup.find_all("figcaption"):
        caption.name = "p"
    for cite in soup.find_all("cite"):
        cite.name = "em"
    _hold_spaces(soup)
    page = str(soup)
    plain = _container(soup)
    for tag in list(plain.find_all(True)):
        if not tag.decomposed and is_furniture(tag):
            tag.decompose()
    plain_text = text(plain)
    if len(plain_text) < SHORT_PAGE_CHARS:
        return _fragment(plain.decode_contents())
    found = _trafilatura(page)
    kept_text = text(found) if found is not None else ""
    if found is None or len(kept_text) < 0.5 * len(plain_text):
        notes.append(
            f"trafilatura kept {len(kept_text.split())} of the article's {len(plain_text.split())} words; "
            f"the page's <{plain.name}> was converted as it stands instead: check for leftover furniture"
        )
        return _fragment(plain.decode_contents())
    # Most blocks come through whole: a set lookup first keeps this linear on a long page.
    kept_blocks = {text(tag) for tag in found.find_all(list(_BLOCKS))}
    dropped = [
        line
        for tag in plain.find_all(list(_BLOCKS))
        if (line := text(tag)) and line not in kept_blocks and line not in kept_text
    ]
    kept_images = {_src(img) for img in found.find_all("img")}
    dropped += [
        f"image {attr(img, 'alt') or _src(img)!r}"
        for img in plain.find_all("img")
        if _src(img) and _src(img) not in kept_images
    ]
    if dropped:
        shown = "; ".join(dict.fromkeys(dropped))
        notes.append(
            f"left out by the main-content extraction (check no article text is among it): {shown[:300]}"
        )
    return found


def _hold_spaces(soup: BeautifulSoup) -> None:
    """trafilatura drops a space that stands alone between two inline elements ("<b>one</b> <a>two</a>"
    comes out "onetwo"); it keeps one at the end or start of an element's text, so move it there."""
    gaps = [
        s
        for s in soup.find_all(string=True)
        if type(s) is NavigableString and s and not s.strip()  # text, not a comment or CDATA
    ]
    for gap in gaps:
        before, after = gap.previous_sibling, gap.next_sibling
        if not (isinstance(before, Tag) and isinstance(after, Tag)):
            continue
        if before.name not in _INLINE or after.name not in _INLINE:
            continue
        last = [s for s in before.descendants if type(s) is NavigableString and s.strip()]
        first = [s for s in after.descendants if type(s) is NavigableString and s.strip()]
        if last:
            last[-1].replace_with(f"{last[-1]} ")
        elif first:
            first[0].replace_with(f" {first[0]}")
        else:
            continue  # two images: nothing to hold the space, and none is needed
        gap.extract()


def _container(soup: BeautifulSoup) -> Tag:
    for name, key, value in _CONTAINERS:
        found = soup.find(name, attrs={key: value}) if key else soup.find(name)
        if isinstance(found, Tag) and text(found):
            return found
    return soup.body or soup


def _src(img: Tag) -> str:
    return (attr(img, "src") or attr(img, "data-src")).strip()


def _fragment(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "lxml")


def _trafilatura(page: str) -> BeautifulSoup | None:
    """trafilatura's main content as HTML, or None when it finds none."""
    xml = trafilatura.extract(
        page,
        output_format="xml",
        include_comments=False,  # readers' comments are not the article
        include_tables=True,
        include_images=True,
        include_links=True,
        include_formatting=True,
        deduplicate=False,
    )
    if not xml:
        return None
    main = BeautifulSoup(xml, "xml").find("main")
    if not isinstance(main, Tag) or not text(main):
        return None
    # Parents are renamed before their children: read every parent's XML name first.
    for tag, parent in [(t, t.parent.name if t.parent else "") for t in main.find_all(True)]:
        _to_html(tag, parent)
    return _fragment(main.decode_contents())


def _to_html(tag: Tag, parent: str) -> None:
    """Rename one element of trafilatura's XML to its HTML tag, keeping only the attributes we use."""
    name = tag.name
    if name == "head":
        rend = attr(tag, "rend")
        tag.name = rend if rend in ("h1", "h2", "h3", "h4", "h5", "h6") else "h3"
    elif name == "list":
        tag.name = "ol" if attr(tag, "rend") == "ol" else "ul"
    elif name == "hi":
        tag.name = _HI.get(attr(tag, "rend"), "span")
    elif name == "ref":
        tag.name = "a"
        tag["href"] = attr(tag, "target")
    elif name == "graphic":
        tag.name = "img"
    elif name == "cell":
        tag.name = "th" if attr(tag, "role") == "head" else "td"
    elif name == "code":
        # trafilatura's <code> is a code block, unless it sits in running text.
        tag.name = "code" if parent in _INLINE_PARENTS else "pre"
    else:
        tag.name = _RENAME.get(name, name)
    kept = _KEPT_ATTRS.get(tag.name, ())
    tag.attrs = {key: value for key, value in tag.attrs.items() if key in kept}
