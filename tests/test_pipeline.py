"""The incremental re-index pipeline with the real loader, chunker, MiniLM and embedded Chroma."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from index import store
from index.errors import IndexNotReady
from index.pipeline import reindex, reindex_lock
from index.settings import REPO_ROOT, Settings
from tests.helpers import active_view, expected_ids, index_reader

DOC_A = "north-korea-begins-mining-bitcoin.md"
DOC_B = "north-korea-short-lived-bitcoin-mining.md"

NEW_DOC = """# Exchange hacks in 2017

Several South Korean exchanges reported intrusions during 2017. Investigators linked the
phishing emails to the same group that targeted banks in earlier years.

The attackers sent job applications carrying malicious documents to exchange staff.
"""


def stored_ids(settings: Settings) -> set[str]:
    return store.all_ids(active_view(settings))


def generations(settings: Settings) -> list[str]:
    client = store.make_client(settings)
    return [c.name for c in store.list_generations(client, settings.collection_prefix)]


@pytest.fixture
def settings(make_settings, corpus_dir: Path) -> Settings:
    return make_settings(corpus_dir=corpus_dir)


def test_incremental_reindex_embeds_only_new_text(settings: Settings, corpus_dir: Path, minilm):
    first = reindex(settings, embeddings=minilm)
    assert (first.documents, first.added, first.updated, first.deleted) == (2, 2, 0, 0)
    assert first.chunks > 2 and first.embedded == first.chunks and first.reused == 0
    assert first.changed and first.skipped == 0
    assert stored_ids(settings) == expected_ids(settings)

    # Unchanged corpus: fast path, nothing embedded, no new generation.
    again = reindex(settings, embeddings=minilm)
    assert (again.embedded, again.unchanged, again.added, again.updated) == (0, 2, 0, 0)
    assert again.chunks == first.chunks and again.documents == 2
    assert not again.changed and again.generation == first.generation
    assert generations(settings) == [first.generation]

    # Edit one document: only its new chunk texts are embedded, everything else is copied.
    before = stored_ids(settings)
    path = corpus_dir / DOC_A
    path.write_text(path.read_text() + "\nA final paragraph added by the editor.\n")
    edited = reindex(settings, embeddings=minilm)
    new_ids = expected_ids(settings)
    assert (edited.updated, edited.unchanged, edited.added, edited.deleted) == (1, 1, 0, 0)
    assert edited.embedded == len(new_ids - before) >= 1
    assert edited.reused == len(new_ids & before) == edited.chunks - edited.embedded
    assert edited.changed and edited.generation != first.generation
    assert stored_ids(settings) == new_ids

    # Delete a document: its chunks are gone from the active generation.
    active = store.open_view(store.make_client(settings), edited.generation)
    b_ids = {cid for cid, _, md in store.iter_rows(active, ["metadatas"]) if md["source"] == DOC_B}
    assert b_ids
    (corpus_dir / DOC_B).unlink()
    deleted = reindex(settings, embeddings=minilm)
    assert (deleted.deleted, deleted.unchanged, deleted.documents, deleted.embedded) == (1, 1, 1, 0)
    assert stored_ids(settings) == expected_ids(settings)
    assert not (stored_ids(settings) & b_ids)

    # Add a document.
    (corpus_dir / "sub").mkdir()
    (corpus_dir / "sub" / "exchange-hacks.md").write_text(NEW_DOC)
    added = reindex(settings, embeddings=minilm)
    assert (added.added, added.unchanged, added.documents) == (1, 1, 2)
    assert added.embedded >= 1 and added.reused == deleted.chunks
    assert stored_ids(settings) == expected_ids(settings)

    # --full re-embeds everything even though nothing changed.
    full = reindex(settings, full=True, embeddings=minilm)
    assert full.full and full.changed
    assert full.embedded == full.chunks and full.reused == 0
    assert stored_ids(settings) == expected_ids(settings)

    # Old generations are pruned down to KEEP_GENERATIONS (default 2), the active one kept,
    # and the base of a kept layer with it.
    kept = {full.generation, added.generation}
    md = store.make_client(settings).get_collection(added.generation).metadata or {}
    kept |= {md[store.BASE_KEY]} if store.BASE_KEY in md else set()
    assert set(generations(settings)) == kept


def test_chunk_settings_change_rebuilds_without_doc_changes(settings: Settings, minilm):
    first = reindex(settings, embeddings=minilm)
    smaller = settings.model_copy(update={"chunk_size": 400, "chunk_overlap": 50})
    second = reindex(smaller, embeddings=minilm)
    assert second.changed and second.unchanged == 2 and second.chunks > first.chunks
    assert stored_ids(smaller) == expected_ids(smaller)


def test_embedder_mismatch_is_detected_and_rebuilt(settings: Settings, minilm):
    built = reindex(settings, embeddings=minilm)
    # Settings now select another embedder (its vectors come from `minilm` here: no server).
    other = settings.model_copy(
        update={"embedder": "openai", "openai_base_url": "http://127.0.0.1:9"}
    )
    client = store.make_client(settings)
    reader = store.IndexReader(
        client=client,
        embeddings=minilm,
        embedder_id="openai:text-embedding-3-small",
        prefix="corpus",
    )
    with pytest.raises(IndexNotReady, match="built with minilm.*settings select openai.*--full"):
        reader.snapshot()

    rebuilt = reindex(other, embeddings=minilm)
    assert rebuilt.full and rebuilt.changed and "embedder changed" in (rebuilt.note or "")
    assert rebuilt.embedded == rebuilt.chunks == built.chunks and rebuilt.reused == 0
    assert reader.snapshot().info.embedder == "openai:text-embedding-3-small"


def test_reader_sees_each_new_generation(settings: Settings, corpus_dir: Path, minilm):
    reindex(settings, embeddings=minilm)
    reader = index_reader(settings, minilm)
    hits = reader.dense_search("When did North Korea start mining bitcoin?", k=3)
    assert len(hits) == 3 and all(0.0 < s <= 1.0001 for _, s in hits)
    assert {d.metadata["source"] for d, _ in hits} <= {DOC_A, DOC_B}
    assert {d["source"] for d in reader.snapshot().documents()} == {DOC_A, DOC_B}

    (corpus_dir / "exchange-hacks.md").write_text(NEW_DOC)
    reindex(settings, embeddings=minilm)
    hits = reader.dense_search(
        "job applications with malicious documents sent to exchange staff", k=1
    )
    assert hits[0][0].metadata["source"] == "exchange-hacks.md"
    assert len(reader.snapshot().documents()) == 3


def test_cli_reports_skipped_files_as_json_and_exit_3(tmp_path: Path, corpus_dir: Path):
    (corpus_dir / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    # os.environ holds no setting here (conftest isolates it): only these two apply.
    env = {
        **os.environ,
        "CORPUS_DIR": str(corpus_dir),
        "INDEX_DIR": str(tmp_path / "cli-index"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "index", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    summary = json.loads(proc.stdout)  # stdout is exactly one JSON object
    for key in (
        "documents",
        "chunks",
        "added",
        "updated",
        "skipped",
        "deleted",
        "embedded",
        "seconds",
    ):
        assert key in summary
    assert summary["documents"] == 2 and summary["added"] == 2 and summary["skipped"] == 1
    assert summary["embedded"] == summary["chunks"] > 0
    [skipped] = summary["skipped_files"]
    assert skipped["path"] == "broken.pdf" and skipped["reason"]

    # Human mode: one summary line on stdout naming the skipped file; still exit 3.
    proc = subprocess.run(
        [sys.executable, "-m", "index"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    [line] = proc.stdout.strip().splitlines()
    assert line.startswith("indexed 2 documents") and "embedded 0" in line and "broken.pdf" in line


def test_cli_fatal_error_is_a_message_not_a_traceback(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "index", "--corpus", str(tmp_path / "missing")],
        env={**os.environ, "INDEX_DIR": str(tmp_path / "i"), "PYTHONPATH": str(REPO_ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "CORPUS_DIR is not a directory" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_second_concurrent_reindex_waits_for_the_first(settings: Settings, minilm):
    waiting = threading.Event()

    class Signal(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "another re-index is running" in record.getMessage():
                waiting.set()

    handler = Signal()
    logging.getLogger("index.pipeline").addHandler(handler)
    result: list = []
    try:
        with reindex_lock(settings.index_dir):  # another run holds the lock
            worker = threading.Thread(
                target=lambda: result.append(reindex(settings, embeddings=minilm))
            )
            worker.start()
            assert waiting.wait(timeout=60)
            assert not result and not settings.chroma_path.exists()  # it waits, doing nothing
        worker.join(timeout=120)
    finally:
        logging.getLogger("index.pipeline").removeHandler(handler)
    assert result and result[0].added == 2 and result[0].changed


def test_missing_active_generation_is_rebuilt(settings: Settings, minilm):
    first = reindex(settings, embeddings=minilm)
    store.make_client(settings).delete_collection(first.generation)
    again = reindex(settings, embeddings=minilm)
    assert again.changed and again.embedded == again.chunks == first.chunks
    assert stored_ids(settings) == expected_ids(settings)


def test_seed_index_fixture_is_ready_for_readers(seed_index: Settings, minilm):
    assert store.index_exists(seed_index)
    reader = index_reader(seed_index, minilm)
    snap = reader.snapshot()
    assert [d["source"] for d in snap.documents()] == [DOC_A, DOC_B]
    assert {c.id for c in snap.chunks()} == expected_ids(seed_index)
    top, score = reader.dense_search("Which firm said North Korea mines bitcoin?", 1)[0]
    assert top.metadata["source"] in {DOC_A, DOC_B} and score > 0.3
