"""The per-generation lexical cache: written at index time, used by the bot, and a stale,
corrupt or missing cache falls back to building the same data from the chunks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from bot.retriever import HybridRetriever, QueryCachedEmbeddings
from bot.service import build_service
from index import lexical, store
from index.embedder import embedder_id
from index.pipeline import reindex
from index.store import IndexReader, make_client

QUESTIONS = [
    "Which firm traced attacks on bitcoin exchanges?",
    "defectors",
    "How does North Korea mine bitcoin?",
]


def _reader(settings, embeddings, *, cache: bool = True) -> IndexReader:
    client = make_client(settings)
    return IndexReader(
        client=client,
        embeddings=embeddings,
        embedder_id=embedder_id(settings),
        prefix=settings.collection_prefix,
        files_path=Path(client.get_settings().persist_directory) if cache else None,
        settings=settings if cache else None,
    )


def _root(settings) -> Path:
    return lexical.lexical_root(settings.chroma_path, settings.index_dir)


def _active(settings) -> store.IndexInfo:
    info = store.read_pointer(make_client(settings), settings.collection_prefix)
    assert info is not None
    return info


def _answers(retriever: HybridRetriever) -> list:
    out = []
    for q in QUESTIONS:
        docs = retriever.invoke(q)
        out.append(
            [
                (d.id, d.page_content, d.metadata["bm25_score"], d.metadata["rrf_score"])
                for d in docs
            ]
        )
    return out


def test_index_writes_the_cache_before_the_switch(index_settings, minilm, monkeypatch):
    first = _active(index_settings)
    assert lexical.is_current(_root(index_settings), first.generation, chunks=first.chunks)

    seen = []
    real_write = store.write_pointer

    def write_pointer(client, prefix, info):
        seen.append(lexical.is_current(_root(index_settings), info.generation, chunks=info.chunks))
        real_write(client, prefix, info)

    monkeypatch.setattr(store, "write_pointer", write_pointer)
    (index_settings.corpus_dir / "zebra.md").write_text(
        "# Zebras\n\nThe quagga zebra went extinct in 1883.\n", encoding="utf-8"
    )
    summary = reindex(index_settings, embeddings=minilm)
    assert summary.changed and seen == [True]


def test_bot_uses_the_cache_with_the_same_results(index_settings, minilm, caplog):
    embeddings = QueryCachedEmbeddings(inner=minilm)
    cached = HybridRetriever(reader=_reader(index_settings, embeddings), k=4)
    built = HybridRetriever(reader=_reader(index_settings, embeddings, cache=False), k=4)
    with caplog.at_level(logging.INFO, logger="bot.retriever"):
        assert _answers(cached) == _answers(built)
    assert cached.lexical_index(cached.reader.snapshot()).source == "cache"
    assert built.lexical_index(built.reader.snapshot()).source == "built"
    assert "loaded from its cache" in caplog.text

    a, b = cached.lexicon(), built.lexicon()
    assert a.df == b.df and a.sorted_terms == b.sorted_terms
    sources = {"north-korea-begins-mining-bitcoin.md"}
    for term in ["bitcoin", "mine", "korea", "nonexistentterm"]:
        assert a.idf_within(sources)(term) == b.idf_within(sources)(term)
        assert a.knows(term) == b.knows(term)
    # The corpus never writes "DPRK"; one article spells the name out.
    assert a.acronym_name("DPRK") == b.acronym_name("DPRK")
    assert a.acronym_name("DPRK") == "Democratic People’s Republic of Korea"
    pairs = 0
    for chunk in built.reader.snapshot().chunks():
        na, nb = a.next_chunk(chunk), b.next_chunk(chunk)
        assert (na and (na.id, na.page_content, na.metadata)) == (
            nb and (nb.id, nb.page_content, nb.metadata)
        )
        if na is not None:  # the chunk before the next one is this one
            pairs += 1
            assert a.previous_chunk(na).id == b.previous_chunk(na).id == chunk.id
    assert pairs > 0


def test_discord_warm_up_loads_the_cache(index_settings):
    service = build_service(index_settings, build_if_missing=False, warm=True)
    lex = service._retriever._lexical
    assert lex is not None and lex.source == "cache"


@pytest.mark.parametrize("damage", ["missing", "stale-terms", "stale-count", "corrupt-arrays"])
def test_a_bad_cache_falls_back_to_building_it(index_settings, minilm, caplog, damage):
    info = _active(index_settings)
    folder = _root(index_settings) / info.generation
    manifest = folder / "manifest.json"
    if damage == "missing":
        for p in folder.iterdir():
            if p.is_file():
                p.unlink()
    elif damage.startswith("stale"):
        md = json.loads(manifest.read_text())
        md["terms" if damage == "stale-terms" else "chunks"] = (
            "0" * 16 if damage == "stale-terms" else info.chunks + 1
        )
        manifest.write_text(json.dumps(md))
    else:
        (folder / "arrays.npz").write_bytes(b"not a zip file")
    embeddings = QueryCachedEmbeddings(inner=minilm)
    retriever = HybridRetriever(reader=_reader(index_settings, embeddings), k=4)
    reference = HybridRetriever(reader=_reader(index_settings, embeddings, cache=False), k=4)
    with caplog.at_level(logging.WARNING, logger="bot.retriever"):
        assert _answers(retriever) == _answers(reference)
    assert retriever.lexical_index(retriever.reader.snapshot()).source == "built"
    assert "building the BM25 index from the chunks instead" in caplog.text
    assert "`python -m index` writes a fresh cache" in caplog.text  # the user's way out
    if damage == "stale-terms":
        assert "another version's tokeniser" in caplog.text


def test_unchanged_reindex_writes_a_missing_cache(index_settings, minilm):
    info = _active(index_settings)
    folder = _root(index_settings) / info.generation
    for p in sorted(folder.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    folder.rmdir()
    summary = reindex(index_settings, embeddings=minilm)
    assert not summary.changed
    assert lexical.is_current(_root(index_settings), info.generation, chunks=info.chunks)


def test_cache_goes_with_its_generation_and_reuses_terms(index_settings, minilm):
    first = _active(index_settings).generation
    copies = index_settings.model_copy(update={"layer_max_share": 0.0})  # no layer keeps `first`
    for i in range(2):  # KEEP_GENERATIONS=2: the first generation goes on the second run
        (index_settings.corpus_dir / f"extra{i}.md").write_text(
            f"# Extra {i}\n\nThe okapi number {i} lives in the forest.\n", encoding="utf-8"
        )
        reindex(copies, embeddings=minilm)
    info = _active(index_settings)
    live = {
        c.name
        for c in store.list_generations(
            make_client(index_settings), index_settings.collection_prefix
        )
    }
    assert first not in live
    assert {p.name for p in _root(index_settings).iterdir()} == live

    # Terms carried over from the previous generation equal freshly computed ones.
    data = lexical.load(_root(index_settings), info.generation, chunks=info.chunks)
    col = store.open_view(make_client(index_settings), info.generation)
    fresh = lexical.build(info.generation, store.iter_rows(col, ["documents", "metadatas"]))
    assert data.ids == fresh.ids and data.terms == fresh.terms
    for name in lexical._ARRAY_FIELDS:
        assert np.array_equal(getattr(data, name), getattr(fresh, name)), name
    for part in ("data", "indices", "indptr"):
        assert np.array_equal(data.bm25.scores[part], fresh.bm25.scores[part])
