"""Per-generation lexical cache: BM25 index, term statistics and chunk positions.

The indexer writes it next to each generation it builds, before the active pointer names
that generation; the bot loads it (the BM25 matrices memory-mapped) instead of reading and
tokenising every chunk on its first question. Layout, under `<store folder>/lexical/` (the
embedded Chroma folder, or INDEX_DIR with a Chroma server):

    <generation>/manifest.json     format, generation, chunk count, hash of index/terms.py
    <generation>/chunks.json       chunk ids in BM25 order (source, chunk_index), sources,
                                   sorted terms, the corpus's multi-word names by initials
    <generation>/arrays.npz        per chunk: source, chunk_index, term ids (for reuse by
                                   the next run); per term: chunk frequency; per source:
                                   its chunk count and term -> chunks-containing-it (CSR)
    <generation>/bm25/             bm25s.BM25.save

A cache is only used when its manifest matches the generation, its chunk count and the
tokeniser that wrote it; anything else (missing, stale, unreadable) makes the bot build the
same data from the chunks itself, with a log line. The folder of a deleted generation is
removed by the next index run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document

from index.chunker import embedding_text
from index.terms import initialisms, tokenize

log = logging.getLogger(__name__)

LEXICAL_DIR = "lexical"
FORMAT = 2  # 2: names by initials
_MANIFEST = "manifest.json"
_CHUNKS = "chunks.json"
_ARRAYS = "arrays.npz"
_BM25 = "bm25"


def terms_hash() -> str:
    """Hash of the tokeniser's source: cached terms are only valid for the code that made them."""
    import index.terms

    return hashlib.sha256(Path(index.terms.__file__).read_bytes()).hexdigest()[:16]


def lexical_root(store_path: Path | None, index_dir: Path) -> Path:
    """Where the caches live: inside the embedded store's folder (so --rebuild, a read-only
    copy and the store travel together), else under INDEX_DIR (Chroma server)."""
    return (store_path if store_path is not None else index_dir) / LEXICAL_DIR


def chunk_terms(chunk: Document) -> list[str]:
    """BM25 terms of a chunk: its heading path (context) and its text, as embedded."""
    return tokenize(embedding_text(chunk))


@dataclass
class LexicalData:
    """Everything lexical about one generation; chunk order = BM25 document order."""

    generation: str
    ids: list[str]
    sources: list[str]
    chunk_source: np.ndarray  # int32 per chunk: index into `sources`
    chunk_index: np.ndarray  # int64 per chunk (-1 when a chunk has none)
    terms: list[str]  # sorted vocabulary
    df: np.ndarray  # int64 per term: chunks containing it
    doc_chunks: np.ndarray  # int64 per source: its chunk count
    doc_indptr: np.ndarray  # per source: slice of doc_terms/doc_counts
    doc_terms: np.ndarray  # int32 term ids
    doc_counts: np.ndarray  # int64: chunks of that source containing the term
    token_indptr: np.ndarray  # per chunk: slice of token_ids
    token_ids: np.ndarray  # int32 term ids of every chunk's terms, in order
    bm25: Any  # bm25s.BM25, or None when no chunk has a term
    # Initials -> the multi-word name they abbreviate, as the chunks write it (the most
    # frequent): "dprk" -> "Democratic People's Republic of Korea".
    names: dict[str, str]

    def chunk_tokens(self, i: int) -> list[str]:
        a, b = int(self.token_indptr[i]), int(self.token_indptr[i + 1])
        return [self.terms[t] for t in self.token_ids[a:b].tolist()]


def build(
    generation: str,
    rows: Iterable[tuple[str, str, dict[str, Any]]],
    *,
    reuse: LexicalData | None = None,
) -> LexicalData:
    """The lexical data of a generation from its (id, text, metadata) rows, any order.

    `reuse`: a previous generation's data; chunks with the same id keep their terms (the id
    hashes source, heading path and text, so the embedded text is the same)."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.NOTSET)  # bm25s pins DEBUG at import
    items = sorted(
        ((str(md.get("source", "")), int(md.get("chunk_index", -1)), cid, text or "", md)
         for cid, text, md in rows),
        key=lambda r: (r[0], r[1]),
    )  # fmt: skip
    old: dict[str, int] = {}
    if reuse is not None:
        old = {cid: i for i, cid in enumerate(reuse.ids)}
    tokens: list[list[str]] = []
    reused = 0
    named: Counter[tuple[str, str]] = Counter()
    for _, _, cid, text, md in items:
        named.update(initialisms(embedding_text(Document(page_content=text, metadata=md))).items())
        j = old.get(cid)
        if j is not None and reuse is not None:
            tokens.append(reuse.chunk_tokens(j))
            reused += 1
        else:
            tokens.append(chunk_terms(Document(page_content=text, metadata=md)))
    df: Counter[str] = Counter()
    doc_df: dict[str, Counter[str]] = {}
    doc_chunks: Counter[str] = Counter()
    for (source, *_), t in zip(items, tokens, strict=True):
        terms = set(t)
        df.update(terms)
        doc_df.setdefault(source, Counter()).update(terms)
        doc_chunks[source] += 1
    terms_sorted = sorted(df)
    term_id = {t: i for i, t in enumerate(terms_sorted)}
    sources = sorted(doc_chunks)
    source_id = {s: i for i, s in enumerate(sources)}
    doc_indptr = [0]
    doc_terms: list[int] = []
    doc_counts: list[int] = []
    for s in sources:
        for term, count in doc_df[s].items():
            doc_terms.append(term_id[term])
            doc_counts.append(count)
        doc_indptr.append(len(doc_terms))
    token_indptr = [0]
    token_ids: list[int] = []
    for t in tokens:
        token_ids.extend(term_id[x] for x in t)
        token_indptr.append(len(token_ids))
    bm25 = None
    if any(tokens):
        bm25 = bm25s.BM25()
        bm25.index(tokens, show_progress=False)
    log.info(
        "lexical data of generation %s: %d chunks, %d terms (%d chunks' terms reused)",
        generation,
        len(items),
        len(terms_sorted),
        reused,
    )
    return LexicalData(
        generation=generation,
        ids=[r[2] for r in items],
        sources=sources,
        chunk_source=np.array([source_id[r[0]] for r in items], dtype=np.int32),
        chunk_index=np.array([r[1] for r in items], dtype=np.int64),
        terms=terms_sorted,
        df=np.array([df[t] for t in terms_sorted], dtype=np.int64),
        doc_chunks=np.array([doc_chunks[s] for s in sources], dtype=np.int64),
        doc_indptr=np.array(doc_indptr, dtype=np.int64),
        doc_terms=np.array(doc_terms, dtype=np.int32),
        doc_counts=np.array(doc_counts, dtype=np.int64),
        token_indptr=np.array(token_indptr, dtype=np.int64),
        token_ids=np.array(token_ids, dtype=np.int32),
        bm25=bm25,
        names={key: name for (key, name), _ in reversed(named.most_common())},
    )


def save(data: LexicalData, root: Path, *, chunks: int) -> Path:
    """Write `data` as `root/<generation>` (a temporary folder renamed into place)."""
    final = root / data.generation
    tmp = root / f".{data.generation}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with open(tmp / _CHUNKS, "w", encoding="utf-8") as fh:
            listed = {"ids": data.ids, "sources": data.sources, "terms": data.terms}
            json.dump(listed | {"names": data.names}, fh)
        np.savez(
            tmp / _ARRAYS,
            chunk_source=data.chunk_source,
            chunk_index=data.chunk_index,
            df=data.df,
            doc_chunks=data.doc_chunks,
            doc_indptr=data.doc_indptr,
            doc_terms=data.doc_terms,
            doc_counts=data.doc_counts,
            token_indptr=data.token_indptr,
            token_ids=data.token_ids,
        )
        if data.bm25 is not None:
            data.bm25.save(str(tmp / _BM25), show_progress=False)
        manifest = {
            "format": FORMAT,
            "generation": data.generation,
            "chunks": chunks,
            "terms": terms_hash(),
        }
        with open(tmp / _MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


class CacheUnusable(Exception):
    """The cache of a generation is missing, stale or unreadable (the message says which)."""


def _check_manifest(folder: Path, generation: str, chunks: int) -> None:
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CacheUnusable(f"no lexical cache at {folder}") from err
    except (OSError, ValueError) as err:
        raise CacheUnusable(f"unreadable lexical cache manifest in {folder}: {err}") from err
    want = {"format": FORMAT, "generation": generation, "chunks": chunks, "terms": terms_hash()}
    if not isinstance(manifest, dict):
        raise CacheUnusable(f"unreadable lexical cache manifest in {folder}")
    differ = [k for k, v in want.items() if manifest.get(k) != v]
    if differ:
        why = (
            "written by another version's tokeniser"
            if differ == ["terms"]
            else ", ".join(f"{k} {manifest.get(k)!r} != {want[k]!r}" for k in differ)
        )
        raise CacheUnusable(f"stale lexical cache in {folder} ({why})")


def is_current(root: Path, generation: str, *, chunks: int) -> bool:
    """True when `generation` has a cache written for it by this tokeniser (manifest only)."""
    try:
        _check_manifest(root / generation, generation, chunks)
    except CacheUnusable:
        return False
    return True


def load(root: Path, generation: str, *, chunks: int) -> LexicalData:
    """The cached data of `generation`; BM25 matrices memory-mapped. Raises CacheUnusable."""
    folder = root / generation
    _check_manifest(folder, generation, chunks)
    try:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.NOTSET)
        listed = json.loads((folder / _CHUNKS).read_text(encoding="utf-8"))
        with np.load(folder / _ARRAYS, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        bm25 = None
        if (folder / _BM25).is_dir():
            bm25 = bm25s.BM25.load(str(folder / _BM25), mmap=True, show_progress=False)
        data = LexicalData(
            generation=generation,
            ids=list(listed["ids"]),
            sources=list(listed["sources"]),
            terms=list(listed["terms"]),
            bm25=bm25,
            names={str(k): str(v) for k, v in listed["names"].items()},
            **{k: arrays[k] for k in _ARRAY_FIELDS},
        )
    except Exception as err:  # noqa: BLE001 - any damage means: build it instead
        raise CacheUnusable(f"unreadable lexical cache in {folder}: {err!r}") from err
    _check(data, chunks, folder)
    return data


_ARRAY_FIELDS = (
    "chunk_source",
    "chunk_index",
    "df",
    "doc_chunks",
    "doc_indptr",
    "doc_terms",
    "doc_counts",
    "token_indptr",
    "token_ids",
)


def _check(data: LexicalData, chunks: int, folder: Path) -> None:
    n, t, s = len(data.ids), len(data.terms), len(data.sources)
    ok = (
        n == chunks
        and len(data.chunk_source) == n
        and len(data.chunk_index) == n
        and len(data.token_indptr) == n + 1
        and len(data.df) == t
        and len(data.doc_chunks) == s
        and len(data.doc_indptr) == s + 1
        and len(data.doc_terms) == len(data.doc_counts) == int(data.doc_indptr[-1])
        and len(data.token_ids) == int(data.token_indptr[-1])
        and (data.bm25 is None or int(data.bm25.scores["num_docs"]) == n)
    )
    if not ok:
        raise CacheUnusable(f"inconsistent lexical cache in {folder}")


def remove_stale(root: Path, live: set[str]) -> list[str]:
    """Delete cache folders (and leftover temporary ones) of generations not in `live`.
    Call only while holding the reindex lock (nothing else writes caches then)."""
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for child in root.iterdir():
        name = child.name
        if name in live or not child.is_dir():
            continue
        shutil.rmtree(child, ignore_errors=True)
        removed.append(name)
    if removed:
        log.info("removed %d lexical cache folder(s) of deleted generations", len(removed))
    return removed
