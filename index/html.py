"""HTML -> structured text: the main content of a page, without the site around it.

Documentation generators wrap each page's content in navigation, sidebars, breadcrumbs,
footers, "edit this page" links and heading permalinks ("¶", "#"). This module finds the
content root the way the generators mark it (Sphinx `role="main"`, MkDocs Material's
`md-content`, Docusaurus' `theme-doc-markdown`, mdBook's and Hugo's `<main>`, any
`<article>`), drops the chrome, and emits headings (with their anchor ids), prose and code
(exact text, indentation kept) into a `TextBuilder`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

from index.structure import TextBuilder

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
    attrs = tag.attrs or {}
    classes = attrs.get("class") or []
    if isinstance(classes, str):
        classes = [classes]
    return " ".join([*classes, str(attrs.get("id") or "")])


def _is_chrome(tag: Tag) -> bool:
    attrs = tag.attrs
    if not attrs:  # most tags of a page: nothing that could name chrome
        return False
    if str(attrs.get("role") or "").lower() in _CHROME_ROLES:
        return True
    if attrs.get("aria-hidden") == "true" and tag.name in ("a", "span", "div"):
        return True
    label = str(attrs.get("aria-label") or "").lower()
    if "breadcrumb" in label or label.startswith("direct link"):
        return True
    return bool(_CHROME.search(_classes(tag)))


def _visible(text: str) -> str:
    return text.replace("\u200b", "").replace("\ufeff", "").strip()


_SIMPLE_SELECTOR = re.compile(
    r"^(?:(?P<inside>\w+) )?(?P<name>\w+)?(?:\.(?P<cls>[\w-]+)|#(?P<id>[\w-]+)"
    r"|\[(?P<attr>[\w-]+)=(?P<value>[\w-]+)\])?$"
)


def _selects(selector: str) -> Callable[[Tag], bool]:
    """A matcher for the simple selectors of _ROOT_SELECTORS (`tag`, `tag.class`, `tag#id`,
    `[attr=value]`, `ancestor tag`): one pass over the page tests them all, where soupsieve
    would walk the whole tree once per selector."""
    m = _SIMPLE_SELECTOR.match(selector)
    if m is None:
        raise ValueError(f"unsupported root selector {selector!r}")
    inside, name, cls, id_, attr, value = m.group("inside", "name", "cls", "id", "attr", "value")

    def match(tag: Tag) -> bool:
        attrs = tag.attrs or {}
        classes = attrs.get("class") or []
        return (
            (name is None or tag.name == name)
            and (cls is None or cls in (classes.split() if isinstance(classes, str) else classes))
            and (id_ is None or attrs.get("id") == id_)
            and (attr is None or attrs.get(attr) == value)
            and (inside is None or tag.find_parent(inside) is not None)
        )

    return match


_SECTIONS = (_selects("section"), _selects("div.section"))  # docutils: <section> or div


def _titled_section(tag: Tag) -> bool:
    """A section (`<section>`, or docutils' `<div class="section">`) that opens with the
    page's <h1>: around it a theme puts its header, navigation bars and sidebar."""
    if not any(match(tag) for match in _SECTIONS):
        return False
    heading = _first(tag, _HEADINGS)
    return heading is not None and heading.name == "h1"


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


def find_root(soup: BeautifulSoup) -> Tag:
    """The element holding the page's own content: the longest visible match of the first
    selector of _ROOT_SELECTORS that matches, else <body>."""
    found: list[list[Tag]] = [[] for _ in _ROOT_MATCHERS]
    for tag in _tags(soup):
        for i in _BY_NAME.get(tag.name, _ANY_NAME):
            if _ROOT_MATCHERS[i](tag):
                found[i].append(tag)
    for tags in found:
        visible = [t for t in tags if _visible(t.get_text())]
        if visible:
            return _within_titled_section(max(visible, key=lambda t: len(t.get_text())))
    return soup.body or soup


BANNER_CHARS = 300  # what a theme puts beside the page's section: a version banner, a button


def _within_titled_section(root: Tag) -> Tag:
    """The page's one titled section when the root holds little else: a theme's banner
    beside it ("This document describes the current stable version of Celery (5.2). For
    development docs, go here.") is on every page and says nothing about this one."""
    sections = [t for t in _tags(root, ("section", "div")) if _titled_section(t)]
    if len(sections) != 1 or sections[0] is root:
        return root
    outside = len(_visible(root.get_text())) - len(_visible(sections[0].get_text()))
    return sections[0] if 0 < outside <= BANNER_CHARS else root


def _take_title_block(root: Tag) -> None:
    """Move the block just before the content root into it when that block is the page's
    title with prose under it, not chrome: AsciiDoc pages keep the <h1> and the NAME
    section ("git-commit - Record changes to the repository") in a `#header` beside
    `#content`. A site header (logo, links, search) has no <h1> with paragraphs."""
    block = root.find_previous_sibling(True)
    if (
        block is None
        or block.name not in ("div", "header", "section")
        or _is_chrome(block)
        or _first(block, {"h1"}) is None
        or _first(block, _DROP_TAGS) is not None
        or not any(_visible(p.get_text()) for p in _tags(block, {"p"}))
        or link_density(block) > 0.5
    ):
        return
    root.insert(0, block.extract())


def _tags(root: Tag, names: Collection[str] | None = None) -> list[Tag]:
    """The tags under `root` (named one of `names`), in document order. bs4's find_all with
    a list of names runs its generic filter on every element: 4-5x slower."""
    return [
        t for t in root.descendants if isinstance(t, Tag) and (names is None or t.name in names)
    ]


def _first(root: Tag, names: Collection[str]) -> Tag | None:
    """The first tag under `root` named one of `names` (the walk stops there)."""
    return next((t for t in root.descendants if isinstance(t, Tag) and t.name in names), None)


def _gone(tag: Tag) -> bool:
    """Whether `tag` was decomposed. bs4's `Tag.decomposed` reads a missing attribute, which
    a live Tag answers with a search of its whole subtree (`Tag.__getattr__` -> `find`):
    quadratic in page size when asked of every tag."""
    return bool(tag.__dict__.get("_decomposed"))


def _clean(root: Tag) -> None:
    """Drop chrome inside the content root (in place)."""
    for tag in _tags(root, _DROP_TAGS):
        tag.decompose()
    # An <aside> inside the content is content when it is a note, footnote or sidebar box
    # (Sphinx renders those as <aside class="sidebar|footnote|topic">); otherwise it is the
    # "related stories" kind of box.
    for tag in _tags(root, ("aside",)):
        if _gone(tag):
            continue
        if not _NOTE_BOX.search(_classes(tag)) or link_density(tag) > 0.5:
            tag.decompose()
    for tag in _tags(root):
        if _gone(tag) or tag.attrs is None:
            continue
        if tag.name == "header" and _first(tag, _HEADINGS) is None:
            tag.decompose()  # a site header; an article's <header><h1> is content
        elif _is_chrome(tag) and tag.name not in _HEADINGS and tag.name not in ("pre", "code"):
            # A permalink or chrome block; but never a heading's own text link (mdBook).
            if tag.name == "a" and any(t.name in _HEADINGS for t in tag.parents):
                if not _is_permalink_text(tag.get_text()):
                    continue
            tag.decompose()
    for heading in _tags(root, _HEADINGS):
        for a in heading.find_all("a"):
            if _is_permalink_text(a.get_text()):
                a.decompose()


_ANCHOR_ATTR = "data-corpusbot-anchor"


def _find_anchor(heading: Tag) -> str | None:
    """The fragment id of a heading: its own id, its permalink's target, or its section's."""
    if heading.get("id"):
        return str(heading["id"])
    links = heading.find_all("a")
    for a in links:  # the permalink ("¶") points at the heading itself
        href = a.get("href")
        if isinstance(href, str) and href.startswith("#") and len(href) > 1:
            if _is_permalink_text(a.get_text()):
                return href[1:]
    parent = heading.parent
    if isinstance(parent, Tag) and parent.get("id") and _first(parent, _HEADINGS) is heading:
        return str(parent["id"])
    for a in links:
        if a.get("id") or a.get("name"):
            return str(a.get("id") or a.get("name"))
    return None


def _anchor(heading: Tag) -> str | None:
    value = heading.get(_ANCHOR_ATTR)
    return str(value) if value else None


def _code_language(pre: Tag) -> str:
    for tag in (pre, pre.find("code"), pre.parent, pre.parent.parent if pre.parent else None):
        if isinstance(tag, Tag):
            m = _LANG.search(_classes(tag))
            if m:
                return m.group(1)
    return ""


def _pre_text(pre: Tag) -> str:
    """A code block's text; a <br> is a line break (Docusaurus' Prism lines end in <br>)."""
    parts: list[str] = []
    for node in pre.descendants:
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):
                parts.append(str(node))
        elif isinstance(node, Tag) and node.name == "br":
            parts.append("\n")
    return "".join(parts)


def link_density(root: Tag) -> float:
    """Share of the visible text that is link text (index and table-of-contents pages ~1)."""
    total = len(_SPACES.sub("", root.get_text()))
    if not total:
        return 0.0
    linked = sum(len(_SPACES.sub("", a.get_text())) for a in root.find_all("a"))
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
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, doctype, CDATA
                    self.buffer.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = (child.name or "").lower()
            if name in _HEADINGS:
                self.flush()
                self.bullet = ""
                self.builder.heading(
                    _HEADINGS[name], child.get_text(" "), _anchor(child), slug=False
                )
            elif name == "pre":
                self.flush()
                self.bullet = ""
                self.builder.code(_pre_text(child), _code_language(child))
            elif name == "br":
                self.buffer.append(_BR)
            elif name == "tr":
                self.flush()
                cells = [
                    _SPACES.sub(" ", c.get_text(" ")).strip() for c in _tags(child, ("td", "th"))
                ]
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


def parse_page(soup: BeautifulSoup, builder: TextBuilder) -> dict[str, Any]:
    """Clean the page's content root into `builder`; returns facts about the page."""
    visible = any(
        _visible(str(t)) and t.parent.name not in ("script", "style", "template", "title")
        for t in soup.descendants
        if isinstance(t, NavigableString) and not isinstance(t, PreformattedString)
    )
    root = find_root(soup)
    _take_title_block(root)
    for heading in _tags(root, _HEADINGS):  # before _clean drops the permalinks
        anchor = _find_anchor(heading)
        if anchor:
            heading[_ANCHOR_ATTR] = anchor
    raw_density = link_density(root)
    _clean(root)
    h1 = root.find("h1") or soup.find("h1")
    title = _visible(h1.get_text(" ")) if isinstance(h1, Tag) else ""
    density = link_density(root)
    html_blocks(root, builder)
    return {
        "h1": " ".join(title.replace("¶", " ").split()),
        "link_density": max(density, raw_density),
        "visible_text": visible,
    }
