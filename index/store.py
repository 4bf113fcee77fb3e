"""Chroma storage: client factory, index generations, the active pointer, and the reader.

Layout inside one Chroma database (embedded or server), for `prefix = COLLECTION_PREFIX`:

* `{prefix}__g{UTC yyyymmddHHMMSS}_{6 hex}` — one collection per generation (cosine HNSW;
  metadata `embedder`, `state` = building, then ready once validated). Never modified after
  the pointer names it.
  A generation may be a *layer*: its metadata then also names a `base` generation and the
  `masked` sources (JSON list) whose chunks in the base it replaces; the generation is the
  base minus the masked sources' chunks plus the layer's own (`View`). A re-index that
  changes few documents builds only that layer, so its cost follows the change, not the
  corpus.
* `{prefix}__active` — the pointer: a vector-less collection whose *metadata* names the active
  generation (plus embedder, built_at, fingerprint, documents, chunks, and the previous
  generations, which pruning keeps). It is replaced in one `collection.modify(metadata=...)`
  call, a single transaction.

Why a metadata pointer works across processes (checked with chromadb 1.5.9, see
bench/README.md): collection metadata is read from SQLite on every `get_collection`, so a
long-lived `PersistentClient` in another process sees the new pointer on its next call, and a
brand-new generation collection is visible to it at once. Stale-HNSW caching in long-lived
clients (chroma issue #3792) only bites collections modified *after* a reader loaded them;
generations are never modified after the switch, so readers never hit it. A reader holding a
generation that a later run deleted gets NotFound and re-resolves the pointer once.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import re
import shutil
import sqlite3
import struct
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import chromadb
import chromadb.config
import httpx
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.errors import ChromaError, NotFoundError
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from index.errors import ConfigError, CorpusBotError, IndexNotReady, StoreUnavailable
from index.lexical import lexical_root
from index.sentences import without_vectors
from index.settings import Settings

log = logging.getLogger(__name__)

POINTER_SUFFIX = "__active"
BASE_KEY = "base"  # a layer generation's base generation (collection metadata)
MASKED_KEY = "masked"  # ... and the sources of the base it replaces (JSON list)
GENERATION_INFIX = "__g"
# Chroma writes a collection's vector index to disk only once `sync_threshold` records
# (default 1000) have come since the last write, and on every open re-inserts the ones after
# it, with threads, in no fixed order: each restart of the bot then had its own graph and
# could find other nearest chunks for the same question (Chroma issues #3638, #7463; 2 of 54
# questions' top 30 differed on Celery's docs). A generation is written once and then only
# read, so the index is written with every add: the last add leaves nothing to re-insert
# (writing the Python docs' 21,161 chunks took as long either way, 17.9-18.9 s).
COSINE = {"hnsw": {"space": "cosine", "sync_threshold": 1}}
_PAGE = 1000  # rows per get() page when reading a whole generation
_HISTORY = 10  # previous generations remembered in the pointer (KEEP_GENERATIONS <= 10)

# What a broken connection to a Chroma server looks like from the client.
_CONNECTION_ERRORS = (httpx.TransportError, ConnectionError)

# What a damaged, full or read-only embedded store looks like: chromadb's Rust core reports
# SQLite and HNSW failures as ChromaError carrying SQLite's text; sqlite3 and the OS give
# errnos.
_DAMAGED = (
    "database disk image is malformed",
    "file is not a database",
    "error finding id",  # a query over truncated HNSW files
    "error loading hnsw",
)
_FULL = ("database or disk is full", "no space left on device", "failed to apply logs")
_READ_ONLY = ("attempt to write a readonly database", "read-only file system")


def store_problem(err: BaseException, path: Path | None = None) -> CorpusBotError | None:
    """The user-facing error for a damaged / full / read-only embedded store, else None."""
    text = str(err).lower()
    no = getattr(err, "errno", None)
    where = f"INDEX_DIR ({path})" if path is not None else "INDEX_DIR"
    if any(k in text for k in _DAMAGED):
        return StoreUnavailable(
            f"the index database in {where} is damaged ({err}); "
            "run python -m index --rebuild to build a fresh one beside it"
        )
    if no == errno.ENOSPC or any(k in text for k in _FULL):
        return StoreUnavailable(
            f"not enough disk space for the index in {where} ({err}); the new index "
            "generation was dropped and the previous one is still active. Free disk space "
            "and run python -m index again"
        )
    if no in (errno.EROFS, errno.EACCES, errno.EPERM) or any(k in text for k in _READ_ONLY):
        return ConfigError(
            f"{where} is not writable ({err}); python -m index needs write access to it "
            "(the bot can answer from a read-only index)"
        )
    return None


@contextmanager
def connection_errors(where: str = "", path: Path | None = None) -> Iterator[None]:
    """Turn a dropped Chroma server connection into StoreUnavailable (a user-facing error),
    and a damaged / full / read-only embedded store into a message with a way out."""
    try:
        yield
    except _CONNECTION_ERRORS as err:
        at = f" at {where}" if where else ""
        raise StoreUnavailable(f"the Chroma server{at} is unreachable: {err}") from err
    except (ChromaError, sqlite3.Error, OSError) as err:
        problem = None if isinstance(err, NotFoundError) else store_problem(err, path)
        if problem is None:
            raise
        raise problem from err


def ensure_index_dir(path: Path) -> None:
    """Create `path` (INDEX_DIR or below it), or say which setting to fix."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"INDEX_DIR cannot be used: {path} ({err.strerror or err})") from err


def _writable(path: Path) -> bool:
    db = path / "chroma.sqlite3"
    return os.access(path, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


def open_embedded(path: Path) -> ClientAPI:
    """A PersistentClient on `path`; a damaged or unwritable store becomes a clear error."""
    ensure_index_dir(path)
    with connection_errors(path=path):
        return chromadb.PersistentClient(
            path=str(path), settings=chromadb.config.Settings(anonymized_telemetry=False)
        )


def _read_only_copy(path: Path) -> Path:
    """A private copy of a read-only Chroma folder (chromadb cannot open one in place)."""
    tmp = Path(tempfile.mkdtemp(prefix="corpusbot-readonly-index-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    copy = tmp / "chroma"
    shutil.copytree(path, copy)
    log.warning(
        "INDEX_DIR %s is read-only: answering from a private copy in %s "
        "(a later re-index is seen after a restart)",
        path,
        copy,
    )
    return copy


def make_client(settings: Settings, *, read_only_ok: bool = False) -> ClientAPI:
    """An embedded PersistentClient under index_dir, or an HttpClient when CHROMA_HOST is set.

    `read_only_ok` (readers only): when the Chroma folder exists but cannot be written
    (read-only mount, another owner), answer from a private copy instead of failing.
    """
    if not settings.chroma_host:
        path = settings.chroma_path
        if read_only_ok and path.is_dir() and not _writable(path):
            path = _read_only_copy(path)
        return open_embedded(path)
    chroma_settings = chromadb.config.Settings(anonymized_telemetry=False)
    where = f"{settings.chroma_host}:{settings.chroma_port}"
    try:
        return chromadb.HttpClient(
            host=settings.chroma_host,
            port=settings.chroma_port,
            ssl=settings.chroma_ssl,
            settings=chroma_settings,
        )
    except (ValueError, *_CONNECTION_ERRORS) as err:
        # chromadb turns a refused connection into ValueError("Could not connect ...").
        raise StoreUnavailable(
            f"cannot reach the Chroma server at {where} ({err}); is `chroma run` up? "
            "Unset CHROMA_HOST to use the embedded store."
        ) from err


def pointer_name(prefix: str) -> str:
    return f"{prefix}{POINTER_SUFFIX}"


def new_generation_name(prefix: str) -> str:
    # The 6 hex digits are the microseconds, so names sort by creation time even within
    # one second (pruning relies on that); a clash makes create_collection fail loudly.
    now = datetime.now(UTC)
    return f"{prefix}{GENERATION_INFIX}{now:%Y%m%d%H%M%S}_{now.microsecond:06x}"


@dataclass(frozen=True)
class IndexInfo:
    """What the active pointer says about the active generation."""

    generation: str
    embedder: str
    built_at: str
    fingerprint: str
    documents: int
    chunks: int
    previous: tuple[str, ...] = ()  # earlier active generations, newest first
    truncated: str = ""  # JSON list of the documents cut to MAX_CHUNKS_PER_DOCUMENT

    def to_metadata(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "embedder": self.embedder,
            "built_at": self.built_at,
            "fingerprint": self.fingerprint,
            "documents": self.documents,
            "chunks": self.chunks,
            # Chroma metadata values are scalars: a comma-joined list.
            "previous": ",".join(self.previous),
            "truncated": self.truncated,
        }

    @classmethod
    def from_metadata(cls, md: dict[str, Any] | None) -> IndexInfo | None:
        if not md or not md.get("generation"):
            return None
        return cls(
            generation=str(md["generation"]),
            embedder=str(md.get("embedder", "")),
            built_at=str(md.get("built_at", "")),
            fingerprint=str(md.get("fingerprint", "")),
            documents=int(md.get("documents", 0)),
            chunks=int(md.get("chunks", 0)),
            previous=tuple(g for g in str(md.get("previous", "")).split(",") if g),
            truncated=str(md.get("truncated", "")),
        )

    def truncated_files(self) -> list[dict[str, Any]]:
        try:
            files = json.loads(self.truncated) if self.truncated else []
        except ValueError:
            return []
        return files if isinstance(files, list) else []

    def successor(self, **fields: Any) -> IndexInfo:
        """The pointer for a new generation that replaces this one (history kept short)."""
        return IndexInfo(previous=(self.generation, *self.previous)[:_HISTORY], **fields)


def read_pointer(client: ClientAPI, prefix: str) -> IndexInfo | None:
    """The active generation, or None when nothing was ever indexed."""
    try:
        return IndexInfo.from_metadata(client.get_collection(pointer_name(prefix)).metadata)
    except NotFoundError:
        return None


def write_pointer(client: ClientAPI, prefix: str, info: IndexInfo) -> None:
    """Switch the active generation: one metadata replacement (a single transaction)."""
    name = pointer_name(prefix)
    try:
        client.get_collection(name).modify(metadata=info.to_metadata())
    except NotFoundError:
        client.create_collection(name, metadata=info.to_metadata())


def create_generation(
    client: ClientAPI,
    name: str,
    *,
    embedder_id: str,
    base: str | None = None,
    masked: Sequence[str] = (),
) -> Collection:
    """A new, empty generation; with `base`, a layer replacing the `masked` sources of it."""
    metadata: dict[str, Any] = {"embedder": embedder_id, "state": "building"}
    if base is not None:
        metadata[BASE_KEY] = base
        metadata[MASKED_KEY] = json.dumps(sorted(masked))
    return client.create_collection(
        name, configuration=COSINE, metadata=metadata, embedding_function=None
    )


def mark_ready(collection: Collection, *, embedder_id: str) -> None:
    metadata = dict(collection.metadata or {})
    metadata.update(embedder=embedder_id, state="ready")
    collection.modify(metadata=metadata)


@dataclass(frozen=True)
class View:
    """One generation as readers see it: its own collection, or a layer over a base whose
    chunks of the masked sources (`masked_ids`) the layer replaces."""

    top: Collection
    base: Collection | None = None
    masked: frozenset[str] = frozenset()
    masked_ids: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.top.name

    @cached_property
    def top_count(self) -> int:
        return self.top.count()

    @cached_property
    def base_count(self) -> int:
        return self.base.count() if self.base is not None else 0

    def collections(self) -> list[Collection]:
        return [self.top] if self.base is None else [self.top, self.base]

    def count(self) -> int:
        return self.top_count + self.base_count - len(self.masked_ids)

    def get(
        self, ids: Sequence[str], include: list[str]
    ) -> dict[str, tuple[list[float] | None, str | None, dict[str, Any]]]:
        """(vector, text, metadata) by chunk id, for what `include` asks; missing ids absent."""
        out: dict[str, tuple[list[float] | None, str | None, dict[str, Any]]] = {}
        wanted = list(dict.fromkeys(ids))
        out.update(_get(self.top, wanted, include))
        if self.base is not None:
            rest = [i for i in wanted if i not in out and i not in self.masked_ids]
            out.update(_get(self.base, rest, include))
        return out

    def rows(self, include: list[str]) -> Iterator[tuple[str, str | None, dict]]:
        """(id, document, metadata) for every chunk of the generation, paged."""
        for col in self.collections():
            skip = self.masked_ids if col is self.base else frozenset()
            for row in _collection_rows(col, include):
                if row[0] not in skip:
                    yield row

    def query(self, vector: Sequence[float], n: int) -> list[tuple[Document, float]]:
        """The `n` nearest chunks with their cosine distance, nearest first."""
        hits = _query(self.top, vector, min(n, self.top_count), ["documents", "metadatas"])
        if self.base is None:
            return hits
        # The base's nearest, over-fetched by the chunks the layer masks (ids only), so n
        # of them are live; their texts are then read by id.
        near = _query(self.base, vector, min(n + len(self.masked_ids), self.base_count), [])
        live = [(d, dist) for d, dist in near if d.id not in self.masked_ids][:n]
        got = _get(self.base, [str(d.id) for d, _ in live], ["documents", "metadatas"])
        for d, dist in live:
            if d.id in got:
                _, text, md = got[str(d.id)]
                hits.append((Document(id=d.id, page_content=text or "", metadata=md), dist))
        hits.sort(key=lambda h: h[1])
        return hits[:n]


def _get(
    col: Collection, ids: list[str], include: list[str]
) -> dict[str, tuple[list[float] | None, str | None, dict[str, Any]]]:
    out: dict[str, tuple[list[float] | None, str | None, dict[str, Any]]] = {}
    for i in range(0, len(ids), _PAGE):
        got = col.get(ids=ids[i : i + _PAGE], include=include)  # type: ignore[arg-type]
        n = len(got["ids"])
        vecs = got.get("embeddings")
        docs = got.get("documents") or [None] * n
        metas = got.get("metadatas") or [{}] * n
        for j, cid in enumerate(got["ids"]):
            vec = [float(x) for x in vecs[j]] if vecs is not None else None
            out[cid] = (vec, docs[j], dict(metas[j] or {}))
    return out


def _query(
    col: Collection, vector: Sequence[float], n: int, include: list[str]
) -> list[tuple[Document, float]]:
    """`col`'s n nearest with their distances (and what `include` adds)."""
    if n <= 0:
        return []
    res = col.query(
        query_embeddings=[list(vector)],
        n_results=n,
        include=[*include, "distances"],  # type: ignore[list-item]
    )
    ids = res["ids"][0]
    docs = (res.get("documents") or [None])[0] or [None] * len(ids)
    metas = (res.get("metadatas") or [None])[0] or [None] * len(ids)
    dists = res["distances"][0]  # type: ignore[index]
    return [
        (Document(id=cid, page_content=text or "", metadata=dict(md or {})), float(dist))
        for cid, text, md, dist in zip(ids, docs, metas, dists, strict=True)
    ]


def as_view(source: View | Collection) -> View:
    """A collection on its own read as a generation (a view passes through)."""
    return source if isinstance(source, View) else View(top=source)


def open_view(
    client: ClientAPI, name: str, *, check: Callable[[Collection], None] | None = None
) -> View:
    """The generation `name` as readers see it (NotFoundError if it or its base is gone).

    `check` runs on each collection before anything is read from it (HNSW file checks)."""
    top = client.get_collection(name)
    if check is not None:
        check(top)
    md = top.metadata or {}
    if not md.get(BASE_KEY):
        return View(top=top)
    base = client.get_collection(str(md[BASE_KEY]))
    if check is not None:
        check(base)
    try:
        masked = frozenset(str(s) for s in json.loads(str(md.get(MASKED_KEY) or "[]")))
    except ValueError as err:
        raise IndexNotReady(
            f"index generation {name} names its masked documents badly; run python -m index --full"
        ) from err
    masked_ids: frozenset[str] = frozenset()
    if masked:
        got = base.get(where={"source": {"$in": sorted(masked)}}, include=[])
        masked_ids = frozenset(got["ids"])
    return View(top=top, base=base, masked=masked, masked_ids=masked_ids)


def add_chunks(
    client: ClientAPI,
    collection: Collection,
    chunks: Sequence[Document],
    vectors: Sequence[Sequence[float]],
) -> None:
    """Add chunks with precomputed vectors, in batches Chroma accepts."""
    step = client.get_max_batch_size()
    for i in range(0, len(chunks), step):
        part = chunks[i : i + step]
        collection.add(
            ids=[str(c.id) for c in part],
            embeddings=np.asarray(vectors[i : i + step], dtype=np.float32),
            documents=[c.page_content for c in part],
            metadatas=[dict(c.metadata) for c in part],
        )


def get_vectors(view: View | Collection, ids: Sequence[str]) -> dict[str, list[float]]:
    """Stored vectors by chunk id (ids missing from the generation are simply absent)."""
    got = as_view(view).get(ids, ["embeddings"])
    return {cid: vec for cid, (vec, _, _) in got.items() if vec is not None}


def get_vectors_and_metadata(
    view: View | Collection, ids: Sequence[str]
) -> tuple[dict[str, list[float]], dict[str, dict[str, Any]]]:
    """Stored vectors and metadata by chunk id (missing ids are simply absent)."""
    got = as_view(view).get(ids, ["embeddings", "metadatas"])
    return {c: v for c, (v, _, _) in got.items() if v is not None}, {
        c: m for c, (_, _, m) in got.items()
    }


def get_vectors_texts_and_metadata(
    view: View | Collection, ids: Sequence[str]
) -> tuple[dict[str, list[float]], dict[str, str], dict[str, dict[str, Any]]]:
    """Stored vectors, texts and metadata by chunk id (missing ids are simply absent)."""
    got = as_view(view).get(ids, ["embeddings", "documents", "metadatas"])
    return (
        {c: v for c, (v, _, _) in got.items() if v is not None},
        {c: t or "" for c, (_, t, _) in got.items()},
        {c: m for c, (_, _, m) in got.items()},
    )


def iter_rows(
    source: View | Collection, include: list[str]
) -> Iterator[tuple[str, str | None, dict]]:
    """(id, document, metadata) for every row of a generation or collection, paged so big
    generations fit in memory."""
    yield from as_view(source).rows(include)


def _collection_rows(
    collection: Collection, include: list[str]
) -> Iterator[tuple[str, str | None, dict]]:
    offset = 0
    while True:
        got = collection.get(include=include, limit=_PAGE, offset=offset)  # type: ignore[arg-type]
        ids = got["ids"]
        docs = got.get("documents") or [None] * len(ids)
        metas = got.get("metadatas") or [{}] * len(ids)
        yield from zip(ids, docs, [m or {} for m in metas], strict=True)
        if len(ids) < _PAGE:
            return
        offset += len(ids)


def all_ids(source: View | Collection) -> set[str]:
    return {cid for cid, _, _ in iter_rows(source, [])}


def list_generations(client: ClientAPI, prefix: str) -> list[Collection]:
    """This prefix's generation collections, oldest first (names sort by creation time)."""
    start = f"{prefix}{GENERATION_INFIX}"
    cols = [c for c in client.list_collections() if c.name.startswith(start)]
    return sorted(cols, key=lambda c: c.name)


def prune_generations(client: ClientAPI, prefix: str, *, info: IndexInfo, keep: int) -> list[str]:
    """Delete generations other than the active one and its `keep - 1` predecessors.

    Only generations older than the active one are candidates: those were either active
    once or left half-built by a killed run. A newer one may be a run in progress elsewhere
    (server mode), so it is left for a later run to clean up.
    """
    keep_names = {info.generation, *info.previous[: keep - 1]}
    cols = list_generations(client, prefix)
    # A kept (or newer, in-progress) layer keeps its base.
    keep_names |= {
        str((c.metadata or {})[BASE_KEY])
        for c in cols
        if (c.name in keep_names or c.name > info.generation) and (c.metadata or {}).get(BASE_KEY)
    }
    deleted: list[str] = []
    for col in cols:
        if col.name in keep_names or col.name > info.generation:
            continue
        try:
            client.delete_collection(col.name)
            deleted.append(col.name)
        except Exception as err:  # noqa: BLE001 - cleanup must never fail an index run
            log.warning("could not delete old generation %s: %s", col.name, err)
    if deleted:
        log.info("deleted old generations: %s", ", ".join(deleted))
    return deleted


def index_exists(settings: Settings, client: ClientAPI | None = None) -> bool:
    """True when an active generation exists (whatever embedder built it)."""
    if client is None:
        if not settings.chroma_host and not settings.chroma_path.exists():
            return False
        client = make_client(settings)
    info = read_pointer(client, settings.collection_prefix)
    if info is None:
        return False
    try:
        open_view(client, info.generation)
    except NotFoundError:
        return False
    return True


# ----------------------------------------------------------------------------------------
# Reading (the bot)


def _mismatch(info: IndexInfo, embedder_id: str) -> IndexNotReady:
    return IndexNotReady(
        f"index was built with {info.embedder} but settings select {embedder_id}; "
        "run python -m index --full"
    )


@dataclass
class Snapshot:
    """One immutable generation, bound to the query embeddings."""

    generation: str
    info: IndexInfo
    view: View
    embeddings: Embeddings
    # Where this generation's lexical cache would be (index/lexical.py); None: not known.
    lexical_root: Path | None = None
    _chunks: list[Document] | None = field(default=None, repr=False)

    def chunks(self) -> list[Document]:
        """Every chunk (id, text, metadata), in document order; loaded once."""
        if self._chunks is None:
            # Sentence vectors stay in the store: only retrieved chunks need them.
            docs = [
                Document(
                    id=cid,
                    page_content=text or "",
                    metadata=without_vectors(md),
                )
                for cid, text, md in self.view.rows(["documents", "metadatas"])
            ]
            docs.sort(
                key=lambda d: (d.metadata.get("source", ""), d.metadata.get("chunk_index", 0))
            )
            self._chunks = docs
        return self._chunks

    def chunks_by_id(self, ids: Sequence[str]) -> dict[str, Document]:
        """These chunks (text, metadata without sentence vectors); missing ids are absent."""
        return {
            cid: Document(
                id=cid,
                page_content=text or "",
                metadata=without_vectors(md),
            )
            for cid, (_, text, md) in self.view.get(ids, ["documents", "metadatas"]).items()
        }

    def drop_chunks(self) -> None:
        """Forget the chunks loaded by `chunks()` (read again if asked for)."""
        self._chunks = None

    def documents(self) -> list[dict[str, Any]]:
        """One entry per source document: source, title, chunks, and publisher/date/... if known."""
        by_source: dict[str, dict[str, Any]] = {}
        for doc in self.chunks():
            md = doc.metadata
            entry = by_source.get(md.get("source", ""))
            if entry is None:
                entry = {"source": md.get("source", ""), "title": md.get("title", ""), "chunks": 0}
                for key in ("publisher", "author", "date", "url"):
                    if key in md:
                        entry[key] = md[key]
                by_source[entry["source"]] = entry
            entry["chunks"] += 1
        return sorted(by_source.values(), key=lambda e: e["source"])

    def dense_search(self, query: str, k: int) -> list[tuple[Document, float]]:
        """Top-k chunks with cosine similarity (1 - cosine distance), best first."""
        n = min(k, self.info.chunks)
        if n <= 0:
            return []
        vector = self.embeddings.embed_query(query)
        return [(doc, 1.0 - dist) for doc, dist in self.view.query(vector, n)]


class IndexReader:
    """Resolves the active generation on every call; caches its Snapshot while it is unchanged."""

    def __init__(
        self,
        *,
        client: ClientAPI,
        embeddings: Embeddings,
        embedder_id: str,
        prefix: str,
        files_path: Path | None = None,
        settings: Settings | None = None,
    ) -> None:
        """`files_path`: the embedded store's folder, to check each generation's HNSW files
        before Chroma loads them (None: no check, e.g. with a Chroma server).

        `settings` (embedded store): follow `python -m index --rebuild`, which moves the
        store to a new folder; the reader reopens it there on its next question.
        """
        self._client = client
        self._files_path = files_path
        self._settings = settings if settings is not None and not settings.chroma_host else None
        self._store_path = self._settings.chroma_path if self._settings is not None else None
        self._embeddings = embeddings
        self._embedder_id = embedder_id
        self._prefix = prefix
        self._snapshot: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        with connection_errors():
            self._follow_rebuild()
            return self._resolve()

    def _follow_rebuild(self) -> None:
        if self._settings is None:
            return
        path = self._settings.chroma_path  # re-reads INDEX_DIR/current
        if path == self._store_path:
            return
        log.warning("the index store moved to %s (python -m index --rebuild); reopening", path)
        self._client = make_client(self._settings, read_only_ok=True)
        self._files_path = Path(self._client.get_settings().persist_directory)
        self._store_path = path
        self._snapshot = None

    def _resolve(self) -> Snapshot:
        for attempt in range(2):
            info = read_pointer(self._client, self._prefix)
            if info is None:
                raise IndexNotReady("there is no index yet; run python -m index")
            if info.embedder != self._embedder_id:
                raise _mismatch(info, self._embedder_id)
            if self._snapshot is not None and self._snapshot.generation == info.generation:
                return self._snapshot
            try:
                view = open_view(self._client, info.generation, check=self._check_files)
                break
            except NotFoundError as err:
                if attempt:  # still missing after re-reading the pointer: a broken index
                    raise IndexNotReady(
                        f"the active index generation {info.generation} is missing; "
                        "run python -m index --full"
                    ) from err
        root = None
        if self._files_path is not None or self._settings is not None:
            index_dir = self._settings.index_dir if self._settings is not None else Path()
            root = lexical_root(self._files_path, index_dir)
        self._snapshot = Snapshot(
            generation=info.generation,
            info=info,
            view=view,
            embeddings=self._embeddings,
            lexical_root=root,
        )
        log.info("using index generation %s (%d chunks)", info.generation, info.chunks)
        return self._snapshot

    def _check_files(self, collection: Collection) -> None:
        """HNSW files checked before hnswlib reads them (embedded store only)."""
        if self._files_path is not None:
            check_generation_files(self._files_path, collection)

    def search(self, query: str, k: int) -> tuple[Snapshot, list[tuple[Document, float]]]:
        """Dense search plus the snapshot that answered it (so BM25 can use the same one).

        Re-resolves once if the generation was deleted between resolving and querying.
        """
        with connection_errors():
            snap = self.snapshot()
            try:
                return snap, snap.dense_search(query, k)
            except NotFoundError:
                log.info("index generation %s vanished mid-question; re-resolving", snap.generation)
                self._snapshot = None
            snap = self.snapshot()
            try:
                return snap, snap.dense_search(query, k)
            except NotFoundError as err:
                raise IndexNotReady(
                    "the index changed twice during one question; ask again"
                ) from err

    def dense_search(self, query: str, k: int) -> list[tuple[Document, float]]:
        """`search` without the snapshot: top-k chunks with cosine similarity."""
        return self.search(query, k)[1]


# ----------------------------------------------------------------------------------------
# Bounded disk (embedded store)

_UUID_DIR = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VACUUM_FREE_SHARE = 0.25  # VACUUM when at least this share of the SQLite pages is free


def _db_uri(path: Path, mode: str) -> str:
    return f"file:{urllib.parse.quote(str(path / 'chroma.sqlite3'))}?mode={mode}"


def live_segment_ids(path: Path) -> set[str]:
    """Ids of every segment a collection in the embedded store at `path` owns (read-only)."""
    db = sqlite3.connect(_db_uri(path, "ro"), uri=True, timeout=10)
    try:
        return {str(row[0]) for row in db.execute("SELECT id FROM segments")}
    finally:
        db.close()


def collection_segment_ids(path: Path, name: str) -> set[str]:
    """Ids of the segments of the collection `name` in the embedded store at `path`."""
    db = sqlite3.connect(_db_uri(path, "ro"), uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT s.id FROM segments s JOIN collections c ON s.collection = c.id"
            " WHERE c.name = ?",
            (name,),
        )
        return {str(row[0]) for row in rows}
    finally:
        db.close()


def drop_unfinished_generation(client: ClientAPI, name: str, path: Path | None) -> None:
    """Delete a generation nobody can see yet. On a full disk SQLite may not even manage
    the delete: then free the generation's vector folders first and try once more."""
    try:
        client.delete_collection(name)
        return
    except Exception as err:  # noqa: BLE001 - retried below, then only reported
        first = err
    if path is not None:
        try:
            for segment in collection_segment_ids(path, name):
                folder = path / segment
                if _UUID_DIR.fullmatch(segment) and folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
            client.delete_collection(name)
            return
        except Exception as err:  # noqa: BLE001 - the caller's error matters more
            first = err
    log.warning("could not delete the unfinished generation %s: %s", name, first)


def remove_orphan_segments(path: Path) -> list[str]:
    """Delete HNSW segment folders under `path` that no live collection references.

    chromadb's delete_collection drops the rows but leaves the folder, so every pruned
    generation would otherwise stay on disk for ever. Call only while holding the reindex
    lock (nothing else creates collections then).
    """
    live = live_segment_ids(path)
    removed = []
    for child in path.iterdir():
        if child.is_dir() and _UUID_DIR.fullmatch(child.name) and child.name not in live:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child.name)
    if removed:
        log.info("removed %d orphaned segment folder(s) under %s", len(removed), path)
    return removed


def vacuum_if_sparse(path: Path, *, free_share: float = VACUUM_FREE_SHARE) -> bool:
    """VACUUM chroma.sqlite3 when at least `free_share` of its pages are free; True if done."""
    db = sqlite3.connect(_db_uri(path, "rw"), uri=True, timeout=10, isolation_level=None)
    try:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        if not pages or free / pages < free_share:
            return False
        db.execute("VACUUM")
        log.info("vacuumed %s: %d of %d pages were free", path / "chroma.sqlite3", free, pages)
        return True
    finally:
        db.close()


def reclaim_disk(path: Path, *, vacuum: bool = True) -> None:
    """Orphaned segment folders and free SQLite pages; never fails an index run."""
    try:
        remove_orphan_segments(path)
        if vacuum:
            vacuum_if_sparse(path)
    except (OSError, sqlite3.Error) as err:
        log.warning("could not reclaim disk space under %s: %s", path, err)


# ----------------------------------------------------------------------------------------
# Damaged HNSW files (embedded store)

# chromadb's persisted hnswlib header (header.bin, format version 1): version, offsetLevel0,
# max_elements, cur_element_count, size_data_per_element, label_offset, offset_data,
# maxlevel, enterpoint_node, maxM, maxM0, M, mult, ef_construction.
_HNSW_HEADER = struct.Struct("<IQQQQQQiIQQQdQ")
_HNSW_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")


def hnsw_problem(folder: Path) -> str | None:
    """Why the persisted HNSW files in `folder` must not be loaded, or None when they look sane.

    hnswlib trusts these files: a truncated or garbled one can make the reading process fail
    deep in native code. This checks the header against the file sizes and every stored
    level-0 neighbour id against the element count, which a consistent write always
    satisfies (so a legitimate rewrite never trips it). Unknown format versions and folders
    with nothing persisted yet (small collections live in Chroma's log) are not judged.
    """
    header_path = folder / "header.bin"
    if not header_path.exists():
        return None
    missing = [name for name in _HNSW_FILES if not (folder / name).is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    raw = header_path.read_bytes()
    if len(raw) != _HNSW_HEADER.size:
        return f"header.bin has {len(raw)} bytes, expected {_HNSW_HEADER.size}"
    (
        version,
        _,
        max_el,
        count,
        per_el,
        label_off,
        data_off,
        max_level,
        entry,
        _,
        max_m0,
        _,
        _,
        _,
    ) = _HNSW_HEADER.unpack(raw)
    if version != 1:
        log.debug("not checking %s: unknown HNSW format version %d", folder, version)
        return None
    if (
        count > max_el
        or data_off != 4 + 4 * max_m0
        or label_off + 8 != per_el
        or per_el <= data_off
    ):
        return "header.bin is inconsistent"
    if count and (max_level < 0 or entry >= count):
        return "header.bin is inconsistent (entry point)"
    data = folder / "data_level0.bin"
    if data.stat().st_size < count * per_el:
        return f"data_level0.bin is truncated ({data.stat().st_size} < {count * per_el} bytes)"
    if (folder / "length.bin").stat().st_size < count * 4:
        return "length.bin is truncated"
    if count:
        rows = np.fromfile(data, dtype=np.uint8, count=count * per_el).reshape(count, per_el)
        links = np.ascontiguousarray(rows[:, :data_off])
        sizes = links[:, :2].copy().view("<u2").ravel()
        if int(sizes.max()) > max_m0:
            return "data_level0.bin is garbled (neighbour list too long)"
        ids = links[:, 4:].copy().view("<u4")
        used = np.arange(max_m0) < sizes[:, None]
        if used.any() and int(ids[used].max()) >= count:
            return "data_level0.bin is garbled (neighbour id out of range)"
    return None


def vector_segment_dir(path: Path, collection_id: str) -> Path | None:
    """The HNSW folder of a collection in the embedded store at `path` (read-only lookup)."""
    db = sqlite3.connect(_db_uri(path, "ro"), uri=True, timeout=10)
    try:
        row = db.execute(
            "SELECT id FROM segments WHERE collection = ? AND scope = 'VECTOR'", (collection_id,)
        ).fetchone()
    finally:
        db.close()
    return path / str(row[0]) if row else None


def check_generation_files(path: Path, collection: Collection) -> None:
    """Raise IndexNotReady when the generation's HNSW files are damaged (embedded store)."""
    try:
        folder = vector_segment_dir(path, str(collection.id))
        problem = hnsw_problem(folder) if folder is not None else None
    except (OSError, sqlite3.Error, ValueError) as err:
        problem = f"cannot be checked: {err}"
    if problem:
        raise IndexNotReady(
            f"the vector files of index generation {collection.name} under INDEX_DIR ({path}) "
            f"are damaged ({problem}); run python -m index --rebuild"
        )
