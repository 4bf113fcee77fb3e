"""HTML -> structured text: the main content of a page, without the site around it.

Documentation generators wrap each page's content in navigation, sidebars, breadcrumbs,
footers, "edit this page" links and heading permalinks ("¶", "#"). This module finds the
content root the way the generators mark it (Sphinx `role="main"`, MkDocs Material's
`md-content`, Docusaurus' `theme-doc-markdown`, mdBook's and Hugo's `<main>`, any
`<article>`), drops the chrome, and emits headings (with their anchor ids), prose and code
(exact text, indentation kept) into a `TextBuilder`.

Pages are lxml trees (`parse_html`), read the way BeautifulSoup reads them (bs4 built the
same trees from libxml2's parser's events, some 25x slower): a string is an element's
`.text` or `.tail`; comments and processing instructions are nodes whose own text is never
read, but the text after them is; `_strings` leaves out what bs4's `get_text()` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from typing import Any

from lxml import etree

from index.structure import TextBuilder

Tag = etree._Element  # an element of a page; comments are nodes too (`_is_tag` tells)

# bs4 gives the strings inside these their own types, which its get_text() leaves out.
_STRING_CONTAINERS = frozenset({"script", "style", "template", "rt", "rp"})
# Where bs4 keeps whitespace-only strings as they are (elsewhere: one " " or "\n").
_PRESERVE_WHITESPACE = ("pre", "textarea")
_ASCII_SPACES = " \n\t\f\r"


def parse_html(markup: str) -> Tag:
    """The page's tree (its <html> element), as libxml2's HTML parser builds it.

    Parsed from UTF-8 bytes with the encoding given: lxml refuses a str that declares an
    encoding (XHTML's `<?xml ... encoding=...?>`), and the bytes' own declaration or <meta>
    charset must not override the decoding the loader chose."""
    parser = etree.HTMLParser(encoding="utf-8", huge_tree=True)
    doc = etree.fromstring(markup.encode("utf-8"), parser)
    if doc is None:  # empty markup
        doc = etree.Element("html")
    _collapse_blank_strings(doc)
    return doc


def _collapse_blank_strings(doc: Tag) -> None:
    """A string of ASCII whitespace only becomes "\n" (if it has one) or " ", except in
    <pre> and <textarea>: as bs4 stores it (lengths of text and get_text(" ") depend on it)."""
    kept = {e for pre in doc.iter(*_PRESERVE_WHITESPACE) for e in pre.iter()}
    for node in doc.iter():
        text = node.text
        if text and isinstance(node.tag, str) and not text.strip(_ASCII_SPACES):
            if node not in kept:
                blank = "\n" if "\n" in text else " "
                if text != blank:
                    node.text = blank
        tail = node.tail
        if tail and not tail.strip(_ASCII_SPACES):
            parent = node.getparent()
            if parent is None or parent not in kept:
                blank = "\n" if "\n" in tail else " "
                if tail != blank:
                    node.tail = blank


def _strings(
    root: Tag, skip: Collection[str] = _STRING_CONTAINERS, *, br: str = ""
) -> Iterator[str]:
    """The strings under `root` in document order (bs4's `descendants` that are strings),
    none of those inside a `skip` element; `br` (if given) where a <br> is. Comments' own
    text is not a string. A loop, not recursion: a page may nest thousands deep."""
    if root.text and isinstance(root.tag, str) and root.tag not in skip:
        yield root.text
    stack: list[tuple[Iterator[Tag], str | None]] = [(iter(root), None)]
    while stack:
        children, tail = stack[-1]
        for node in children:
            if isinstance(node.tag, str) and node.tag not in skip:
                if br and node.tag == "br":
                    yield br
                if node.text:
                    yield node.text
                if len(node):
                    stack.append((iter(node), node.tail))  # its tail after its children
                    break
            if node.tail:
                yield node.tail
        else:
            stack.pop()
            if tail:
                yield tail


_TEXT = etree.XPath("string()", smart_strings=False)


def get_text(tag: Tag, separator: str = "", *, strip: bool = False) -> str:
    """bs4's `tag.get_text(separator, strip=strip)`: no comments, nor what scripts, styles,
    templates and ruby annotations hold."""
    if next(tag.iterancestors(*_STRING_CONTAINERS), None) is not None:
        return ""
    if strip:
        return separator.join(s for s in (s.strip() for s in _strings(tag)) if s)
    if not separator and next(tag.iter(*_STRING_CONTAINERS), None) is None:
        # Nothing to leave out but comments' text, which libxml2's text output leaves out
        # too: one C call for the long texts (a content root's, a candidate's).
        return _TEXT(tag)
    return separator.join(_strings(tag))


def _is_tag(node: Tag) -> bool:
    return isinstance(node.tag, str)


def _remove(tag: Tag) -> None:
    """bs4's decompose() or extract(): `tag` leaves its parent, the text after it stays, and
    stays a string of its own (a comment holds its place: get_text(" ") would join the text
    around it, as lxml's own drop_tree() does)."""
    parent = tag.getparent()
    if parent is None:
        return
    if tag.tail:
        mark = etree.Comment()
        mark.tail, tag.tail = tag.tail, None
        parent.replace(tag, mark)
    else:
        parent.remove(tag)


# Never content, wherever they are.
_DROP_TAGS = frozenset(
    "script style nav footer form noscript iframe svg template button select input label dialog".split()
)
# Class / id / role words that mark page chrome in the common generators' themes.
_CHROME = re.compile(
    r"""(?:^|[\s_-])(?:
        headerlink|hash-link|header-anchor|anchor-link|anchorjs-link|permalink
      | sphinxsidebar|sidebar-drawer|sidebar-container|sidebar-tree|related|breadcrumbs?|toctree-wrapper|localtoc|table-of-contents
      | toc|tocs|md-sidebar|md-header|md-footer|md-source-file|md-content__button|md-tabs
      | edit-this-page|theme-edit-this-page|editlink|edit-link|page-edit|github-edit
      | pagination|pagination-nav|prev-next|nav-links|footer|copyright|theme-doc-footer
      | theme-doc-toc-mobile|theme-doc-breadcrumbs|theme-doc-version-badge
      | skip-link|skip-to-content|visually-hidden|sr-only|screen-reader-text|searchbox
      | mobile-header|nav-buttons|theme-doc-sidebar-container|doc-sidebar|bd-sidebar
      | announcement|cookie|admonition-title-hidden
      | docnav|navheader|navfooter|banner|navbar|topnav|site-nav|menu
    )(?:$|[\s_-])""",
    re.X | re.I,
)
_NOTE_BOX = re.compile(
    r"(?i)\b(?:sidebar|note|tip|warning|admonition|footnote|topic|callout|important|caution)"
)
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})
# A link styled as the code host's ("View on GitHub", or a badge naming the page's source
# file: Django REST framework's MkDocs theme puts `<a class="github">throttling.py</a>` above
# every page's <h1>): where the page comes from, not what it says. Links only: a code block's
# highlighting style may be named after a host too.
_SOURCE_LINK = re.compile(r"(?:^|[\s_-])(?:github|gitlab|bitbucket|codeberg)(?:$|[\s_-])", re.I)
# Not a CSS selector: a <section> (or docutils' div.section) that opens with the page's <h1>
# (`_titled_section`), for Sphinx themes without role=main or div.body (Django's).
_TITLED_SECTION = "titled section"
# Where generators put the page's own content, best first.
_ROOT_SELECTORS = (
    "article.md-content__inner",  # MkDocs Material
    "div.theme-doc-markdown",  # Docusaurus
    "[role=main]",  # Sphinx basic/alabaster/classic (div.body), furo (article), pydata
    "div.body",
    "main article",
    "article",
    "main",
    "div#content",
    "div#page-content",  # Apache httpd's manual
    "div.content",
    _TITLED_SECTION,
    "div.document",
)
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_PERMALINK_TEXT = frozenset({"", "¶", "#", "§", "🔗", "link", "permalink", "¶¶"})
# Icon-font glyphs (Unicode's private use area: Font Awesome's link icon in Read the Docs
# themes) are pictures, not words.
_ICON_GLYPHS = re.compile("[\ue000-\uf8ff]")


def _is_permalink_text(text: str) -> bool:
    return _ICON_GLYPHS.sub("", _visible(text)).lower() in _PERMALINK_TEXT


_BLOCKS = frozenset(
    """address article blockquote center dd details dialog dir div dl dt fieldset figcaption
    figure hr li main menu ol p section summary table tbody thead tfoot tr ul caption
    header hgroup""".split()
)
_LANG = re.compile(r"(?:^|\s)(?:language|lang|highlight|sourceCode)-([\w+#.-]+)")
_SPACES = re.compile(r"\s+")
_BR = "\ue002"  # a <br>: survives whitespace collapsing as a line break


def _classes(tag: Tag) -> str:
    classes = tag.get("class")
    return " ".join([classes, tag.get("id") or ""] if classes else [tag.get("id") or ""])


def _is_chrome(tag: Tag) -> bool:
    items = tag.items()
    if not items:  # most tags of a page: nothing that could name chrome
        return False
    attrs = dict(items)
    if str(attrs.get("role") or "").lower() in _CHROME_ROLES:
        return True
    if attrs.get("aria-hidden") == "true" and tag.tag in ("a", "span", "div"):
        return True
    label = str(attrs.get("aria-label") or "").lower()
    if "breadcrumb" in label or label.startswith("direct link"):
        return True
    classes = _classes(tag)
    return bool(_CHROME.search(classes)) or (tag.tag == "a" and bool(_SOURCE_LINK.search(classes)))


def _visible(text: str) -> str:
    return text.replace("\u200b", "").replace("\ufeff", "").strip()


_SIMPLE_SELECTOR = re.compile(
    r"^(?:(?P<inside>\w+) )?(?P<name>\w+)?(?:\.(?P<cls>[\w-]+)|#(?P<id>[\w-]+)"
    r"|\[(?P<attr>[\w-]+)=(?P<value>[\w-]+)\])?$"
)


def _selects(selector: str) -> Callable[[Tag], bool]:
    """A matcher for the simple selectors of _ROOT_SELECTORS (`tag`, `tag.class`, `tag#id`,
    `[attr=value]`, `ancestor tag`): one pass over the page tests them all, where a CSS engine
    would walk the whole tree once per selector."""
    m = _SIMPLE_SELECTOR.match(selector)
    if m is None:
        raise ValueError(f"unsupported root selector {selector!r}")
    inside, name, cls, id_, attr, value = m.group("inside", "name", "cls", "id", "attr", "value")

    def match(tag: Tag) -> bool:
        return (
            (name is None or tag.tag == name)
            and (cls is None or cls in (tag.get("class") or "").split())
            and (id_ is None or tag.get("id") == id_)
            and (attr is None or tag.get(attr) == value)
            and (inside is None or next(tag.iterancestors(inside), None) is not None)
        )

    return match


_SECTIONS = (_selects("section"), _selects("div.section"))  # docutils: <section> or div


def _titled_section(tag: Tag) -> bool:
    """A section (`<section>`, or docutils' `<div class="section">`) that opens with the
    page's <h1>: around it a theme puts its header, navigation bars and sidebar."""
    if not any(match(tag) for match in _SECTIONS):
        return False
    heading = _first(tag, _HEADINGS)
    return heading is not None and heading.tag == "h1"


_ROOT_MATCHERS = tuple(
    _titled_section if s is _TITLED_SECTION else _selects(s) for s in _ROOT_SELECTORS
)


def _selected_names(selector: str) -> frozenset[str] | None:
    """The tag names `selector` can match (None: any)."""
    if selector is _TITLED_SECTION:
        return frozenset({"section", "div"})
    m = _SIMPLE_SELECTOR.match(selector)
    return frozenset({m.group("name")}) if m is not None and m.group("name") else None


# Which root matchers a tag of each name can meet: tested only against those, a page's walk
# costs a few matcher calls per tag instead of one per selector.
_ROOT_NAMES = tuple(_selected_names(s) for s in _ROOT_SELECTORS)
_ANY_NAME = tuple(i for i, names in enumerate(_ROOT_NAMES) if names is None)
_BY_NAME = {
    name: tuple(i for i, names in enumerate(_ROOT_NAMES) if names is None or name in names)
    for name in frozenset().union(*(n for n in _ROOT_NAMES if n is not None))
}


def find_root(doc: Tag) -> Tag:
    """The element holding the page's own content: the longest visible match of the first
    selector of _ROOT_SELECTORS that matches, else <body>."""
    found: list[list[Tag]] = [[] for _ in _ROOT_MATCHERS]
    for tag in doc.iter(etree.Element):  # <html> too: bs4's document is above it
        for i in _BY_NAME.get(tag.tag, _ANY_NAME):
            if _ROOT_MATCHERS[i](tag):
                found[i].append(tag)
    for tags in found:
        visible = [t for t in tags if _visible(get_text(t))]
        if visible:
            return _within_titled_section(max(visible, key=lambda t: len(get_text(t))))
    body = next(doc.iter("body"), None)
    return doc if body is None else body


BANNER_CHARS = 300  # what a theme puts beside the page's section: a version banner, a button


def _within_titled_section(root: Tag) -> Tag:
    """The page's one titled section when the root holds little else: a theme's banner
    beside it ("This document describes the current stable version of Celery (5.2). For
    development docs, go here.") is on every page and says nothing about this one."""
    sections = [t for t in _tags(root, ("section", "div")) if _titled_section(t)]
    if len(sections) != 1 or sections[0] is root:
        return root
    outside = len(_visible(get_text(root))) - len(_visible(get_text(sections[0])))
    return sections[0] if 0 < outside <= BANNER_CHARS else root


def _take_title_block(root: Tag) -> None:
    """Move the block just before the content root into it when that block is the page's
    title with prose under it, not chrome: AsciiDoc pages keep the <h1> and the NAME
    section ("git-commit - Record changes to the repository") in a `#header` beside
    `#content`. A site header (logo, links, search) has no <h1> with paragraphs."""
    block = next((t for t in root.itersiblings(preceding=True) if _is_tag(t)), None)
    if (
        block is None
        or block.tag not in ("div", "header", "section")
        or _is_chrome(block)
        or _first(block, {"h1"}) is None
        or _first(block, _DROP_TAGS) is not None
        or not any(_visible(get_text(p)) for p in _tags(block, {"p"}))
        or link_density(block) > 0.5
    ):
        return
    # bs4's extract() + insert(0): the text after the block stays where it was, and the
    # block goes before the root's first text (in lxml that text is the root's .text).
    _remove(block)
    block.tail, root.text = root.text, None
    root.insert(0, block)


def _tags(root: Tag, names: Collection[str] | None = None) -> list[Tag]:
    """The tags under `root` (named one of `names`), in document order; not `root` itself."""
    found = root.iter(*names) if names is not None else root.iter(etree.Element)
    return [t for t in found if t is not root]


def _first(root: Tag, names: Collection[str]) -> Tag | None:
    """The first tag under `root` named one of `names` (the walk stops there)."""
    return next((t for t in root.iter(*names) if t is not root), None)


class _Removed:
    """The elements `_clean` removed, with all they held: whether an element of a list made
    before is gone is then one set lookup (walking up its ancestors was 15% of the parse)."""

    def __init__(self) -> None:
        self.elements: set[Tag] = set()

    def remove(self, tag: Tag) -> None:
        self.elements.update(tag.iter())
        _remove(tag)

    def gone(self, tag: Tag) -> bool:
        return tag in self.elements


def _clean(root: Tag) -> None:
    """Drop chrome inside the content root (in place)."""
    removed = _Removed()
    for tag in _tags(root, _DROP_TAGS):
        removed.remove(tag)
    # An <aside> inside the content is content when it is a note, footnote or sidebar box
    # (Sphinx renders those as <aside class="sidebar|footnote|topic">); otherwise it is the
    # "related stories" kind of box.
    for tag in _tags(root, ("aside",)):
        if removed.gone(tag):
            continue
        if not _NOTE_BOX.search(_classes(tag)) or link_density(tag) > 0.5:
            removed.remove(tag)
    for tag in _tags(root):
        if removed.gone(tag):
            continue
        if tag.tag == "header" and _first(tag, _HEADINGS) is None:
            removed.remove(tag)  # a site header; an article's <header><h1> is content
        elif _is_chrome(tag) and tag.tag not in _HEADINGS and tag.tag not in ("pre", "code"):
            # A permalink or chrome block; but never a heading's own text link (mdBook).
            if tag.tag == "a" and any(t.tag in _HEADINGS for t in tag.iterancestors()):
                if not _is_permalink_text(get_text(tag)):
                    continue
            removed.remove(tag)
    for heading in _tags(root, _HEADINGS):
        for a in _tags(heading, ("a",)):
            if _is_permalink_text(get_text(a)):
                _remove(a)


_ANCHOR_ATTR = "data-corpusbot-anchor"


def _find_anchor(heading: Tag) -> str | None:
    """The fragment id of a heading: its own id, its permalink's target, or its section's."""
    if heading.get("id"):
        return str(heading.get("id"))
    links = _tags(heading, ("a",))
    for a in links:  # the permalink ("¶") points at the heading itself
        href = a.get("href")
        if isinstance(href, str) and href.startswith("#") and len(href) > 1:
            if _is_permalink_text(get_text(a)):
                return href[1:]
    parent = heading.getparent()
    if parent is not None and parent.get("id") and _first(parent, _HEADINGS) is heading:
        return str(parent.get("id"))
    for a in links:
        if a.get("id") or a.get("name"):
            return str(a.get("id") or a.get("name"))
    return None


def _anchor(heading: Tag) -> str | None:
    value = heading.get(_ANCHOR_ATTR)
    return str(value) if value else None


def _code_language(pre: Tag) -> str:
    parent = pre.getparent()
    for tag in (
        pre,
        _first(pre, ("code",)),
        parent,
        None if parent is None else parent.getparent(),
    ):
        if tag is not None:
            m = _LANG.search(_classes(tag))
            if m:
                return m.group(1)
    return ""


def _pre_text(pre: Tag) -> str:
    """A code block's text; a <br> is a line break (Docusaurus' Prism lines end in <br>).
    Every string here, a script's too (as bs4's descendants)."""
    return "".join(_strings(pre, (), br="\n"))


def link_density(root: Tag) -> float:
    """Share of the visible text that is link text (index and table-of-contents pages ~1)."""
    total = len(_SPACES.sub("", get_text(root)))
    if not total:
        return 0.0
    linked = sum(len(_SPACES.sub("", get_text(a))) for a in _tags(root, ("a",)))
    return linked / total


class _Walker:
    """Depth-first over the content root: inline text gathers into paragraphs."""

    def __init__(self, builder: TextBuilder) -> None:
        self.builder = builder
        self.buffer: list[str] = []
        self.bullet = ""  # "- " until the first text of a list item is out

    def flush(self) -> None:
        text = _SPACES.sub(" ", "".join(self.buffer)).replace(_BR, "\n").strip()
        self.buffer.clear()
        if text:
            # The bullet goes with the item's first text, also when that is in a <p>
            # (Sphinx: <li><p>...</p></li>).
            self.builder.paragraph(self.bullet + text)
            self.bullet = ""

    def walk(self, node: Tag) -> None:
        if node.text:  # every string, a script's too (as bs4's children)
            self.buffer.append(node.text)
        for child in node:
            if _is_tag(child):  # not a comment or processing instruction
                self.child(child)
            if child.tail:
                self.buffer.append(child.tail)

    def child(self, child: Tag) -> None:
        """One element of the walk: a block, a heading, code, a table row or inline."""
        name = child.tag.lower()
        if name in _HEADINGS:
            self.flush()
            self.bullet = ""
            self.builder.heading(_HEADINGS[name], get_text(child, " "), _anchor(child), slug=False)
        elif name == "pre":
            self.flush()
            self.bullet = ""
            self.builder.code(_pre_text(child), _code_language(child))
        elif name == "br":
            self.buffer.append(_BR)
        elif name == "tr":
            self.flush()
            cells = [_SPACES.sub(" ", get_text(c, " ")).strip() for c in _tags(child, ("td", "th"))]
            row = " | ".join(c for c in cells if c)
            if row:
                self.builder.paragraph(row)
        elif name == "li":
            self.flush()
            self.bullet = "- "
            self.walk(child)
            self.flush()
            self.bullet = ""
        elif name in _BLOCKS:
            self.flush()
            self.walk(child)
            self.flush()
        else:
            self.walk(child)
            if name in ("td", "th"):
                self.buffer.append(" ")


def html_blocks(root: Tag, builder: TextBuilder) -> None:
    """Emit the (already cleaned) content root's headings, prose and code."""
    walker = _Walker(builder)
    walker.walk(root)
    walker.flush()


_UNSEEN = frozenset({"script", "style", "template", "title"})


def _has_visible_text(doc: Tag) -> bool:
    """Whether any string of the page outside scripts, styles, templates and <title> shows."""
    for node in doc.iter():
        if _is_tag(node) and node.text and node.tag not in _UNSEEN and _visible(node.text):
            return True
        if node.tail and _visible(node.tail):
            parent = node.getparent()
            if parent is None or parent.tag not in _UNSEEN:
                return True
    return False


def parse_page(doc: Tag, builder: TextBuilder) -> dict[str, Any]:
    """Clean the content root of the page `doc` (`parse_html`) into `builder`; returns facts
    about the page."""
    visible = _has_visible_text(doc)
    root = find_root(doc)
    _take_title_block(root)
    for heading in _tags(root, _HEADINGS):  # before _clean drops the permalinks
        anchor = _find_anchor(heading)
        if anchor:
            heading.set(_ANCHOR_ATTR, anchor)
    raw_density = link_density(root)
    _clean(root)
    h1 = _first(root, ("h1",))
    if h1 is None:
        h1 = next(doc.iter("h1"), None)
    title = _visible(get_text(h1, " ")) if h1 is not None else ""
    density = link_density(root)
    html_blocks(root, builder)
    return {
        "h1": " ".join(title.replace("¶", " ").split()),
        "link_density": max(density, raw_density),
        "visible_text": visible,
    }
