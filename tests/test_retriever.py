from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from bot.retriever import HybridRetriever, Lexicon, QueryCachedEmbeddings, fuse
from index import lexical
from index.chunker import embedding_text
from index.pipeline import reindex
from tests.helpers import index_reader


def _reader(settings, embeddings):
    return index_reader(settings, embeddings)


@pytest.fixture(scope="module")
def reader(seed_index, minilm):
    return _reader(seed_index, minilm)


def test_returns_k_copies_with_all_scores(reader, minilm):
    retriever = HybridRetriever(reader=reader, k=3)
    docs = retriever.invoke("Which firm traced attacks on bitcoin exchanges?")
    assert len(docs) == 3
    qvec = np.asarray(minilm.embed_query("Which firm traced attacks on bitcoin exchanges?"))
    chunks = {c.id: c for c in reader.snapshot().chunks()}
    for d in docs:
        md = d.metadata
        assert {"dense_score", "bm25_score", "rrf_score", "source", "start", "end"} <= set(md)
        assert d.page_content == chunks[d.id].page_content
        assert "dense_score" not in chunks[d.id].metadata  # the cached chunks are untouched
        vec = np.asarray(minilm.embed_documents([embedding_text(chunks[d.id])])[0])
        assert md["dense_score"] == pytest.approx(float(qvec @ vec), abs=0.02)
    assert [d.metadata["rrf_score"] for d in docs] == sorted(
        (d.metadata["rrf_score"] for d in docs), reverse=True
    )
    assert any("FireEye" in d.page_content for d in docs)


def test_hybrid_lifts_an_exact_rare_term_that_dense_misses(reader):
    # A bare rare word gives the embedding little to go on; BM25 knows exactly where it is.
    dense = HybridRetriever(reader=reader, k=4, mode="dense").invoke("defectors")
    hybrid = HybridRetriever(reader=reader, k=4, mode="hybrid").invoke("defectors")
    assert "defectors" in hybrid[0].page_content
    assert "defectors" not in dense[0].page_content
    scores = [d.metadata["dense_score"] for d in dense]
    assert scores == sorted(scores, reverse=True)  # dense mode is pure cosine order


def test_a_chat_shortening_reads_as_the_word_the_corpus_spells_out(reader):
    # The seed articles say "Development" (a bank's research arm), never "dev".
    lexicon = HybridRetriever(reader=reader, k=4).lexicon()
    assert lexicon.spelled_out("dev") == "development"
    assert lexicon.spelled_out("bitcoin") == "bitcoin"  # not a shortening
    assert lexicon.spelled_out("repo") == "repo"  # "repository" isn't in the corpus either
    short = HybridRetriever(reader=reader, k=4).invoke("dev bank research")
    full = {
        d.id: d for d in HybridRetriever(reader=reader, k=4).invoke("development bank research")
    }
    both = [d for d in short if d.id in full and "Development" in d.page_content]
    assert both  # BM25 scored the chunk for "development" in both questions, the same
    for d in both:
        assert d.metadata["bm25_score"] == pytest.approx(full[d.id].metadata["bm25_score"])


def test_lexical_only_hits_get_a_dense_score(reader):
    # fetch_k=1: dense finds one chunk, BM25 another whose cosine must be looked up.
    docs = HybridRetriever(reader=reader, k=4, fetch_k=1).invoke("defectors")
    assert len(docs) == 2
    expected = {d.id: s for d, s in reader.dense_search("defectors", 20)}
    for d in docs:
        assert d.metadata["dense_score"] == pytest.approx(expected[d.id], abs=1e-4)
    lexical_only = [d for d in docs if "defectors" in d.page_content]
    assert lexical_only and lexical_only[0].metadata["bm25_score"] > 0


def test_bm25_built_once_per_generation_and_rebuilt_on_change(index_settings, minilm):
    reader = _reader(index_settings, QueryCachedEmbeddings(inner=minilm))
    retriever = HybridRetriever(reader=reader, k=2)
    snapshot = reader.snapshot()
    results = []

    def worker():
        results.append(retriever.lexical_index(reader.snapshot()))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in results}) == 1 and results[0].generation == snapshot.generation

    (index_settings.corpus_dir / "zebra.md").write_text(
        "# Zebras\n\nThe quagga zebra went extinct in 1883.\n", encoding="utf-8"
    )
    reindex(index_settings, embeddings=minilm)
    docs = retriever.invoke("quagga")
    assert docs[0].metadata["source"] == "zebra.md"
    assert retriever.lexical_index(reader.snapshot()).generation != snapshot.generation


def test_query_cache_embeds_each_question_once(minilm):
    cached = QueryCachedEmbeddings(inner=minilm, size=2)
    a1 = cached.embed_query("alpha")
    a2 = cached.embed_query("alpha")
    assert a1 is a2
    cached.embed_query("beta")
    cached.embed_query("gamma")  # evicts alpha
    assert cached.embed_query("alpha") is not a1


def test_fuse_adds_reciprocal_ranks():
    top, rrf = fuse(["a", "b", "c"], ["c", "d"], 2)
    assert top == ["c", "a"]  # in both lists beats first in one
    assert rrf["c"] == pytest.approx(1 / 63 + 1 / 61) and set(rrf) == {"a", "b", "c", "d"}


def _rows(extra: bool) -> list[tuple[str, str, dict]]:
    rows = [
        ("a0", "Mining bitcoin needs power and cheap power.", {"source": "a.md", "chunk_index": 0}),
        ("a1", "The exchanges were attacked five times.", {"source": "a.md", "chunk_index": 1}),
        ("b0", "Bitcoin mining in a short paragraph.", {"source": "b.md", "chunk_index": 0}),
    ]
    if extra:  # an unrelated document: many chunks, one of them sharing a word
        rows += [
            (f"z{i}", f"zebra quagga number {i} grazes" + (" power" if i == 0 else ""),
             {"source": "z.md", "chunk_index": i})
            for i in range(40)
        ]  # fmt: skip
    return rows


def test_bm25_within_documents_matches_bm25s_and_ignores_other_documents():
    alone = lexical.build("g", _rows(False))
    lexicon = Lexicon(alone, lambda ids: {})
    terms = ["bitcoin", "power", "exchang"]
    everything = lexicon.bm25_at([0, 1, 2], lexicon.within(terms, {"a.md", "b.md"}))
    assert everything == pytest.approx(alone.bm25.get_scores(terms)[:3].tolist(), rel=1e-5)
    crowded = lexical.build("g", _rows(True))
    beside = Lexicon(crowded, lambda ids: {})
    positions = [crowded.ids.index(c) for c in ("a0", "a1", "b0")]
    stats = beside.within(terms, {"a.md", "b.md"})
    assert beside.bm25_at(positions, stats) == pytest.approx(everything)
    positions, scores = beside.bm25_of_documents(stats)
    assert sorted(crowded.ids[i] for i in positions) == ["a0", "a1", "b0"]
    got = dict(zip((crowded.ids[i] for i in positions), scores.tolist(), strict=True))
    assert [got[c] for c in ("a0", "a1", "b0")] == pytest.approx(everything)
    # corpus-wide statistics do move with the unrelated document
    assert crowded.bm25.get_scores(terms)[positions[0]] != pytest.approx(everything[0])


def test_an_unrelated_document_changes_no_retrieval(index_settings, minilm):
    reader = _reader(index_settings, QueryCachedEmbeddings(inner=minilm))
    retriever = HybridRetriever(reader=reader, k=4)
    questions = ["When did North Korea start mining bitcoin?", "Which firm traced the attacks?"]

    def results() -> list[list[tuple[str, float]]]:
        return [
            [(d.id, round(d.metadata["bm25_score"], 5)) for d in retriever.invoke(q)]
            for q in questions
        ]

    before = results()
    rng = random.Random(7)
    vocabulary = ["".join(rng.choice("abcdefghij") for _ in range(6)) for _ in range(300)]
    junk = " ".join(rng.choice(vocabulary) for _ in range(6000))
    (index_settings.corpus_dir / "zz-junk.txt").write_text(junk, encoding="utf-8")
    reindex(index_settings, embeddings=minilm)
    assert reader.snapshot().info.chunks > 20  # the junk is in
    assert results() == before
