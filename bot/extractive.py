"""The offline answerer: quote the sentences that answer the question, or abstain.

Evidence must cover the question. Besides similarity thresholds, the key terms a question
names (capitalised names, numbers, words outside a common-English lexicon) must exist in the
corpus and appear in the quoted evidence; otherwise the bot would quote a related sentence as
if it answered "Did North Korea hack Coincheck?".
"""

from __future__ import annotations

import json
import logging
import math
import threading
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from bot.models import Answer, Citation
from bot.sentences import (
    STOPWORDS,
    Sentence,
    normalize_word,
    split_sentences,
    stem,
    tokenize,
    words,
)

log = logging.getLogger(__name__)

NOT_FOUND = "I couldn't find that in the indexed sources."
_METADATA_TERMS = ("title", "publisher", "author", "site")


def load_common_words(tokenizer_json: Path) -> frozenset[str]:
    """Whole words of a WordPiece vocabulary: a ~20k-word common-English lexicon."""
    vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    return frozenset(w for w in vocab if w.isalpha() and w.islower())


@dataclass(frozen=True)
class Thresholds:
    """Calibrated on tests/data/questions.yaml (see tests/test_quality.py)."""

    min_dense: float = 0.18  # best chunk cosine below this = off-topic
    min_score: float = 0.33  # best sentence score below this = no sentence answers
    max_missing: float = 0.75  # share (idf-weighted) of question terms absent from the corpus
    extra_rel: float = 0.85  # further sentences must score this close to the best one...
    extra_rel_adjacent: float = 0.6  # ...or this close when next to a chosen one (context)
    lex_weight: float = 0.5  # score = lex_weight * overlap + (1 - lex_weight) * cosine
    max_sentences: int = 3


@dataclass
class _Corpus:
    """Per-generation view: full document texts rebuilt from chunks, sentences, vocabulary."""

    generation: str
    texts: dict[str, str]  # source -> document text (gaps between chunks as newlines)
    sentences: dict[str, list[Sentence]]  # source -> body sentences in order
    meta: dict[str, dict[str, Any]]  # source -> metadata of its first chunk
    meta_terms: dict[str, set[str]]  # source -> terms of title/publisher/author/site
    vocab: set[str]
    vocab_sorted: list[str]
    idf: dict[str, float]
    max_idf: float

    def related(self, term: str) -> list[str]:
        """Vocabulary terms equal or prefix-related to `term` (see `_matches`)."""
        if term in self.vocab:
            return [term]
        if term.isdigit() or len(term) < 5:
            return []
        out = [term[:n] for n in range(5, len(term)) if term[:n] in self.vocab]
        i = bisect_left(self.vocab_sorted, term)
        while i < len(self.vocab_sorted) and self.vocab_sorted[i].startswith(term):
            out.append(self.vocab_sorted[i])
            i += 1
        return out

    def idf_of(self, term: str) -> float:
        """The idf of the term's most frequent related form; unknown terms weigh the most."""
        return min((self.idf[t] for t in self.related(term) if t in self.idf), default=self.max_idf)


@dataclass
class _Candidate:
    source: str
    index: int  # position in _Corpus.sentences[source]
    sentence: Sentence
    chunk: Document  # best-ranked retrieved chunk containing it
    chunk_ids: set[str] = field(default_factory=set)
    terms: set[str] = field(default_factory=set)
    lex: float = 0.0
    sem: float = 0.0
    score: float = 0.0


@dataclass(frozen=True)
class KeyTerm:
    term: str  # stemmed, as in the vocabulary
    word: str  # as the user wrote it
    hard: bool  # a name/number/rare word: must be in the corpus and in the quoted evidence


def _is_common(word: str, common_words: frozenset[str]) -> bool:
    """Is the word (or its singular / base form) an ordinary English word?"""
    forms = {word}
    for suffix, repl in (
        ("ies", "y"),
        ("es", ""),
        ("s", ""),
        ("ed", ""),
        ("ed", "e"),
        ("ing", ""),
        ("ing", "e"),
    ):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            forms.add(word[: -len(suffix)] + repl)
    return not forms.isdisjoint(common_words)


def _matches(term: str, terms: set[str]) -> bool:
    """Exact, or one word a prefix of the other ('korea'/'korean', 'crypto'/'cryptocurrency')."""
    if term in terms:
        return True
    if term.isdigit() or len(term) < 5:
        return False
    return any(len(t) >= 5 and (t.startswith(term) or term.startswith(t)) for t in terms)


def key_terms(question: str, common_words: frozenset[str]) -> list[KeyTerm]:
    """Content terms of the question, marking the ones evidence must literally contain."""
    out: dict[str, KeyTerm] = {}
    for i, raw in enumerate(words(question)):
        w = normalize_word(raw)
        if w in STOPWORDS or (len(w) < 2 and not w.isdigit()):
            continue
        parts = [p for p in w.replace("'", "-").split("-") if p]
        common = all(_is_common(p, common_words) for p in parts)
        # A capital on the first word is just sentence case; elsewhere it marks a name.
        capital = raw[:1].isupper() and (i > 0 or not common or raw.isupper())
        hard = any(ch.isdigit() for ch in w) or capital or not common
        term = stem(w)
        prev = out.get(term)
        out[term] = KeyTerm(term, raw, hard or (prev.hard if prev else False))
    return list(out.values())


def _rebuild_texts(chunks: list[Document]) -> dict[str, str]:
    """Document texts from chunk offsets; uncovered gaps become newlines (sentence breaks)."""
    by_source: dict[str, list[Document]] = {}
    for c in chunks:
        by_source.setdefault(str(c.metadata.get("source", "")), []).append(c)
    texts = {}
    for source, docs in by_source.items():
        size = max(int(d.metadata.get("end", 0)) for d in docs)
        buf = ["\n"] * size
        for d in docs:
            start = int(d.metadata.get("start", 0))
            buf[start : start + len(d.page_content)] = d.page_content
        texts[source] = "".join(buf)
    return texts


def _build_corpus(generation: str, chunks: list[Document]) -> _Corpus:
    texts = _rebuild_texts(chunks)
    split = {s: split_sentences(t) for s, t in texts.items()}
    sentences = {s: [x for x in sents if not x.heading] for s, sents in split.items()}
    meta: dict[str, dict[str, Any]] = {}
    for c in chunks:
        meta.setdefault(str(c.metadata.get("source", "")), dict(c.metadata))
    meta_terms = {
        s: set(tokenize(" ".join(str(md.get(k, "")) for k in _METADATA_TERMS)))
        for s, md in meta.items()
    }
    df: Counter[str] = Counter()
    n = 0
    for sents in sentences.values():
        for s in sents:
            df.update(set(tokenize(s.text)))
            n += 1
    vocab = set(df)
    for terms in meta_terms.values():
        vocab |= terms
    for sents in split.values():  # headings name things too ("Giving up on Crypto")
        for x in sents:
            if x.heading:
                vocab.update(tokenize(x.text))
    idf = {t: math.log(1 + n / c) for t, c in df.items()}
    log.info("extractive view of %s: %d sentences, %d terms", generation, n, len(vocab))
    return _Corpus(
        generation=generation,
        texts=texts,
        sentences=sentences,
        meta=meta,
        meta_terms=meta_terms,
        vocab=vocab,
        vocab_sorted=sorted(vocab),
        idf=idf,
        max_idf=math.log(1 + max(n, 1)),
    )


class ExtractiveAnswerer:
    """Answers with verbatim sentences from the retrieved chunks, each cited [n]; or abstains."""

    def __init__(
        self,
        *,
        reader: Any,  # index.store.IndexReader
        embeddings: Embeddings,
        common_words: frozenset[str],
        thresholds: Thresholds | None = None,
        cache_size: int = 50_000,
    ) -> None:
        self._reader = reader
        self._embeddings = embeddings
        self._common = common_words
        self.thresholds = thresholds or Thresholds()
        self._cache_size = cache_size
        self._corpus: _Corpus | None = None
        self._vectors: dict[str, np.ndarray] = {}  # sentence text -> unit vector
        self._lock = threading.Lock()

    # --- per-generation state -----------------------------------------------------------

    def _view(self) -> _Corpus:
        snap = self._reader.snapshot()
        corpus = self._corpus
        if corpus is not None and corpus.generation == snap.generation:
            return corpus
        with self._lock:
            if self._corpus is None or self._corpus.generation != snap.generation:
                self._corpus = _build_corpus(snap.generation, snap.chunks())
            return self._corpus

    def _sentence_vectors(self, texts: list[str]) -> list[np.ndarray]:
        found = {t: self._vectors.get(t) for t in set(texts)}
        todo = sorted(t for t, v in found.items() if v is None)
        if todo:
            fresh = np.asarray(self._embeddings.embed_documents(todo), dtype=np.float32)
            fresh /= np.maximum(np.linalg.norm(fresh, axis=1, keepdims=True), 1e-12)
            new = dict(zip(todo, fresh, strict=True))
            found.update(new)
            with self._lock:
                if len(self._vectors) + len(new) > self._cache_size:
                    self._vectors.clear()  # crude but bounded; warm sets refill quickly
                self._vectors.update(new)
        return [found[t] for t in texts]

    # --- answering ------------------------------------------------------------------------

    def answer(self, question: str, docs: list[Document]) -> Answer:
        corpus = self._view()
        th = self.thresholds
        keys = key_terms(question, self._common)
        if not keys or not docs:
            return self._abstain(question, docs, "no content terms" if not keys else "no chunks")

        absent = [k for k in keys if not corpus.related(k.term)]
        if any(k.hard for k in absent):
            words_ = ", ".join(k.word for k in absent if k.hard)
            return self._abstain(question, docs, f"absent from corpus: {words_}")
        idf = {k.term: corpus.idf_of(k.term) for k in keys}
        total = sum(idf.values())
        missing = sum(idf[k.term] for k in absent) / total
        if missing > th.max_missing:
            return self._abstain(question, docs, f"{missing:.0%} of terms absent from corpus")
        best_dense = max(float(d.metadata.get("dense_score", 1.0)) for d in docs)
        if best_dense < th.min_dense:
            return self._abstain(question, docs, f"off-topic (dense {best_dense:.2f})")

        cands = self._candidates(corpus, docs)
        if not cands:
            return self._abstain(question, docs, "no sentences")
        qvec = np.asarray(self._embeddings.embed_query(question), dtype=np.float32)
        qvec /= max(float(np.linalg.norm(qvec)), 1e-12)
        vecs = self._sentence_vectors([c.sentence.text for c in cands])
        for c, v in zip(cands, vecs, strict=True):
            c.lex = sum(w for t, w in idf.items() if _matches(t, c.terms)) / total
            c.sem = float(qvec @ v)
            c.score = th.lex_weight * c.lex + (1 - th.lex_weight) * c.sem
        cands.sort(key=lambda c: c.score, reverse=True)
        top = cands[0]
        log.debug(
            "evidence for %r: dense %.2f, absent %.2f, top %.2f (lex %.2f, sem %.2f), next %s",
            question,
            best_dense,
            missing,
            top.score,
            top.lex,
            top.sem,
            [round(c.score, 2) for c in cands[1:4]],
        )
        if top.score < th.min_score:
            return self._abstain(question, docs, f"weak evidence (score {top.score:.2f})")

        selected = self._select(corpus, cands, [k for k in keys if k.hard])
        if selected is None:
            return self._abstain(question, docs, "key terms not in the evidence")
        return self._compose(question, corpus, selected)

    def _candidates(self, corpus: _Corpus, docs: list[Document]) -> list[_Candidate]:
        """Sentences overlapping the retrieved chunks (whole sentences, even across chunk edges)."""
        found: dict[tuple[str, int], _Candidate] = {}
        for doc in docs:
            source = str(doc.metadata.get("source", ""))
            start, end = int(doc.metadata.get("start", 0)), int(doc.metadata.get("end", 0))
            for i, s in enumerate(corpus.sentences.get(source, ())):
                if s.end <= start or s.start >= end:
                    continue
                cand = found.get((source, i))
                if cand is None:
                    cand = _Candidate(source, i, s, doc, terms=set(tokenize(s.text)))
                    found[(source, i)] = cand
                cand.chunk_ids.add(str(doc.id))
        return list(found.values())

    def _select(
        self, corpus: _Corpus, ranked: list[_Candidate], hard: list[KeyTerm]
    ) -> list[_Candidate] | None:
        th = self.thresholds
        top = ranked[0]
        selected = [top]

        def uncovered() -> set[str]:
            have: set[str] = set()
            for c in selected:
                have |= c.terms | corpus.meta_terms.get(c.source, set())
            return {k.term for k in hard if not _matches(k.term, have)}

        # Names/numbers the best sentence lacks may sit in a neighbouring sentence of the
        # same passage ("... (KDB) disclosed their report"), never in an unrelated one.
        need = uncovered()
        while need and len(selected) < th.max_sentences:
            pool = [c for c in ranked if c not in selected and c.chunk_ids & top.chunk_ids]
            pool = [c for c in pool if any(_matches(t, c.terms) for t in need)]
            if not pool:
                break
            selected.append(
                max(pool, key=lambda c: (sum(_matches(t, c.terms) for t in need), c.score))
            )
            need = uncovered()
        if need:
            log.debug("uncovered key terms: %s", need)
            return None
        for c in ranked[1:]:
            if len(selected) >= th.max_sentences or c.score < th.extra_rel_adjacent * top.score:
                break
            if c in selected or c.lex <= 0:
                continue
            near = any(self._adjacent(corpus, x, c) for x in selected)
            if near or c.score >= th.extra_rel * top.score:
                selected.append(c)
        return selected

    def _compose(self, question: str, corpus: _Corpus, selected: list[_Candidate]) -> Answer:
        # Adjacent sentences of one document become one quote (one citation).
        groups: list[list[_Candidate]] = []
        for c in selected:
            for g in groups:
                if g[0].source == c.source and any(self._adjacent(corpus, x, c) for x in g):
                    g.append(c)
                    g.sort(key=lambda x: x.index)
                    break
            else:
                groups.append([c])
        lines, citations = [], []
        for n, g in enumerate(groups, start=1):
            first, last = g[0], g[-1]
            text = self._span_text(corpus, first, last)
            md = first.chunk.metadata
            citations.append(
                Citation(
                    n=n,
                    title=str(md.get("title") or first.source),
                    source=first.source,
                    quote=text,
                    start=first.sentence.start,
                    end=last.sentence.end,
                    page=md.get("page"),
                    publisher=md.get("publisher"),
                    author=md.get("author"),
                    date=md.get("date"),
                    url=md.get("url"),
                    chunk_id=str(first.chunk.id) if first.chunk.id else None,
                )
            )
            lines.append(f"“{text}” [{n}]")
        return Answer(question=question, text="\n".join(lines), citations=citations)

    @staticmethod
    def _adjacent(corpus: _Corpus, a: _Candidate, b: _Candidate) -> bool:
        """Next to each other in the same paragraph line (so the merged quote reads as one)."""
        if abs(a.index - b.index) != 1:
            return False
        lo, hi = (a, b) if a.index < b.index else (b, a)
        return "\n" not in corpus.texts[a.source][lo.sentence.end : hi.sentence.start]

    @staticmethod
    def _span_text(corpus: _Corpus, first: _Candidate, last: _Candidate) -> str:
        return corpus.texts[first.source][first.sentence.start : last.sentence.end]

    def _abstain(self, question: str, docs: list[Document], reason: str) -> Answer:
        log.debug("abstain on %r: %s", question, reason)
        text = NOT_FOUND
        near = [
            str(d.metadata.get("title") or d.metadata.get("source"))
            for d in docs
            if float(d.metadata.get("dense_score", 0.0)) >= self.thresholds.min_dense
        ]
        near = list(dict.fromkeys(near))[:3]
        if near:
            text += " Nearest sources: " + "; ".join(near) + "."
        return Answer(question=question, text=text, abstained=True)
