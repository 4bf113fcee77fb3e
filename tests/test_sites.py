"""Main-content extraction on real documentation-generator output.

Every sample in tests/data/sites/ is the same small FAQ (nested headings, a paragraph, an
indented code block, a list) built by the real generator and theme from
tests/data/sites/src/ (rebuild: tests/data/sites/build_sites.sh). The indexed chunks must
hold the FAQ and nothing of the site around it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from index.chunker import chunk_document
from index.loader import load_file

SITES = Path(__file__).parent / "data" / "sites"
FAQ_PAGES = {
    "sphinx-alabaster": "sphinx-alabaster/faq.html",
    "sphinx-furo": "sphinx-furo/faq.html",
    "mkdocs-material": "mkdocs-material/faq/index.html",
    "docusaurus": "docusaurus/docs/faq/index.html",
    "mdbook": "mdbook/faq.html",
    "hugo-book": "hugo-book/docs/faq/index.html",
}
CODE = """def reset(widget):
    if widget.size > 10:
        widget.size = 0
    return widget"""
ANCHORS = {
    ("Widget FAQ",): "widget-faq",
    ("Widget FAQ", "General"): "general",
    ("Widget FAQ", "General", "Why does my widget keep growing?"): (
        "why-does-my-widget-keep-growing"
    ),
    ("Widget FAQ", "General", "Is there a way to reset a widget?"): (
        "is-there-a-way-to-reset-a-widget"
    ),
    ("Widget FAQ", "Installing"): "installing",
    ("Widget FAQ", "Installing", "How do I install Widget?"): "how-do-i-install-widget",
}
PROSE = [
    "It is often expected that each call creates a new widget. This is not what happens. "
    "Widgets are created exactly once, when the module is loaded.",
    "Yes, there is. Call reset() on it:",
    "Run the installer with the --user flag. It needs no administrator rights.",
    "- Download the installer.",
    "- Run it with --user.",
    "- Open a new shell.",
]
# Text of the site around the content: navigation, sidebars, footers, breadcrumbs, edit
# links, tables of contents, permalinks, theme credits (compared case-insensitively).
CHROME = [
    "¶",
    "skip to",
    "on this page",
    "table of contents",
    "contents",
    "edit this page",
    "suggest an edit",
    "edit on github",
    "made with material",
    "created using sphinx",
    "powered by",
    "sphinx",
    "alabaster",
    "furo",
    "mkdocs",
    "docusaurus",
    "hugo",
    "mdbook",
    "copyright",
    "©",
    "search",
    "previous",
    "next",
    "navigation",
    "home page",
    "back to top",
    "toggle",
    "keyboard shortcuts",
    "print this book",
    "widget documentation",  # the Sphinx project's root page (sidebar, breadcrumbs)
    "usage",  # the other page of the site (sidebar, next/previous links)
    "tutorial",  # Docusaurus navbar
    "blog",
    "github",
    "direct link",
    "permanent link",
    "link to this heading",
    "theme",
]


def _load(generator: str):
    path = SITES / FAQ_PAGES[generator]
    return load_file(path, root=path.parent, max_bytes=10_000_000)


def _chunks(generator: str):
    return chunk_document(_load(generator), chunk_size=900, chunk_overlap=150)


def _html_ids(generator: str) -> set[str]:
    soup = BeautifulSoup((SITES / FAQ_PAGES[generator]).read_bytes(), "html.parser")
    return {str(tag["id"]) for tag in soup.find_all(id=True)}


GENERATORS = sorted(FAQ_PAGES)


def test_every_sample_has_its_source():
    sources = {p.name for p in (SITES / "src").iterdir()}
    for generator in GENERATORS:
        assert generator.split("-")[0] in sources, generator
        assert (SITES / FAQ_PAGES[generator]).is_file()


@pytest.mark.parametrize("generator", GENERATORS)
def test_no_chunk_holds_site_chrome(generator):
    chunks = _chunks(generator)
    assert chunks
    for chunk in chunks:
        text = chunk.page_content.lower()
        found = [word for word in CHROME if word in text]
        assert not found, (generator, found, chunk.page_content)
        # "#" only as a heading marker, never as a permalink.
        body = re.sub(r"(?m)^#{1,6} ", "", chunk.page_content)
        assert "#" not in body, (generator, chunk.page_content)


@pytest.mark.parametrize("generator", GENERATORS)
def test_the_faq_text_is_all_there(generator):
    doc = _load(generator)
    assert doc.title == "Widget FAQ"
    joined = "\n".join(c.page_content for c in _chunks(generator))
    for paragraph in PROSE:
        assert paragraph in doc.text.split("\n\n"), (generator, paragraph, doc.text)
        assert paragraph in joined, (generator, paragraph)


@pytest.mark.parametrize("generator", GENERATORS)
def test_code_block_round_trips_with_its_indentation(generator):
    doc = _load(generator)
    blocks = [doc.text[a:b] for a, b in doc.code]
    bodies = [block.split("\n", 1)[1].rsplit("\n", 1)[0] for block in blocks]
    assert CODE in bodies, (generator, blocks)
    # ...and one chunk quotes it whole.
    assert any(CODE in c.page_content for c in _chunks(generator)), generator


@pytest.mark.parametrize("generator", GENERATORS)
def test_every_chunk_has_a_heading_path(generator):
    for chunk in _chunks(generator):
        assert chunk.metadata.get("section", "").startswith("Widget FAQ"), (generator, chunk)


# Docusaurus gives the page's <h1> no id (its URL is the page's): that section has no
# anchor, and a citation links to the page itself.
ID_LESS = {"docusaurus": {("Widget FAQ",)}}


@pytest.mark.parametrize("generator", GENERATORS)
def test_heading_anchors_are_the_html_ids(generator):
    doc = _load(generator)
    anchors = {s.path: s.anchor for s in doc.sections if s.path}
    id_less = ID_LESS.get(generator, set())
    assert {p: a for p, a in anchors.items() if p not in id_less} == {
        p: a for p, a in ANCHORS.items() if p not in id_less
    }, generator
    assert all(anchors[p] is None for p in id_less), generator
    ids = _html_ids(generator)
    assert {a for a in anchors.values() if a} <= ids, (generator, set(anchors.values()) - ids)


def test_the_content_root_is_the_first_selector_that_matches():
    from index.html import find_root, parse_html

    def root_of(body: str) -> str:
        root = find_root(parse_html(f"<html><body>{body}</body></html>"))
        return root.get("id") or root.tag

    # [role=main] outranks a plain <main>, wherever it sits in the page
    assert root_of('<main id="m">x</main><div id="r" role="main">y</div>') == "r"
    # "main article": an <article> inside <main> outranks a lone <article> earlier on
    assert root_of('<article id="a">x</article><main><article id="b">y</article></main>') == "b"
    # classes match as words of the class attribute; of several matches, the longest wins
    html = '<div class="x body" id="s">short</div><div class="body" id="l">much longer</div>'
    assert root_of(html) == "l"
    # an empty match is passed over; no match at all falls back to <body>
    assert root_of('<div role="main" id="e"> </div><div id="content">z</div>') == "content"
    assert root_of("<p>text</p>") == "body"
