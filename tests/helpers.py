"""Helpers shared by tests that drive real subprocesses against a real index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from langchain_core.embeddings import Embeddings

from bot.settings import BotSettings
from index.chunker import chunk_document
from index.embedder import embedder_id
from index.loader import load_corpus
from index.pipeline import PAUSE_ENV
from index.settings import REPO_ROOT, Settings
from index.store import IndexReader, View, make_client, open_view, read_pointer


def active_view(settings: Settings) -> View:
    """The active generation of the index `settings` name, as readers see it."""
    client = make_client(settings)
    info = read_pointer(client, settings.collection_prefix)
    assert info is not None
    return open_view(client, info.generation)


def index_reader(settings: Settings, embeddings: Embeddings, *, client=None) -> IndexReader:
    """An IndexReader over the index `settings` name, as the bot opens one (its client, its
    embedder id, its collection prefix)."""
    return IndexReader(
        client=client if client is not None else make_client(settings),
        embeddings=embeddings,
        embedder_id=embedder_id(settings),
        prefix=settings.collection_prefix,
    )


def expected_ids(settings: Settings) -> set[str]:
    """What the chunker says the index must contain, computed independently of the store."""
    docs, _ = load_corpus(settings.corpus_dir, max_bytes=settings.max_document_bytes)
    return {
        str(c.id)
        for d in docs
        for c in chunk_document(
            d, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
        )
    }


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def subprocess_env(settings: Settings | None = None, **extra: str) -> dict[str, str]:
    """This environment minus any setting, plus the corpus/index of `settings` and `extra`."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in BotSettings.model_fields}
    env["PYTHONPATH"] = str(REPO_ROOT)
    if settings is not None:
        env["CORPUS_DIR"] = str(settings.corpus_dir)
        env["INDEX_DIR"] = str(settings.index_dir)
    env.update(extra)
    return env


class PhaseLog:
    """The JSON-lines log of a serving subprocess plus a phase mark the test advances.

    The subprocess reads `mark` before each round and writes it into every line, so the test
    knows which answers were given after a given point.
    """

    def __init__(self, path: Path, mark: Path, *, timeout: float = 60) -> None:
        self.path, self.mark, self.n, self.timeout = path, mark, 0, timeout

    def lines(self) -> list[dict]:
        if not self.path.exists():
            return []
        text = self.path.read_text()
        return [json.loads(x) for x in text.splitlines()[: text.count("\n")]]  # whole lines

    def advance(self) -> int:
        """Start a new phase; return once the subprocess has answered inside it."""
        self.n += 1
        tmp = self.mark.with_suffix(".tmp")
        tmp.write_text(str(self.n))
        os.replace(tmp, self.mark)  # atomic: the reader never reads a half-written mark
        wait_until(
            lambda: any(r["mark"] >= self.n for r in self.lines()), f"phase {self.n}", self.timeout
        )
        return self.n


@contextmanager
def paused_reindex(settings: Settings, point: str, *, cwd: Path) -> Iterator[None]:
    """`python -m index --full` paused at `point` (PAUSE_ENV); kill -9 on leaving the block.

    One chunk per embedding batch, so `embed:N` pauses after exactly N chunks.
    """
    marker = settings.index_dir / f"paused.{point.replace(':', '_')}"
    run = subprocess.Popen(
        [sys.executable, "-m", "index", "--full", "--json"],
        env=subprocess_env(settings, **{PAUSE_ENV: point, "EMBED_BATCH_SIZE": "1"}),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: marker.exists() or run.poll() is not None,
            f"the re-index to pause at {point}",
            timeout=180,
        )
        assert run.poll() is None, f"re-index ended before {point}: {run.stderr.read()}"
        yield
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
        run.stderr.close()
        marker.unlink(missing_ok=True)
