"""The chunker: exact offsets, pages, metadata and stable ids."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_text_splitters import RecursiveCharacterTextSplitter

from index.chunker import _WHITESPACE, SEPARATORS, chunk_document, chunk_id
from index.documents import PageSpan, SourceDoc
from index.errors import ConfigError
from index.loader import load_corpus, load_file
from tests.conftest import SEED_CORPUS
from tests.data.make_pdf import pdf_bytes

MAX = 1_000_000
REQUIRED = {"source", "title", "start", "end", "chunk_index", "doc_sha256"}
ALLOWED = REQUIRED | {"page", "publisher", "author", "date", "url", "site"}
ALLOWED |= {"section", "level", "anchor", "code", "section_start"}  # structure: heading path, its anchor, code


def make_doc(text: str, *, source: str = "doc.txt", pages: tuple[PageSpan, ...] = ()) -> SourceDoc:
    return SourceDoc(
        source=source,
        title="T",
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        pages=pages,
    )


def check_chunks(doc: SourceDoc, chunks) -> None:
    """The invariants every chunk list must satisfy."""
    assert chunks, doc.source
    prev_start = -1
    for i, chunk in enumerate(chunks):
        md = chunk.metadata
        assert REQUIRED <= md.keys() <= ALLOWED
        assert all(isinstance(v, str | int) and v is not None for v in md.values())
        assert doc.text[md["start"] : md["end"]] == chunk.page_content
        # In document order; the same start only when a chunk extends the previous one.
        assert md["start"] > prev_start or (
            md["start"] == prev_start and chunk.page_content.startswith(chunks[i - 1].page_content)
        )
        prev_start = md["start"]
        assert md["chunk_index"] == i
        assert md["source"] == doc.source and md["doc_sha256"] == doc.sha256
        assert re.fullmatch(r"[0-9a-f]{32}", chunk.id)
        context = md.get("section", "")
        earlier = [(c.metadata.get("section", ""), c.page_content) for c in chunks[:i]]
        occurrence = earlier.count((context, chunk.page_content))
        assert chunk.id == chunk_id(doc.source, chunk.page_content, occurrence, context)
    assert len({c.id for c in chunks}) == len(chunks)


@pytest.mark.parametrize(("size", "overlap"), [(900, 150), (300, 80), (100, 0), (120, 60)])
def test_seed_corpus_offsets_round_trip(size, overlap):
    docs, _ = load_corpus(SEED_CORPUS, max_bytes=MAX)
    for doc in docs:
        chunks = chunk_document(doc, chunk_size=size, chunk_overlap=overlap)
        check_chunks(doc, chunks)
        assert all(len(c.page_content) <= size for c in chunks)
        assert "page" not in chunks[0].metadata
        # Together the chunks cover every non-blank character of the document.
        covered = set()
        for c in chunks:
            covered.update(range(c.metadata["start"], c.metadata["end"]))
        # Everything but heading lines (context, not quotable text) is in some chunk.
        for sec in doc.sections:
            covered.update(range(sec.start, sec.body_start))
        assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())


def test_metadata_carries_document_fields():
    docs, _ = load_corpus(SEED_CORPUS, max_bytes=MAX)
    by_source = {d.source: d for d in docs}
    ccn = by_source["north-korea-short-lived-bitcoin-mining.md"]
    first = chunk_document(ccn, chunk_size=900, chunk_overlap=150)[0]
    heading = ccn.sections[0]
    assert ccn.text[heading.start : heading.body_start] == f"# {ccn.title}"
    assert first.metadata == {
        "source": ccn.source,
        "title": ccn.title,
        "doc_sha256": ccn.sha256,
        "publisher": "CCN",
        "site": "CCN.com",
        "author": "Jack Mathis",
        "date": "2021-03-04",
        "start": heading.body_start + 2,  # the body starts after the heading's blank line
        "end": heading.body_start + 2 + len(first.page_content),
        "chunk_index": 0,
        "section": ccn.title,
        "section_start": heading.body_start + 2,
        "level": 1,
        "anchor": "north-korea-appears-to-have-run-a-short-lived-bitcoin-mining-operation",
    }
    other = chunk_document(
        by_source["north-korea-begins-mining-bitcoin.md"], chunk_size=900, chunk_overlap=150
    )
    assert not {"publisher", "author", "date", "url", "site", "page"} & other[0].metadata.keys()


def test_sentence_separator_stays_with_its_sentence():
    text = "One short sentence here. " * 12 + "Last one."
    chunks = chunk_document(make_doc(text), chunk_size=100, chunk_overlap=0)
    assert all(c.page_content.startswith("One") or c.page_content == "Last one." for c in chunks)


def test_repeated_paragraphs_get_exact_offsets_and_distinct_ids():
    para = "The same paragraph repeats itself word for word in this file."
    text = "\n\n".join([para, para, "Something different in between.", para, para, para])
    doc = make_doc(text)
    for size, overlap in [(70, 0), (70, 30), (140, 70), (200, 100)]:
        chunks = chunk_document(doc, chunk_size=size, chunk_overlap=overlap)
        check_chunks(doc, chunks)
    chunks = chunk_document(doc, chunk_size=70, chunk_overlap=0)
    repeats = [c for c in chunks if c.page_content == para]
    assert len(repeats) == 5
    assert [c.metadata["start"] for c in repeats] == [m.start() for m in re.finditer(para, text)]
    assert [c.id for c in repeats] == [chunk_id("doc.txt", para, n) for n in range(5)]


def assert_true_offsets(text: str, size: int, overlap: int) -> None:
    """Chunks are the splitter's own chunks of `text`, at their true offsets.

    Oracle: the splitter decides only by separators and lengths, so on a copy of `text` with
    every other character made unique to its position it cuts at the same places, and there
    each chunk occurs once."""
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=size, chunk_overlap=overlap, separators=SEPARATORS, keep_separator="end"
    )
    unique = "".join(
        ch if ch in " \n.?!" or ch.isspace() else chr(0x4E00 + i) for i, ch in enumerate(text)
    )
    truth = [
        (unique.find(c), c)
        for c in splitter.split_text(unique)
        if any(ord(ch) >= 0x4E00 for ch in c)  # punctuation-only chunks are dropped
    ]
    doc = make_doc(text)
    chunks = chunk_document(doc, chunk_size=size, chunk_overlap=overlap)
    check_chunks(doc, chunks)
    assert [(c.metadata["start"], c.metadata["end"]) for c in chunks] == [
        (start, start + len(c)) for start, c in truth
    ]
    assert [c.page_content for c in chunks] == [
        c
        for c in splitter.split_text(text)
        if any(ch not in ".?!" and not ch.isspace() for ch in c)
    ]


def test_start_index_of_splitter_is_corrected():
    text = "b?  a\nab b?\nb? ab\n\na. ab  ab\nb?\na. a\n\nb? a"
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=4,
        chunk_overlap=3,
        separators=SEPARATORS,
        keep_separator="end",
        add_start_index=True,
    )
    hints = [d.metadata["start_index"] for d in splitter.create_documents([text])]
    assert hints[3:5] == [9, 9]  # langchain puts two different "b?" chunks at 9
    assert_true_offsets(text, 4, 3)
    chunks = chunk_document(make_doc(text), chunk_size=4, chunk_overlap=3)
    assert [c.metadata["start"] for c in chunks if c.page_content == "b?"][:3] == [0, 9, 12]


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(
            ["a", "ab", "a.", "b?", "x y", "gamma", "eps!", "caf\u00e9", "\u20ac\u00a0"]
        ),
        max_size=80,
    ),
    breaks=st.lists(
        st.sampled_from([" ", " ", "  ", "\n", "\n\n", "\n \n"]), min_size=80, max_size=80
    ),
    size=st.integers(3, 60),
    overlap_pct=st.integers(0, 90),
)
def test_offsets_are_true_on_repetitive_text(words, breaks, size, overlap_pct):
    text = "".join(w + b for w, b in zip(words, breaks, strict=False)).strip()
    if text:
        assert_true_offsets(text, size, size * overlap_pct // 100)


def test_pdf_chunks_know_their_page(tmp_path):
    pages = [
        [f"Page {p} sentence {i} talks about mining rigs and cooling." for i in range(8)]
        for p in (1, 2)
    ]
    pages.insert(2, [])  # blank page 3
    pages.append([f"Page 4 sentence {i} is on the last page." for i in range(6)])
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf_bytes(pages, title="Rigs"))
    doc = load_file(path, root=tmp_path, max_bytes=MAX)
    spans = {s.page: s for s in doc.pages}

    chunks = chunk_document(doc, chunk_size=150, chunk_overlap=40)
    check_chunks(doc, chunks)
    for chunk in chunks:
        span = spans[chunk.metadata["page"]]
        assert span.start <= chunk.metadata["start"] < span.end
        # The first sentence label in the chunk names the page where it starts.
        label = re.search(r"Page (\d) sentence", chunk.page_content)
        if label and chunk.page_content.startswith("Page"):
            assert int(label.group(1)) == chunk.metadata["page"]
    assert {c.metadata["page"] for c in chunks} == {1, 2, 4}


def test_ids_stable_across_runs_and_untouched_documents(corpus_dir: Path):
    def run() -> dict[str, list]:
        docs, _ = load_corpus(corpus_dir, max_bytes=MAX)
        return {d.source: chunk_document(d, chunk_size=300, chunk_overlap=50) for d in docs}

    first, second = run(), run()
    assert {s: [(c.id, c.metadata) for c in cs] for s, cs in first.items()} == {
        s: [(c.id, c.metadata) for c in cs] for s, cs in second.items()
    }

    edited = "north-korea-short-lived-bitcoin-mining.md"
    with (corpus_dir / edited).open("a", encoding="utf-8") as fh:
        fh.write("\nA brand new closing paragraph was added by an editor.\n")
    third = run()
    untouched = "north-korea-begins-mining-bitcoin.md"
    assert [c.id for c in third[untouched]] == [c.id for c in first[untouched]]
    old_ids = [c.id for c in first[edited]]
    new_ids = [c.id for c in third[edited]]
    assert new_ids[0] == old_ids[0]  # unchanged opening text keeps its id
    assert set(new_ids) - set(old_ids)  # the new text has new ids
    assert third[edited][0].metadata["doc_sha256"] != first[edited][0].metadata["doc_sha256"]


def test_whitespace_table_matches_python():
    # The splitter strips str.isspace() characters, so the chunker must keep exactly those.
    assert set(_WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


def test_chunk_id_depends_on_source_text_and_occurrence():
    ids = {
        chunk_id("a.md", "text", 0),
        chunk_id("b.md", "text", 0),
        chunk_id("a.md", "text!", 0),
        chunk_id("a.md", "text", 1),
    }
    assert len(ids) == 4
    expected = hashlib.sha256(b"a.md\0text\x000").hexdigest()[:32]
    assert chunk_id("a.md", "text", 0) == expected


def test_overlap_must_be_smaller_than_size():
    with pytest.raises(ConfigError, match="CHUNK_OVERLAP"):
        chunk_document(make_doc("some text"), chunk_size=100, chunk_overlap=100)
