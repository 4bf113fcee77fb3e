"""Plain data passed between the stages of the index flow."""

from __future__ import annotations

from dataclasses import dataclass, field

SECTION_SEP = " › "  # joins a heading path: "Guide › Install › Linux"


@dataclass(frozen=True)
class PageSpan:
    """One PDF page: its 1-based number and its [start, end) offsets in SourceDoc.text."""

    page: int
    start: int
    end: int


@dataclass(frozen=True)
class Section:
    """A headed part of a document: its heading line and the body up to the next heading of
    the same or a higher level. `path` holds the headings from the top ("FAQ", "Functions",
    "Why are default values shared?"); the lead section before any heading has path ()."""

    start: int  # offset of the heading line (== body_start for the lead section)
    body_start: int  # first offset after the heading line
    end: int
    path: tuple[str, ...] = ()
    anchor: str | None = None  # the id a URL fragment can point at ("why-are-default-...")
    level: int = 0


@dataclass(frozen=True)
class SourceDoc:
    """A loaded, cleaned document. Chunk offsets index into `text`."""

    source: str  # path relative to the corpus dir, POSIX separators
    title: str
    text: str
    sha256: str  # of the raw file bytes
    metadata: dict[str, str] = field(default_factory=dict)  # publisher, author, date, url, ...
    pages: tuple[PageSpan, ...] = ()  # only for paged formats (PDF)
    # Structure: headed sections (in order, covering the text) and code blocks, as offsets.
    sections: tuple[Section, ...] = ()
    code: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str
    # "error": a file that should have been indexed but could not be (exit code 3);
    # "ignored": not content by rule (.corpusignore, an index/contents page): no error.
    kind: str = "error"
