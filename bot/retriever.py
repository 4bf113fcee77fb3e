"""Hybrid retrieval: dense (Chroma cosine) + lexical (BM25 via bm25s), fused by reciprocal rank.

The BM25 index is built once per index generation from `Snapshot.chunks()` and rebuilt the
first time a question sees a new generation.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import bm25s
import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from bot.sentences import tokenize
from index.chunker import embedding_text
from index.store import get_vectors_and_metadata

log = logging.getLogger(__name__)
# bm25s pins its logger to DEBUG at import; let the application's logging config decide.
logging.getLogger("bm25s").setLevel(logging.NOTSET)

RRF_K = 60  # the usual reciprocal-rank-fusion constant (Cormack et al.)


class QueryCachedEmbeddings(Embeddings):
    """Remembers recent query vectors, so the retriever and the answerer embed a question once."""

    def __init__(self, *, inner: Embeddings, size: int = 256) -> None:
        self.inner = inner
        self._size = size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            vec = self._cache.get(text)
            if vec is not None:
                self._cache.move_to_end(text)
                return vec
        vec = self.inner.embed_query(text)
        with self._lock:
            self._cache[text] = vec
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return vec


@dataclass
class Lexicon:
    """Corpus statistics of one generation: which terms occur, and in how many chunks."""

    df: dict[str, int]
    sorted_terms: list[str]
    # (source, chunk_index) -> chunk: lets a quote run on into the next chunk of its section.
    by_position: dict[tuple[str, int], Document] = field(default_factory=dict, repr=False)
    # Per document: term -> chunks containing it, and its chunk count (see `idf_within`).
    doc_df: dict[str, Counter[str]] = field(default_factory=dict, repr=False)
    doc_chunks: Counter[str] = field(default_factory=Counter, repr=False)

    def idf_within(self, sources: set[str]) -> Callable[[str], float]:
        """idf over the chunks of the given documents only: how informative a word is among
        the documents that hold the evidence. Unrelated documents (a junk file, another
        project's docs) then cannot change how an answer is weighed."""
        n = sum(self.doc_chunks[s] for s in sources) or 1
        df: Counter[str] = Counter()
        for s in sources:
            df.update(self.doc_df.get(s, {}))
        return lambda term: math.log(1 + n / (df.get(term, 0) + 0.5))

    def next_chunk(self, chunk: Document) -> Document | None:
        """The chunk after `chunk` in the same section, if any."""
        md = chunk.metadata
        nxt = self.by_position.get((str(md.get("source", "")), int(md.get("chunk_index", -2)) + 1))
        if nxt is None or nxt.metadata.get("section_start") != md.get("section_start"):
            return None
        return nxt

    def has_prefix(self, prefix: str) -> bool:
        i = bisect.bisect_left(self.sorted_terms, prefix)
        return i < len(self.sorted_terms) and self.sorted_terms[i].startswith(prefix)

    def knows(self, term: str) -> bool:
        """In the corpus, or a word there is a longer/shorter form of it ('korea'/'korean')."""
        if term in self.df or term.isdigit() or len(term) < 5:
            return term in self.df
        return self.has_prefix(term) or any(term[:n] in self.df for n in range(5, len(term)))


@dataclass
class _Lexical:
    generation: str
    chunks: list[Document]
    bm25: bm25s.BM25 | None  # None when the generation has no indexable text
    lexicon: Lexicon
    position: dict[str, int] = field(default_factory=dict)  # chunk id -> index in `chunks`


def chunk_terms(chunk: Document) -> list[str]:
    """BM25 terms of a chunk: its heading path (context) and its text, as embedded."""
    return tokenize(embedding_text(chunk))


def _build_lexical(generation: str, chunks: list[Document]) -> _Lexical:
    tokens = [chunk_terms(c) for c in chunks]
    df: Counter[str] = Counter()
    doc_df: dict[str, Counter[str]] = {}
    doc_chunks: Counter[str] = Counter()
    for c, t in zip(chunks, tokens, strict=True):
        terms = set(t)
        df.update(terms)
        source = str(c.metadata.get("source", ""))
        doc_df.setdefault(source, Counter()).update(terms)
        doc_chunks[source] += 1
    bm25 = None
    if any(tokens):
        bm25 = bm25s.BM25()
        bm25.index(tokens, show_progress=False)
    log.info("built BM25 over %d chunks of generation %s", len(chunks), generation)
    positions = {
        (str(c.metadata.get("source", "")), int(c.metadata.get("chunk_index", -1))): c
        for c in chunks
    }
    lexicon = Lexicon(
        df=dict(df),
        sorted_terms=sorted(df),
        by_position=positions,
        doc_df=doc_df,
        doc_chunks=doc_chunks,
    )
    position = {str(c.id): i for i, c in enumerate(chunks)}
    return _Lexical(
        generation=generation, chunks=chunks, bm25=bm25, lexicon=lexicon, position=position
    )


def _cosine(a: list[float], b: list[float]) -> float:
    va, vb = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    denom = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return float(va @ vb) / denom if denom else 0.0


class HybridRetriever(BaseRetriever):
    """Top-k chunks for a question; each copy carries dense_score, bm25_score and rrf_score."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reader: Any  # index.store.IndexReader
    k: int = 4
    mode: Literal["hybrid", "dense"] = "hybrid"
    fetch_k: int = 20

    _lexical: _Lexical | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def lexical_index(self, snapshot: Any) -> _Lexical:
        """The BM25 index of this snapshot's generation (built once, thread-safe)."""
        lex = self._lexical
        if lex is not None and lex.generation == snapshot.generation:
            return lex
        with self._lock:
            lex = self._lexical
            if lex is None or lex.generation != snapshot.generation:
                lex = _build_lexical(snapshot.generation, snapshot.chunks())
                self._lexical = lex
            return lex

    def lexicon(self) -> Lexicon:
        """Corpus statistics of the active generation (built with its BM25 index)."""
        return self.lexical_index(self.reader.snapshot()).lexicon

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        # One snapshot for both halves, so a re-index landing mid-question can't mix generations.
        snapshot, dense = self.reader.search(query, self.fetch_k)
        lex = self.lexical_index(snapshot)
        dense_score = {str(d.id): s for d, s in dense}
        # Dense hits carry their full metadata (sentence vectors); in-memory chunks don't.
        # Nothing here walks the whole corpus: the id map is built once per generation.
        by_id: dict[str, Document] = {str(d.id): d for d, _ in dense}

        bm25_all = np.zeros(len(lex.chunks), dtype=np.float32)
        q_tokens = tokenize(query)
        if lex.bm25 is not None and q_tokens:
            bm25_all = lex.bm25.get_scores(q_tokens)
        bm25_score: dict[str, float] = {}
        for cid in dense_score:
            i = lex.position.get(cid)
            bm25_score[cid] = float(bm25_all[i]) if i is not None else 0.0

        rrf: dict[str, float] = {}
        for rank, (doc, _) in enumerate(dense):
            rrf[str(doc.id)] = 1.0 / (RRF_K + rank + 1)
        if self.mode == "hybrid":
            order = np.argsort(-bm25_all, kind="stable")[: self.fetch_k]
            for rank, i in enumerate(order):
                if bm25_all[i] <= 0:
                    break
                cid = str(lex.chunks[i].id)
                rrf[cid] = rrf.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
                bm25_score[cid] = float(bm25_all[i])
                by_id.setdefault(cid, lex.chunks[i])

        top = sorted(rrf, key=lambda cid: rrf[cid], reverse=True)[: self.k]
        missing = [cid for cid in top if cid not in dense_score]
        if missing:
            # Lexical-only hits: score them against their stored vectors so every doc has one,
            # and fetch their full metadata (the sentence vectors stay out of memory).
            qvec = snapshot.embeddings.embed_query(query)
            vectors, metas = get_vectors_and_metadata(snapshot.collection, missing)
            for cid, vec in vectors.items():
                dense_score[cid] = _cosine(qvec, vec)
                by_id[cid] = Document(
                    id=cid, page_content=by_id[cid].page_content, metadata=metas[cid]
                )
        out = []
        for cid in top:
            src = by_id[cid]
            md = dict(src.metadata)
            md["dense_score"] = float(dense_score.get(cid, 0.0))
            md["bm25_score"] = bm25_score.get(cid, 0.0)
            md["rrf_score"] = rrf[cid]
            out.append(Document(id=cid, page_content=src.page_content, metadata=md))
        return out
