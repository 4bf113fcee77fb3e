"""Hybrid retrieval: dense (Chroma cosine) + lexical (BM25 via bm25s), fused by reciprocal rank.

The BM25 index and the corpus statistics of a generation come from its lexical cache, written
by the indexer before the generation became active (`index/lexical.py`, BM25 matrices
memory-mapped); when that cache is missing or unusable they are built from
`Snapshot.chunks()` once, with a log line. Either happens the first time a question (or the
bot's warm-up) sees a new generation.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr

from index import lexical
from index.lexical import LexicalData, chunk_terms
from index.store import get_vectors_texts_and_metadata
from index.terms import (
    SPELLED_OUT,
    acronym_key,
    is_acronym,
    is_content,
    normalize_word,
    placeholders,
    stem,
    symbol_names,
    tokenize,
    typo_fixes,
    word_spans,
    words,
)

__all__ = ["HybridRetriever", "Lexicon", "QueryCachedEmbeddings", "chunk_terms"]

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Within:
    """BM25 statistics of one question over some documents' chunks (`Lexicon.within`)."""

    rows: tuple[int, ...]  # the documents (indices into LexicalData.sources)
    ids: np.ndarray  # the question's term ids, repeats kept (bm25s sums over them)
    idf: np.ndarray  # per entry of `ids`
    avgdl: float  # mean chunk length in terms


class Lexicon:
    """Corpus statistics of one generation: which terms occur, and in how many chunks.

    Backed by the generation's `LexicalData` (arrays, loaded from the index-time cache or
    built from the chunks); chunk texts are not held: the next chunk of a section is read
    from the store when asked for (and prefetched for the retrieved chunks)."""

    def __init__(
        self,
        data: LexicalData,
        fetch: Callable[[list[str]], dict[str, Document]],
        *,
        keep: int = 256,
    ) -> None:
        self._data = data
        self._fetch = fetch
        self.sorted_terms: list[str] = data.terms
        self.df: dict[str, int] = dict(zip(data.terms, data.df.tolist(), strict=True))
        self._term_id = {t: i for i, t in enumerate(data.terms)}
        self._source_id = {s: i for i, s in enumerate(data.sources)}
        # (source, chunk_index) -> position: lets a quote run on into the next chunk of its
        # section.
        self._position = {
            (data.sources[s], c): i
            for i, (s, c) in enumerate(
                zip(data.chunk_source.tolist(), data.chunk_index.tolist(), strict=True)
            )
        }
        lengths = np.diff(data.token_indptr)
        self._source_tokens = np.bincount(
            data.chunk_source, weights=lengths, minlength=len(data.sources)
        )
        # Chunks are in (source, chunk index) order: each document is one stretch.
        edges = np.searchsorted(data.chunk_source, np.arange(len(data.sources) + 1))
        self._source_range = list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
        self._keep = keep
        self._fetched: OrderedDict[str, Document | None] = OrderedDict()
        self._lock = threading.Lock()

    def idf_within(self, sources: set[str]) -> Callable[[str], float]:
        """idf over the chunks of the given documents only: how informative a word is among
        the documents that hold the evidence. Unrelated documents (a junk file, another
        project's docs) then cannot change how an answer is weighed."""
        d = self._data
        rows = [self._source_id[s] for s in sources if s in self._source_id]
        n = sum(int(d.doc_chunks[r]) for r in rows) or 1
        counts = np.zeros(len(d.terms), dtype=np.int64)
        for r in rows:
            a, b = int(d.doc_indptr[r]), int(d.doc_indptr[r + 1])
            counts[d.doc_terms[a:b]] += d.doc_counts[a:b]
        term_id = self._term_id

        def idf(term: str) -> float:
            i = term_id.get(term)
            df = int(counts[i]) if i is not None else 0
            return math.log(1 + n / (df + 0.5))

        return idf

    def source_of(self, position: int) -> str:
        """The document of the chunk at `position` (BM25 document order)."""
        return self._data.sources[int(self._data.chunk_source[position])]

    def within(self, terms: list[str], sources: set[str]) -> Within:
        """BM25 statistics of the query `terms` over the given documents' chunks only: their
        number, the chunks holding each term, their mean length. Scored with them
        (`bm25_of_documents`, `bm25_at`), documents that hold none of the evidence (a junk
        file, another project's pages) change no score."""
        d = self._data
        rows = tuple(self._source_id[s] for s in sorted(sources) if s in self._source_id)
        n = float(sum(int(d.doc_chunks[r]) for r in rows))
        ids = np.array([self._term_id[t] for t in terms if t in self._term_id], dtype=np.int32)
        if not n or not len(ids) or d.bm25 is None:
            return Within(rows, np.zeros(0, dtype=np.int32), np.zeros(0), 1.0)
        avgdl = float(sum(self._source_tokens[r] for r in rows)) / n or 1.0
        wanted = np.unique(ids)
        df = np.zeros(len(wanted), dtype=np.float64)
        for r in rows:
            a, b = int(d.doc_indptr[r]), int(d.doc_indptr[r + 1])
            have = np.isin(d.doc_terms[a:b], wanted)
            if have.any():
                at = np.searchsorted(wanted, d.doc_terms[a:b][have])
                np.add.at(df, at, d.doc_counts[a:b][have])
        idf = np.log1p((n - df + 0.5) / (df + 0.5))  # bm25s's Lucene idf
        return Within(rows, ids, idf[np.searchsorted(wanted, ids)], avgdl)

    def _score(self, first: int, last: int, stats: Within) -> np.ndarray:
        """BM25 (bm25s's Lucene variant, with the index's k1 and b) of the chunks at positions
        first..last-1 (one stretch of BM25 order), vectorised over their tokens."""
        d = self._data
        k1, b = d.bm25.k1, d.bm25.b
        bounds = d.token_indptr[first : last + 1]
        tokens = d.token_ids[int(bounds[0]) : int(bounds[-1])]
        at = bounds - bounds[0]
        norm = k1 * (1 - b + b * np.diff(bounds) / stats.avgdl)
        out = np.zeros(last - first, dtype=np.float64)
        for t, w in zip(stats.ids.tolist(), stats.idf.tolist(), strict=True):
            seen = np.concatenate(([0], np.cumsum(tokens == t)))
            tf = (seen[at[1:]] - seen[at[:-1]]).astype(np.float64)
            out += w * tf / (tf + norm)
        return out

    def bm25_at(self, positions: list[int], stats: Within) -> np.ndarray:
        """BM25 of the chunks at `positions`, with the statistics `stats`."""
        out = np.zeros(len(positions), dtype=np.float64)
        if len(stats.ids):
            for j, i in enumerate(positions):
                out[j] = self._score(i, i + 1, stats)[0]
        return out

    def bm25_of_documents(self, stats: Within) -> tuple[np.ndarray, np.ndarray]:
        """Every chunk of the documents `stats` covers (positions) and its BM25 with them."""
        if not len(stats.ids) or not stats.rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        ranges = [self._source_range[r] for r in stats.rows]
        positions = np.concatenate([np.arange(a, b) for a, b in ranges])
        return positions, np.concatenate([self._score(a, b, stats) for a, b in ranges])

    def _neighbour_id(self, md: dict[str, Any], step: int = 1) -> str | None:
        key = (str(md.get("source", "")), int(md.get("chunk_index", -2)) + step)
        i = self._position.get(key) if key[1] >= 0 else None
        return None if i is None else self._data.ids[i]

    def prefetch_next(self, chunks: list[Document]) -> None:
        """Read the next chunks of these chunks' sections in one store call."""
        with self._lock:
            want = [
                cid
                for c in chunks
                if (cid := self._neighbour_id(c.metadata)) is not None and cid not in self._fetched
            ]
        if want:
            self._remember(want, self._fetch(want))

    def _remember(self, ids: list[str], got: dict[str, Document]) -> None:
        with self._lock:
            for cid in ids:
                self._fetched[cid] = got.get(cid)
                self._fetched.move_to_end(cid)
            while len(self._fetched) > self._keep:
                self._fetched.popitem(last=False)

    def next_chunk(self, chunk: Document) -> Document | None:
        """The chunk after `chunk` in the same section, if any."""
        return self._neighbour(chunk, 1)

    def previous_chunk(self, chunk: Document) -> Document | None:
        """The chunk before `chunk` in the same section, if any."""
        return self._neighbour(chunk, -1)

    def _neighbour(self, chunk: Document, step: int) -> Document | None:
        md = chunk.metadata
        cid = self._neighbour_id(md, step)
        if cid is None:
            return None
        with self._lock:
            known = cid in self._fetched
            got_one = self._fetched.get(cid)
        if not known:
            got = self._fetch([cid])
            self._remember([cid], got)
            got_one = got.get(cid)
        if got_one is None or got_one.metadata.get("section_start") != md.get("section_start"):
            return None
        return got_one

    def has_prefix(self, prefix: str) -> bool:
        i = bisect.bisect_left(self.sorted_terms, prefix)
        return i < len(self.sorted_terms) and self.sorted_terms[i].startswith(prefix)

    def spelled_out(self, term: str) -> str:
        """The corpus's term for a chat shortening it never uses ('repo' -> 'repository')."""
        full = SPELLED_OUT.get(term)
        if full is None or term in self.df or not self.knows(full):
            return term
        return full

    def acronym_name(self, word: str) -> str | None:
        """The multi-word name the corpus writes where the asker wrote an acronym it never
        uses ("DPRK": "Democratic People's Republic of Korea"), if it has one with those
        initials. Three letters at least: two initials fit too many pairs of words."""
        if not is_acronym(word) or self.knows(stem(acronym_key(word))):
            return None
        return self.initialism_name(word)

    def initialism_name(self, word: str) -> str | None:
        """The multi-word name the corpus writes with `word`'s letters as initials ("drf",
        "DRF": "Django REST Framework"), however `word` is cased; three letters at least."""
        key = acronym_key(word)
        return self._data.names.get(key) if len(key) >= 3 and key.isalpha() else None

    def corrected(
        self,
        word: str,
        term: str,
        english: frozenset[str],
        counts: Mapping[str, int] | None = None,
    ) -> str:
        """The term for a typo (`spelling`: "seperate" -> the stem of "separate"), else
        `term` (the word's stem) unchanged."""
        fix = self.spelling(word, term, english, counts)
        return stem(fix) if fix is not None else term

    def spelling(
        self,
        word: str,
        term: str,
        english: frozenset[str],
        counts: Mapping[str, int] | None = None,
    ) -> str | None:
        """The word a typo stands for: only for a lowercase `word` that is no English word
        and unknown to the corpus (a name or jargon is left alone), one slip away
        (`typo_fixes`), a word of the corpus or an English one ("codeanmes" -> "codenames",
        "ordianry" -> "ordinary"). The corpus's most used candidate first, then the most
        common English word (`counts`). None if there is none."""
        low = word.lower()
        if not english or word[:1].isupper() or low in english or self.knows(term):
            return None
        fixes = [c for c in typo_fixes(low) if c in english or stem(c) in self.df]
        counts = counts or {}
        return min(
            fixes,
            key=lambda c: (-self.df.get(stem(c), 0), c not in english, -counts.get(c, 0), c),
            default=None,
        )

    def knows(self, term: str) -> bool:
        """In the corpus, or a word there is a longer/shorter form of it ('korea'/'korean')."""
        if term in self.df or term.isdigit() or len(term) < 5:
            return term in self.df
        return self.has_prefix(term) or any(term[:n] in self.df for n in range(5, len(term)))


@dataclass
class _Lexical:
    generation: str
    ids: list[str]  # BM25 document order
    bm25: Any  # bm25s.BM25, None when the generation has no indexable text
    lexicon: Lexicon
    position: dict[str, int] = field(default_factory=dict)  # chunk id -> index in `ids`
    source: str = "built"  # "cache": loaded from the index-time cache


def _fetcher(snapshot: Any) -> Callable[[list[str]], dict[str, Document]]:
    def fetch(ids: list[str]) -> dict[str, Document]:
        try:
            return snapshot.chunks_by_id(ids)
        except Exception as err:  # noqa: BLE001 - a vanished generation: no run-on quote
            log.warning("could not read chunks of generation %s: %s", snapshot.generation, err)
            return {}

    return fetch


def _load_lexical(snapshot: Any) -> _Lexical:
    """The generation's lexical data: its index-time cache, else built from its chunks."""
    started = time.perf_counter()
    data, origin = None, "cache"
    root = getattr(snapshot, "lexical_root", None)
    if root is not None:
        try:
            data = lexical.load(root, snapshot.generation, chunks=snapshot.info.chunks)
        except lexical.CacheUnusable as err:
            log.warning(
                "%s; building the BM25 index from the chunks instead"
                " (`python -m index` writes a fresh cache)",
                err,
            )
    if data is None:
        origin = "built"
        rows = ((str(c.id), c.page_content, c.metadata) for c in snapshot.chunks())
        data = lexical.build(snapshot.generation, rows)
        snapshot.drop_chunks()  # the texts are not needed any more: read when asked
    lex = _Lexical(
        generation=snapshot.generation,
        ids=data.ids,
        bm25=data.bm25,
        lexicon=Lexicon(data, _fetcher(snapshot)),
        position={cid: i for i, cid in enumerate(data.ids)},
        source=origin,
    )
    log.info(
        "lexical index of generation %s (%d chunks) %s in %.2f s",
        snapshot.generation,
        len(data.ids),
        "loaded from its cache" if origin == "cache" else "built",
        time.perf_counter() - started,
    )
    return lex


def _cosine(a: list[float], b: list[float]) -> float:
    va, vb = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    denom = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return float(va @ vb) / denom if denom else 0.0


def fuse(dense: list[str], lexical: list[str], k: int) -> tuple[list[str], dict[str, float]]:
    """Reciprocal-rank fusion of two ranked id lists: the top `k` ids and every id's score."""
    rrf: dict[str, float] = {}
    for ranked in (dense, lexical):
        for rank, cid in enumerate(ranked):
            rrf[cid] = rrf.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(rrf, key=lambda cid: rrf[cid], reverse=True)[:k], rrf


class HybridRetriever(BaseRetriever):
    """Top-k chunks for a question; each copy carries dense_score, bm25_score and rrf_score."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reader: Any  # index.store.IndexReader
    k: int = 4
    mode: Literal["hybrid", "dense"] = "hybrid"
    fetch_k: int = 20
    english: frozenset[str] = frozenset()  # English words, for typo correction (none: off)
    english_counts: Mapping[str, int] = Field(default_factory=dict)  # which typo fix is likelier

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
                lex = _load_lexical(snapshot)
                self._lexical = lex
            return lex

    def lexicon(self) -> Lexicon:
        """Corpus statistics of the active generation (built with its BM25 index)."""
        return self.lexical_index(self.reader.snapshot()).lexicon

    def _query_terms(self, query: str, lexicon: Lexicon) -> list[str]:
        """BM25 terms of the question, as the corpus spells them: chat shortenings spelled
        out, typos of English words corrected, an acronym the corpus never uses as the name
        it writes instead (as the answerer reads them)."""
        out = []
        asker_own = placeholders(query)
        for raw in words(query):
            w = normalize_word(raw)
            if not is_content(w) or w in asker_own:
                continue
            t = stem(w)
            if (name := lexicon.acronym_name(raw)) is not None:
                out.extend(tokenize(name))
                continue
            full = lexicon.spelled_out(t)
            out.append(
                full if full != t else lexicon.corrected(raw, t, self.english, self.english_counts)
            )
        return out + [stem(name) for name in symbol_names(query)]

    def respelled(self, text: str) -> tuple[str, frozenset[str]]:
        """`text` with its typos respelled as BM25 and the answerer read them
        (`Lexicon.spelling`): so the query's vector is that of the words meant ("optoin"
        would embed as pieces of nothing). And the words put in (lower case)."""
        if not self.english:
            return text, frozenset()
        lexicon = self.lexicon()
        out, fixes, last = [], set(), 0
        for m in word_spans(text):
            w = normalize_word(m.group())
            if not is_content(w):
                continue
            fix = lexicon.spelling(m.group(), stem(w), self.english, self.english_counts)
            if fix is not None:
                out += [text[last : m.start()], fix]
                fixes.add(fix.lower())
                last = m.end()
        return ("".join(out) + text[last:] if out else text), frozenset(fixes)

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        meaning: str | None = None,
    ) -> list[Document]:
        """BM25 searches `query`'s words, the dense half its vector, or `meaning`'s when given
        (`Standalone.meaning`: the question without the scene set before it)."""
        meaning = meaning or query
        # One snapshot for both halves, so a re-index landing mid-question can't mix generations.
        snapshot, dense = self.reader.search(meaning, self.fetch_k)
        lex = self.lexical_index(snapshot)
        dense_score = {str(d.id): s for d, s in dense}
        # Dense hits carry their full metadata (sentence vectors); in-memory chunks don't.
        # Nothing here walks the whole corpus: the id map is built once per generation.
        by_id: dict[str, Document] = {str(d.id): d for d, _ in dense}

        q_tokens = self._query_terms(query, lex.lexicon)
        bm25_all = np.zeros(len(lex.ids), dtype=np.float32)
        if lex.bm25 is not None and q_tokens:
            bm25_all = lex.bm25.get_scores(q_tokens)
        bm25_score = {
            cid: float(bm25_all[i]) if (i := lex.position.get(cid)) is not None else 0.0
            for cid in dense_score
        }
        lexical: list[str] = []  # the BM25 list, best first
        if self.mode == "hybrid":
            order = np.argsort(-bm25_all, kind="stable")[: self.fetch_k]
            lexical = [lex.ids[i] for i in order if bm25_all[i] > 0]
        dense_ids = [str(d.id) for d, _ in dense]
        top, rrf = fuse(dense_ids, lexical, self.k)
        if lexical:
            # Score BM25 again with the statistics of the documents the first fusion found
            # (chunk count, chunks holding each term, mean length: their chunks only), over
            # every chunk of those documents and the first lists' others, and fuse again:
            # then unrelated documents indexed beside them (a junk file, another project's
            # pages) change no score, no order and no list.
            data = lex.lexicon
            sources = {data.source_of(lex.position[c]) for c in top if c in lex.position}
            stats = data.within(q_tokens, sources)
            positions, values = data.bm25_of_documents(stats)
            inside = {lex.ids[int(i)]: float(v) for i, v in zip(positions, values, strict=True)}
            others = [
                c
                for c in dict.fromkeys(lexical + dense_ids)
                if c in lex.position and c not in inside
            ]
            rescored = data.bm25_at([lex.position[c] for c in others], stats)
            bm25_score.update(inside)
            bm25_score.update(zip(others, rescored.tolist(), strict=True))
            pool = [c for c, v in inside.items() if v > 0] + [c for c in lexical if c in others]
            lexical = sorted(pool, key=lambda c: -bm25_score[c])[: self.fetch_k]
            top, rrf = fuse(dense_ids, [c for c in lexical if bm25_score[c] > 0], self.k)
        missing = [cid for cid in top if cid not in dense_score]
        if missing:
            # Lexical-only hits: score them against their stored vectors so every doc has one,
            # and fetch their full metadata (the sentence vectors stay out of memory).
            qvec = snapshot.embeddings.embed_query(meaning)
            vectors, texts, metas = get_vectors_texts_and_metadata(snapshot.view, missing)
            for cid, vec in vectors.items():
                dense_score[cid] = _cosine(qvec, vec)
                by_id[cid] = Document(id=cid, page_content=texts[cid], metadata=metas[cid])
        out = []
        for cid in top:
            src = by_id[cid]
            md = dict(src.metadata)
            md["dense_score"] = float(dense_score.get(cid, 0.0))
            md["bm25_score"] = bm25_score.get(cid, 0.0)
            md["rrf_score"] = rrf[cid]
            out.append(Document(id=cid, page_content=src.page_content, metadata=md))
        lex.lexicon.prefetch_next(out)  # the answerer may run a quote on into them
        return out
