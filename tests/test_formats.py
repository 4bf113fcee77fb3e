"""The formats of index/formats/: .rst, .mdx, .ipynb, .docx, each with its structure.

Inputs are made by the real tools: the Sphinx FAQ source and the Docusaurus template page
that tests/data/sites/ also holds built (so source and built page must agree), notebooks
written by nbformat, Word files written by python-docx.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import docx
import nbformat
import pytest
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.text import WD_BREAK

from index.chunker import chunk_document
from index.errors import DocumentError
from index.loader import SUPPORTED_EXTS, load_corpus, load_file
from tests.test_sites import ANCHORS, CODE, PROSE, SITES

MAX = 1_000_000


def load(root: Path, name: str, content: str | bytes):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return load_file(path, root=root, max_bytes=MAX)


def reason(root: Path, name: str, content: str | bytes) -> str:
    with pytest.raises(DocumentError) as err:
        load(root, name, content)
    return err.value.reason


def code_bodies(doc) -> list[str]:
    return [doc.text[a:b].split("\n", 1)[1].rsplit("\n", 1)[0] for a, b in doc.code]


def structure(doc) -> list[tuple[tuple[str, ...], str | None]]:
    return [(s.path, s.anchor) for s in doc.sections if s.path]


def test_new_extensions_are_supported():
    assert {".rst", ".mdx", ".ipynb", ".docx"} <= SUPPORTED_EXTS


# --- reStructuredText -------------------------------------------------------------------


def test_rst_sphinx_source_reads_like_its_sphinx_build():
    src = SITES / "src" / "sphinx" / "faq.rst"
    doc = load_file(src, root=src.parent, max_bytes=MAX)
    assert doc.title == "Widget FAQ"
    assert dict(structure(doc)) == ANCHORS
    assert CODE in code_bodies(doc)
    assert doc.text[slice(*doc.code[0])].startswith("```python\n")
    for paragraph in PROSE:
        assert paragraph in doc.text.split("\n\n"), paragraph
    assert "On this page" not in doc.text  # the `.. contents::` box is navigation
    built = SITES / "sphinx-furo" / "faq.html"
    assert structure(load_file(built, root=built.parent, max_bytes=MAX)) == structure(doc)
    for chunk in chunk_document(doc, chunk_size=900, chunk_overlap=150):
        assert chunk.metadata["section"].startswith("Widget FAQ")


SPHINX_MARKUP = """\
.. A comment is never the title.

Reference
=========

.. toctree::
   :maxdepth: 2

   faq
   usage

.. autofunction:: widget.reset

.. py:function:: reset(widget)

   Resets the widget's size.

.. versionadded:: 1.2
   The reset call.

.. seealso:: The :doc:`faq`.

See :func:`reset`, :py:meth:`~widget.Widget.grow`, :ref:`the install <install>` and
:unknownrole:`plain text`.

.. code-block:: python
   :caption: demo.py
   :linenos:
   :emphasize-lines: 2

   def grow(widget):
       widget.size += 1

.. note::

   Widgets never shrink.

.. only:: html

   Shown in HTML builds.

.. todo:: Write more.

Details
-------

.. mystery-directive:: argument line

   Body of an unknown directive.

.. include:: /etc/passwd

.. literalinclude:: /etc/passwd

.. csv-table::
   :file: /etc/passwd

.. raw:: html

   <script>alert(1)</script>
"""


def test_rst_tolerates_sphinx_directives_and_roles(tmp_path):
    doc = load(tmp_path, "ref.rst", SPHINX_MARKUP)
    assert doc.title == "Reference"
    assert structure(doc) == [(("Reference",), "reference"), (("Reference", "Details"), "details")]
    paragraphs = doc.text.split("\n\n")
    assert "reset(widget)" in paragraphs and "Resets the widget's size." in paragraphs
    assert "Added in version 1.2: The reset call." in paragraphs
    assert "See also: The faq." in paragraphs
    assert "See reset, grow, the install and plain text." in paragraphs
    assert "Widgets never shrink." in paragraphs
    assert "Shown in HTML builds." in paragraphs and "html" not in paragraphs
    assert "argument line" in paragraphs and "Body of an unknown directive." in paragraphs
    assert code_bodies(doc) == ["def grow(widget):\n    widget.size += 1"]
    assert doc.text[slice(*doc.code[0])].startswith("```python\n")
    for absent in (
        "toctree",
        "maxdepth",
        "autofunction",
        "usage",
        "root:",
        "alert",
        ":func:",
        "Write more",
    ):
        assert absent not in doc.text, absent


def test_rst_problems_never_stop_the_file(tmp_path):
    broken = (
        "Title\n=====\n\nText with *unclosed emphasis and `bad role.\n\nSub\n~~~\n\n  Odd indent.\n"
    )
    doc = load(tmp_path, "broken.rst", broken)
    assert doc.title == "Title"
    assert "unclosed emphasis" in doc.text
    assert "System Message" not in doc.text and "ERROR" not in doc.text


def test_rst_without_heading_is_titled_by_its_file_name(tmp_path):
    doc = load(tmp_path, "notes.rst", ".. just a comment\n\nSome prose only.\n")
    assert doc.title == "notes"
    assert doc.text == "Some prose only."


def test_rst_must_be_utf8(tmp_path):
    assert reason(tmp_path, "x.rst", "Caf\u00e9\n====\n".encode("latin-1")).startswith(
        "not valid UTF-8"
    )


# --- MDX --------------------------------------------------------------------------------


def test_mdx_docusaurus_page_reads_like_its_docusaurus_build():
    src = SITES / "src" / "docusaurus" / "docs" / "markdown-features.mdx"
    built = SITES / "docusaurus" / "docs" / "markdown-features" / "index.html"
    doc = load_file(src, root=src.parent, max_bytes=MAX)
    page = load_file(built, root=built.parent, max_bytes=MAX)
    assert doc.title == page.title == "Markdown Features"
    # The built page's <h1> has no id (links go to the page); below it anchors must agree.
    assert structure(doc)[0][0] == structure(page)[0][0] and structure(page)[0][1] is None
    assert structure(doc)[1:] == structure(page)[1:]
    assert ("Markdown Features", "Headings", "Heading Ids") in dict(structure(doc))
    assert dict(structure(doc))[("Markdown Features", "Headings")] == "my-heading-id"
    assert code_bodies(doc) == code_bodies(page)
    prose_text, end = "", 0
    for a, b in doc.code:
        prose_text, end = prose_text + doc.text[end:a], b
    prose_text += doc.text[end:]
    prose = prose_text.split("\n\n")
    assert "This is Docusaurus green !" in prose
    assert "My tip" in prose and "Use this awesome feature option" in prose
    assert "## Headings\n" in doc.text and "### Heading Ids\n" in doc.text  # no {/* #id */}
    for absent in ("export const", "<Highlight", ":::", "sidebar_position"):
        assert absent not in prose_text, absent


MDX = """\
---
title: Widget tabs
sidebar_position: 3
---
import Tabs from '@theme/Tabs';
import TabItem from '@theme/TabItem';

export const Note = ({children}) => (
  <span className="note">{children}</span>
);

{/* maintained by the docs team */}

# Installing

<Tabs
  groupId="os"
  values={[{label: 'Linux', value: 'linux'}, {label: 'Mac', value: 'mac'}]}>
<TabItem value="linux" label="Linux">

Use the `<Installer />` package:

```jsx
<Installer size={10}>
  {children}
</Installer>
```

</TabItem>
</Tabs>

Widgets are <Note>created once</Note>, <b>never</b> twice.

:::warning Mind the size
Keep widgets small.
:::

## Options {#opts}
"""


def test_mdx_drops_esm_and_jsx_but_keeps_their_text(tmp_path):
    doc = load(tmp_path, "tabs.mdx", MDX)
    assert doc.title == "Widget tabs"  # front matter, as for .md
    assert structure(doc) == [
        (("Installing",), "installing"),
        (("Installing", "Options"), "opts"),
    ]
    paragraphs = doc.text.split("\n\n")
    assert "Use the `<Installer />` package:" in paragraphs  # inline code untouched
    assert code_bodies(doc) == ["<Installer size={10}>\n  {children}\n</Installer>"]
    assert "Widgets are created once, never twice." in paragraphs
    assert "Mind the size" in paragraphs and "Keep widgets small." in paragraphs
    for absent in ("import", "export", "Tabs", "TabItem", "groupId", "maintained", ":::"):
        assert absent not in doc.text.replace("```jsx", ""), absent


# --- Jupyter notebooks ------------------------------------------------------------------


def _notebook(cells, *, language: str | None = "python") -> bytes:
    nb = nbformat.v4.new_notebook()
    if language:
        nb.metadata["kernelspec"] = {"name": "k", "language": language, "display_name": "K"}
        nb.metadata["language_info"] = {"name": language}
    nb.cells = cells
    nbformat.validate(nb)
    return nbformat.writes(nb).encode()


def test_notebook_markdown_and_code_cells(tmp_path):
    code = nbformat.v4.new_code_cell("def reset(widget):\n    widget.size = 0\n    return widget")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="OUTPUT-TEXT\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "RESULT-TEXT"}),
        nbformat.v4.new_output("error", ename="E", evalue="ERROR-TEXT", traceback=[]),
    ]
    raw = _notebook(
        [
            nbformat.v4.new_code_cell("import widget"),
            nbformat.v4.new_markdown_cell("# Widget tour\n\nSome *prose*.\n\n- one\n- two"),
            nbformat.v4.new_markdown_cell("## Resetting\n\n<!-- a note -->Call it:"),
            code,
            nbformat.v4.new_raw_cell("RAW-CELL"),
        ]
    )
    doc = load(tmp_path, "tour.ipynb", raw)
    assert doc.title == "Widget tour"  # the first heading, not the first cell
    assert structure(doc) == [
        (("Widget tour",), "widget-tour"),
        (("Widget tour", "Resetting"), "resetting"),
    ]
    assert code_bodies(doc) == [
        "import widget",
        "def reset(widget):\n    widget.size = 0\n    return widget",
    ]
    assert all(doc.text[a:b].startswith("```python\n") for a, b in doc.code)
    assert "Some *prose*." in doc.text and "- one\n- two" in doc.text
    for absent in ("OUTPUT-TEXT", "RESULT-TEXT", "ERROR-TEXT", "RAW-CELL", "a note"):
        assert absent not in doc.text
    chunks = chunk_document(doc, chunk_size=900, chunk_overlap=150)
    assert chunks[-1].metadata["section"] == "Widget tour › Resetting"


def test_notebook_titles_and_languages(tmp_path):
    untitled = _notebook([nbformat.v4.new_code_cell("1 + 1")], language="julia")
    doc = load(tmp_path, "sums.ipynb", untitled)
    assert doc.title == "sums"
    assert doc.text == "```julia\n1 + 1\n```"
    no_language = _notebook([nbformat.v4.new_code_cell("x")], language=None)
    assert load(tmp_path, "bare.ipynb", no_language).text == "```\nx\n```"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "invalid notebook JSON"),
        (b"[1, 2]", "invalid notebook: no 'cells' list"),
        (json.dumps({"nbformat": 3, "worksheets": []}).encode(), "notebook format 3"),
        ("{}".encode("utf-16"), "not valid UTF-8"),
    ],
)
def test_broken_notebooks_are_skipped_with_a_reason(tmp_path, content, why):
    assert reason(tmp_path, "bad.ipynb", content).startswith(why)


def test_notebook_with_only_outputs_has_no_text(tmp_path):
    assert reason(tmp_path, "empty.ipynb", _notebook([])) == "no text content"


# --- Word -------------------------------------------------------------------------------


def _mono(paragraph_text: str, document) -> None:
    run = document.add_paragraph().add_run(paragraph_text)
    run.font.name = "Courier New"


def _word_file(*, with_title: bool = True) -> bytes:
    d = docx.Document()
    d.sections[0].header.paragraphs[0].text = "HEADER-TEXT"
    d.sections[0].footer.paragraphs[0].text = "FOOTER-TEXT"
    if with_title:
        d.add_paragraph("Widget manual", style="Title")
    d.add_heading("Installing", level=1)
    d.add_paragraph("Run the installer with the --user flag.")
    d.add_paragraph("Download the installer.", style="List Bullet")
    d.add_paragraph("Open a new shell.", style="List Number")
    _mono("def reset(widget):", d)
    _mono("    if widget.size > 10:", d)
    _mono("        widget.size = 0", d)
    d.add_heading("Sizes", level=2)
    table = d.add_table(rows=3, cols=2)
    for r, row in enumerate([("size", "meaning"), ("10", "big"), ("merged", "")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(2, 0).merge(table.cell(2, 1))
    code_style = d.styles.add_style("Source Code", WD_STYLE_TYPE.PARAGRAPH)
    d.add_paragraph("$ widget --user", style=code_style)
    d.add_paragraph("\tdone", style=code_style)
    p = d.add_paragraph("Line one")
    p.add_run().add_break(WD_BREAK.LINE)
    p.add_run("line two.")
    d.core_properties.title = "Properties title"
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def test_docx_headings_paragraphs_lists_tables_and_code(tmp_path):
    doc = load(tmp_path, "manual.docx", _word_file())
    assert doc.title == "Widget manual"
    assert structure(doc) == [
        (("Widget manual",), "widget-manual"),
        (("Widget manual", "Installing"), "installing"),
        (("Widget manual", "Installing", "Sizes"), "sizes"),
    ]
    paragraphs = doc.text.split("\n\n")
    assert "Run the installer with the --user flag." in paragraphs
    assert "- Download the installer." in paragraphs and "- Open a new shell." in paragraphs
    assert code_bodies(doc) == [
        "def reset(widget):\n    if widget.size > 10:\n        widget.size = 0",
        "$ widget --user\n\tdone",  # a code paragraph style
    ]
    assert "size | meaning" in paragraphs and "10 | big" in paragraphs
    assert "merged" in paragraphs  # a merged cell counts once
    assert "Line one\nline two." in paragraphs
    assert "HEADER-TEXT" not in doc.text and "FOOTER-TEXT" not in doc.text
    chunks = chunk_document(doc, chunk_size=900, chunk_overlap=150)
    assert all(c.metadata["section"].startswith("Widget manual") for c in chunks)


def test_docx_title_without_a_title_paragraph(tmp_path):
    doc = load(tmp_path, "manual.docx", _word_file(with_title=False))
    assert doc.title == "Installing"  # the first Heading 1
    assert structure(doc)[0] == (("Installing",), "installing")
    d = docx.Document()
    d.add_paragraph("Only prose here.")
    d.core_properties.title = "From the properties"
    out = io.BytesIO()
    d.save(out)
    assert load(tmp_path, "plain.docx", out.getvalue()).title == "From the properties"


def test_broken_docx_files_are_skipped_with_a_reason(tmp_path, monkeypatch):
    assert reason(tmp_path, "a.docx", b"PK\x03\x04 not really") == "unparsable DOCX: not a zip file"
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("content.xml", "<x/>")
    assert reason(tmp_path, "b.docx", other.getvalue()).endswith("(not a Word document)")
    monkeypatch.setattr("index.formats.docx.MAX_UNZIPPED_BYTES", 1000)
    assert "inflates to" in reason(tmp_path, "c.docx", _word_file())


def test_new_formats_load_through_load_corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "ref.rst").write_text(SPHINX_MARKUP)
    (root / "tabs.mdx").write_text(MDX)
    (root / "tour.ipynb").write_bytes(_notebook([nbformat.v4.new_markdown_cell("# Tour")]))
    (root / "manual.docx").write_bytes(_word_file())
    (root / "broken.ipynb").write_bytes(b"{")
    docs, skipped = load_corpus(root, max_bytes=MAX)
    assert [d.source for d in docs] == ["manual.docx", "ref.rst", "tabs.mdx", "tour.ipynb"]
    assert [(s.path, s.kind) for s in skipped] == [("broken.ipynb", "error")]
