"""A section whose heading asks the user's question: the document's own answer to it.

FAQ pages, and many guides, head a section with the question it answers ("Can I safely shut
down the worker?"). When a retrieved section's heading asks what the user asks in other
words (the heading's vector within ASKS_SAME of the question's), the quote comes from that
section, even where another passage matches the question's words a little better: on a
whole docs site the reference and the user guide say the same things elsewhere, and the
section under the question is the one written to answer it.

The indexer stores each question heading's vector with its chunks (`HEADING_VECTOR`); a
chunk indexed without one (an index built by older code) has its heading embedded here,
once, and remembered.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import numpy as np
from langchain_core.embeddings import Embeddings

# Cosine of question and heading from which the heading asks the same question. Chosen on
# the dev sets' tune halves (their own pages and whole sites): 0.6 to 0.7 gave the same.
ASKS_SAME = 0.65


class HeadingVectors:
    """Unit vectors of question headings, embedded as they are first met and remembered
    (a site's FAQ headings come back question after question). Thread-safe."""

    def __init__(self, embeddings: Embeddings, *, size: int = 4096) -> None:
        self._embeddings = embeddings
        self._size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, headings: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(headings))
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for h in wanted:
                if h in self._cache:
                    self._cache.move_to_end(h)  # recently used
                    found[h] = self._cache[h]
        todo = [h for h in wanted if h not in found]
        if todo:  # one model call for all the new ones, outside the lock
            vectors = np.asarray(self._embeddings.embed_documents(todo), dtype=np.float32)
            norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            found.update(zip(todo, vectors / norms, strict=True))
            with self._lock:
                for h in todo:
                    self._cache[h] = found[h]
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return found


def asked_heading(vectors: Mapping[str, np.ndarray], qvec: np.ndarray) -> str | None:
    """Of these question headings (heading -> unit vector), the one asking what `qvec`
    asks (best cosine, at least ASKS_SAME), or None."""
    if not vectors:
        return None
    best = max(vectors, key=lambda h: float(vectors[h] @ qvec))
    return best if float(vectors[best] @ qvec) >= ASKS_SAME else None
