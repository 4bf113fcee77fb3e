"""Re-index: load -> chunk -> embed only what is new -> write a new generation -> switch.

Only one re-index runs at a time per index_dir: a second one *waits* on an flock of
`index_dir/reindex.lock` (and then usually finds nothing to do), for at most
REINDEX_LOCK_WAIT_S, then fails with a message naming the run holding it (the holder writes
its pid, start time and command into the lock file). The lock is released by the kernel if
the holder dies, so a killed run never blocks the next one. With a Chroma server the lock only
covers re-indexes started on this machine with the same INDEX_DIR.

Guards: a corpus that lost more than half of the active generation's documents (of at least
SHRINK_MIN_DOCUMENTS), or became empty, is refused unless `allow_shrink` (a missing mount
must not silently empty the index). A document with more than MAX_CHUNKS_PER_DOCUMENT chunks
is truncated to them and named in `truncated_files`. After pruning, orphaned HNSW folders
and free SQLite pages of the embedded store are reclaimed. `rebuild` builds a fresh embedded
store beside a damaged one and switches INDEX_DIR/current to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from index import lexical, store
from index.chunker import chunk_document, embedding_text, question_heading
from index.documents import SourceDoc
from index.embedder import Tokens, embedding_order, make_embeddings
from index.embedder import embedder_id as get_embedder_id
from index.errors import ConfigError, CorpusBotError
from index.loader import load_corpus, unsupported_files
from index.sentences import (
    HEADING_VECTOR,
    UNIT_VECTORS,
    VECTOR_KEYS,
    encode_unit_vectors,
    units_of_chunk,
    without_vectors,
)
from index.settings import CURRENT_FILE, Settings
from index.writer import SliceWriter, open_writer

log = logging.getLogger(__name__)

# Bump when the loader or chunker produce different output for the same file bytes, so the
# unchanged fast path does not keep an index built by older code.
PARSED_DIR = "parsed"  # INDEX_DIR/parsed: documents parsed before, by their bytes (index.parsed)
LOADER_VERSION = "2"  # 2: structure-aware loading and chunking
WRITE_SLICE = 1024  # chunks per Chroma write while embedding
CALL_BATCHES = 8  # embedder batches per embed_documents call (and progress step)
MAX_LISTED_UNSUPPORTED = 50  # names kept in IndexSummary.unsupported_files
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} chunks [{elapsed}, ETA {remaining}, {rate_fmt}]"

# Test hook: "embed:N" pauses after N chunks were embedded, "before_switch" after validation;
# the run writes index_dir/paused.<point> and sleeps so a test can kill it at a known point.
PAUSE_ENV = "CORPUSBOT_TEST_PAUSE_AT"

SHRINK_MIN_DOCUMENTS = 4  # the shrink guard applies from this many active documents
SHRINK_MIN_SHARE = 0.5  # ... when the new corpus has fewer than this share of them


@dataclass
class IndexSummary:
    documents: int = 0
    chunks: int = 0
    added: int = 0  # document counts vs the previous generation
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    embedded: int = 0  # chunks embedded in this run
    reused: int = 0  # chunks whose vectors were copied from the previous generation (or kept in a layer's base)
    skipped: int = 0
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    ignored: int = 0  # not content by rule: .corpusignore, generated index/contents pages
    ignored_files: list[dict[str, str]] = field(default_factory=list)
    unsupported: int = 0  # files of a type no loader reads: ignored, not an error
    unsupported_files: list[str] = field(default_factory=list)  # the first 50 of them
    # Documents cut to MAX_CHUNKS_PER_DOCUMENT: {"path", "chunks" (all), "kept"}.
    truncated_files: list[dict[str, Any]] = field(default_factory=list)
    generation: str = ""
    base: str | None = None  # the full generation `generation` is a layer over (None: full)
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
        if self.truncated_files:
            files = ", ".join(
                f"{t['path']} (kept {t['kept']} of {t['chunks']} chunks)"
                for t in self.truncated_files
            )
            text += f"; truncated {len(self.truncated_files)} over-long file(s): {files}"
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
        # backslashreplace: a name with undecodable bytes can never abort the run here.
        h.update(f"{source}\0{sha}\n".encode("utf-8", "backslashreplace"))
    h.update(
        f"{settings.chunk_size}\0{settings.chunk_overlap}\0{embedder_id}\0{LOADER_VERSION}".encode()
    )
    if settings.corpus_base_url:
        h.update(f"\0base{settings.corpus_base_url}".encode())
    if settings.max_chunks_per_document != Settings.model_fields["max_chunks_per_document"].default:
        h.update(f"\0cap{settings.max_chunks_per_document}".encode())
    return h.hexdigest()


def _try_lock(fh: Any) -> bool:
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _lock_holder(path: Path) -> str:
    """Who holds the lock, as its holder wrote it (pid, start time, command)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "an unknown process"


@contextmanager
def reindex_lock(index_dir: Path, *, wait_s: float = 600.0) -> Iterator[None]:
    """Hold INDEX_DIR/reindex.lock; wait at most `wait_s` for another holder to finish."""
    store.ensure_index_dir(index_dir)
    path = index_dir / "reindex.lock"
    try:
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as err:
        raise store.store_problem(err, index_dir) or ConfigError(
            f"INDEX_DIR cannot be used: {path} ({err.strerror or err})"
        ) from err
    with fh:
        if not _try_lock(fh):
            log.warning(
                "another re-index is running on %s (%s); waiting up to %g s for it",
                index_dir,
                _lock_holder(path),
                wait_s,
            )
            deadline = time.monotonic() + wait_s
            while not _try_lock(fh):
                if time.monotonic() >= deadline:
                    raise CorpusBotError(
                        f"another re-index ({_lock_holder(path)}) still holds {path} after "
                        f"{wait_s:g} s (REINDEX_LOCK_WAIT_S); wait for it to finish or stop "
                        "that process, then run python -m index again"
                    )
                time.sleep(0.1)
        try:
            fh.seek(0)
            fh.truncate()
            started = datetime.now(UTC).isoformat(timespec="seconds")
            fh.write(f"pid {os.getpid()}, started {started}: {' '.join(sys.argv)[:200]}\n")
            fh.flush()
        except OSError:
            pass  # who holds the lock is only informative
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
    allow_shrink: bool = False,
    rebuild: bool = False,
) -> IndexSummary:
    started = time.perf_counter()
    where = f"{settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host else ""
    with reindex_lock(settings.index_dir, wait_s=settings.reindex_lock_wait_s):
        if rebuild:
            summary = _rebuild(settings, progress=progress, embeddings=embeddings)
        else:
            path = None if settings.chroma_host else settings.chroma_path
            with store.connection_errors(where, path=path):
                summary = _reindex(
                    settings,
                    full=full,
                    progress=progress,
                    client=client or store.make_client(settings),
                    embeddings=embeddings,
                    url_for=url_for,
                    allow_shrink=allow_shrink,
                    path=path,
                )
    summary.seconds = round(time.perf_counter() - started, 3)
    log.debug("%s", summary.line())
    return summary


def _rebuild(settings: Settings, *, progress: bool, embeddings: Embeddings | None) -> IndexSummary:
    """Build a fresh embedded store beside the current (damaged) one, switch, remove the old.

    Never opens the old store. The switch is one rename of INDEX_DIR/current, so a crash
    leaves either the old folder or the new one active, never neither.
    """
    if settings.chroma_host:
        raise ConfigError(
            "--rebuild replaces the embedded store under INDEX_DIR, but CHROMA_HOST is set; "
            "repair the Chroma server's data instead, or use python -m index --full"
        )
    index_dir = settings.index_dir
    now = datetime.now(UTC)
    name = f"chroma-{now:%Y%m%d%H%M%S}_{now.microsecond:06d}"
    new = index_dir / name
    try:
        client = store.open_embedded(new)
        with store.connection_errors(path=new):
            summary = _reindex(
                settings,
                full=True,
                progress=progress,
                client=client,
                embeddings=embeddings,
                allow_shrink=True,
                path=new,
            )
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    tmp = index_dir / f"{CURRENT_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, index_dir / CURRENT_FILE)
    dir_fd = os.open(index_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    removed = []
    for old in sorted(index_dir.iterdir()):
        if (
            old.is_dir()
            and old.name != name
            and (old.name == "chroma" or old.name.startswith("chroma-"))
        ):
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old.name)
    summary.full = True
    summary.note = f"rebuilt into a fresh store {new}" + (
        f"; removed {', '.join(removed)}" if removed else ""
    )
    log.warning("%s", summary.note)
    return summary


def _check_shrink(docs: int, skipped: int, active: store.IndexInfo, settings: Settings) -> None:
    """Refuse to replace an index with a much smaller (or empty) corpus without --allow-shrink."""
    where = f"the corpus at {settings.corpus_dir}"
    was = f"the active index has {active.documents}"
    if docs == 0 and active.documents > 0:
        raise CorpusBotError(
            f"{where} has no documents ({skipped} skipped) but {was}; refusing to replace "
            "it with an empty index (is the corpus folder mounted?). Run python -m index "
            "--allow-shrink if this is intended; the old index is still active"
        )
    if active.documents >= SHRINK_MIN_DOCUMENTS and docs < active.documents * SHRINK_MIN_SHARE:
        raise CorpusBotError(
            f"{where} has {docs} documents ({skipped} skipped) but {was}: more than half "
            "would disappear. Refusing (is part of the corpus missing?); run python -m index "
            "--allow-shrink if this is intended; the old index is still active"
        )


def _reindex(
    settings: Settings,
    *,
    full: bool,
    progress: bool,
    client: ClientAPI,
    embeddings: Embeddings | None,
    url_for: Callable[[str], str | None] | None = None,
    allow_shrink: bool,
    path: Path | None,
) -> IndexSummary:
    """`path`: the embedded store's folder (None with a Chroma server), for disk reclaiming."""
    prefix = settings.collection_prefix
    eid = get_embedder_id(settings)

    docs, not_loaded = load_corpus(
        settings.corpus_dir,
        max_bytes=settings.max_document_bytes,
        url_for=url_for,
        cache_dir=settings.index_dir / PARSED_DIR,
    )
    if settings.corpus_base_url:  # documents that state no URL of their own
        base = settings.corpus_base_url.rstrip("/") + "/"
        for doc in docs:
            doc.metadata.setdefault("url", base + urllib.parse.quote(doc.source))
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
    if pointer is not None and not allow_shrink:
        _check_shrink(len(docs), len(skipped), pointer, settings)
    if not docs:
        summary.note = f"warning: the corpus at {settings.corpus_dir} has no documents"
        log.warning("%s", summary.note)
    previous: store.View | None = None
    if active is not None:
        try:
            previous = store.open_view(client, active.generation)
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
        summary.truncated_files = active.truncated_files()
        root = lexical.lexical_root(path, settings.index_dir)
        if previous is not None and not lexical.is_current(
            root, active.generation, chunks=active.chunks
        ):
            # An index from before the cache existed (or one whose cache was lost): write it
            # now, from the stored chunks, so the bot need not build it on every start.
            rows = store.iter_rows(previous, ["documents", "metadatas"])
            _write_lexical(root, active.generation, rows, chunks=active.chunks)
        store.prune_generations(client, prefix, info=active, keep=settings.keep_generations)
        _sweep_lexical(client, prefix, root)
        if path is not None:
            store.reclaim_disk(path)
        return summary

    chunks, summary.truncated_files = _chunk_all(docs, settings)
    summary.chunks = len(chunks)

    prev_ids: set[str] = set()
    prev_sources: dict[str, _SourceState] = {}
    if previous is not None:
        prev_sources = _source_states(store.iter_rows(previous, ["metadatas"]))
        prev_ids = {cid for st in prev_sources.values() for cid in st.ids}
        for doc in docs:
            old = prev_sources.get(doc.source)
            if old is None:
                summary.added += 1
            elif old.sha256 == doc.sha256:
                summary.unchanged += 1
            else:
                summary.updated += 1
        summary.deleted = len(prev_sources.keys() - {d.source for d in docs})
    else:
        summary.added = len(docs)

    plan = None
    if previous is not None and not summary.full:
        plan = plan_layer(
            previous,
            prev_sources,
            _source_states((str(c.id), None, c.metadata) for c in chunks),
            chunks=len(chunks),
            max_share=settings.layer_max_share,
        )
    name = store.new_generation_name(prefix)
    if plan is None:
        log.info("building generation %s (%d chunks)", name, len(chunks))
        collection = store.create_generation(client, name, embedder_id=eid)
        members = chunks
    else:
        members = [c for c in chunks if str(c.metadata.get("source", "")) in plan.masked]
        log.info(
            "building generation %s (%d chunks): a layer of %d chunks over %s, replacing %d "
            "document(s)",
            name,
            len(chunks),
            len(members),
            plan.base,
            len(plan.masked),
        )
        collection = store.create_generation(
            client, name, embedder_id=eid, base=plan.base, masked=sorted(plan.masked)
        )
        summary.base = plan.base
    try:
        _fill(
            settings,
            summary,
            client=client,
            collection=collection,
            chunks=members,
            source=None if summary.full else previous,
            prev_ids=prev_ids,
            embeddings=embeddings,
            progress=progress,
            path=path,
        )
        if plan is not None:
            summary.reused += len(chunks) - len(members)  # kept in the base, not copied
            count = store.open_view(client, name).count()
            if count != len(chunks):
                raise CorpusBotError(
                    f"generation {name} failed validation: {count} chunks over its base, "
                    f"{len(chunks)} expected"
                )
        store.mark_ready(collection, embedder_id=eid)
    except BaseException:
        # Nobody can see this generation yet: drop it now rather than leave it to pruning
        # (and its folder: after a full disk the space is needed back at once).
        store.drop_unfinished_generation(client, name, path)
        if path is not None:
            store.reclaim_disk(path, vacuum=False)
        raise
    # The generation's lexical cache (BM25, term statistics, positions) is complete before
    # the pointer names it, so a bot never sees the generation without it.
    root = lexical.lexical_root(path, settings.index_dir)
    reuse = None
    if active is not None and not summary.full:
        try:
            reuse = lexical.load(root, active.generation, chunks=active.chunks)
        except lexical.CacheUnusable as err:
            log.info("previous lexical cache not reused: %s", err)
    rows = ((str(c.id), c.page_content, c.metadata) for c in chunks)
    _write_lexical(root, name, rows, chunks=len(chunks), reuse=reuse)
    del reuse
    if os.environ.get(PAUSE_ENV) == "before_switch":
        _pause("before_switch", settings.index_dir)

    fields = {
        "generation": name,
        "embedder": eid,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fingerprint": fp,
        "documents": len(docs),
        "chunks": len(chunks),
        "truncated": json.dumps(summary.truncated_files) if summary.truncated_files else "",
    }
    info = pointer.successor(**fields) if pointer is not None else store.IndexInfo(**fields)
    store.write_pointer(client, prefix, info)
    summary.generation = name
    summary.changed = True
    store.prune_generations(client, prefix, info=info, keep=settings.keep_generations)
    _sweep_lexical(client, prefix, root)
    if path is not None:
        store.reclaim_disk(path)
    return summary


@dataclass(frozen=True)
class _SourceState:
    """One document's chunks in a generation: ids, and a digest of their metadata."""

    ids: frozenset[str]
    digest: str
    sha256: str


def _source_states(
    rows: Iterable[tuple[str, str | None, dict[str, Any]]],
) -> dict[str, _SourceState]:
    """Per source: its chunk ids and a digest of (id, metadata) without sentence vectors,
    so any change a re-index makes to a document's chunks (text, headings, offsets, title,
    URL, ...) shows as a different state."""
    parts: dict[str, list[tuple[str, str]]] = {}
    shas: dict[str, str] = {}
    for cid, _, md in rows:
        source = str(md.get("source", ""))
        shas.setdefault(source, str(md.get("doc_sha256", "")))
        meta = without_vectors(md)
        parts.setdefault(source, []).append((cid, json.dumps(meta, sort_keys=True, default=str)))
    return {
        source: _SourceState(
            ids=frozenset(cid for cid, _ in items),
            digest=hashlib.sha256(json.dumps(sorted(items)).encode()).hexdigest(),
            sha256=shas[source],
        )
        for source, items in parts.items()
    }


@dataclass(frozen=True)
class LayerPlan:
    base: str  # the base generation the layer sits on
    masked: frozenset[str]  # sources whose base chunks the layer replaces


def plan_layer(
    previous: store.View,
    before: dict[str, _SourceState],
    after: dict[str, _SourceState],
    *,
    chunks: int,
    max_share: float,
) -> LayerPlan | None:
    """A layer over the previous generation's base, when the documents that differ from it
    hold at most `max_share` of the chunks; None: build a full generation.

    The layer holds every chunk of every masked source (those the previous layer masked,
    plus the ones that changed since), so layers never stack more than one deep."""
    changed = {s for s in before.keys() | after.keys() if before.get(s) != after.get(s)}
    masked = previous.masked | changed
    layer = sum(len(after[s].ids) for s in masked if s in after)
    # The base's masked chunks: the previous layer's, plus those of newly masked sources
    # (which were still read from the base).
    hidden = len(previous.masked_ids) + sum(
        len(before[s].ids) for s in changed - previous.masked if s in before
    )
    if not changed or max_share <= 0 or layer + hidden > max_share * max(chunks, 1):
        return None
    base = previous.base.name if previous.base is not None else previous.top.name
    return LayerPlan(base=base, masked=frozenset(masked))


def _write_lexical(
    root: Path,
    generation: str,
    rows: Iterable[tuple[str, str | None, dict[str, Any]]],
    *,
    chunks: int,
    reuse: lexical.LexicalData | None = None,
) -> None:
    """Build and save a generation's lexical cache; a cache that cannot be written is only
    a warning (the bot then builds the same data itself on its first question)."""
    started = time.perf_counter()
    data = lexical.build(generation, ((cid, text or "", md) for cid, text, md in rows), reuse=reuse)
    try:
        lexical.save(data, root, chunks=chunks)
    except OSError as err:
        log.warning("could not write the lexical cache of %s under %s: %s", generation, root, err)
        return
    log.info("lexical cache of %s written in %.1f s", generation, time.perf_counter() - started)


def _sweep_lexical(client: ClientAPI, prefix: str, root: Path) -> None:
    """Remove the lexical caches of generations that no longer exist; never fails a run."""
    try:
        live = {c.name for c in store.list_generations(client, prefix)}
        lexical.remove_stale(root, live)
    except Exception as err:  # noqa: BLE001 - cleanup must never fail an index run
        log.warning("could not remove old lexical caches under %s: %s", root, err)


def _fill(
    settings: Settings,
    summary: IndexSummary,
    *,
    client: ClientAPI,
    collection: Collection,
    chunks: list[Document],
    source: store.View | None,
    prev_ids: set[str],
    embeddings: Embeddings | None,
    progress: bool,
    path: Path | None,
) -> None:
    """Copy reusable vectors from `source`, embed the rest, then validate the generation.

    Every write to the new generation goes through one writer, so with the child-process
    writer this process never writes to the collection the child writes (each process
    keeps its own copy of a collection's HNSW index: chroma issue #3792)."""
    # Started before the copies and the model load, so the child's start overlaps them.
    writer = open_writer(
        client=client, collection=collection, path=path, slices=-(-len(chunks) // WRITE_SLICE)
    )
    try:
        reuse = _copy_vectors(chunks, source, prev_ids, writer) if source is not None else set()
        summary.reused = len(reuse)
        todo = [c for c in chunks if c.id not in reuse]
        if todo:
            _embed_and_write(settings, summary, todo, writer, embeddings, progress)
        writer.close()
    finally:
        writer.abort()

    # Validate before anyone can see it: exactly the expected ids, nothing more or less.
    expected = {str(c.id) for c in chunks}
    got = store.all_ids(collection)
    if got != expected:
        raise CorpusBotError(
            f"generation {collection.name} failed validation: {len(expected - got)} chunks "
            f"missing, {len(got - expected)} unexpected"
        )


def _copy_vectors(
    chunks: list[Document], source: store.View, prev_ids: set[str], writer: SliceWriter
) -> set[str]:
    """Write the chunks whose vectors `source` already has; their ids."""
    reuse: set[str] = set()
    # Copied a slice at a time, so a large index's vectors are never all in memory.
    by_id = {str(c.id): c for c in chunks if c.id in prev_ids}
    ids = list(by_id)
    for i in range(0, len(ids), WRITE_SLICE):
        vectors, old_meta = store.get_vectors_and_metadata(source, ids[i : i + WRITE_SLICE])
        copied = [by_id[cid] for cid in ids[i : i + WRITE_SLICE] if cid in vectors]
        for c in copied:  # sentence and heading vectors travel with the chunk vector
            for key in VECTOR_KEYS & old_meta[str(c.id)].keys():
                c.metadata[key] = old_meta[str(c.id)][key]
        if copied:
            writer.add(copied, [vectors[str(c.id)] for c in copied])
        for c in copied:
            c.metadata = without_vectors(c.metadata)
        reuse.update(str(c.id) for c in copied)
    return reuse


def _embed_and_write(
    settings: Settings,
    summary: IndexSummary,
    todo: list[Document],
    writer: SliceWriter,
    embeddings: Embeddings | None,
    progress: bool,
) -> None:
    pause_at = os.environ.get(PAUSE_ENV, "")
    embeddings = embeddings or make_embeddings(settings)
    texts = [embedding_text(c) for c in todo]
    # Tokenized once, here: the token counts order the chunks and the same tokens are
    # embedded (with offsets, for the sentence vectors), instead of a second tokenizer pass
    # per call (~3.5 s of CPU on the Python docs tree).
    tokenize = getattr(embeddings, "tokenize", None)
    tokens = tokenize(texts, offsets=True) if tokenize is not None else None
    order = embedding_order(
        embeddings, texts, counts=None if tokens is None else [len(t) for t in tokens]
    )
    todo = [todo[i] for i in order]
    # A few batches per call: the embedder sorts each call's texts by token count.
    step = settings.embed_batch_size * CALL_BATCHES
    # Each call's tokens, dropped once embedded (the whole corpus's are ~12 bytes a token).
    call_tokens: deque[list[Tokens]] | None = None
    if tokens is not None:
        call_tokens = deque(
            [tokens[k] for k in order[i : i + step]] for i in range(0, len(order), step)
        )
    del texts, tokens
    headings = _question_heading_vectors(embeddings, todo)
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
    pending: tuple[list[Document], list[Sequence[float]]] = ([], [])
    # Log lines go through tqdm.write while the bar is shown, so they never cut into it.
    with logging_redirect_tqdm() if show_bar else contextlib.nullcontext(), bar:
        for i in range(0, len(todo), step):
            batch = todo[i : i + step]
            batch_tokens = None if call_tokens is None else call_tokens.popleft()
            pending[0].extend(batch)
            pending[1].extend(_embed(embeddings, batch, headings, batch_tokens))
            summary.embedded += len(batch)
            bar.update(len(batch))
            # Near the end a background writer gets each call's chunks at once, so the last
            # write, which nothing overlaps, is one call's instead of a whole slice's.
            tail = writer.background and len(todo) - (i + step) < WRITE_SLICE
            if len(pending[0]) >= WRITE_SLICE or i + step >= len(todo) or tail:
                writer.add(*pending)
                for c in pending[0]:  # written: don't hold every sentence vector until the end
                    c.metadata = without_vectors(c.metadata)
                pending = ([], [])
            if pause_at.startswith("embed:") and summary.embedded >= int(pause_at[6:]):
                _pause(pause_at, settings.index_dir)


def _embed(
    embeddings: Embeddings,
    batch: list[Document],
    headings: dict[str, str],
    tokens: list[Tokens] | None = None,
) -> Sequence[Sequence[float]]:
    """Chunk vectors; with the offline model also a vector per sentence/code unit, pooled
    from the same forward pass and stored in the chunk's metadata for the answerer, and
    its question heading's vector (from `headings`). `tokens`: the chunks' embedded texts
    already tokenized (with offsets)."""
    texts = [embedding_text(c) for c in batch]
    embed_with_spans = getattr(embeddings, "embed_with_spans", None)
    if embed_with_spans is None:  # e.g. OpenAI embeddings: no token states
        return embeddings.embed_documents(texts)
    for c in batch:
        if (heading := question_heading(c.metadata)) in headings:
            c.metadata[HEADING_VECTOR] = headings[heading]
    spans = []
    for c, text in zip(batch, texts, strict=True):
        offset = len(text) - len(c.page_content)  # the heading context comes first
        base = int(c.metadata["start"])
        units = units_of_chunk(c.page_content, c.metadata)
        spans.append([(u.start - base + offset, u.end - base + offset) for u in units])
    vectors, unit_vectors = embed_with_spans(texts, spans, tokens=tokens)
    for c, uv in zip(batch, unit_vectors, strict=True):
        c.metadata[UNIT_VECTORS] = encode_unit_vectors(uv)
    return vectors


def _question_heading_vectors(embeddings: Embeddings, chunks: list[Document]) -> dict[str, str]:
    """Each distinct question heading of the chunks, embedded alone once for the whole run
    (a section's chunks fall in different calls once sorted by length), encoded as stored.
    Empty for an embedder without sentence vectors: the answerer embeds them if it needs."""
    if getattr(embeddings, "embed_with_spans", None) is None:
        return {}
    headings = sorted({h for c in chunks if (h := question_heading(c.metadata))})
    if not headings:
        return {}
    vectors = np.asarray(embeddings.embed_documents(headings), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return {h: encode_unit_vectors(v[None, :]) for h, v in zip(headings, vectors, strict=True)}


def _chunk_all(
    docs: list[SourceDoc], settings: Settings
) -> tuple[list[Document], list[dict[str, Any]]]:
    """All chunks, each document cut to MAX_CHUNKS_PER_DOCUMENT; and the documents cut."""
    chunks: list[Document] = []
    truncated: list[dict[str, Any]] = []
    seen: set[str] = set()
    cap = settings.max_chunks_per_document
    for doc in docs:
        doc_chunks = chunk_document(
            doc, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
        )
        if len(doc_chunks) > cap:
            log.warning(
                "%s has %d chunks; indexing only the first %d (MAX_CHUNKS_PER_DOCUMENT)",
                doc.source,
                len(doc_chunks),
                cap,
            )
            truncated.append({"path": doc.source, "chunks": len(doc_chunks), "kept": cap})
            doc_chunks = doc_chunks[:cap]
        for chunk in doc_chunks:
            # Ids hash source + text + occurrence, so a repeat means a chunker bug.
            if chunk.id in seen:
                raise CorpusBotError(f"duplicate chunk id {chunk.id} in {doc.source}")
            seen.add(str(chunk.id))
            chunks.append(chunk)
    return chunks, truncated
