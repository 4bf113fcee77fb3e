"""Plain data passed between the stages of the index flow."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PageSpan:
    """One PDF page: its 1-based number and its [start, end) offsets in SourceDoc.text."""

    page: int
    start: int
    end: int


@dataclass(frozen=True)
class SourceDoc:
    """A loaded, cleaned document. Chunk offsets index into `text`."""

    source: str  # path relative to the corpus dir, POSIX separators
    title: str
    text: str
    sha256: str  # of the raw file bytes
    metadata: dict[str, str] = field(default_factory=dict)  # publisher, author, date, url, ...
    pages: tuple[PageSpan, ...] = ()  # only for paged formats (PDF)


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str
