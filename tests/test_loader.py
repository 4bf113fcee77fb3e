"""The loader: formats, metadata, title fallbacks, cleaning, and broken files."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfWriter

from index.documents import PageSpan
from index.errors import ConfigError, DocumentError, NotContent
from index.loader import load_corpus, load_file, normalize_text
from index.settings import REPO_ROOT
from tests.conftest import SEED_CORPUS
from tests.data.make_pdf import pdf_bytes

DATA = Path(__file__).parent / "data"
SEEDS = DATA / "seeds"  # copies of the raw scraped pages the seed corpus was cleaned from
MAX = 1_000_000


def write(root: Path, name: str, content: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def load(root: Path, name: str, content: str | bytes, *, max_bytes: int = MAX):
    return load_file(write(root, name, content), root=root, max_bytes=max_bytes)


def reason(root: Path, name: str, content: str | bytes, *, max_bytes: int = MAX) -> str:
    with pytest.raises(DocumentError) as info:
        load(root, name, content, max_bytes=max_bytes)
    assert info.value.path == name
    return info.value.reason


# --- normalisation --------------------------------------------------------------------


def test_normalize_text_rules():
    raw = "\ufeffTitle\r\n\r\nA\u00a0b  c \t d   \r\n\u200bzero\u200cwidth\u200d\n\n\n\n\nend  \n"
    assert normalize_text(raw) == "Title\n\nA b c d\nzerowidth\n\nend"
    assert normalize_text("  indented  line\x07\fnext\ud835") == "indented line\nnext"


def test_offsets_refer_to_normalised_text(tmp_path):
    doc = load(tmp_path, "a.txt", "Head\r\n\r\n\r\n\r\nBody\u00a0\u00a0text.  \r\n")
    assert doc.text == "Head\n\nBody text."


# --- markdown -------------------------------------------------------------------------


def test_markdown_front_matter_fixture():
    doc = load_file(DATA / "front-matter.md", root=DATA, max_bytes=MAX)
    assert doc.source == "front-matter.md"
    assert doc.title == "Hash Rate Explained"
    assert doc.metadata == {
        "publisher": "Example Press",
        "author": "Ann Lee, Bo Chen",
        "date": "2020-05-17",
        "url": "https://example.org/hash-rate",
    }
    assert doc.text.startswith("# A Different Heading\n\nHash rate measures")
    assert "---" not in doc.text and "tags" not in doc.text
    assert "Image: a mining rig" not in doc.text  # caption debris
    assert doc.text.endswith("It is quoted in hashes per second.")
    assert doc.sha256 == hashlib.sha256((DATA / "front-matter.md").read_bytes()).hexdigest()
    assert doc.pages == ()


def test_markdown_metadata_coercion(tmp_path):
    doc = load(
        tmp_path,
        "m.md",
        "---\ntitle: 2024\ndate: March 4, 2021\nurl: javascript:alert(1)\nauthor: ''\n"
        "site: CCN.com\nextra: {nested: 1}\n---\nBody text.\n",
    )
    assert doc.title == "2024"
    assert doc.metadata == {"date": "2021-03-04", "site": "CCN.com"}
    assert all(isinstance(v, str) for v in doc.metadata.values())


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2021-03-04", "2021-03-04"),
        ("2021-03-04T15:34:00Z", "2021-03-04"),
        ("'2021-03-04T15:34:00+02:00'", "2021-03-04"),
        ("4 March 2021", "2021-03-04"),
        ("Mar 4, 2021", "2021-03-04"),
        ("spring 2021", "spring 2021"),  # not a date: kept as written
    ],
)
def test_front_matter_dates_become_iso(tmp_path, value, iso):
    assert load(tmp_path, "d.md", f"---\ndate: {value}\n---\nBody.").metadata == {"date": iso}


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("Intro line\n\n# The Heading\n\nBody.", "The Heading"),  # first '# ' heading
        ("---\nauthor: X\n---\n## Sub only\n\nBody.", "Sub only"),  # else first line
        ("plain first line\n\nsecond", "plain first line"),
        ("x" * 300 + "\n\nbody", "x" * 200),  # trimmed to 200 chars
    ],
)
def test_markdown_title_fallbacks(tmp_path, content, title):
    assert load(tmp_path, "doc.md", content).title == title


@pytest.mark.parametrize(
    "content",
    [
        "---\ntitle: [unclosed\n---\nBody.",
        "---\n- a\n- b\n---\nBody.",
        "---\ntitle: no end\n\nBody.",
    ],
)
def test_markdown_broken_front_matter(tmp_path, content):
    assert reason(tmp_path, "bad.md", content).startswith("invalid front matter: ")


def test_markdown_front_matter_only_has_no_text(tmp_path):
    assert reason(tmp_path, "fm.md", "---\ntitle: T\n---\n\n  \n") == "no text content"


def test_markdown_links_read_as_their_text(tmp_path):
    md = (
        "# Timers\n\n"
        "Returned from [`setImmediate()`][] and built on the [Event Loop][loop], see\n"
        '[the guide](https://example.org/g_(1) "Guide") or ![a diagram](d.png).\n'
        "Code stays: `a[0](b)`; brackets alone stay: [sic].\n"
        'Press <kbd>Ctrl</kbd>+C, see <https://example.org>. <i id="old-anchor"></i>\n\n'
        '<a name="top"></a>\n\n'
        "Footnote.[^1]\n\n"
        "[^1]: A footnote is text.\n"
        "[`setImmediate()`]: #setimmediate\n"
        "[loop]: https://example.org/loop\n"
        "```md\n[kept](in-code)\n[ref]: kept-in-code\n```\n"
    )
    text = load(tmp_path, "t.md", md).text
    assert (
        "Returned from `setImmediate()` and built on the Event Loop, see\nthe guide or a "
        "diagram." in text
    )
    assert (
        "Code stays: `a[0](b)`; brackets alone stay: [sic].\nPress Ctrl+C, see "
        "<https://example.org>.\n\nFootnote." in text
    )  # tags go, their text and autolinks stay
    assert "[^1]: A footnote is text." in text
    assert "example.org/loop" not in text and "#setimmediate" not in text
    assert "[kept](in-code)\n[ref]: kept-in-code" in text  # code is never rewritten


def test_seed_corpus_markdown_loads():
    docs, skipped = load_corpus(SEED_CORPUS, max_bytes=MAX)
    assert skipped == []
    assert [d.source for d in docs] == sorted(p.name for p in SEED_CORPUS.glob("*.md"))
    ccn = next(d for d in docs if "short-lived" in d.source)
    assert ccn.title == "North Korea Appears to Have Run a Short-Lived Bitcoin Mining Operation"
    assert ccn.metadata == {
        "publisher": "CCN",
        "site": "CCN.com",
        "author": "Jack Mathis",
        "date": "2021-03-04",
    }


# --- plain text and debris ------------------------------------------------------------


def test_text_title_is_first_non_empty_line(tmp_path):
    doc = load(tmp_path, "notes.txt", "\n\n  My Notes  \n\nSome body.\n")
    assert doc.title == "My Notes"
    assert doc.text == "My Notes\n\nSome body."
    assert doc.metadata == {}


def test_debris_lines_are_removed(tmp_path):
    content = (
        "Home / Guides / Cooling Rigs\n\nCooling Rigs\n\nCooling Rigs\n\nLoading...\n\n"
        "Fans move air.\n\nPhoto: a fan\n\nImage credit: Someone\n\n"
        "Featured image from Shutterstock.\n\n\u23f4 Back to Blog\n\nBack to Blog\n\nLoading\u2026"
    )
    doc = load(tmp_path, "g.txt", content)
    assert doc.text == "Cooling Rigs\n\nFans move air."
    assert doc.title == "Cooling Rigs"


def test_debris_rules_keep_real_sentences(tmp_path):
    content = (
        "Input / Output Basics\n\n"
        "Loading... the truck took three hours, said the driver.\n\n"
        "Back to Blog posts: we wrote about fans before.\n\n"
        "Featured image from the archive shows the plant. It closed in 1990.\n\n"
        "Image credits are hard to track down.\n\n"
        "A path like a / b / c appears here."
    )
    doc = load(tmp_path, "keep.txt", content)
    assert doc.text == content  # nothing dropped: the first line is a title, not a breadcrumb
    assert doc.title == "Input / Output Basics"


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def test_seed_raw_files_are_cleaned_of_debris():
    docs, skipped = load_corpus(SEEDS, max_bytes=MAX)
    assert skipped == [] and len(docs) == 2
    debris = re.compile(
        r"^(Loading\.\.\.|\u23f4 Back to Blog|Featured image from .*|Last Updated .*|.+ / .+ / .+)$"
    )
    for doc in docs:
        lines = [line for line in doc.text.split("\n") if line.strip()]
        assert not [line for line in lines if debris.match(line)], doc.source
        assert lines.count(doc.title) == 1  # the duplicated title line is gone
        assert lines[0] == doc.title

    # Every real paragraph survives: each paragraph of the hand-cleaned corpus/*.md body
    # (headings without their '#') is a paragraph of the cleaned raw seed.
    by_seed = {d.source: d for d in docs}
    for md in SEED_CORPUS.glob("*.md"):
        seed_name = re.search(r"^seed: (\S+)$", md.read_text(encoding="utf-8"), re.M).group(1)
        cleaned = load_file(md, root=SEED_CORPUS, max_bytes=MAX)
        seed_paras = set(_paragraphs(by_seed[seed_name].text))
        for para in _paragraphs(cleaned.text):
            para = re.sub(r"^#+ ", "", para)
            if para.startswith("By "):  # the byline, rebuilt from the seed's author/date lines
                continue
            assert " ".join(para.split()) in seed_paras, para[:60]


def test_utf8_bom_utf16_and_crlf(tmp_path):
    assert load(tmp_path, "bom.txt", b"\xef\xbb\xbfHello\r\nworld").text == "Hello\nworld"
    utf16 = "Caf\u00e9 notes\r\n\r\nBody.".encode("utf-16")
    assert load(tmp_path, "u16.txt", utf16).text == "Caf\u00e9 notes\n\nBody."


# --- HTML -----------------------------------------------------------------------------


def test_html_article_fixture():
    doc = load_file(DATA / "article.html", root=DATA, max_bytes=MAX)
    assert doc.title == "Miners Move North"  # the page's h1; <title> adds the site name
    assert doc.metadata == {
        "publisher": "Example News",
        "author": "Ada Writer",
        "date": "2021-03-04",
        "url": "https://example.com/news/miners-move-north",
    }
    assert doc.text == (
        "# Miners Move North\n\n"
        "Bitcoin miners are moving to colder regions, where cooling is cheap.\n\n"
        "Electricity prices matter more than anything else.\nHosting deals follow.\n\n"
        "- First point.\n\n- Second point."
    )


def test_html_fallbacks(tmp_path):
    html = (
        "<html><head><meta property='og:title' content='OG Title'>"
        "<meta name='date' content='2019-12-31'>"
        "<link rel='canonical' href='javascript:alert(1)'>"
        "<meta property='og:url' content='http://example.net/p'></head>"
        "<body><nav>Menu</nav><main><h2>Part</h2><div>Main text.</div></main>"
        "<p>Outside main.</p></body></html>"
    )
    doc = load(tmp_path, "p.htm", html)
    assert doc.title == "OG Title"
    assert doc.metadata == {"date": "2019-12-31", "url": "http://example.net/p"}
    assert doc.text == "## Part\n\nMain text."

    doc = load(tmp_path, "q.html", "<body><h1>Heading One</h1><p>Body  text.</p></body>")
    assert doc.title == "Heading One"
    assert doc.text == "# Heading One\n\nBody text."


def test_a_link_to_the_pages_source_on_a_code_host_is_chrome(tmp_path):
    # Django REST framework's MkDocs theme: a badge naming the page's source file above <h1>.
    badge = "<a class='github' href='https://github.com/o/r/tree/m/throttle.py'>throttle.py</a>"
    prose = "<p>See <a class='reference' href='https://github.com/o/r'>the repository</a>.</p>"
    code = "<div class='highlight github'><pre>x = 1</pre></div>"
    doc = load(tmp_path, "t.html", f"<body>{badge}<h1>Throttling</h1>{prose}{code}</body>")
    assert doc.text == "# Throttling\n\nSee the repository.\n\n```\nx = 1\n```"


def test_html_declared_charset_is_honoured(tmp_path):
    raw = b"<html><head><meta charset='iso-8859-1'></head><body><p>Caf\xe9 au lait.</p></body>"
    assert load(tmp_path, "l.html", raw).text == "Caf\u00e9 au lait."


def test_a_huge_page_and_a_deeply_nested_code_block_keep_all_their_text(tmp_path):
    # libxml2 stops at a text node of 10 MB or a tree 256 deep unless told the tree is huge
    words = "word " * 2_100_000
    page = f"<body><main><p>{words}</p><p>The end.</p></main></body>"
    doc = load(tmp_path, "big.html", page, max_bytes=20_000_000)  # MAX_DOCUMENT_BYTES is 50 MB
    assert doc.text.endswith("word\n\nThe end.") and len(doc.text) > 10_000_000
    spans = 1500  # deeper than Python's recursion limit
    code = "<span>" * spans + "x = 1" + "</span>" * spans
    doc = load(tmp_path, "deep.html", f"<body><main><pre>{code}</pre><p>After.</p></main></body>")
    assert "x = 1" in doc.text and doc.text.endswith("After.")


def test_a_contents_page_is_ignored_not_an_error(tmp_path):
    links = "".join(f"<li><a href='p{i}.html'>Chapter {i}</a></li>" for i in range(30))
    write(tmp_path, "contents.html", f"<body><main><h1>Contents</h1><ul>{links}</ul></main></body>")
    write(tmp_path, "page.html", "<body><main><h1>Page</h1><p>Real prose here.</p></main></body>")
    docs, skipped = load_corpus(tmp_path, max_bytes=MAX)
    assert [d.source for d in docs] == ["page.html"]
    assert [(s.path, s.kind) for s in skipped] == [("contents.html", "ignored")]
    assert skipped[0].reason.startswith("index or contents page")


def test_a_themes_header_nav_and_sidebar_around_the_titled_section_stay_out(tmp_path):
    # Django's docs theme: no role=main or div.body; the site's <h1>, nav bars and a sidebar
    # ("Last update: ...") sit around the page's own <div class="section"> in div.document.
    nav = "<div class='nav'>&laquo; <a href='a.html'>previous</a> | <a href='c.html'>next</a></div>"
    page = (
        "<body><div class='document'><div id='hd'><h1><a href='/'>Acme 3.2 documentation</a>"
        f"</h1><div id='global-nav'><a href='/'>Home</a> | <a href='/g'>Index</a></div>{nav}"
        "</div><div id='bd'><div class='section' id='s-faq'><h1>FAQ: General</h1>"
        "<div class='section'><h2>Is Acme stable?</h2><p>Yes, it is quite stable.</p></div>"
        "</div><div id='sidebar'><h3>Last update:</h3><p>May 26, 2026</p></div></div>"
        f"<div id='ft'>{nav}</div></div></body>"
    )
    doc = load(tmp_path, "general.html", page)
    assert doc.title == "FAQ: General"
    assert doc.text == "# FAQ: General\n\n## Is Acme stable?\n\nYes, it is quite stable."
    # A theme's banner beside the titled section in role=main (Celery's docs, every page).
    banner = (
        "<body><div class='body' role='main'><div class='deck'><p>This document describes "
        "the current stable version of Acme (5.2). For development docs, <a href='/dev'>go "
        "here</a>.</p></div><section id='faq'><h1>FAQ</h1><p>Answers.</p></section></div>"
        "</body>"
    )
    assert load(tmp_path, "faq.html", banner).text == "# FAQ\n\nAnswers."
    # Apache httpd's manual: a page header and breadcrumb beside div#page-content.
    manual = (
        "<body><div id='page-header'><p>Acme Server Version 2.4</p></div><div id='path'>"
        "<a href='/'>Acme</a> &gt; <a href='/docs'>Docs</a></div><div id='page-content'>"
        "<div id='preamble'><h1>Caching Guide</h1><p>How to cache.</p></div></div></body>"
    )
    assert load(tmp_path, "caching.html", manual).text == "# Caching Guide\n\nHow to cache."
    # Sphinx's highlighted source listings (viewcode) are generated pages, not documents.
    site = tmp_path / "site"
    write(site, "general.html", page)
    write(
        site,
        "_modules/acme/core.html",
        "<body><main><h1>Source code for acme.core</h1><pre>import os</pre></main></body>",
    )
    docs, skipped = load_corpus(site, max_bytes=MAX)
    assert [d.source for d in docs] == ["general.html"]
    assert [(s.path, s.kind) for s in skipped] == [("_modules/acme/core.html", "ignored")]


def test_an_icon_font_permalink_is_not_part_of_the_heading(tmp_path):
    # Read the Docs themes draw the permalink with Font Awesome's link glyph (U+F0C1).
    page = (
        "<body><div role='main'><section id='usage'><h1>Usage<a class='headerlink' "
        "href='#usage'>\uf0c1</a></h1><p>Run it.</p></section></div></body>"
    )
    doc = load(tmp_path, "usage.html", page)
    assert doc.title == "Usage"
    assert doc.text == "# Usage\n\nRun it."


def test_a_redirect_page_is_ignored_not_indexed(tmp_path):
    # rustdoc, sphinx-reredirects and MkDocs' redirects leave stubs pointing at the page.
    stub = (
        "<html><head><meta http-equiv='refresh' content='0;URL=macro.quote.html'></head>"
        "<body><p>Redirecting to <a href='macro.quote.html'>macro.quote.html</a>...</p></body>"
    )
    write(tmp_path, "macro.quote!.html", stub)
    write(tmp_path, "macro.quote.html", "<body><main><h1>quote</h1><p>Quasi-quoting.</p></main>")
    docs, skipped = load_corpus(tmp_path, max_bytes=MAX)
    assert [d.source for d in docs] == ["macro.quote.html"]
    assert [(s.path, s.reason, s.kind) for s in skipped] == [
        ("macro.quote!.html", "a redirect to macro.quote.html", "ignored")
    ]


def test_a_source_beside_its_html_page_is_not_indexed_twice(tmp_path):
    # AsciiDoc (git's docs), Markdown or reST next to the page a generator made from it.
    page = "<body><main><h1>git-commit</h1><p>Record changes to the repository.</p></main></body>"
    write(tmp_path, "git-commit.html", page)
    write(tmp_path, "git-commit.txt", "git-commit(1)\n=====\n\nRecord changes to the repository.")
    write(tmp_path, "guide/Intro.md", "# Intro\n\nHello.")
    write(tmp_path, "guide/intro.html", "<body><main><h1>Intro</h1><p>Hello.</p></main></body>")
    write(tmp_path, "notes.txt", "Notes without a page of their own are indexed.")
    docs, skipped = load_corpus(tmp_path, max_bytes=MAX)
    assert [d.source for d in docs] == ["git-commit.html", "guide/intro.html", "notes.txt"]
    assert [(s.path, s.reason, s.kind) for s in skipped] == [
        ("git-commit.txt", "the source of git-commit.html, which is indexed", "ignored"),
        ("guide/Intro.md", "the source of guide/intro.html, which is indexed", "ignored"),
    ]
    # What a page's source includes (AsciiDoc include::, reST .. include::), transitively,
    # is that page's text too.
    write(tmp_path, "git-log.html", "<body><main><h1>git-log</h1><p>Show logs.</p></main></body>")
    write(tmp_path, "git-log.txt", "git-log(1)\n====\n\ninclude::pretty-options.txt[]\n")
    write(tmp_path, "pretty-options.txt", "--oneline::\n\tShorthand.\n\ninclude::shared/f.txt[]")
    write(tmp_path, "shared/f.txt", "Formats.\ninclude::../pretty-options.txt[]")  # a cycle
    write(tmp_path, "api.rst", "API\n===\n\n.. include:: snippets/args.rst\n")
    write(tmp_path, "api.html", "<body><main><h1>API</h1><p>Calls.</p></main></body>")
    write(tmp_path, "snippets/args.rst", "Arguments are strings.")
    write(tmp_path, "standalone.txt", "include::notes.txt[] in a file no page is made from")
    docs, skipped = load_corpus(tmp_path, max_bytes=MAX)
    assert [d.source for d in docs] == [
        "api.html", "git-commit.html", "git-log.html", "guide/intro.html", "notes.txt",
        "standalone.txt",
    ]  # fmt: skip
    reasons = {s.path: s.reason for s in skipped}
    assert reasons["pretty-options.txt"] == "included in git-log.html, which is indexed"
    assert reasons["shared/f.txt"] == "included in git-log.html, which is indexed"
    assert reasons["snippets/args.rst"] == "included in api.html, which is indexed"
    # A page left out by .corpusignore leaves its source to be indexed.
    write(tmp_path, ".corpusignore", "api.html\n")
    docs, _ = load_corpus(tmp_path, max_bytes=MAX)
    assert "api.rst" in [d.source for d in docs] and "api.html" not in [d.source for d in docs]
    # A maintainer who wants a source indexed too re-includes it.
    write(tmp_path, ".corpusignore", "!git-commit.txt\n")
    docs, _ = load_corpus(tmp_path, max_bytes=MAX)
    assert "git-commit.txt" in [d.source for d in docs]


def test_html_with_only_chrome_is_not_content(tmp_path):
    html = "<html><head><script>x=1</script></head><body><nav>Home</nav><footer>c</footer></body>"
    with pytest.raises(NotContent) as info:
        load(tmp_path, "nav.html", html)
    assert info.value.reason == "only navigation, no content"


# --- PDF ------------------------------------------------------------------------------

PDF_PAGES = [
    ["Mining Report", "Bitcoin mining uses energy.", "Rigs need cooling."],
    [],  # a blank page: no span, no text
    ["Page three starts here.", "It ends here."],
]


def test_pdf_pages_and_title(tmp_path):
    doc = load(tmp_path, "r.pdf", pdf_bytes(PDF_PAGES, title="The Report"))
    assert doc.title == "The Report"
    assert [span.page for span in doc.pages] == [1, 3]
    p1, p3 = doc.pages
    assert doc.text[p1.start : p1.end] == "\n".join(PDF_PAGES[0])
    assert doc.text[p3.start : p3.end] == "\n".join(PDF_PAGES[2])
    assert doc.text == doc.text[p1.start : p1.end] + "\n\n" + doc.text[p3.start : p3.end]
    assert p1 == PageSpan(page=1, start=0, end=p1.end) and p3.end == len(doc.text)


def _with_outline(pdf: bytes, entries: list[tuple[str, int, int]]) -> bytes:
    """`pdf` with bookmarks: (title, 0-based page, depth), depth 1 under the last depth 0."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    parent = None
    for title, page, depth in entries:
        item = writer.add_outline_item(title, page, parent=parent if depth else None)
        if depth == 0:
            parent = item
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_running_headers_page_numbers_and_leaders_go(tmp_path):
    pages = [
        ["Contents", "1 Setup . . . . . . . . . 2", "2 Use . . . . . . . . . 3", "1"],
        ["Chapter 1: Setup 2", "Install the tool first and", "2"],
        ["Chapter 1: Setup 3", "then run it. It works.", "3"],
        ["Chapter 1: Setup 4", "Running it twice is accord-", "ingly safe, and non-", "Zero.", "4"],
    ]
    doc = load(tmp_path, "m.pdf", pdf_bytes(pages))
    assert "Chapter 1" not in doc.text and ". . ." not in doc.text
    assert not re.search(r"(?m)^\d+$", doc.text)  # no page-number lines
    # The sentence that runs on over the page break stays one paragraph.
    assert "Install the tool first and\nthen run it. It works.\n\nRunning it" in doc.text
    assert "Running it twice is accordingly safe, and non-\nZero." in doc.text
    assert [p.page for p in doc.pages] == [1, 2, 3, 4]
    for span, lines in zip(doc.pages[1:3], pages[1:3], strict=True):
        assert doc.text[span.start : span.end] == lines[1]


def test_pdf_a_short_line_keeps_its_final_hyphen(tmp_path):
    full = "word " * 12  # a full line of the page
    page = [
        full + "and", full + "so on", full + "the end.",
        "[n]<&digit-",  # a definition term, with its own hyphen: room for more on its line
        "moves the file descriptor digit to file descriptor n,",
        full + "as described accord-", "ingly below.",
    ]  # fmt: skip
    text = load(tmp_path, "p.pdf", pdf_bytes([page])).text
    assert "[n]<&digit-\nmoves the file descriptor" in text
    assert "as described accordingly below." in text


def test_pdf_paragraphs_end_at_short_lines_that_end_a_sentence(tmp_path):
    full = "word " * 12  # a full line of the page
    page = [
        full + "and", full + "the end.", "A short last line.",  # paragraph 1 ends here
        full + "one", "Short, but no full stop", full + "two.", "Ends here.",
    ]  # fmt: skip
    text = load(tmp_path, "p.pdf", pdf_bytes([page])).text
    paragraphs = [p.split("\n")[-1] for p in text.split("\n\n")]
    assert paragraphs == ["A short last line.", "Ends here."]


def test_pdf_sections_come_from_its_outline(tmp_path):
    pages = [
        ["1 Getting Started", "Read this first.", "1.1 Installing", "Use the installer."],
        ["More about installing.", "1.2 Running the", "Program", "Type its name."],
        ["2 Reference", "All options.", "A missing title is no heading."],
    ]
    pdf = _with_outline(
        pdf_bytes(pages),
        [
            ("Getting Started", 0, 0),
            ("Installing", 0, 1),
            ("Running the Program", 1, 1),  # its line is wrapped in two
            ("Not on its page", 2, 1),
            ("Reference", 2, 0),
        ],
    )
    doc = load(tmp_path, "m.pdf", pdf)
    heads = [(s.level, s.path, doc.text[s.start : s.body_start]) for s in doc.sections]
    assert heads == [
        (2, ("Getting Started",), "1 Getting Started"),
        (3, ("Getting Started", "Installing"), "1.1 Installing"),
        (3, ("Getting Started", "Running the Program"), "1.2 Running the\nProgram"),
        (2, ("Reference",), "2 Reference"),
    ]
    installing = doc.sections[1]
    assert "More about installing." in doc.text[installing.body_start : installing.end]
    assert doc.sections[-1].end == len(doc.text)


def test_a_manuals_reference_entries_are_sections_of_their_own(tmp_path):
    pages = [
        ["1 Builtins", "These builtins control jobs.", "", "kill",
         "kill [-s sigspec] pid", "Send a signal to the process.", "", "wait",
         "wait [-n] [id ...]", "Wait until the child exits.", "", "done", "done",
         "The word done alone is no entry."],
    ]  # fmt: skip
    doc = load(tmp_path, "m.pdf", _with_outline(pdf_bytes(pages), [("Builtins", 0, 0)]))
    heads = [(s.level, s.path, doc.text[s.start : s.body_start]) for s in doc.sections]
    assert heads == [
        (2, ("Builtins",), "1 Builtins"),
        (3, ("Builtins", "kill"), "kill"),
        (3, ("Builtins", "wait"), "wait"),
    ]
    wait = doc.sections[-1]
    assert "Wait until the child exits." in doc.text[wait.body_start : wait.end]
    assert "Send a signal" not in doc.text[wait.body_start : wait.end]


def test_pdf_title_falls_back_to_first_line(tmp_path):
    assert load(tmp_path, "r.pdf", pdf_bytes(PDF_PAGES)).title == "Mining Report"


def test_pdf_without_text_layer(tmp_path):
    assert reason(tmp_path, "scan.pdf", pdf_bytes([[], []])) == "no text content"


def test_broken_pdfs_are_quiet(tmp_path, caplog):
    good = pdf_bytes(PDF_PAGES)
    writer = PdfWriter(clone_from=io.BytesIO(good))
    writer.encrypt("secret", algorithm="RC4-128")
    encrypted = io.BytesIO()
    writer.write(encrypted)
    caplog.set_level(logging.DEBUG)
    assert reason(tmp_path, "garbage.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8).startswith(
        "unparsable PDF: "
    )
    assert reason(tmp_path, "cut.pdf", good[: len(good) // 2]).startswith("unparsable PDF: ")
    assert reason(tmp_path, "locked.pdf", encrypted.getvalue()) == (
        "unparsable PDF: encrypted (remove the password)"
    )
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]
    assert logging.getLogger("pypdf").level == logging.NOTSET  # restored


# --- broken files and the corpus walk -------------------------------------------------


def test_load_corpus_skips_broken_files_and_keeps_good_ones(tmp_path, caplog):
    root = tmp_path / "corpus"
    shutil.copytree(SEED_CORPUS, root)
    write(root, "sub/dir/good.txt", "Nested good file.\n")
    write(root, "sub/page.html", (DATA / "article.html").read_bytes())
    write(root, "report.pdf", pdf_bytes(PDF_PAGES))
    broken = {
        "empty.txt": b"",
        "blank.md": "\n   \n\t\n",
        "binary.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "latin1.txt": "caf\u00e9".encode("latin-1"),
        "huge.txt": "word " * 1200,
        "bad-front-matter.md": "---\ntitle: [oops\n---\nbody",
        "garbage.pdf": b"not a pdf at all",
        "sub/cut.pdf": pdf_bytes(PDF_PAGES)[:200],
        "nav-only.html": "<body><nav>Home</nav><script>x()</script></body>",
        "notes.docx": b"PK\x03\x04",
    }
    for name, content in broken.items():
        write(root, name, content)
    write(root, ".hidden.md", "hidden")
    write(root, ".git/notes.md", "hidden dir")
    write(root, "image.png", b"\x89PNG\x00")
    write(root, "notes.odt", b"PK\x03\x04")

    caplog.set_level(logging.WARNING, logger="index.loader")
    docs, skipped = load_corpus(root, max_bytes=5000)

    # Good files all load, in sorted POSIX path order; hidden and unsupported are ignored.
    assert [d.source for d in docs] == [
        "north-korea-begins-mining-bitcoin.md",
        "north-korea-short-lived-bitcoin-mining.md",
        "report.pdf",
        "sub/dir/good.txt",
        "sub/page.html",
    ]
    # A page with nothing but navigation is not content: ignored, not an error.
    assert [(s.path, s.kind) for s in skipped if s.kind == "ignored"] == [
        ("nav-only.html", "ignored")
    ]
    del broken["nav-only.html"]
    skipped = [s for s in skipped if s.kind == "error"]
    assert [s.path for s in skipped] == sorted(broken)
    reasons = {s.path: s.reason for s in skipped}
    assert reasons["empty.txt"] == "empty file"
    assert reasons["blank.md"] == "no text content"
    assert reasons["binary.txt"] == "binary file (contains NUL bytes)"
    assert reasons["latin1.txt"].startswith("not valid UTF-8")
    assert reasons["huge.txt"] == "too large (6000 bytes, limit 5000)"
    assert reasons["bad-front-matter.md"].startswith("invalid front matter: ")
    assert reasons["garbage.pdf"].startswith("unparsable PDF: ")
    assert reasons["sub/cut.pdf"].startswith("unparsable PDF: ")
    assert reasons["notes.docx"] == "unparsable DOCX: not a zip file"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == len(broken)
    assert all(any(w.startswith(f"skipping {p}: ") for w in warned) for p in broken)


def test_load_corpus_is_deterministic(corpus_dir):
    assert load_corpus(corpus_dir, max_bytes=MAX) == load_corpus(corpus_dir, max_bytes=MAX)


def test_load_corpus_missing_dir(tmp_path):
    with pytest.raises(ConfigError, match="CORPUS_DIR"):
        load_corpus(tmp_path / "nope", max_bytes=MAX)


def test_unsupported_extension_via_load_file(tmp_path):
    assert reason(tmp_path, "x.odt", b"PK") == "unsupported file type .odt"


# --- parse cache (index/parsed.py) --------------------------------------------------------


@pytest.fixture
def site_copy(tmp_path) -> Path:
    """A real Sphinx site (content pages, a generated index page) plus a PDF and Markdown."""
    corpus = tmp_path / "corpus"
    shutil.copytree(Path(__file__).parent / "data" / "sites" / "sphinx-alabaster", corpus)
    (corpus / "paper.pdf").write_bytes(pdf_bytes(["First page text here.", "Second page."]))
    shutil.copy(SEED_CORPUS / "north-korea-begins-mining-bitcoin.md", corpus / "article.md")
    return corpus


def test_parse_cache_returns_the_same_documents_without_parsing(site_copy, tmp_path, monkeypatch):
    cache = tmp_path / "parsed"
    first = load_corpus(site_copy, max_bytes=10**7, cache_dir=cache)
    assert any(cache.iterdir())
    assert any(s.kind == "ignored" for s in first[1])  # not-content verdicts are cached too

    def no_parsing(raw: bytes, stem: str):
        raise AssertionError("parsed again")

    import index.loader as loader

    monkeypatch.setattr(loader, "_PARSERS", dict.fromkeys(loader._PARSERS, no_parsing))
    assert load_corpus(site_copy, max_bytes=10**7, cache_dir=cache) == first


def test_parse_cache_parses_changed_damaged_and_prunes_gone(site_copy, tmp_path):
    cache = tmp_path / "parsed"
    load_corpus(site_copy, max_bytes=10**7, cache_dir=cache)
    entries = len(list(cache.iterdir()))
    article = site_copy / "article.md"
    article.write_text(article.read_text(encoding="utf-8") + "\nA new closing line.\n")
    for entry in list(cache.iterdir())[:2]:
        entry.write_text("{not json", encoding="utf-8")  # damaged: parsed again, no error
    (site_copy / "paper.pdf").unlink()
    docs, _ = load_corpus(site_copy, max_bytes=10**7, cache_dir=cache)
    uncached, _ = load_corpus(site_copy, max_bytes=10**7)
    assert docs == uncached
    assert "A new closing line." in next(d for d in docs if d.source == "article.md").text
    assert len(list(cache.iterdir())) == entries - 1  # the deleted PDF's entry is pruned


def test_parse_cache_that_cannot_be_written_costs_nothing(site_copy, tmp_path):
    blocker = tmp_path / "parsed"
    blocker.write_text("a file where the cache folder would go", encoding="utf-8")
    assert load_corpus(site_copy, max_bytes=10**7, cache_dir=blocker) == load_corpus(
        site_copy, max_bytes=10**7
    )


_FORKED_LOAD = """
import json, sys, threading
from pathlib import Path
import index.loader as loader

site, cache = Path(sys.argv[1]), Path(sys.argv[2])
loader.PARALLEL_MIN_FILES = 10**9
serial = loader.load_corpus(site, max_bytes=10**7, cache_dir=cache)
entries = sorted(p.name for p in cache.iterdir())
loader.PARALLEL_MIN_FILES, loader.MAX_LOAD_WORKERS = 1, 2
loader.os.cpu_count = lambda: 2
forked, real = [], loader.ProcessPoolExecutor

def pool(*args, **kwargs):
    forked.append(kwargs["max_workers"])
    return real(*args, **kwargs)

loader.ProcessPoolExecutor = pool
threads = threading.active_count()
parallel = loader.load_corpus(site, max_bytes=10**7, cache_dir=cache)
print(json.dumps({
    "same": parallel == serial,
    "forked": forked,
    "threads": threads,
    "entries_kept": sorted(p.name for p in cache.iterdir()) == entries,
    "errors": [s.path for s in serial[1] if s.kind == "error"],
}))
"""


def test_worker_processes_load_the_same_corpus_and_keep_the_cache(site_copy, tmp_path):
    # In a fresh process: this one runs other tests' threads (Chroma clients), and the
    # loader forks workers only from a process that runs none.
    (site_copy / "broken.pdf").write_bytes(b"%PDF-1.4 not really")  # skipped, with a reason
    run = subprocess.run(
        [sys.executable, "-c", _FORKED_LOAD, str(site_copy), str(tmp_path / "parsed")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["threads"] == 1
    assert got["same"]
    assert got["forked"] == [2]  # the workers did load it
    assert got["entries_kept"]  # what they used was not pruned
    assert "broken.pdf" in got["errors"]


def test_a_threaded_caller_loads_in_its_own_process(site_copy, monkeypatch):
    """Forking a process that runs other threads could copy a lock one of them holds."""
    import threading

    import index.loader as loader

    monkeypatch.setattr(loader, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(loader.os, "cpu_count", lambda: 2)

    def no_pool(*args, **kwargs):
        raise AssertionError("forked from a threaded process")

    monkeypatch.setattr(loader, "ProcessPoolExecutor", no_pool)
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        docs, _ = load_corpus(site_copy, max_bytes=10**7)
    finally:
        done.set()
        other.join()
    assert docs


def test_a_title_block_beside_the_content_root_is_content(tmp_path):
    # AsciiDoc man pages: <h1> and the NAME section in #header, the rest in #content.
    page = (
        "<body><div id='header'><h1>git-commit(1) Manual Page</h1><h2>NAME</h2>"
        "<div class='sectionbody'><p>git-commit - Record changes to the repository</p></div>"
        "</div><div id='content'><h2 id='_synopsis'>SYNOPSIS</h2><p>git commit [-a]</p>"
        "</div></body>"
    )
    doc = load(tmp_path, "git-commit.html", page)
    assert doc.text.startswith("# git-commit(1) Manual Page\n\n## NAME\n\ngit-commit - Record")
    assert [s.path[-1] for s in doc.sections][-1] == "SYNOPSIS"
    # A site header beside the content (a logo heading, links, a search form) stays out.
    site = (
        "<body><header id='top'><h1>Acme docs</h1><p><a href='/'>Home</a> <a href='/g'>"
        "Guide</a></p><form><input name='q'></form></header><div id='content'><h2>Install"
        "</h2><p>Run the installer.</p></div></body>"
    )
    doc = load(tmp_path, "install.html", site)
    assert "Acme" not in doc.text and "Home" not in doc.text
    assert "Run the installer." in doc.text
