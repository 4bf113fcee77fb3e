"""The re-index's Chroma writer in a child process (index/writer.py): real processes, real
embedded Chroma, the real MiniLM embedder."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from langchain_core.documents import Document

from index import pipeline, store, writer
from index.errors import CorpusBotError
from index.pipeline import reindex
from index.settings import Settings
from tests.helpers import active_view, expected_ids, index_reader

META = {"source": "a.md"}


@pytest.fixture
def settings(make_settings, corpus_dir: Path) -> Settings:
    return make_settings(corpus_dir=corpus_dir)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[writer.ProcessWriter]:
    """Slices of two chunks, so the seed corpus is written in several slices (the child
    writer is used from two on); the writers started are recorded."""
    monkeypatch.setattr(pipeline, "WRITE_SLICE", 2)
    seen: list[writer.ProcessWriter] = []
    real = writer.ProcessWriter.start

    def start(**kwargs) -> writer.ProcessWriter:
        seen.append(real(**kwargs))
        return seen[-1]

    monkeypatch.setattr(writer.ProcessWriter, "start", start)
    return seen


def rows(settings: Settings) -> dict[str, tuple]:
    view = active_view(settings)
    got = store.get_vectors_texts_and_metadata(view, sorted(store.all_ids(view)))
    vectors, texts, metadata = got
    return {cid: (vectors[cid], texts[cid], metadata[cid]) for cid in texts}


def test_a_generation_written_by_the_child_process_equals_one_written_in_line(
    make_settings, corpus_dir: Path, tmp_path: Path, minilm, started, monkeypatch
):
    by_child = make_settings(corpus_dir=corpus_dir, index_dir=tmp_path / "child")
    summary = reindex(by_child, embeddings=minilm)
    assert len(started) == 1 and summary.embedded == summary.chunks > 4
    assert started[0]._proc.returncode == 0  # it finished, and was not killed

    in_line = make_settings(corpus_dir=corpus_dir, index_dir=tmp_path / "inline")
    monkeypatch.setattr(pipeline, "WRITE_SLICE", 10_000)  # one slice: written in line
    reindex(in_line, embeddings=minilm)
    assert len(started) == 1

    assert rows(by_child).keys() == expected_ids(by_child)
    child_rows, line_rows = rows(by_child), rows(in_line)
    for cid, (vector, text, meta) in line_rows.items():
        assert child_rows[cid][1:] == (text, meta)
        assert child_rows[cid][0] == pytest.approx(vector, abs=1e-6)
    assert_every_vector_finds_its_chunk(by_child)
    # ... and a new reader answers from it.
    hits = index_reader(by_child, minilm).dense_search("When did North Korea mine bitcoin?", 3)
    assert len(hits) == 3 and all(doc.id in child_rows for doc, _ in hits)


def assert_every_vector_finds_its_chunk(settings: Settings) -> None:
    """The vector index holds every row: each stored vector's nearest chunk is its own."""
    view = active_view(settings)
    vectors = store.get_vectors(view, sorted(store.all_ids(view)))
    assert vectors
    for cid, vector in vectors.items():
        assert view.query(vector, 1)[0][0].id == cid


def test_an_incremental_generation_copies_and_embeds_through_the_child(
    make_settings, corpus_dir: Path, minilm, started
):
    settings = make_settings(corpus_dir=corpus_dir, layer_max_share=0)  # copy, never layer
    reindex(settings, embeddings=minilm)
    (corpus_dir / "exchange-hacks.md").write_text(
        "# Exchange hacks\n\nSeveral exchanges reported intrusions in 2017. Investigators "
        "linked the phishing emails to a group that had targeted banks before.\n"
    )
    summary = reindex(settings, embeddings=minilm)
    assert summary.reused > 4 and summary.embedded >= 1 and summary.base is None
    assert len(started) == 2 and started[1]._proc.returncode == 0
    assert rows(settings).keys() == expected_ids(settings)
    assert_every_vector_finds_its_chunk(settings)


@pytest.mark.parametrize("child", [True, False])
def test_the_last_slice_goes_to_a_background_writer_one_call_at_a_time(
    make_settings, corpus_dir: Path, minilm, child: bool, monkeypatch: pytest.MonkeyPatch
):
    """Nothing overlaps the last write, so near the end a child writer gets each call's
    chunks at once; slices written in line stay whole (smaller ones would only cost)."""
    monkeypatch.setattr(pipeline, "CALL_BATCHES", 1)  # one chunk per call (batch size 1)
    monkeypatch.setattr(pipeline, "WRITE_SLICE", 4)
    if not child:
        monkeypatch.setattr(writer, "open_writer", lambda **kw: writer.InlineWriter(
            client=kw["client"], collection=kw["collection"]))  # fmt: skip
        monkeypatch.setattr(pipeline, "open_writer", writer.open_writer)
    sizes: list[int] = []
    for cls in (writer.ProcessWriter, writer.InlineWriter):
        real_add = cls.add

        def add(self, chunks, vectors, real_add=real_add) -> None:
            sizes.append(len(chunks))
            real_add(self, chunks, vectors)

        monkeypatch.setattr(cls, "add", add)
    settings = make_settings(corpus_dir=corpus_dir, embed_batch_size=1)
    summary = reindex(settings, embeddings=minilm)

    n = summary.chunks
    assert sum(sizes) == n and n % 4 != 0  # the seed corpus: a last slice not a whole one
    whole, rest = divmod(n, 4)
    assert sizes == [4] * whole + ([1] * rest if child else [rest])
    assert rows(settings).keys() == expected_ids(settings)


def test_a_writer_that_dies_fails_the_run_and_keeps_the_active_generation(
    settings: Settings, minilm, started, monkeypatch: pytest.MonkeyPatch
):
    first = reindex(settings, embeddings=minilm)
    real_add = writer.ProcessWriter.add

    def add_then_die(self: writer.ProcessWriter, chunks, vectors) -> None:
        real_add(self, chunks, vectors)
        self._proc.kill()  # with the first slice in flight

    monkeypatch.setattr(writer.ProcessWriter, "add", add_then_die)
    with pytest.raises(CorpusBotError, match="writer process stopped unexpectedly"):
        reindex(settings, embeddings=minilm, full=True)
    client = store.make_client(settings)
    assert store.read_pointer(client, settings.collection_prefix).generation == first.generation
    assert [c.name for c in store.list_generations(client, settings.collection_prefix)] == [
        first.generation
    ]


def test_a_writer_that_cannot_start_leaves_the_writes_in_line(
    settings: Settings, minilm, started, monkeypatch: pytest.MonkeyPatch, caplog
):
    monkeypatch.setattr(sys, "executable", str(Path(settings.index_dir) / "no-such-python"))
    with caplog.at_level(logging.WARNING, logger="index.writer"):
        summary = reindex(settings, embeddings=minilm)
    assert "writing in this process" in caplog.text and not started
    assert summary.changed and rows(settings).keys() == expected_ids(settings)


def test_a_writer_that_cannot_open_the_store_leaves_the_writes_in_line(
    settings: Settings, tmp_path: Path, caplog
):
    client = store.make_client(settings)
    collection = store.create_generation(client, "gen-x", embedder_id="e")
    # The child opens another, empty store, where the generation does not exist.
    w = writer.ProcessWriter.start(path=tmp_path / "other", client=client, collection=collection)
    with caplog.at_level(logging.WARNING, logger="index.writer"):
        w.add([Document(page_content="a", id="1", metadata=META)], [[0.1, 0.2]])
        w.close()
    w.abort()
    assert "not ready" in caplog.text and "gen-x" in caplog.text
    assert store.all_ids(collection) == {"1"}


def test_a_failed_write_in_the_child_comes_back_as_a_message(settings: Settings):
    client = store.make_client(settings)
    collection = store.create_generation(client, "gen-x", embedder_id="e")
    w = writer.ProcessWriter.start(path=settings.chroma_path, client=client, collection=collection)
    same = [
        Document(page_content="a", id="1", metadata=META),
        Document(page_content="b", id="1", metadata=META),
    ]
    try:
        w.add(same, [[0.1, 0.2], [0.3, 0.4]])  # Chroma refuses duplicate ids in one add
        with pytest.raises(CorpusBotError, match="writing to the index failed.*[Dd]uplicate"):
            w.close()
    finally:
        w.abort()
    assert store.all_ids(collection) == set()
