"""Whether the best passage answers the question: a small logistic model over scale-free
features of the evidence, fitted on the development sets (`bench/fit_decision.py`).

The weights live in `decision.json` beside this file, written by the fitting script from
the *tune* halves of the dev sets only; the held-out halves measure it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

DECISION_FILE = Path(__file__).with_name("decision.json")
DECISION_FEATURES = (
    "dense",  # cosine of the quoted chunk (its headings included) to the question
    "best_dense",  # the best cosine among the retrieved chunks
    "coverage",  # idf share of the question's words in the quote and its headings
    "chunk_coverage",  # ... in the whole chunk and its headings
    "heading",  # ... in its heading path alone
    "missing",  # idf share of the question's words the corpus never uses (rare words fully)
    "hard_missing",  # a name/number/rare word of the question is nowhere in the corpus
    "hard_uncovered",  # ... or not in the quote and its headings
    "lead",  # the quote opens its section
    "sem",  # cosine of the best sentence (its vector in context) to the question
    "window_sem",  # the best cosine among the quoted sentences
)


@dataclass(frozen=True)
class Decision:
    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    threshold: float = 0.5
    near_dense: float = 0.25  # abstentions list retrieved titles at least this similar

    def probability(self, features: dict[str, float]) -> float:
        x = self.bias + sum(self.weights.get(k, 0.0) * features[k] for k in DECISION_FEATURES)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))

    @classmethod
    def load(cls, path: Path = DECISION_FILE) -> Decision:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            weights={k: float(data["weights"].get(k, 0.0)) for k in DECISION_FEATURES},
            bias=float(data["bias"]),
            threshold=float(data.get("threshold", 0.5)),
            near_dense=float(data.get("near_dense", 0.25)),
        )

    @classmethod
    def default(cls) -> Decision:
        return cls.load() if DECISION_FILE.exists() else cls.prior()

    @classmethod
    def prior(cls) -> Decision:
        """Hand-set before any fitting: similar, covering evidence answers."""
        return cls(
            weights={
                "dense": 6.0,
                "best_dense": 2.0,
                "coverage": 3.0,
                "chunk_coverage": 1.0,
                "heading": 1.0,
                "missing": -3.0,
                "hard_missing": -1.5,
                "hard_uncovered": -1.0,
                "lead": 0.5,
                "sem": 3.0,
                "window_sem": 1.0,
            },
            bias=-4.2,
        )


# --- where to quote from ------------------------------------------------------------------

RANK_FILE = Path(__file__).with_name("ranking.json")
RANK_FEATURES = (
    "lex",  # idf share of the question's words in the sentence
    "sem",  # the sentence's cosine to the question (its vector pooled in context)
    "dense",  # the chunk's cosine to the question (headings included)
    "lead",  # opens a section, times how much of the question its heading path covers
    "heading",  # how much of the question the chunk's heading path covers
    "answer_type",  # holds what the question word asks for (a date for "when")
    "rank",  # minus the chunk's retrieval rank
    "short",  # minus 1 for a fragment ("-", "Example:") that answers nothing alone
    "wlex",  # idf share of the question's words in the whole quote and its headings
    "wsem",  # the best sentence cosine within the quote
    "after_sem",  # the best cosine among the quoted sentences after this one
    "after_lex",  # idf share of the question's words in the quoted sentences after this one
    "asks",  # the sentence is itself a question (FAQ-style restatement)
    "opens",  # the sentence opens its paragraph
    "hard",  # share of the question's names/numbers/rare words in the quote and headings
    "size",  # the quote's length, as a share of the longest quote
    "sem_top",  # the best-matching sentence of all retrieved chunks
    "lex_top",  # the sentence sharing most of the question's words
    "dense_top",  # from the chunk most similar to the question
    "bm25",  # the chunk's BM25 score, as a share of the best among the retrieved chunks
    "chunk_sem",  # the best sentence cosine in the chunk
    "chunk_lex",  # idf share of the question's words in the whole chunk and its headings
    "votes",  # share of the other retrieved chunks from the same document
    "holds_top",  # the chunk holds the best-matching sentence of all retrieved chunks
)


@dataclass(frozen=True)
class Ranking:
    """A linear score over `RANK_FEATURES`; the highest-scoring sentence is quoted around.
    Fitted listwise on the dev sets' tune halves by `bench/fit_ranker.py`."""

    weights: dict[str, float] = field(default_factory=dict)
    # A passage of the same document (another chunk) scoring within this of the best is
    # quoted too: the ranking can't tell the two apart (exp(-margin) relative likelihood).
    second_margin: float = 0.0

    def score(self, features: dict[str, float]) -> float:
        return sum(w * features[k] for k, w in self.weights.items())

    @classmethod
    def load(cls, path: Path = RANK_FILE) -> Ranking:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            weights={k: float(data["weights"].get(k, 0.0)) for k in RANK_FEATURES},
            second_margin=float(data.get("second_margin", 0.0)),
        )

    @classmethod
    def default(cls) -> Ranking:
        return cls.load() if RANK_FILE.exists() else cls.prior()

    @classmethod
    def prior(cls) -> Ranking:
        """Hand-set before any fitting: words and meaning shared with the question."""
        return cls(
            weights={
                "lex": 0.85,
                "sem": 1.1,
                "dense": 0.2,
                "lead": 0.2,
                "answer_type": 0.1,
                "rank": 0.01,
                "short": 0.2,
                "wlex": 1.05,
                "wsem": 0.3,
            }
        )
