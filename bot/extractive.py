"""The offline answerer: quote the sentences that answer the question, or abstain.

Evidence must cover the question. Besides similarity thresholds, the key terms a question
names (capitalised names, numbers, words outside a common-English lexicon) must exist in the
corpus and appear in the quoted evidence; otherwise the bot would quote a related sentence as
if it answered "Did North Korea hack Coincheck?". Likewise a relation the question asks about
("stop", "wrote"; see `bot.sentences.RELATIONS`) must be stated by the best sentence, in any
of its wordings ("gave up", a "By <name>" byline), and a byline answers only for its own
document. Sentences holding what the question word asks for (a date for "when", a new name
for "who", ...) rank a little higher. In a rule-condensed follow-up the earlier turn's words
weigh less than the user's own.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from bot.followup import split_context
from bot.models import Answer, Citation
from bot.sentences import (
    STOPWORDS,
    Sentence,
    is_byline,
    normalize_word,
    relation,
    search_terms,
    split_sentences,
    stem,
    words,
)

log = logging.getLogger(__name__)

NOT_FOUND = "I couldn't find that in the indexed sources."
_METADATA_TERMS = ("title", "publisher", "author", "site")
# Words naming the document itself ("the CCN piece"): no evidence either way for a byline.
_DOCUMENT_WORDS = frozenset({"piec", "story", "post", "blog", "pag", "new"})


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
    extra_rel: float = 0.8  # further sentences must score this close to the best one...
    extra_rel_adjacent: float = 0.6  # ...or this close when next to a chosen one (context)
    lex_weight: float = 0.5  # score = lex_weight * overlap + (1 - lex_weight) * cosine
    max_sentences: int = 3
    relation_penalty: float = 0.5  # score factor for a sentence not stating an asked relation
    context_weight: float = 0.5  # weight of the earlier turn's terms in a follow-up
    literal_backoff: float = 0.5  # ...and less still when another sentence has the literal word
    synonym_weight: float = 0.5  # a relation match ('stop' ~ 'gave up') counts less than a literal
    answer_type_bonus: float = 0.1  # the sentence has what the question word asks for (see _TYPES)


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
        """Vocabulary terms equal, prefix-related or relation-related to `term` (see `_hit`)."""
        if term in self.vocab:
            return [term]
        group = relation(term)
        out = [group] if group in self.vocab else []
        if term.isdigit() or len(term) < 5:
            return out
        out += [term[:n] for n in range(5, len(term)) if term[:n] in self.vocab]
        i = bisect_left(self.vocab_sorted, term)
        while i < len(self.vocab_sorted) and self.vocab_sorted[i].startswith(term):
            out.append(self.vocab_sorted[i])
            i += 1
        return out

    def known_stem(self, term: str) -> bool:
        """Related, or a vocabulary word starts with it (loose: 'use' ~ 'used')."""
        if self.related(term):
            return True
        i = bisect_left(self.vocab_sorted, term)
        return i < len(self.vocab_sorted) and self.vocab_sorted[i].startswith(term)

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
    bonus: float = 0.0


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


def _hit_weight(term: str, terms: set[str], synonym_weight: float) -> float:
    if _matches(term, terms):
        return 1.0
    group = relation(term)
    return synonym_weight if group is not None and group in terms else 0.0


def _hit(term: str, terms: set[str]) -> bool:
    """`_matches`, or the text states the term's relation another way ('stop' ~ 'gave up')."""
    group = relation(term)
    return (group is not None and group in terms) or _matches(term, terms)


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


_LEAD = r"(?i)^\W*(?:(?:and|but|so|then|also)\s+)?"  # "and when did it stop?"
_WHO = re.compile(_LEAD + r"(?:who|whom|whose|which\s+(?:person|organi[sz]ation|company|firm))\b")
_HOW_LONG = re.compile(_LEAD + r"how\s+long\b")
_HOW_LONG_SCAFFOLD = frozenset({"long", "last", "tak"})  # "How long did it last / take?"
_MONTH = "January|February|March|April|May|June|July|August|September|October|November|December"
# Classic answer types: what a sentence contains when it answers the question word.
_TYPES: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (
        re.compile(_LEAD + r"how\s+(?:many|much)\b"),
        re.compile(
            r"\d|(?i:\b(?:one|two|three|four|five|six|seven|eight|nine|ten|dozens?|hundreds?"
            r"|thousands?|millions?|billions?|several|numerous)\b)"
        ),
    ),
    (
        _HOW_LONG,
        re.compile(
            r"(?i)\bbetween\s+\w+\s+and\b|\bshort-lived\b|\b(?:after|for|within)\s+"
            r"(?:a|an|\d+|a\s+few|several)\s+(?:short\s+|long\s+)?"
            r"(?:time|while|years?|months?|weeks?|days?|hours?)\b"
        ),
    ),
    (
        re.compile(_LEAD + r"(?:when|what\s+(?:year|date|day|month|time))\b"),
        re.compile(
            rf"\b(?:{_MONTH})\b|\b(?:1[89]|20)\d\d\b|\b\d{{1,2}}(?:st|nd|rd|th)\b"
            r"|(?i:\b(?:yesterday|today|ago|last\s+(?:year|month|week)|short\s+time|since|until)\b)"
        ),
    ),
    (
        re.compile(_LEAD + r"(?:why|what\s+for)\b"),
        re.compile(r"(?i)\b(?:because|due\s+to|in\s+order\s+to|so\s+that|as\s+a\s+means|reason)\b"),
    ),
)


def _names(text: str) -> set[str]:
    """Capitalised words past the first (not function words): the names a sentence mentions."""
    out = set()
    for raw in words(text)[1:]:
        w = normalize_word(raw)
        if raw[:1].isupper() and w not in STOPWORDS:
            out.add(stem(w))
    return out


def answer_type(question: str, terms: set[str]) -> Callable[[str], bool] | None:
    """Does a sentence contain what the question word asks for (a name, a date, a number...)?

    `terms` are the question's own terms: a name the question already gives is no answer.
    """
    if _WHO.search(question):
        return lambda text: is_byline(text) or any(not _matches(n, terms) for n in _names(text))
    for asks, answers in _TYPES:
        if asks.search(question):
            return lambda text: bool(answers.search(text))
    return None


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
        s: set(search_terms(" ".join(str(md.get(k, "")) for k in _METADATA_TERMS)))
        for s, md in meta.items()
    }
    df: Counter[str] = Counter()
    n = 0
    for sents in sentences.values():
        for s in sents:
            df.update(set(search_terms(s.text)))
            n += 1
    vocab = set(df)
    for terms in meta_terms.values():
        vocab |= terms
    for sents in split.values():  # headings name things too ("Giving up on Crypto")
        for x in sents:
            if x.heading:
                vocab.update(search_terms(x.text))
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
        if _HOW_LONG.search(question):
            keys = [k for k in keys if k.term not in _HOW_LONG_SCAFFOLD]
        if not keys or not docs:
            return self._abstain(question, docs, "no content terms" if not keys else "no chunks")

        absent = [k for k in keys if not corpus.related(k.term)]
        if any(k.hard for k in absent):
            words_ = ", ".join(k.word for k in absent if k.hard)
            return self._abstain(question, docs, f"absent from corpus: {words_}")
        common = [k for k in keys if not k.hard]
        if common and not any(corpus.known_stem(k.term) for k in common):
            # Only the names are known: nothing says what is asked about them ("capital").
            words_ = ", ".join(k.word for k in common)
            return self._abstain(question, docs, f"absent from corpus: {words_}")
        idf = {k.term: corpus.idf_of(k.term) for k in keys}
        total = sum(idf.values())
        missing = sum(idf[k.term] for k in absent) / total
        if missing > th.max_missing:
            return self._abstain(question, docs, f"{missing:.0%} of terms absent from corpus")
        best_dense = max(float(d.metadata.get("dense_score", 1.0)) for d in docs)
        # A question naming something the corpus has is on topic even when the embedding
        # misses it ("Who wrote the CCN article?" is far from every chunk's vector).
        named = any(k.hard for k in keys)
        if best_dense < th.min_dense and not named:
            return self._abstain(question, docs, f"off-topic (dense {best_dense:.2f})")

        # The relations the question asks about ("stop", "wrote"): the answer must state them.
        required = {t for t in search_terms(question) if t.startswith("@")}
        wanted = answer_type(question, {k.term for k in keys})
        cands = self._candidates(corpus, docs, keys)
        if not cands:
            return self._abstain(question, docs, "no sentences")
        qvec = np.asarray(self._embeddings.embed_query(question), dtype=np.float32)
        qvec /= max(float(np.linalg.norm(qvec)), 1e-12)
        vecs = self._sentence_vectors([c.sentence.text for c in cands])
        # A synonym counts only for a term the retrieved text never states literally: when it
        # says "internet", the "internet" sentence is the evidence, not the "web" one.
        syn = {
            t: th.synonym_weight
            * (th.literal_backoff if any(_matches(t, c.terms) for c in cands) else 1)
            for t in idf
        }
        # A follow-up's own words say what is asked; the earlier turn's words only place it.
        own, context = split_context(question)
        own_terms = {k.term for k in key_terms(own, self._common)} if context else set(idf)
        weight = {t: w * (1.0 if t in own_terms else th.context_weight) for t, w in idf.items()}
        total_w = sum(weight.values())
        for c, v in zip(cands, vecs, strict=True):
            c.lex = sum(w * _hit_weight(t, c.terms, syn[t]) for t, w in weight.items()) / total_w
            c.sem = float(qvec @ v)
            c.score = th.lex_weight * c.lex + (1 - th.lex_weight) * c.sem
            if not required <= c.terms:
                c.score *= th.relation_penalty
            if wanted is not None and wanted(c.sentence.text):
                c.bonus = th.answer_type_bonus  # ranks, never lets weak evidence through
                c.score += c.bonus
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
        if log.isEnabledFor(logging.DEBUG):
            for c in cands[:6]:
                log.debug("  %.2f lex %.2f sem %.2f  %.70s", c.score, c.lex, c.sem, c.sentence.text)
        if top.score - top.bonus < th.min_score:
            return self._abstain(question, docs, f"weak evidence (score {top.score:.2f})")
        if not required <= top.terms:
            return self._abstain(question, docs, f"evidence does not state {required}")

        selected = self._select(corpus, cands, [k for k in keys if k.hard], required)
        if selected is None:
            return self._abstain(question, docs, "key terms not in the evidence")
        return self._compose(question, corpus, selected)

    def _candidates(
        self, corpus: _Corpus, docs: list[Document], keys: list[KeyTerm]
    ) -> list[_Candidate]:
        """Sentences overlapping the retrieved chunks (whole sentences, even across chunk edges)."""
        found: dict[tuple[str, int], _Candidate | None] = {}
        for doc in docs:
            source = str(doc.metadata.get("source", ""))
            start, end = int(doc.metadata.get("start", 0)), int(doc.metadata.get("end", 0))
            for i, s in enumerate(corpus.sentences.get(source, ())):
                if s.end <= start or s.start >= end:
                    continue
                if (source, i) not in found:
                    found[(source, i)] = self._candidate(corpus, source, i, s, doc, keys)
                cand = found[(source, i)]
                if cand is not None:
                    cand.chunk_ids.add(str(doc.id))
        return [c for c in found.values() if c is not None]

    @staticmethod
    def _candidate(
        corpus: _Corpus, source: str, i: int, s: Sentence, doc: Document, keys: list[KeyTerm]
    ) -> _Candidate | None:
        terms = set(search_terms(s.text))
        if is_byline(s.text):
            # A byline speaks for its whole document, so it answers "who wrote X" only when X
            # names that document: every other question term must be in its title/publisher.
            terms |= corpus.meta_terms.get(source, set())
            rest = [
                k for k in keys if relation(k.term) not in terms and k.term not in _DOCUMENT_WORDS
            ]
            if not all(_hit(k.term, terms) for k in rest):
                return None
        return _Candidate(source, i, s, doc, terms=terms)

    def _select(
        self, corpus: _Corpus, ranked: list[_Candidate], hard: list[KeyTerm], required: set[str]
    ) -> list[_Candidate] | None:
        th = self.thresholds
        top = ranked[0]
        selected = [top]

        def uncovered() -> set[str]:
            have: set[str] = set()
            for c in selected:
                have |= c.terms | corpus.meta_terms.get(c.source, set())
            return {k.term for k in hard if not _hit(k.term, have)}

        # Names/numbers the best sentence lacks may sit in a neighbouring sentence of the
        # same passage ("... (KDB) disclosed their report"), never in an unrelated one.
        need = uncovered()
        while need and len(selected) < th.max_sentences:
            pool = [c for c in ranked if c not in selected and c.chunk_ids & top.chunk_ids]
            pool = [c for c in pool if any(_hit(t, c.terms) for t in need)]
            if not pool:
                break
            selected.append(max(pool, key=lambda c: (sum(_hit(t, c.terms) for t in need), c.score)))
            need = uncovered()
        if need:
            log.debug("uncovered key terms: %s", need)
            return None
        for c in ranked[1:]:
            if len(selected) >= th.max_sentences or c.score < th.extra_rel_adjacent * top.score:
                break
            if c in selected or c.lex <= 0:
                continue
            # The next sentence, even past a paragraph break, often finishes the thought.
            near = any(x.source == c.source and abs(x.index - c.index) == 1 for x in selected)
            # Elsewhere, only a sentence stating the asked relation is a further answer.
            if near or (c.score >= th.extra_rel * top.score and required <= c.terms):
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
