"""The answer the chain produces, independent of where it is shown."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Mode = Literal["extractive", "llm", "extractive-fallback"]


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
    url: str | None = None
    chunk_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


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
