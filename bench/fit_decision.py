"""Fit the answer-or-decline model (bot/answer/decision.json) on the dev sets' tune halves.

    python -m bench.eval_devsets --split tune --features /tmp/tune.jsonl
    python -m bench.fit_decision /tmp/tune.jsonl            # writes bot/answer/decision.json

Label: 1 for a question the corpus answers, 0 for an out-of-scope one: the decision is about
scope. (Declining in-scope questions whose best passage is imperfect would cost answers and
gain little precision: such passages are nearly always from the right document.) L2-regularised logistic regression, then the
threshold that maximises tune-half balanced accuracy (answerable and out-of-scope alike). Only the
tune halves are read: the held-out halves stay for measuring.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench.eval_devsets import FIT_SETS
from bot.answer.features import DECISION_FEATURES, DECISION_FILE


def fit(x: np.ndarray, y: np.ndarray, *, l2: float = 0.01, steps: int = 20000) -> np.ndarray:
    w = np.zeros(x.shape[1] + 1)
    xb = np.hstack([x, np.ones((len(x), 1))])
    # Balance the classes so the sets' mix of answerable and out-of-scope doesn't set the bias.
    pos = y.mean()
    sw = np.where(y == 1, 0.5 / max(pos, 1e-9), 0.5 / max(1 - pos, 1e-9))
    lr = 0.5
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(xb @ w)))
        grad = xb.T @ (sw * (p - y)) / len(y) + l2 * np.r_[w[:-1], 0.0]
        w -= lr * grad
    return w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("features", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, default=DECISION_FILE)
    args = ap.parse_args(argv)
    rows = []
    for path in args.features:
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            # Answers that took no decision (no evidence, or about the document itself)
            # carry no decision features.
            fitted = r["split"] == "tune" and r["set"] in FIT_SETS
            if fitted and set(DECISION_FEATURES) <= set(r["features"]):
                rows.append(r)
    x = np.array([[r["features"][k] for k in DECISION_FEATURES] for r in rows], dtype=float)
    y = np.array([1.0 if r["answerable"] else 0.0 for r in rows])
    w = fit(x, y)
    p = 1 / (1 + np.exp(-(np.hstack([x, np.ones((len(x), 1))]) @ w)))

    def balanced(t: float) -> float:
        # Answering in scope and declining out of scope count alike: the tune halves hold
        # four times more answerable questions, and plain accuracy would buy answers with
        # wrong ones.
        return ((p[y == 1] >= t).mean() + (p[y == 0] < t).mean()) / 2

    best = max(
        (float(t) for t in np.arange(0.2, 0.8, 0.01)),
        key=lambda t: (balanced(t), -abs(t - 0.5)),
    )
    acc = balanced(best)
    data = {
        "weights": {k: round(float(v), 4) for k, v in zip(DECISION_FEATURES, w[:-1], strict=True)},
        "bias": round(float(w[-1]), 4),
        "threshold": round(best, 2),
        "near_dense": 0.25,
        "fitted_on": sorted({r["set"] for r in rows}),
        "examples": len(rows),
        "positives": int(y.sum()),
        "tune_balanced_accuracy": round(float(acc), 3),
    }
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
