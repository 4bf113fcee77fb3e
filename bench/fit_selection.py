"""Fit how the offline answerer ranks sentences (bot/answer/extractive.py `Weights`) on the
dev sets' tune halves, by grid search.

    python -m bench.fit_selection            # prints the best weights and their tune score

For every answerable tune question it records each candidate sentence's features and
whether the quote the answerer would cut around it holds the fact (a key phrase, from an
expected document). A weight vector's score is how often its top-ranked sentence's quote
holds the fact. Only tune halves are read.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.eval_devsets import build, holds_fact, load_items, sets
from bot.answer.extractive import ExtractiveAnswerer
from bot.followup import Standalone

GRID = {
    "lex": (0.0, 0.2, 0.4, 0.6),
    "sem": (0.2, 0.5, 0.8, 1.1),
    "dense": (0.0, 0.2, 0.4),
    "lead": (0.0, 0.1, 0.2, 0.35),
    "answer_type": (0.0, 0.05, 0.1),
    "rank": (0.0, 0.01, 0.03),
    "short": (0.0, 0.2),
    "wlex": (0.0, 0.2, 0.4),
    "wsem": (0.0, 0.3, 0.6),
}


def collect(chunk_size: int, overlap: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rows = []
    names = list(GRID)
    for name, corpus, qfile in sets():
        service = build(
            name,
            corpus,
            settings_overrides={
                "chunk_size": chunk_size,
                "chunk_overlap": overlap,
                "retrieval_k": k,
            },
        )
        answerer: ExtractiveAnswerer = service.extractive
        for item in load_items(qfile):
            if item.split != "tune" or not item.answerable or item.history:
                continue
            docs = service.search(item.q)
            answerer.trace = []
            answerer.explain(Standalone(item.q), docs)
            trace, answerer.trace = answerer.trace, None
            if not trace:
                continue
            x = np.array([[f[n] for n in names] for _, _, f in trace])
            y = np.array(
                [
                    p.source in item.sources
                    and holds_fact(answerer.quote_of(p, answerer._window(p, u, False)), item)
                    for p, u, _ in trace
                ],
                dtype=bool,
            )
            rows.append((x, y))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunk-size", type=int, default=600)
    ap.add_argument("--chunk-overlap", type=int, default=100)
    ap.add_argument("--k", type=int, default=6)
    args = ap.parse_args(argv)
    rows = collect(args.chunk_size, args.chunk_overlap, args.k)
    reachable = sum(bool(y.any()) for _, y in rows)
    print(f"{len(rows)} questions; a correct quote is reachable for {reachable}")

    def score(w: np.ndarray) -> int:
        return sum(bool(y[int(np.argmax(x @ w))]) for x, y in rows)

    # Coordinate ascent over a fine grid per weight, from the middle of GRID, a few rounds.
    names = list(GRID)
    w = np.array([vals[len(vals) // 2] for vals in GRID.values()], dtype=float)
    best = score(w)
    for _ in range(4):
        improved = False
        for i in range(len(names)):
            for v in np.linspace(0.0, 1.2, 25):
                trial = w.copy()
                trial[i] = v
                s = score(trial)
                if s > best:
                    best, w, improved = s, trial, True
        if not improved:
            break
    print(best, {n: round(float(v), 3) for n, v in zip(names, w, strict=True)})
    hit2 = sum(bool(y[np.argsort(-(x @ w))[:2]].any()) for x, y in rows)
    hit3 = sum(bool(y[np.argsort(-(x @ w))[:3]].any()) for x, y in rows)
    print(f"top-2 sentences hold the fact: {hit2}, top-3: {hit3}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
