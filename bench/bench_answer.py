"""Offline answer latency: warm p50/p95 over the question set, and cold CLI wall time.

Warm: one service, every question answered once to warm caches (model, BM25, sentence
vectors), then timed over --rounds, each round with new question text so every timed answer
pays its one query embedding.
Cold: `python -m bot ask "..."` as a fresh process, from spawn to exit (answer printed).
Usage: python bench/bench_answer.py [--rounds 3] [--cold-runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.service import build_service  # noqa: E402
from bot.settings import BotSettings as Settings  # noqa: E402
from index.settings import REPO_ROOT  # noqa: E402

QUESTIONS = REPO_ROOT / "tests" / "data" / "questions.yaml"
COLD_QUESTION = "When did North Korea start mining Bitcoin?"
# Each timed round asks new text (so the query embedding is not cached) with the same meaning:
# the prefixes are stopwords only.
ROUND_PREFIXES = ("Please tell me: ", "Tell me: ", "Please: ", "Tell me please: ", "So, ")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold-runs", type=int, default=3)
    args = ap.parse_args()
    questions = [i["q"] for i in yaml.safe_load(QUESTIONS.read_text())]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, index_dir=Path(tmp) / "index")
        service = build_service(settings, announce=lambda m: None)
        for q in questions:  # warm-up: model, BM25, sentence vectors
            service.answer(q)
        warm = []
        for r in range(args.rounds):
            prefix = ROUND_PREFIXES[r % len(ROUND_PREFIXES)]
            for q in questions:
                started = time.perf_counter()
                service.answer(prefix + q)
                warm.append((time.perf_counter() - started) * 1000)

        env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
        env.update(PYTHONPATH=str(REPO_ROOT), INDEX_DIR=str(settings.index_dir))
        cold = []
        for _ in range(args.cold_runs):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "bot", "ask", COLD_QUESTION],
                env=env,
                cwd=tmp,
                check=True,
                capture_output=True,
            )
            cold.append(time.perf_counter() - started)
    result = {
        "warm_ms": {
            "n": len(warm),
            "p50": round(percentile(warm, 50), 1),
            "p95": round(percentile(warm, 95), 1),
            "max": round(max(warm), 1),
        },
        "cold_cli_s": {
            "runs": [round(c, 2) for c in cold],
            "median": round(statistics.median(cold), 2),
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
