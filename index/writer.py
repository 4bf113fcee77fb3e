"""Chroma writes of a re-index, done by a child process while this one embeds the next slice.

chromadb's Rust `add` holds the GIL for its whole call (1.6 s per 3000 rows measured): made
in line, it leaves the embedding sessions idle, and made from a thread it stalls them
between forward passes all the same. A child process with its own embedded client on the
same store writes one slice while the parent embeds the next (`bench/README.md`, eleventh
session: the Python docs tree's 21k chunks indexed in 301.7 s instead of 315.7 s).

Used for an embedded store with at least two slices to write (with one, nothing overlaps).
The child is `python -m index.writer`, not multiprocessing: nothing of the parent (its
`__main__`, its threads) is re-imported or forked, so the bot's threaded `/reindex` can use
it too. One slice is in flight at a time. If the child cannot start or open the store, the
slices are written in line, as before; once it has started, a failed write comes back as the
store error the parent would have raised itself (the caller then drops the generation), and
a child that dies is an error, never a silent gap.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from langchain_core.documents import Document

from index import store
from index.errors import ConfigError, CorpusBotError, StoreUnavailable

log = logging.getLogger(__name__)

_READY = "ready"  # the child's first message: the store is open
_OK = "ok"  # a slice is written
# The store errors a write can end in (`store.store_problem`), sent back by class name.
_ERRORS: dict[str, type[CorpusBotError]] = {
    cls.__name__: cls for cls in (CorpusBotError, StoreUnavailable, ConfigError)
}
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)  # so the child imports this code


class SliceWriter(Protocol):
    def add(self, chunks: Sequence[Document], vectors: Sequence[Sequence[float]]) -> None: ...

    @property
    def background(self) -> bool:
        """Whether a slice is written while the caller goes on (the child writer)."""

    def close(self) -> None:
        """Return once everything added is written; raise the first failed write's error."""

    def abort(self) -> None:
        """Stop at once (after a failure); safe after close and more than once."""


class InlineWriter:
    """Writes each slice at once, in this process."""

    def __init__(self, *, client: ClientAPI, collection: Collection) -> None:
        self._client = client
        self._collection = collection

    background = False

    def add(self, chunks: Sequence[Document], vectors: Sequence[Sequence[float]]) -> None:
        store.add_chunks(self._client, self._collection, chunks, vectors)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class ProcessWriter:
    """Sends each slice to a `python -m index.writer` child; one slice in flight at a time."""

    def __init__(self, proc: subprocess.Popen[bytes], *, fallback: InlineWriter) -> None:
        self._proc = proc
        self._fallback = fallback
        self._inline = False  # the child never got ready: slices are written in line
        self._ready = False
        self._in_flight = False

    @classmethod
    def start(cls, *, path: Path, client: ClientAPI, collection: Collection) -> ProcessWriter:
        """Start the child (raises OSError if it cannot be run); it opens the store while
        the caller goes on."""
        pythonpath = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "index.writer", str(path), collection.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": pythonpath},
        )
        return cls(proc, fallback=InlineWriter(client=client, collection=collection))

    def add(self, chunks: Sequence[Document], vectors: Sequence[Sequence[float]]) -> None:
        if not self._ready:
            self._handshake()
        if self._inline:
            self._fallback.add(chunks, vectors)
            return
        self._wait()
        # Pickled here and now: the caller may change the chunks' metadata once this returns.
        # The vectors as one float32 array: 4 bytes a number on the pipe, not a Python float.
        self._send((list(chunks), np.asarray(vectors, dtype=np.float32)))
        self._in_flight = True

    @property
    def background(self) -> bool:
        return self._ready and not self._inline

    def close(self) -> None:
        if self._inline:
            return
        self._wait()
        self._send(None)
        if self._proc.wait() != 0:
            raise self._died()

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for fh in (self._proc.stdin, self._proc.stdout):
            if fh is not None:
                fh.close()

    def _handshake(self) -> None:
        self._ready = True
        reply = self._read()
        if reply == _READY:
            return
        why = f"exit status {self._proc.wait()}" if reply is None else reply[1]
        log.warning("index writer process not ready (%s); writing in this process", why)
        self.abort()
        self._inline = True

    def _send(self, obj: Any) -> None:
        assert self._proc.stdin is not None
        try:
            _send(self._proc.stdin, obj)
        except (BrokenPipeError, ValueError) as err:
            raise self._died() from err

    def _wait(self) -> None:
        """The reply to the slice in flight, if any: nothing, or its error raised here."""
        if not self._in_flight:
            return
        self._in_flight = False
        reply = self._read()
        if reply is None:
            raise self._died()
        if reply != _OK:
            kind, message = reply
            raise _ERRORS.get(kind, CorpusBotError)(message)

    def _read(self) -> Any:
        """The child's next message, or None if it is gone."""
        assert self._proc.stdout is not None
        try:
            return pickle.load(self._proc.stdout)
        except (EOFError, pickle.UnpicklingError, ValueError):
            return None

    def _died(self) -> CorpusBotError:
        return CorpusBotError(
            f"the index writer process stopped unexpectedly (exit status {self._proc.wait()}); "
            "the new generation was dropped and the previous one is still active"
        )


def open_writer(
    *, client: ClientAPI, collection: Collection, path: Path | None, slices: int
) -> SliceWriter:
    """A child-process writer for an embedded store (`path`) with two or more slices to
    write, else one that writes in line."""
    if path is None or slices < 2:
        return InlineWriter(client=client, collection=collection)
    try:
        return ProcessWriter.start(path=path, client=client, collection=collection)
    except OSError as err:
        log.warning("index writer process not started (%s); writing in this process", err)
        return InlineWriter(client=client, collection=collection)


def _problem(err: Exception) -> tuple[str, str]:
    if isinstance(err, CorpusBotError):
        return type(err).__name__, str(err)
    return "CorpusBotError", f"writing to the index failed: {err}"


def _send(pipe: IO[bytes], obj: Any) -> None:
    pickle.dump(obj, pipe, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.flush()


def serve(path: Path, name: str, requests: IO[bytes], replies: IO[bytes]) -> None:
    """The child: open the store, then write each slice received and reply, until the
    parent sends None or goes away."""
    try:
        with store.connection_errors(path=path):
            client = store.open_embedded(path)
            collection = client.get_collection(name, embedding_function=None)
    except Exception as err:  # noqa: BLE001 - reported to the parent, which writes itself
        _send(replies, _problem(err))
        return
    _send(replies, _READY)
    while True:
        try:
            rows = pickle.load(requests)
        except EOFError:  # the parent is gone: it drops the generation itself
            return
        if rows is None:
            return
        try:
            with store.connection_errors(path=path):
                store.add_chunks(client, collection, *rows)
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
            _send(replies, _problem(err))
            return
        _send(replies, _OK)


def main(argv: Sequence[str]) -> int:
    # Ctrl-C reaches the whole process group: the parent handles it and stops this child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Replies use the pipe on fd 1; anything a library prints goes to stderr instead.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    serve(Path(argv[0]), argv[1], sys.stdin.buffer, replies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
