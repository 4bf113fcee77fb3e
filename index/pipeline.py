"""Re-index: load -> chunk -> embed only what is new -> write a new generation -> switch.

Only one re-index runs at a time per index_dir: a second one *waits* on an flock of
`index_dir/reindex.lock` (and then usually finds nothing to do). The lock is released by the
kernel if the holder dies, so a killed run never blocks the next one. With a Chroma server the
lock only covers re-indexes started on this machine with the same INDEX_DIR.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from index import store
from index.chunker import chunk_document, embedding_text
from index.documents import SourceDoc
from index.embedder import embedder_id as get_embedder_id
from index.embedder import make_embeddings
from index.errors import CorpusBotError
from index.loader import load_corpus, unsupported_files
from index.sentences import UNIT_VECTORS, encode_unit_vectors, units_of_chunk
from index.settings import Settings

log = logging.getLogger(__name__)

# Bump when the loader or chunker produce different output for the same file bytes, so the
# unchanged fast path does not keep an index built by older code.
LOADER_VERSION = "2"  # 2: structure-aware loading and chunking
WRITE_SLICE = 1024  # chunks per Chroma write while embedding
CALL_BATCHES = 8  # embedder batches per embed_documents call (and progress step)
MAX_LISTED_UNSUPPORTED = 50  # names kept in IndexSummary.unsupported_files
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} chunks [{elapsed}, ETA {remaining}, {rate_fmt}]"

# Test hook: "embed:N" pauses after N chunks were embedded, "before_switch" after validation;
# the run writes index_dir/paused.<point> and sleeps so a test can kill it at a known point.
PAUSE_ENV = "CORPUSBOT_TEST_PAUSE_AT"


@dataclass
class IndexSummary:
    documents: int = 0
    chunks: int = 0
    added: int = 0  # document counts vs the previous generation
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    embedded: int = 0  # chunks embedded in this run
    reused: int = 0  # chunks whose vectors were copied from the previous generation
    skipped: int = 0
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    ignored: int = 0  # not content by rule: .corpusignore, generated index/contents pages
    ignored_files: list[dict[str, str]] = field(default_factory=list)
    unsupported: int = 0  # files of a type no loader reads: ignored, not an error
    unsupported_files: list[str] = field(default_factory=list)  # the first 50 of them
    generation: str = ""
    seconds: float = 0.0
    full: bool = False
    changed: bool = False
    note: str | None = None  # e.g. why a full rebuild happened

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        text = (
            f"indexed {self.documents} documents, {self.chunks} chunks (added {self.added}, "
            f"updated {self.updated}, unchanged {self.unchanged}, deleted {self.deleted}; "
            f"embedded {self.embedded}, reused {self.reused}) in {self.seconds:.1f} s"
        )
        if not self.changed:
            text += "; index unchanged"
        if self.note:
            text += f"; {self.note}"
        if self.ignored:
            text += f"; ignored {self.ignored} (generated or .corpusignore)"
        if self.skipped_files:
            files = ", ".join(f"{s['path']} ({s['reason']})" for s in self.skipped_files)
            text += f"; skipped {self.skipped} file{'s' if self.skipped != 1 else ''}: {files}"
        if self.unsupported:
            shown = self.unsupported_files[:10]
            rest = self.unsupported - len(shown)
            text += (
                f"; ignored {self.unsupported} unsupported file"
                f"{'s' if self.unsupported != 1 else ''}: {', '.join(shown)}"
                + (f" and {rest} more" if rest > 0 else "")
            )
        return text


def fingerprint(docs: list[SourceDoc], settings: Settings, embedder_id: str) -> str:
    h = hashlib.sha256()
    for source, sha in sorted((d.source, d.sha256) for d in docs):
        h.update(f"{source}\0{sha}\n".encode())
    h.update(
        f"{settings.chunk_size}\0{settings.chunk_overlap}\0{embedder_id}\0{LOADER_VERSION}".encode()
    )
    return h.hexdigest()


@contextmanager
def reindex_lock(index_dir: Path) -> Iterator[None]:
    store.ensure_index_dir(index_dir)
    with open(index_dir / "reindex.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another re-index is running on %s; waiting for it to finish", index_dir)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pause(point: str, index_dir: Path) -> None:
    (index_dir / f"paused.{point.replace(':', '_')}").write_text(str(os.getpid()))
    log.warning("%s=%s: pausing until killed", PAUSE_ENV, point)
    while True:
        time.sleep(3600)


def reindex(
    settings: Settings,
    *,
    full: bool = False,
    progress: bool = False,
    client: ClientAPI | None = None,
    embeddings: Embeddings | None = None,
    url_for: Callable[[str], str | None] | None = None,
) -> IndexSummary:
    started = time.perf_counter()
    where = f"{settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host else ""
    with reindex_lock(settings.index_dir), store.connection_errors(where):
        summary = _reindex(
            settings,
            full=full,
            progress=progress,
            client=client,
            embeddings=embeddings,
            url_for=url_for,
        )
    summary.seconds = round(time.perf_counter() - started, 3)
    log.debug("%s", summary.line())
    return summary


def _reindex(
    settings: Settings,
    *,
    full: bool,
    progress: bool,
    client: ClientAPI | None,
    embeddings: Embeddings | None,
    url_for: Callable[[str], str | None] | None = None,
) -> IndexSummary:
    client = client or store.make_client(settings)
    prefix = settings.collection_prefix
    eid = get_embedder_id(settings)

    docs, not_loaded = load_corpus(
        settings.corpus_dir, max_bytes=settings.max_document_bytes, url_for=url_for
    )
    skipped = [s for s in not_loaded if s.kind == "error"]
    ignored = [s for s in not_loaded if s.kind != "error"]
    summary = IndexSummary(
        documents=len(docs),
        skipped=len(skipped),
        skipped_files=[{"path": s.path, "reason": s.reason} for s in skipped],
        ignored=len(ignored),
        ignored_files=[{"path": s.path, "reason": s.reason} for s in ignored[:100]],
        full=full,
    )
    other_types = unsupported_files(settings.corpus_dir)
    summary.unsupported = len(other_types)
    summary.unsupported_files = other_types[:MAX_LISTED_UNSUPPORTED]
    fp = fingerprint(docs, settings, eid)

    pointer = active = store.read_pointer(client, prefix)
    previous = None
    if active is not None:
        try:
            previous = client.get_collection(active.generation)
        except NotFoundError:
            log.warning("active generation %s is missing; rebuilding everything", active.generation)
            active = None
    if active is not None and active.embedder != eid:
        summary.full = True
        summary.note = f"embedder changed from {active.embedder} to {eid}: rebuilt everything"

    if active is not None and not summary.full and active.fingerprint == fp:
        # Fast path: same files, same chunking, same embedder -> nothing to do.
        summary.chunks = active.chunks
        summary.unchanged = len(docs)
        summary.generation = active.generation
        store.prune_generations(client, prefix, info=active, keep=settings.keep_generations)
        return summary

    chunks = _chunk_all(docs, settings)
    summary.chunks = len(chunks)

    prev_ids: set[str] = set()
    if previous is not None:
        prev_docs: dict[str, str] = {}
        for cid, _, md in store.iter_rows(previous, ["metadatas"]):
            prev_ids.add(cid)
            prev_docs[str(md.get("source", ""))] = str(md.get("doc_sha256", ""))
        for doc in docs:
            old = prev_docs.pop(doc.source, None)
            if old is None:
                summary.added += 1
            elif old == doc.sha256:
                summary.unchanged += 1
            else:
                summary.updated += 1
        summary.deleted = len(prev_docs)
    else:
        summary.added = len(docs)

    name = store.new_generation_name(prefix)
    log.info("building generation %s (%d chunks)", name, len(chunks))
    collection = store.create_generation(client, name, embedder_id=eid)
    try:
        _fill(
            settings,
            summary,
            client=client,
            collection=collection,
            chunks=chunks,
            source=None if summary.full else previous,
            prev_ids=prev_ids,
            embeddings=embeddings,
            progress=progress,
        )
    except BaseException:
        # Nobody can see this generation yet: drop it now rather than leave it to pruning.
        try:
            client.delete_collection(name)
        except Exception:  # noqa: BLE001 - the original error matters more
            log.warning("could not delete the unfinished generation %s", name)
        raise
    store.mark_ready(collection, embedder_id=eid)
    if os.environ.get(PAUSE_ENV) == "before_switch":
        _pause("before_switch", settings.index_dir)

    fields = {
        "generation": name,
        "embedder": eid,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fingerprint": fp,
        "documents": len(docs),
        "chunks": len(chunks),
    }
    info = pointer.successor(**fields) if pointer is not None else store.IndexInfo(**fields)
    store.write_pointer(client, prefix, info)
    summary.generation = name
    summary.changed = True
    store.prune_generations(client, prefix, info=info, keep=settings.keep_generations)
    return summary


def _fill(
    settings: Settings,
    summary: IndexSummary,
    *,
    client: ClientAPI,
    collection: Collection,
    chunks: list[Document],
    source: Collection | None,
    prev_ids: set[str],
    embeddings: Embeddings | None,
    progress: bool,
) -> None:
    """Copy reusable vectors from `source`, embed the rest, then validate the generation."""
    reuse: set[str] = set()
    if source is not None:
        # Copied a slice at a time, so a large index's vectors are never all in memory.
        by_id = {str(c.id): c for c in chunks if c.id in prev_ids}
        ids = list(by_id)
        for i in range(0, len(ids), WRITE_SLICE):
            vectors, old_meta = store.get_vectors_and_metadata(source, ids[i : i + WRITE_SLICE])
            copied = [by_id[cid] for cid in ids[i : i + WRITE_SLICE] if cid in vectors]
            for c in copied:  # sentence vectors travel with the chunk vector
                if UNIT_VECTORS in old_meta[str(c.id)]:
                    c.metadata[UNIT_VECTORS] = old_meta[str(c.id)][UNIT_VECTORS]
            if copied:
                store.add_chunks(client, collection, copied, [vectors[str(c.id)] for c in copied])
            for c in copied:
                c.metadata.pop(UNIT_VECTORS, None)
            reuse.update(str(c.id) for c in copied)
    summary.reused = len(reuse)

    # Similar lengths per batch pad less, so embedding runs at the raw embedder's speed.
    todo = sorted((c for c in chunks if c.id not in reuse), key=lambda c: len(c.page_content))
    pause_at = os.environ.get(PAUSE_ENV, "")
    if todo:
        embeddings = embeddings or make_embeddings(settings)
        show_bar = progress and sys.stderr.isatty()
        bar = tqdm(
            total=len(todo),
            desc="embedding",
            unit="chunk",
            bar_format=BAR_FORMAT,
            disable=not show_bar,
        )
        # Vectors are written in large slices, not per batch: Chroma's indexing threads
        # would otherwise compete with the embedder for the cores (~10% slower measured).
        pending: tuple[list[Document], list[list[float]]] = ([], [])
        # Log lines go through tqdm.write while the bar is shown, so they never cut into it.
        with logging_redirect_tqdm() if show_bar else contextlib.nullcontext(), bar:
            # A few batches per call: the embedder sorts each call's texts by token count.
            step = settings.embed_batch_size * CALL_BATCHES
            for i in range(0, len(todo), step):
                batch = todo[i : i + step]
                pending[0].extend(batch)
                pending[1].extend(_embed(embeddings, batch))
                summary.embedded += len(batch)
                bar.update(len(batch))
                if len(pending[0]) >= WRITE_SLICE or i + step >= len(todo):
                    store.add_chunks(client, collection, *pending)
                    for c in pending[0]:  # written: don't hold every sentence vector until the end
                        c.metadata.pop(UNIT_VECTORS, None)
                    pending = ([], [])
                if pause_at.startswith("embed:") and summary.embedded >= int(pause_at[6:]):
                    _pause(pause_at, settings.index_dir)

    # Validate before anyone can see it: exactly the expected ids, nothing more or less.
    expected = {str(c.id) for c in chunks}
    got = store.all_ids(collection)
    if got != expected:
        raise CorpusBotError(
            f"generation {collection.name} failed validation: {len(expected - got)} chunks "
            f"missing, {len(got - expected)} unexpected"
        )


def _embed(embeddings: Embeddings, batch: list[Document]) -> list[list[float]]:
    """Chunk vectors; with the offline model also a vector per sentence/code unit, pooled
    from the same forward pass and stored in the chunk's metadata for the answerer."""
    texts = [embedding_text(c) for c in batch]
    embed_with_spans = getattr(embeddings, "embed_with_spans", None)
    if embed_with_spans is None:  # e.g. OpenAI embeddings: no token states
        return embeddings.embed_documents(texts)
    spans = []
    for c, text in zip(batch, texts, strict=True):
        offset = len(text) - len(c.page_content)  # the heading context comes first
        base = int(c.metadata["start"])
        units = units_of_chunk(c.page_content, c.metadata)
        spans.append([(u.start - base + offset, u.end - base + offset) for u in units])
    vectors, unit_vectors = embed_with_spans(texts, spans)
    for c, uv in zip(batch, unit_vectors, strict=True):
        c.metadata[UNIT_VECTORS] = encode_unit_vectors(uv)
    return vectors


def _chunk_all(docs: list[SourceDoc], settings: Settings) -> list[Document]:
    chunks: list[Document] = []
    seen: set[str] = set()
    for doc in docs:
        for chunk in chunk_document(
            doc, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
        ):
            # Ids hash source + text + occurrence, so a repeat means a chunker bug.
            if chunk.id in seen:
                raise CorpusBotError(f"duplicate chunk id {chunk.id} in {doc.source}")
            seen.add(str(chunk.id))
            chunks.append(chunk)
    return chunks
