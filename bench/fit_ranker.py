"""Fit where the offline answerer quotes from (bot/answer/ranking.json) on the dev sets'
tune halves.

    python -m bench.fit_ranker                 # fits, prints tune scores, writes ranking.json
    python -m bench.fit_ranker --dry-run       # prints only

For every answerable tune question (no follow-ups) it records each candidate sentence's
`RANK_FEATURES` and whether the quote the answerer would cut around it (`quote_parts`: the
window, from its section's opening, run on through the section) holds the fact (a key
phrase, from an expected document). The model is linear and fitted *listwise*: a softmax
over one question's candidates, maximising the probability of the candidates whose quote
holds the fact (L2-regularised, gradient descent), so what is learnt is which sentence beats
the others of the same question, not an absolute score. Only tune halves are read; the
held-out halves measure the result (`python -m bench.eval_devsets --split heldout`). This
fits the ranking alone: the answerer's question-heading rule (`bot/answer/asked.py`) puts a
section whose heading asks the question first afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np

from bench.eval_devsets import FIT_SETS, build, holds_fact, load_items, sets
from bot.answer.extractive import ExtractiveAnswerer, asks_for_code, more_quotes
from bot.answer.features import RANK_FEATURES, RANK_FILE, Ranking
from bot.followup import Standalone

EXTRA_COST = 0.1  # another quote is worth showing if one in ten adds the answer
MARGINS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)


@dataclass
class Question:
    x: np.ndarray  # candidate features (RANK_FEATURES)
    y: np.ndarray  # the quote cut around the candidate holds the fact
    chunk: list[int]  # retrieval rank of the candidate's chunk
    source: list[str]
    span: list[tuple[int, int]]  # the window's offsets in its document
    final: list[tuple[int, int]]  # the quote's, once it has run on (`quote_parts`)
    opening: list[tuple[int, int]]  # the quote's before it runs on (`more_quotes` reads it)


Rows = list[Question]


def collect(overrides: dict, *, split: str = "tune") -> Rows:
    rows = []
    for name, corpus, qfile in sets():
        if name not in FIT_SETS:
            continue
        service = build(name, corpus, settings_overrides=overrides)
        answerer: ExtractiveAnswerer = service.extractive
        for item in load_items(qfile):
            if item.split != split or not item.answerable or item.history:
                continue
            docs = service.search(item.q)
            answerer.trace = []
            answerer.explain(Standalone(item.q), docs)
            trace, answerer.trace = answerer.trace, None
            if not trace:
                continue
            x = np.array([[f[n] for n in RANK_FEATURES] for _, _, f in trace])
            code = asks_for_code(item.q)
            parts = [answerer.quote_parts(p, window, code) for p, window, _ in trace]
            quotes = [quote for _, quote in parts]
            y = np.array(
                [
                    p.source in item.sources and holds_fact(answerer.quote_of(p, quote), item)
                    for (p, _, _), quote in zip(trace, quotes, strict=True)
                ],
                dtype=bool,
            )
            rows.append(
                Question(
                    x=x,
                    y=y,
                    chunk=[p.rank for p, _, _ in trace],
                    source=[p.source for p, _, _ in trace],
                    span=[(w[0].start, w[-1].end) for _, w, _ in trace],
                    final=[(w[0].start, w[-1].end) for w in quotes],
                    opening=[(o[0].start, o[-1].end) for o, _ in parts],
                )
            )
    return rows


def top1(rows: Rows, w: np.ndarray) -> int:
    return sum(bool(r.y[int(np.argmax(r.x @ w))]) for r in rows)


def quoted(r: Question, w: np.ndarray, margin: float) -> list[int]:
    """The candidates the answerer quotes (`more_quotes`, beside the first quote's opening)."""
    s = r.x @ w
    order = [int(i) for i in np.argsort(-s, kind="stable")]
    b, rest = order[0], order[1:]
    picked = more_quotes(
        (r.source[b], r.chunk[b], *r.opening[b]),
        [(r.source[i], r.chunk[i], *r.span[i]) for i in rest],
        [float(s[i]) for i in rest],
        best=float(s[b]),
        margin=margin,
    )
    return [b] + [rest[i] for i in picked]


def fit_margin(rows: Rows, w: np.ndarray) -> tuple[float, dict[float, tuple[int, int]]]:
    """The margin maximising answers found minus EXTRA_COST per extra quote shown."""
    table = {}
    for m in MARGINS:
        picks = [quoted(r, w, m) for r in rows]
        table[m] = (
            sum(bool(r.y[p].any()) for r, p in zip(rows, picks, strict=True)),
            sum(len(p) - 1 for p in picks),
        )
    best = max(MARGINS, key=lambda m: table[m][0] - EXTRA_COST * table[m][1])
    return best, table


def fit(rows: Rows, *, l2: float, steps: int = 3000, lr: float = 0.3) -> np.ndarray:
    """Listwise softmax: maximise sum over questions of log P(a correct candidate)."""
    usable = [(r.x, r.y) for r in rows if r.y.any() and not r.y.all()]
    scale = np.max(np.abs(np.vstack([x for x, _ in usable])), axis=0)
    scale[scale == 0] = 1.0
    w = np.zeros(usable[0][0].shape[1])
    for _ in range(steps):
        grad = l2 * w
        for x, y in usable:
            xs = x / scale
            s = xs @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            q = p * y
            q /= q.sum()
            grad -= (xs.T @ (q - p)) / len(usable)
        w -= lr * grad
    return w / scale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunk-size", type=int, default=600)
    ap.add_argument("--chunk-overlap", type=int, default=100)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--l2", type=float, default=0.003)
    ap.add_argument("--dry-run", action="store_true", help="don't write ranking.json")
    args = ap.parse_args(argv)
    overrides = {
        "chunk_size": args.chunk_size,
        "chunk_overlap": args.chunk_overlap,
        "retrieval_k": args.k,
    }
    rows = collect(overrides)
    reachable = sum(bool(r.y.any()) for r in rows)
    prior = np.array([Ranking.prior().weights.get(n, 0.0) for n in RANK_FEATURES])
    print(f"{len(rows)} tune questions; a correct quote is reachable for {reachable}")
    print(f"prior weights pick a correct quote for {top1(rows, prior)}")
    w = fit(rows, l2=args.l2)
    print(f"fitted (l2 {args.l2}): {top1(rows, w)}")
    weights = {n: round(float(v), 4) for n, v in zip(RANK_FEATURES, w, strict=True)}
    print(json.dumps(weights, indent=1))
    margin, table = fit_margin(rows, w)
    for m, (hit, extra) in table.items():
        print(f"extra-quote margin {m}: a quote holds the fact for {hit}, {extra} extra quotes")
    print(f"margin: {margin}")
    if not args.dry_run:
        data = {"weights": weights, "second_margin": margin, "fitted_on": list(FIT_SETS),
                "questions": len(rows), "tune_top1": top1(rows, w), "l2": args.l2}  # fmt: skip
        RANK_FILE.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RANK_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
