"""Parsers for the formats beyond text, Markdown, HTML and PDF (see `index.loader._PARSERS`).

Each module turns a file's bytes into a `Parsed` (text laid out by `index.structure.
TextBuilder`, with sections and code spans), raising ValueError with a short reason when the
file cannot be used. Heavy libraries are imported lazily, so corpora without those formats
never pay for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from index.documents import PageSpan, Section

MAX_TITLE_CHARS = 200


@dataclass
class Parsed:
    text: str
    title: str
    metadata: dict[str, str] = field(default_factory=dict)
    pages: tuple[PageSpan, ...] = ()
    sections: tuple[Section, ...] = ()
    code: tuple[tuple[int, int], ...] = ()


def first_heading(sections: tuple[Section, ...], level: int | None = None) -> str:
    """The first heading's title (of `level` when given), or ""."""
    for sec in sections:
        if sec.path and (level is None or sec.level == level):
            return sec.path[-1][:MAX_TITLE_CHARS]
    return ""


def first_line(text: str, *, skip: tuple[str, ...] = ()) -> str | None:
    """The first non-blank line (not starting with one of `skip`), cut to a title's length."""
    for line in text.split("\n"):
        line = line.strip()
        if line and not line.startswith(skip):
            return line[:MAX_TITLE_CHARS]
    return None


def one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_TITLE_CHARS]
