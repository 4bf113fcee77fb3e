"""The answer the chain produces, independent of where it is shown."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from index.documents import SECTION_SEP

if TYPE_CHECKING:  # kept off the import path of `python -m bot discord` without a token
    from langchain_core.documents import Document


# Headings read from HTML join their inline pieces with spaces ("an `Essential`, `Required`"
# comes out "an Essential , Required"): shown without the space before punctuation.
_SPACE_BEFORE_PUNCT = re.compile(r"(?<=[\w)\]\"'])\s+(?=[,;:!?)\]])|(?<=[(\[])\s+(?=\w)")


def _tidy(text: str) -> str:
    return _SPACE_BEFORE_PUNCT.sub("", text)


Mode = Literal["extractive", "llm", "extractive-fallback"]


def deep_link(url: str | None, *, anchor: str | None = None, page: int | None = None) -> str | None:
    """The document URL pointing at the place: `#anchor` for a section, `#page=N` in a PDF."""
    if not url:
        return None
    base = url.split("#", 1)[0]
    if page is not None and base.lower().endswith(".pdf"):
        return f"{base}#page={page}"
    if anchor:
        return f"{base}#{anchor}"
    return url


@dataclass
class Citation:
    n: int
    title: str
    source: str  # corpus-relative path
    quote: str  # verbatim passage from the document text
    start: int | None = None  # offsets of `quote` in the document text
    end: int | None = None
    page: int | None = None
    publisher: str | None = None
    author: str | None = None
    date: str | None = None
    url: str | None = None  # the deep link: page URL + #anchor, or #page=N for PDFs
    chunk_id: str | None = None
    section: str | None = None  # the heading the quote sits under
    heading_path: str | None = None  # "Programming FAQ › Functions › Why ...?"
    anchor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def of_chunk(cls, n: int, chunk: Document, *, quote: str, start: int, end: int) -> Citation:
        """A citation of `quote` (document offsets start..end) in a retrieved chunk: its
        title, the heading path it sits under and a deep link to that section."""
        md = chunk.metadata
        source = str(md.get("source", ""))
        path = _tidy(str(md.get("section") or ""))
        return cls(
            n=n,
            title=_tidy(str(md.get("title") or source or "Untitled")),
            source=source,
            quote=quote,
            start=start,
            end=end,
            page=md.get("page"),
            publisher=md.get("publisher"),
            author=md.get("author"),
            date=md.get("date"),
            url=deep_link(md.get("url"), anchor=md.get("anchor"), page=md.get("page")),
            chunk_id=str(chunk.id) if chunk.id else None,
            section=path.split(SECTION_SEP)[-1] if path else None,
            heading_path=path or None,
            anchor=md.get("anchor"),
        )


@dataclass
class Answer:
    question: str
    text: str  # with [n] markers
    citations: list[Citation] = field(default_factory=list)
    abstained: bool = False
    mode: Mode = "extractive"
    standalone_question: str | None = None  # the rewritten follow-up, if any
    note: str | None = None  # e.g. why the LLM answer fell back to extractive
    latency_ms: float = 0.0
    # What the offline decision saw, and the passage it judged (bench/eval_devsets.py,
    # bench/fit_decision.py); not part of the JSON output.
    features: dict[str, float] = field(default_factory=dict, repr=False)
    candidate: Citation | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "mode": self.mode,
            "latency_ms": round(self.latency_ms, 1),
            "standalone_question": self.standalone_question,
            "note": self.note,
            "citations": [c.to_dict() for c in self.citations],
        }
