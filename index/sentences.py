"""Sentence splitting with exact offsets, shared by the indexer and the answerers.

The indexer pools a vector for every unit (sentence or code block) of a chunk from the
chunk's token states, and the answerer scores the same units: both must cut a chunk the
same way, so the splitter lives here, where `bot` can import it.

Offsets are absolute (into `SourceDoc.text`): `doc.text[s.start:s.end] == s.text`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import numpy as np

# Single letters and dotted initialisms ("U.S", "e.g") before a period are not sentence ends.
_ABBREV = frozenset(
    "mr mrs ms dr prof sr jr st vs etc inc ltd co corp dept fig no jan feb mar apr jun jul aug sep "
    "sept oct nov dec approx est gen gov sen rep".split()
)
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+|$)")


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # absolute offsets: source_text[start:end] == text
    end: int
    heading: bool = False  # markdown heading / front-matter line: callers skip it as evidence


_ABBREV_TAIL = re.compile(r"(?<!\w)([^\W\d_]+(?:\.[^\W\d_]+)*)$")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Is the period at `dot` part of an abbreviation rather than a sentence end?"""
    # Only the word before the dot matters: a bounded window keeps splitting linear.
    m = _ABBREV_TAIL.search(text, max(0, dot - 40), dot)
    if not m:
        return False
    token = m.group(1)
    return "." in token or len(token) == 1 or token.lower() in _ABBREV


def _split_line(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    pos = start
    for m in _END.finditer(text, start, end):
        if m.group().startswith(".") and len(m.group().rstrip("\"'”’)]")) == 1:
            if _is_abbreviation(text, m.start()):
                # "U.S. Treasury" stays one sentence; "in the U.S. Then" is accepted as a cost.
                continue
        nxt = text[m.end() : m.end() + 3].lstrip()
        if nxt and nxt[0].islower():
            continue  # "e.g. the ..." or an ellipsis mid-sentence
        spans.append((pos, m.end()))
        pos = m.end()
    spans.append((pos, end))
    return spans


def split_sentences(text: str, base: int = 0) -> list[Sentence]:
    """Split text into sentences; lines are hard boundaries, headings are their own unit."""
    out: list[Sentence] = []
    line_start = 0
    for line in text.splitlines(keepends=True):
        line_end = line_start + len(line)
        stripped = line.strip()
        if stripped:
            heading = stripped.startswith("#") or stripped == "---" or stripped.startswith("|")
            spans = [(line_start, line_end)] if heading else _split_line(text, line_start, line_end)
            for a, b in spans:
                seg = text[a:b]
                lead = len(seg) - len(seg.lstrip())
                trail = len(seg) - len(seg.rstrip())
                a, b = a + lead, b - trail
                if b > a:
                    out.append(Sentence(text[a:b], base + a, base + b, heading))
        line_start = line_end
    return out


# What starts a list item, table row or prompt line: a line break before it is no wrap.
ITEM_START = re.compile(r"^\s*(?:[-*+•]\s|\d{1,3}[.)]\s|\||>>>|\.\.\.\s|\$\s)")
_DOCTEST = re.compile(r"^\s*(?:>>>|\.\.\.\s|\$\s|%\s|In \[\d+\]:)")


@dataclass(frozen=True)
class Unit:
    """A sentence of prose or a whole code block of a chunk (absolute offsets)."""

    start: int
    end: int
    code: bool
    para: int  # paragraph number within the chunk


def chunk_units(text: str, base: int, code: list[tuple[int, int]]) -> list[Unit]:
    """The units of a chunk's text: prose paragraphs split into sentences (a line break
    inside a paragraph is not a sentence end, a list item or table row is), code blocks
    (absolute `code` spans) and doctest lines kept whole."""
    out: list[Unit] = []
    para = 0
    pos = 0

    def prose(lo: int, hi: int) -> None:
        nonlocal para
        for block in re.finditer(r"(?:[^\n]|\n(?![ \t]*\n))+", text[lo:hi]):
            b_lo, b_hi = lo + block.start(), lo + block.end()
            if not text[b_lo:b_hi].strip():
                continue
            # Groups of lines: a new one at each list item, table row or prompt line.
            starts = [b_lo]
            for m in re.finditer(r"\n", text[b_lo:b_hi]):
                line_start = b_lo + m.end()
                if ITEM_START.match(text[line_start:b_hi]):
                    starts.append(line_start)
            for g_lo, g_hi in zip(starts, [*starts[1:], b_hi], strict=True):
                group = text[g_lo:g_hi]
                if _DOCTEST.match(group) or group.lstrip().startswith("|"):
                    spans = [(g_lo, g_hi)]
                else:
                    spans = _split_line(text, g_lo, g_hi)
                for a, b in spans:
                    seg = text[a:b]
                    a, b = a + len(seg) - len(seg.lstrip()), b - (len(seg) - len(seg.rstrip()))
                    if b > a:
                        is_code = bool(_DOCTEST.match(text[a:b])) or text[a:b].startswith("|")
                        out.append(Unit(base + a, base + b, is_code, para))
            para += 1

    for a, b in sorted(code):
        a, b = max(a - base, pos), min(b - base, len(text))
        if b <= a:
            continue
        prose(pos, a)
        if text[a:b].strip():
            out.append(Unit(base + a, base + b, True, para))
            para += 1
        pos = b
    prose(pos, len(text))
    return out


def parse_spans(value: object) -> list[tuple[int, int]]:
    """Spans stored as "a-b;c-d" in chunk metadata (Chroma metadata values are flat)."""
    spans = []
    for part in str(value or "").split(";"):
        a, _, b = part.partition("-")
        if a.isdigit() and b.isdigit():
            spans.append((int(a), int(b)))
    return spans


def units_of_chunk(text: str, metadata: dict) -> list[Unit]:
    """The units of a stored chunk (its text and the metadata the chunker wrote)."""
    return chunk_units(text, int(metadata.get("start", 0)), parse_spans(metadata.get("code")))


UNIT_VECTORS = "unit_vectors"  # chunk metadata key: one vector per `units_of_chunk` unit
# Chunk metadata key: the vector of the chunk's own section heading when that heading is a
# question (`index.chunker.question_heading`), embedded alone, as the answerer compares it
# with the user's question (bot/answer/asked.py).
HEADING_VECTOR = "heading_vector"
VECTOR_KEYS = frozenset({UNIT_VECTORS, HEADING_VECTOR})  # computed by the embedder, not chunked


def without_vectors(metadata: dict) -> dict:
    """A chunk's metadata without what the embedder added (`VECTOR_KEYS`)."""
    return {k: v for k, v in metadata.items() if k not in VECTOR_KEYS}


def encode_unit_vectors(vectors: np.ndarray) -> str:
    """Unit vectors as int8 (x127), base64: ~0.5 KB a sentence, cosine error ~1e-3."""
    q = np.clip(np.rint(vectors * 127.0), -127, 127).astype(np.int8)
    return base64.b64encode(q.tobytes()).decode("ascii")


def decode_unit_vectors(value: object, dimension: int) -> np.ndarray | None:
    """The vectors `encode_unit_vectors` stored, or None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        raw = np.frombuffer(base64.b64decode(value), dtype=np.int8)
    except ValueError:
        return None
    if raw.size % dimension:
        return None
    return raw.reshape(-1, dimension).astype(np.float32) / 127.0
