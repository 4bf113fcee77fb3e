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
    "missing",  # idf share of the question's words the corpus never uses
    "hard_missing",  # a name/number/rare word of the question is nowhere in the corpus
    "hard_uncovered",  # ... or not in the quote and its headings
    "lead",  # the quote opens its section
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
            },
            bias=-4.2,
        )
