"""Throughput of the offline embedder: corpus chunks + ~300 synthetic sentences.

python -m bench.bench_embedder [--threads N] [--batch-size N] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from index.embedder import MiniLMEmbeddings
from index.settings import REPO_ROOT, Settings


def corpus_texts(corpus: Path) -> list[str]:
    try:
        from index.chunker import chunk_document
        from index.loader import load_corpus
    except ImportError:  # chunker not there yet: paragraphs are close enough for a benchmark
        return [
            p.strip()
            for f in sorted(corpus.glob("*.md"))
            for p in f.read_text(encoding="utf-8").split("\n\n")
            if p.strip()
        ]
    s = Settings(_env_file=None)
    docs, _ = load_corpus(corpus, max_bytes=s.max_document_bytes)
    return [
        c.page_content
        for d in docs
        for c in chunk_document(d, chunk_size=s.chunk_size, chunk_overlap=s.chunk_overlap)
    ]


def synthetic_sentences(n: int = 300) -> list[str]:
    subjects = ["The report", "An analyst", "The exchange", "A researcher", "The government"]
    verbs = ["said that", "denied that", "confirmed that", "questioned whether"]
    objects = [
        "bitcoin mining rose sharply last year",
        "the network traffic came from Pyongyang",
        "electricity prices affected the operation",
        "sanctions pushed the country toward cryptocurrency",
        "the mining pool stopped reporting in July",
        "hackers targeted several exchanges in Seoul",
    ]
    combos = itertools.cycle(itertools.product(subjects, verbs, objects))
    return [f"{s} {v} {o} ({i})." for i, (s, v, o) in zip(range(n), combos, strict=False)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--corpus", type=Path, default=REPO_ROOT / "corpus")
    args = ap.parse_args()

    emb = MiniLMEmbeddings(batch_size=args.batch_size, threads=args.threads)
    t0 = time.perf_counter()
    emb.embed_query("warm up")  # loads and hashes the model
    load_s = time.perf_counter() - t0

    texts = corpus_texts(args.corpus) + synthetic_sentences()
    t0 = time.perf_counter()
    emb.embed_documents(texts)
    dt = time.perf_counter() - t0
    print(
        f"load {load_s:.2f}s; {len(texts)} texts in {dt:.2f}s = {len(texts) / dt:.1f} sentences/s "
        f"(threads={emb.threads}, batch_size={emb.batch_size})"
    )


if __name__ == "__main__":
    main()
