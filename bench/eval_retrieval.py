"""Retrieval quality on tests/data/questions.yaml: hit@1, hit@k and MRR, hybrid vs dense.

A retrieved chunk is a hit when it comes from an expected source and contains a key phrase.
Usage: python bench/eval_retrieval.py [--k 4]   (indexes the seed corpus into a tmp dir)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.retriever import HybridRetriever, QueryCachedEmbeddings  # noqa: E402
from index.embedder import embedder_id, make_embeddings  # noqa: E402
from index.pipeline import reindex  # noqa: E402
from index.settings import REPO_ROOT, Settings  # noqa: E402
from index.store import IndexReader, make_client  # noqa: E402

QUESTIONS = REPO_ROOT / "tests" / "data" / "questions.yaml"


def evaluate(retriever: HybridRetriever, items: list[dict]) -> dict[str, float]:
    hit1 = hitk = rr = 0.0
    for item in items:
        docs = retriever.invoke(item["q"])
        ranks = [
            i
            for i, d in enumerate(docs, start=1)
            if d.metadata["source"] in item["sources"]
            and any(k in d.page_content for k in item["key_phrases"])
        ]
        if ranks:
            hit1 += ranks[0] == 1
            hitk += 1
            rr += 1 / ranks[0]
    n = len(items)
    return {
        "hit@1": round(hit1 / n, 3),
        f"hit@{retriever.k}": round(hitk / n, 3),
        "mrr": round(rr / n, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    items = [
        i
        for i in yaml.safe_load(QUESTIONS.read_text())
        # Follow-ups only make sense with their history: the quality test covers them.
        if i.get("answerable", True) and i.get("kind") != "followup"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, index_dir=Path(tmp) / "index")
        embeddings = QueryCachedEmbeddings(inner=make_embeddings(settings))
        reindex(settings, embeddings=embeddings.inner)
        reader = IndexReader(
            client=make_client(settings),
            embeddings=embeddings,
            embedder_id=embedder_id(settings),
            prefix=settings.collection_prefix,
        )
        results = {
            mode: evaluate(HybridRetriever(reader=reader, k=args.k, mode=mode), items)
            for mode in ("hybrid", "dense")
        }
    print(json.dumps({"questions": len(items), "k": args.k, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
