"""SourceDoc -> chunks: langchain Documents with exact offsets and stable ids.

Every chunk satisfies `doc.text[start:end] == page_content`, so a citation can always be
located in (and quoted from) the document it came from.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
from collections import Counter

import numpy as np
from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from index.documents import SECTION_SEP, Section, SourceDoc
from index.errors import ConfigError

log = logging.getLogger(__name__)

# Paragraphs, lines, sentence ends, words; "" is the splitter's last resort for huge tokens.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", " ", ""]
OPTIONAL_KEYS = ("publisher", "author", "date", "url", "site")


def chunk_id(source: str, text: str, occurrence: int, context: str = "") -> str:
    """Stable id: the same text under the same headings at the same position-in-kind in the
    same file keeps its id (the headings are embedded with the text, see `embedding_text`)."""
    body = f"{context}\0{text}" if context else text
    key = f"{source}\0{body}\0{occurrence}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def context_of(metadata: dict) -> str:
    """Where a chunk sits: "Title › Section › Subsection" (the title once)."""
    title = str(metadata.get("title") or "")
    section = str(metadata.get("section") or "")
    if not section:
        return title
    path = section.split(SECTION_SEP)
    if title and path[0] != title:
        path.insert(0, title)
    return SECTION_SEP.join(path)


def question_heading(metadata: dict) -> str | None:
    """The chunk's own (deepest) section heading when it is a question ("Can I safely shut
    down the worker?"), else None: FAQ pages head each answer with the question it answers."""
    section = str(metadata.get("section") or "")
    heading = section.rsplit(SECTION_SEP, 1)[-1].strip()
    return heading if heading.endswith("?") and len(heading) > 1 else None


def embedding_text(chunk: Document) -> str:
    """What is embedded and searched for a chunk: its heading path, then its text. Headings
    are context for retrieval, never part of the quotable `page_content`."""
    context = context_of(chunk.metadata)
    return f"{context}\n\n{chunk.page_content}" if context else chunk.page_content


# Characters the splitter's decisions can depend on: its separators, and whitespace (which
# it strips; this is every code point with str.isspace()). Every other character is
# replaced by one unique to its position, from planes 1-14 (never whitespace or surrogates).
_SEPARATOR_CHARS = " \n.?!"
_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(
    map(chr, [*range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000])
)
_KEEP = np.array(sorted(map(ord, set(_SEPARATOR_CHARS + _WHITESPACE))), dtype=np.uint32)
_TAG_BASE, _TAG_PERIOD = 0x10000, 0xE0000


def _position_tagged(text: str) -> str:
    """`text` with every non-kept character made unique to its position (mod 917504)."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    tags = _TAG_BASE + np.arange(len(codes), dtype=np.uint32) % _TAG_PERIOD
    return np.where(np.isin(codes, _KEEP), codes, tags).astype("<u4").tobytes().decode("utf-32-le")


def _is_untagged(marked: str) -> bool:
    return all(ord(ch) < _TAG_BASE for ch in marked)


def _split(
    splitter: RecursiveCharacterTextSplitter, text: str, lo: int, hi: int, source: str
) -> list[tuple[int, str]]:
    """(offset, text) of the chunks of text[lo:hi], offsets into `text`."""
    # The splitter cuts only by separators and lengths, so it cuts the tagged copy exactly
    # where it would cut the text; there each chunk occurs once, which gives its true offset.
    # (Its own start_index is only a hint: it can point at an earlier copy of repeated text.)
    part = text[lo:hi]
    if not part.strip():
        return []
    tagged = _position_tagged(part)
    out = []
    pos = 0
    for piece in splitter.create_documents([tagged]):
        marked = piece.page_content
        if _is_untagged(marked):
            continue  # only punctuation and spaces: nothing to retrieve
        start = piece.metadata.get("start_index", -1)
        if start < pos or not tagged.startswith(marked, start):
            start = tagged.find(marked, pos)
        if start < 0:  # cannot happen: the tagged text is what was split
            raise RuntimeError(f"{source}: chunk not found at or after offset {lo + pos}")
        pos = start
        out.append((lo + start, part[start : start + len(marked)]))
    return out


def _body_start(text: str, pos: int) -> int:
    """The first non-blank offset at or after pos."""
    return pos + len(text[pos:]) - len(text[pos:].lstrip())


def _code_within(code: tuple[tuple[int, int], ...], start: int, end: int) -> str:
    """The code spans overlapping [start, end), clipped, as "a-b;c-d" (Chroma metadata is flat)."""
    spans = [(max(a, start), min(b, end)) for a, b in code if a < end and b > start]
    return ";".join(f"{a}-{b}" for a, b in spans)


def chunk_document(doc: SourceDoc, *, chunk_size: int, chunk_overlap: int) -> list[Document]:
    """Split `doc.text` into overlapping chunks carrying the metadata of ARCHITECTURE.md."""
    if chunk_overlap >= chunk_size:
        raise ConfigError(
            f"CHUNK_OVERLAP ({chunk_overlap}) must be smaller than CHUNK_SIZE ({chunk_size})"
        )
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        separators=SEPARATORS,
        keep_separator="end",  # "end" keeps ". " with its sentence, not the next chunk
        add_start_index=True,
    )
    base: dict[str, str | int] = {
        "source": doc.source,
        "title": doc.title,
        "doc_sha256": doc.sha256,
    }
    base.update({k: doc.metadata[k] for k in OPTIONAL_KEYS if doc.metadata.get(k)})
    page_starts = [span.start for span in doc.pages]
    sections = doc.sections or (Section(start=0, body_start=0, end=len(doc.text)),)
    chunks: list[Document] = []
    seen: Counter[str] = Counter()
    for sec in sections:
        context = SECTION_SEP.join(sec.path)
        for start, content in _split(splitter, doc.text, sec.body_start, sec.end, doc.source):
            metadata = dict(base, start=start, end=start + len(content), chunk_index=len(chunks))
            if sec.path:
                metadata["section"] = context
                metadata["level"] = sec.level
            # Where the section's body begins: a chunk starting there opens the section.
            metadata["section_start"] = _body_start(doc.text, sec.body_start)
            if sec.anchor:
                metadata["anchor"] = sec.anchor
            code = _code_within(doc.code, start, start + len(content))
            if code:
                metadata["code"] = code
            if doc.pages:
                # The page containing `start` (chunks never start in the blank gap between pages).
                page = doc.pages[max(0, bisect.bisect_right(page_starts, start) - 1)]
                metadata["page"] = page.page
            key = f"{context}\0{content}"
            chunks.append(
                Document(
                    id=chunk_id(doc.source, content, seen[key], context),
                    page_content=content,
                    metadata=metadata,
                )
            )
            seen[key] += 1
    log.debug("%s: %d chunks", doc.source, len(chunks))
    return chunks
