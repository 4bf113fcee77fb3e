"""Sentence splitting and lexical matching shared by the answerers and the retriever.

Offsets are absolute (into `SourceDoc.text`) so a quote can always be checked against the
document: `doc.text[s.start:s.end] == s.text`.
"""

from __future__ import annotations

from langchain_core.documents import Document

from index.sentences import Sentence, split_sentences
from index.terms import (
    SPELLED_OUT,
    STOPWORDS,
    acronym_key,
    initialisms,
    is_acronym,
    is_content,
    normalize_word,
    placeholders,
    stem,
    symbol_names,
    tokenize,
    word_spans,
    words,
)

# Re-exported: the splitter's and the tokeniser's home is index (the indexer caches terms).
__all__ = [
    "SPELLED_OUT",
    "STOPWORDS",
    "Sentence",
    "acronym_key",
    "initialisms",
    "is_acronym",
    "is_content",
    "normalize_word",
    "placeholders",
    "split_sentences",
    "stem",
    "symbol_names",
    "tokenize",
    "word_spans",
    "words",
]


def best_sentences(query: str, chunk: Document, *, max_sentences: int = 2) -> list[Sentence]:
    """The chunk sentences sharing the most query terms, best first.

    Offsets are absolute (chunk.metadata["start"] + local offset). Headings never count.
    When no sentence shares a term, the first sentence stands in so a citation always has a quote.
    """
    q_terms = set(tokenize(query))
    base = int(chunk.metadata.get("start", 0))
    sentences = [s for s in split_sentences(chunk.page_content, base) if not s.heading]
    if not sentences:
        return []
    scored = []
    for i, s in enumerate(sentences):
        terms = set(tokenize(s.text))
        # Longer matched terms are rarer and say more; short sentences are slightly preferred.
        score = sum(len(t) for t in q_terms & terms) / (1.0 + 0.01 * len(s.text))
        scored.append((score, -i, s))
    scored.sort(key=lambda x: (x[0], x[1]), reverse=True)
    best = [s for score, _, s in scored[:max_sentences] if score > 0]
    return best or [sentences[0]]
