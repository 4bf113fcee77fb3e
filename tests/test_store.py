"""Store mechanics against a real embedded Chroma: generations, pointer, pruning, reader.

The vectors here come from a tiny deterministic bag-of-words embedding so the tests are about
storage, not the model (the pipeline tests use the real MiniLM embedder).
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import subprocess
import sys

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from index import store
from index.errors import ConfigError, IndexNotReady, StoreUnavailable
from tests.helpers import subprocess_env

DIM = 32


class HashedWords(Embeddings):
    """Deterministic unit vectors: each word adds 1 to a hashed dimension."""

    def _vec(self, text: str) -> list[float]:
        v = [0.0] * DIM
        for word in text.lower().split():
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vec(text)


TEXTS = {
    "a.md": ["north korea mines bitcoin", "the mining operation was short lived"],
    "b.md": ["researchers tracked the wallet", "monero was also mentioned"],
}


def _chunks(texts: dict[str, list[str]]) -> list[Document]:
    out = []
    for source, parts in texts.items():
        for i, text in enumerate(parts):
            cid = hashlib.sha256(f"{source}\0{text}\0{0}".encode()).hexdigest()[:32]
            md = {"source": source, "title": source.upper(), "chunk_index": i, "doc_sha256": "x"}
            if source == "a.md":
                md["publisher"] = "Recorded Future"
            out.append(Document(id=cid, page_content=text, metadata=md))
    return out


def _build(client, prefix: str, chunks: list[Document], *, embedder: str = "hash") -> str:
    """A generation built and switched to the way the pipeline does it."""
    name = store.new_generation_name(prefix)
    col = store.create_generation(client, name, embedder_id=embedder)
    vectors = HashedWords().embed_documents([c.page_content for c in chunks])
    store.add_chunks(client, col, chunks, vectors)
    store.mark_ready(col, embedder_id=embedder)
    fields = {
        "generation": name,
        "embedder": embedder,
        "built_at": "2024-01-01T00:00:00+00:00",
        "fingerprint": "f",
        "documents": len({c.metadata["source"] for c in chunks}),
        "chunks": len(chunks),
    }
    old = store.read_pointer(client, prefix)
    store.write_pointer(
        client, prefix, old.successor(**fields) if old else store.IndexInfo(**fields)
    )
    return name


@pytest.fixture
def client(make_settings):
    return store.make_client(make_settings())


def _reader(client, embedder: str = "hash") -> store.IndexReader:
    return store.IndexReader(
        client=client, embeddings=HashedWords(), embedder_id=embedder, prefix="corpus"
    )


def test_generation_is_cosine_and_round_trips_vectors(client):
    chunks = _chunks(TEXTS)
    name = _build(client, "corpus", chunks)
    col = client.get_collection(name)
    assert col.configuration["hnsw"]["space"] == "cosine"
    assert col.metadata == {"embedder": "hash", "state": "ready"}
    assert store.all_ids(col) == {c.id for c in chunks}
    ids = [chunks[0].id, "not-there"]
    got = store.get_vectors(col, ids)
    assert set(got) == {chunks[0].id}
    assert got[chunks[0].id] == pytest.approx(HashedWords().embed_query(chunks[0].page_content))


_QUERY_IN_NEW_PROCESS = """
import json, random, sys
from index import store
from index.settings import Settings
client = store.make_client(Settings())
col = client.get_collection(store.read_pointer(client, "corpus").generation)
rng = random.Random(7)
queries = [[rng.gauss(0, 1) for _ in range(int(sys.argv[1]))] for _ in range(60)]
print(json.dumps(col.query(query_embeddings=queries, n_results=20, include=[])["ids"]))
"""


def test_a_generation_answers_the_same_in_every_new_process(make_settings):
    # Chroma writes its vector index to disk only every `sync_threshold` records and
    # rebuilds what came after on each open, with threads: a generation left that way
    # gave other nearest chunks after each restart of the bot (Chroma issue #3638).
    settings = make_settings()
    client = store.make_client(settings)
    rng = __import__("random").Random(3)
    n, dim = 1500, 48
    name = store.new_generation_name("corpus")
    col = store.create_generation(client, name, embedder_id="hash")
    chunks = [
        Document(id=f"c{i}", page_content=f"chunk {i}", metadata={"source": f"{i % 30}.md"})
        for i in range(n)
    ]
    vectors = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(n)]
    for i in range(0, n, 1024):  # as the pipeline's writer adds them
        store.add_chunks(client, col, chunks[i : i + 1024], vectors[i : i + 1024])
    store.mark_ready(col, embedder_id="hash")
    fields = dict(generation=name, embedder="hash", built_at="2024-01-01T00:00:00+00:00")
    store.write_pointer(
        client, "corpus", store.IndexInfo(**fields, fingerprint="f", documents=30, chunks=n)
    )
    del client, col

    def query() -> list[list[str]]:
        out = subprocess.run(
            [sys.executable, "-c", _QUERY_IN_NEW_PROCESS, str(dim)],
            capture_output=True, text=True, check=True, env=subprocess_env(settings),
        )  # fmt: skip
        return json.loads(out.stdout)

    first = query()
    assert all(len(ids) == 20 for ids in first)
    assert query() == first
    assert query() == first


def test_reader_without_index_is_not_ready(client, make_settings):
    with pytest.raises(IndexNotReady, match="no index"):
        _reader(client).snapshot()
    assert not store.index_exists(make_settings(), client)


def test_reader_detects_embedder_mismatch(client):
    _build(client, "corpus", _chunks(TEXTS), embedder="minilm:abc")
    with pytest.raises(
        IndexNotReady, match="built with minilm:abc but settings select hash.*--full"
    ):
        _reader(client).snapshot()


def test_dense_search_returns_cosine_similarity(client):
    chunks = _chunks(TEXTS)
    _build(client, "corpus", chunks)
    hits = _reader(client).dense_search("monero was also mentioned", k=10)
    assert len(hits) == len(chunks)  # k is capped at the chunk count
    doc, score = hits[0]
    assert doc.page_content == "monero was also mentioned"
    assert doc.id == chunks[3].id and doc.metadata["source"] == "b.md"
    assert score == pytest.approx(1.0, abs=1e-4)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 + 1e-6 for s in scores)


def test_snapshot_is_cached_until_the_pointer_moves(client, make_settings):
    first = _build(client, "corpus", _chunks(TEXTS))
    reader = _reader(client)
    snap = reader.snapshot()
    assert snap.generation == first and reader.snapshot() is snap
    assert store.index_exists(make_settings(), client)

    chunks = snap.chunks()
    assert [c.page_content for c in chunks] == TEXTS["a.md"] + TEXTS["b.md"]
    assert snap.chunks() is chunks  # loaded once
    assert snap.documents() == [
        {"source": "a.md", "title": "A.MD", "chunks": 2, "publisher": "Recorded Future"},
        {"source": "b.md", "title": "B.MD", "chunks": 2},
    ]
    # A generation is a plain Chroma collection that langchain's Chroma reads too (cosine).
    from langchain_chroma import Chroma

    vectorstore = Chroma(
        client=client,
        collection_name=snap.generation,
        embedding_function=snap.embeddings,
        create_collection_if_not_exists=False,
    )
    lc_hits = vectorstore.similarity_search_with_relevance_scores("wallet", k=1)
    assert lc_hits[0][0].page_content == "researchers tracked the wallet"

    second = _build(client, "corpus", _chunks({"c.md": ["a brand new document"]}))
    snap2 = reader.snapshot()
    assert snap2.generation == second != first
    assert [c.page_content for c in snap2.chunks()] == ["a brand new document"]


def test_reader_re_resolves_when_its_generation_vanishes(client):
    first = _build(client, "corpus", _chunks(TEXTS))
    later: list[str] = []

    class SwitchWhileEmbedding(HashedWords):
        """A re-index switches and deletes the generation while the question is embedded."""

        def embed_query(self, text: str) -> list[float]:
            if not later:
                later.append(_build(client, "corpus", _chunks({"c.md": ["a brand new document"]})))
                client.delete_collection(first)
            return super().embed_query(text)

    reader = store.IndexReader(
        client=client, embeddings=SwitchWhileEmbedding(), embedder_id="hash", prefix="corpus"
    )
    assert reader.snapshot().generation == first
    hits = reader.dense_search("brand new", k=1)
    assert hits[0][0].page_content == "a brand new document"
    assert reader.snapshot().generation == later[0]


def test_prune_keeps_active_and_history_and_removes_orphans(client):
    names = [_build(client, "corpus", _chunks(TEXTS)) for _ in range(2)]
    # A run killed mid-build between the 2nd and 3rd switch: never active, older than the 3rd.
    orphan = store.new_generation_name("corpus")
    store.create_generation(client, orphan, embedder_id="hash")
    names.append(_build(client, "corpus", _chunks(TEXTS)))
    in_progress = "corpus__g29990101000000_000000"  # newer than the active one: another run's
    store.create_generation(client, in_progress, embedder_id="hash")
    other_prefix = _build(client, "other", _chunks(TEXTS))
    info = store.read_pointer(client, "corpus")
    assert info.generation == names[2] and info.previous == (names[1], names[0])

    deleted = store.prune_generations(client, "corpus", info=info, keep=2)

    assert set(deleted) == {names[0], orphan}
    left = {c.name for c in store.list_generations(client, "corpus")}
    assert left == {names[1], names[2], in_progress}
    assert client.get_collection(other_prefix)  # other prefixes are untouched


def test_pointer_is_replaced_not_merged(client):
    info = store.IndexInfo(
        generation="corpus__g1", embedder="e", built_at="t", fingerprint="f", documents=1, chunks=2
    )
    store.write_pointer(client, "corpus", info)
    newer = store.IndexInfo(
        generation="corpus__g2",
        embedder="e2",
        built_at="t2",
        fingerprint="f2",
        documents=3,
        chunks=4,
    )
    store.write_pointer(client, "corpus", newer)
    assert store.read_pointer(client, "corpus") == newer


def test_unreachable_server_is_store_unavailable(make_settings):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(chroma_host="127.0.0.1", chroma_port=port)
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        store.make_client(settings)


def test_missing_active_generation_is_not_ready(client):
    name = _build(client, "corpus", _chunks(TEXTS))
    client.delete_collection(name)
    with pytest.raises(IndexNotReady, match="missing.*--full"):
        _reader(client).snapshot()


def test_unusable_index_dir_is_a_config_error_naming_it(make_settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="INDEX_DIR cannot be used"):
        store.make_client(make_settings(index_dir=blocker / "index"))
