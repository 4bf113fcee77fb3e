"""Word documents (.docx) via python-docx: headings, paragraphs, lists, tables, code.

- headings: paragraphs styled `Heading 1`..`Heading 9` (or a style based on one); a `Title`
  paragraph is the top heading (the others move one level down under it);
- list paragraphs get a "- " bullet; tables become one "cell | cell" line per row;
- code: consecutive paragraphs in a code style (`... Code ...`, `HTML Preformatted`, `Plain
  Text`, `Macro Text`) or whose runs are all in a monospace font form one code block, with
  their leading spaces and tabs;
- headers, footers, comments, footnotes, text boxes and the table of contents field are not
  read. The title is the Title paragraph, else the first heading, else the document
  properties' title, else the first line.

A .docx is a zip: one that would inflate beyond `MAX_UNZIPPED_BYTES` is refused unread.
"""

from __future__ import annotations

import io
import re
import zipfile

from index.formats import Parsed, first_heading, one_line
from index.structure import TextBuilder

MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
_MONO = re.compile(
    r"(?i)courier|consolas|menlo|monaco|mono|lucida console|source code|fira code|inconsolata"
)
_CODE_STYLE = re.compile(r"(?i)\bcode\b|preformatted|^plain text$|^macro text$|source ?code")
_HEADING_STYLE = re.compile(r"(?i)^heading ([1-9])$")
_LIST_STYLE = re.compile(r"(?i)^list\b")


def _style_chain(style):
    seen = 0
    while style is not None and seen < 20:
        yield style
        style = style.base_style
        seen += 1


def _heading_level(para) -> int | None:
    for style in _style_chain(para.style):
        name = style.name or ""
        m = _HEADING_STYLE.match(name)
        if m:
            return int(m.group(1))
        if name.lower() == "title":
            return 0
    return None


def _style_font(style) -> str | None:
    for s in _style_chain(style):
        font = getattr(s, "font", None)
        if font is not None and font.name:
            return font.name
    return None


def _is_code(para) -> bool:
    for style in _style_chain(para.style):
        if _CODE_STYLE.search(style.name or ""):
            return True
    runs = [r for r in para.runs if r.text.strip()]
    if not runs:
        return False
    para_font = _style_font(para.style)
    for run in runs:
        style_font = _style_font(run.style) if run.style is not None else None
        font = run.font.name or style_font or para_font
        if not font or not _MONO.search(font):
            return False
    return True


def _is_list(para) -> bool:
    ppr = para._p.pPr  # noqa: SLF001 (numbering has no public API)
    if ppr is not None and ppr.numPr is not None:
        return True
    return any(_LIST_STYLE.match(s.name or "") for s in _style_chain(para.style))


def _check_zip(raw: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            total = sum(info.file_size for info in zf.infolist())
            names = set(zf.namelist())
    except zipfile.BadZipFile as exc:
        raise ValueError("unparsable DOCX: not a zip file") from exc
    if total > MAX_UNZIPPED_BYTES:
        raise ValueError(f"unparsable DOCX: inflates to {total} bytes")
    if "word/document.xml" not in names:
        raise ValueError("unparsable DOCX: no word/document.xml (not a Word document)")


def parse_docx(raw: bytes, stem: str) -> Parsed:
    _check_zip(raw)
    import docx  # imported lazily: only corpora with Word files pay for it
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(raw))
        blocks = list(document.iter_inner_content())
    except Exception as exc:  # python-docx / lxml raise many types for damaged files
        raise ValueError(f"unparsable DOCX: {exc or type(exc).__name__}") from exc

    has_title = any(
        not isinstance(b, Table) and _heading_level(b) == 0 and b.text.strip() for b in blocks
    )
    builder = TextBuilder()
    code: list[str] = []
    title = ""

    def flush_code() -> None:
        if code:
            builder.code("\n".join(code))
            code.clear()

    for block in blocks:
        if isinstance(block, Table):
            flush_code()
            for row in block.rows:
                cells: list[str] = []
                last = None
                for cell in row.cells:
                    if cell._tc is last:  # noqa: SLF001 (a merged cell repeats)
                        continue
                    last = cell._tc  # noqa: SLF001
                    text = " ".join(cell.text.split())
                    if text:
                        cells.append(text)
                if cells:
                    builder.paragraph(" | ".join(cells))
            continue
        text = block.text
        level = _heading_level(block)
        if level is not None and text.strip():
            flush_code()
            if level == 0:
                title = title or one_line(text)
                builder.heading(1, text)
            else:
                builder.heading(min(level + (1 if has_title else 0), 6), text)
        elif text.strip() and _is_code(block):
            code.append(text)
        elif code and not text.strip():
            code.append("")  # a blank line inside a code block
        else:
            flush_code()
            if text.strip():
                builder.paragraph(("- " + text.strip()) if _is_list(block) else text)
    flush_code()
    body, sections, spans = builder.build()
    core_title = ""
    try:
        core_title = one_line(document.core_properties.title or "")
    except Exception:  # noqa: BLE001 (a broken docProps/core.xml costs only the title)
        pass
    title = (
        title
        or first_heading(sections, 1)
        or core_title
        or first_heading(sections)
        or next((one_line(line) for line in body.split("\n") if line.strip()), "")
    )
    return Parsed(body, title or stem, sections=sections, code=spans)
