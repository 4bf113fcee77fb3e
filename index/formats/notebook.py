"""Jupyter notebooks (.ipynb, nbformat 4): Markdown cells as Markdown, code cells as code.

Outputs, raw cells and attachments are skipped: they are results, not documentation. Code
cells become fenced code in the notebook's language (`language_info.name`, else the kernel's
language). The title is the first heading of the Markdown cells.
"""

from __future__ import annotations

import json

from index.formats import Parsed, first_heading, one_line
from index.structure import TextBuilder, markdown_blocks


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def _language(meta: object) -> str:
    if not isinstance(meta, dict):
        return ""
    for key, field in (("language_info", "name"), ("kernelspec", "language")):
        value = meta.get(key)
        if isinstance(value, dict) and isinstance(value.get(field), str):
            return value[field].strip().lower()
    return ""


def parse_notebook(raw: bytes, stem: str) -> Parsed:
    try:
        nb = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"invalid notebook JSON: {exc}") from exc
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        if isinstance(nb, dict) and isinstance(nb.get("worksheets"), list):
            raise ValueError("notebook format 3 is not supported (re-save it with Jupyter)")
        raise ValueError("invalid notebook: no 'cells' list")
    language = _language(nb.get("metadata"))
    builder = TextBuilder()
    for cell in nb["cells"]:
        if not isinstance(cell, dict):
            continue
        kind = cell.get("cell_type")
        if kind == "markdown":
            markdown_blocks(_source(cell), builder)
        elif kind == "code":
            builder.code(_source(cell), language)
    text, sections, code = builder.build()
    title = first_heading(sections, 1) or first_heading(sections)
    meta = nb.get("metadata")
    if not title and isinstance(meta, dict) and isinstance(meta.get("title"), str):
        title = one_line(meta["title"])
    return Parsed(text, title or stem, sections=sections, code=code)
