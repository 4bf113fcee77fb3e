"""The pipeline and the reader against a real `chroma run` server (CHROMA_HOST/CHROMA_PORT)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import BotSettings
from index import store
from index.chunker import chunk_document
from index.errors import StoreUnavailable
from index.loader import load_corpus
from index.pipeline import reindex
from tests.helpers import index_reader

CHROMA = Path(sys.executable).parent / "chroma"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(CHROMA),
            "run",
            "--path",
            str(tmp_path / "server-db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("chroma server did not come up") from None
                time.sleep(0.2)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_pipeline_and_reader_through_a_chroma_server(
    chroma_server, make_settings, corpus_dir: Path, minilm
):
    port, server = chroma_server
    settings: BotSettings = make_settings(
        corpus_dir=corpus_dir, chroma_host="127.0.0.1", chroma_port=port
    )
    first = reindex(settings, embeddings=minilm)
    assert first.added == 2 and first.embedded == first.chunks > 0
    # Nothing went to the embedded store.
    assert not settings.chroma_path.exists()

    client = store.make_client(settings)
    assert store.index_exists(settings, client)
    reader = index_reader(settings, minilm, client=client)
    snap, hits = reader.search("When did North Korea start mining bitcoin?", 3)
    assert snap.generation == first.generation and len(hits) == 3
    assert all(h.page_content and 0 < s <= 1.0001 for h, s in hits)
    assert sum(d["chunks"] for d in snap.documents()) == first.chunks

    again = reindex(settings, embeddings=minilm)
    assert again.embedded == 0 and not again.changed

    (corpus_dir / "hacks.md").write_text(
        "# Exchange hacks\n\nAttackers sent job applications carrying malicious documents "
        "to the staff of South Korean exchanges.\n"
    )
    third = reindex(settings, embeddings=minilm)
    assert third.added == 1 and third.reused == first.chunks
    snap, hits = reader.search("malicious job applications sent to exchange staff", 1)
    assert snap.generation == third.generation
    assert hits[0][0].metadata["source"] == "hacks.md"

    docs, _ = load_corpus(corpus_dir, max_bytes=settings.max_document_bytes)
    expected = {
        str(c.id)
        for d in docs
        for c in chunk_document(
            d, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
        )
    }
    assert store.all_ids(snap.view) == expected

    # The server goes away under a long-lived reader: a clear StoreUnavailable, not a crash.
    server.terminate()
    server.wait(timeout=20)
    with pytest.raises(StoreUnavailable, match="unreachable"):
        reader.search("anything", 1)


def test_cli_says_which_server_is_unreachable(tmp_path: Path, corpus_dir: Path):
    port = _free_port()
    env = {
        **os.environ,
        "CORPUS_DIR": str(corpus_dir),
        "INDEX_DIR": str(tmp_path / "i"),
        "CHROMA_HOST": "127.0.0.1",
        "CHROMA_PORT": str(port),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "index"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert f"127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
