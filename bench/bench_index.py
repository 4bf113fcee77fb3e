"""Index benchmarks: pipeline throughput vs the raw embedder, unchanged re-index, retrieval latency.

    python bench/bench_index.py [--json] [--sizes 10000,100000] [--chunks 300] [--repeats 3]

Everything runs in a tmp dir with embedded Chroma and the real MiniLM embedder. Targets:
pipeline >= 85% of raw embedder chunks/s; unchanged re-index < 3 s with 0 embedded;
dense_search p50 <= 25 ms at 100k chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.embeddings import Embeddings  # noqa: E402

from index import store  # noqa: E402
from index.chunker import chunk_document  # noqa: E402
from index.embedder import MiniLMEmbeddings, embedder_id  # noqa: E402
from index.loader import load_corpus  # noqa: E402
from index.pipeline import reindex  # noqa: E402
from index.settings import REPO_ROOT, Settings  # noqa: E402

SEED = REPO_ROOT / "corpus"
QUESTIONS = [
    "When did North Korea start mining bitcoin?",
    "Which intelligence firm reported the mining?",
    "What sanctions did the UN Security Council approve?",
    "How long did the bitcoin mining operation last?",
    "Were digital currency exchanges attacked?",
    "What is the regime using cryptocurrency for?",
    "Who tracked the North Korean bitcoin activity?",
    "Did North Korea mine other coins such as Monero?",
]


def _settings(corpus: Path, index: Path) -> Settings:
    for name in Settings.model_fields:
        os.environ.pop(name.upper(), None)
    return Settings(_env_file=None, corpus_dir=corpus, index_dir=index)


def synthetic_corpus(dst: Path, *, target_chunks: int, seed: int = 7) -> None:
    """Documents made of shuffled seed sentences (deterministic), ~target_chunks chunks total."""
    text = " ".join(
        p.read_text().split("---", 2)[-1] for p in sorted(SEED.glob("*.md"))
    )  # drop front matter
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 20]
    rng = random.Random(seed)
    dst.mkdir(parents=True)
    # ~900-char chunks with 150 overlap: ~750 new chars per chunk; 6 chunks per document.
    per_doc, chars_per_chunk = 6, 750
    for i in range(max(1, target_chunks // per_doc)):
        paras, size = [], 0
        while size < per_doc * chars_per_chunk:
            para = " ".join(rng.sample(sentences, k=min(4, len(sentences))))
            paras.append(para)
            size += len(para)
        (dst / f"doc-{i:04d}.md").write_text(f"# Synthetic document {i}\n\n" + "\n\n".join(paras))


def _chunk_texts(settings: Settings) -> list[str]:
    docs, _ = load_corpus(settings.corpus_dir, max_bytes=settings.max_document_bytes)
    return [
        c.page_content
        for d in docs
        for c in chunk_document(
            d, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
        )
    ]


def _raw_seconds(emb: MiniLMEmbeddings, texts: list[str]) -> float:
    t0 = time.perf_counter()
    emb.embed_documents(texts)
    return time.perf_counter() - t0


class TimedEmbeddings(Embeddings):
    """Wraps the embedder to measure how much of the pipeline's time is embedding."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner, self.seconds = inner, 0.0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        t0 = time.perf_counter()
        try:
            return self.inner.embed_documents(texts)
        finally:
            self.seconds += time.perf_counter() - t0

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def bench_throughput(tmp: Path, emb: MiniLMEmbeddings, target_chunks: int, repeats: int) -> dict:
    corpus = tmp / "synthetic"
    synthetic_corpus(corpus, target_chunks=target_chunks)
    settings = _settings(corpus, tmp / "idx-synth")
    texts = _chunk_texts(settings)
    emb.embed_documents(["warm up the model"] * 8)

    # Interleaved runs, best of each: on a shared machine the minimum is the least noisy.
    raw_s, best = float("inf"), None
    for i in range(repeats):
        raw_s = min(raw_s, _raw_seconds(emb, texts))
        timed = TimedEmbeddings(emb)
        summary = reindex(settings, full=i > 0, embeddings=timed)
        assert summary.embedded == len(texts)
        if best is None or summary.seconds < best[0].seconds:
            best = (summary, timed.seconds)
    summary, embed_s = best
    pipeline_cps = summary.chunks / summary.seconds
    raw_cps = len(texts) / raw_s
    return {
        "chunks": summary.chunks,
        "pipeline_s": round(summary.seconds, 2),
        "pipeline_chunks_per_s": round(pipeline_cps, 1),
        "pipeline_embedding_s": round(embed_s, 2),
        "pipeline_overhead": round(1 - embed_s / summary.seconds, 3),
        "raw_s": round(raw_s, 2),
        "raw_chunks_per_s": round(raw_cps, 1),
        "ratio": round(pipeline_cps / raw_cps, 3),
    }


def bench_unchanged(tmp: Path, emb: MiniLMEmbeddings) -> dict:
    corpus = tmp / "seed"
    shutil.copytree(SEED, corpus)
    settings = _settings(corpus, tmp / "idx-seed")
    reindex(settings, embeddings=emb)
    again = reindex(settings)  # no embeddings passed: the fast path must not need the model
    env = {**os.environ, "CORPUS_DIR": str(corpus), "INDEX_DIR": str(settings.index_dir)}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "index", "--json"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    cli_s = time.perf_counter() - t0
    cli = json.loads(out.stdout)
    return {
        "in_process_s": round(again.seconds, 3),
        "embedded": again.embedded,
        "cli_wall_s": round(cli_s, 2),
        "cli_embedded": cli["embedded"],
    }


def bench_latency(tmp: Path, emb: MiniLMEmbeddings, n: int, queries: int = 60) -> dict:
    settings = _settings(SEED, tmp / f"idx-{n}")
    client = store.make_client(settings)
    eid = embedder_id(settings)
    name = store.new_generation_name("corpus")
    col = store.create_generation(client, name, embedder_id=eid)
    rng = np.random.default_rng(n)
    step = client.get_max_batch_size()
    t0 = time.perf_counter()
    for start in range(0, n, step):
        m = min(step, n - start)
        vecs = rng.standard_normal((m, 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        col.add(
            ids=[f"c{start + i}" for i in range(m)],
            embeddings=vecs,
            documents=[f"synthetic chunk {start + i}" for i in range(m)],
            metadatas=[
                {"source": f"doc-{(start + i) // 10}.md", "chunk_index": (start + i) % 10}
                for i in range(m)
            ],
        )
    insert_s = time.perf_counter() - t0
    store.mark_ready(col, embedder_id=eid)
    store.write_pointer(
        client,
        "corpus",
        store.IndexInfo(
            generation=name,
            embedder=eid,
            built_at="bench",
            fingerprint="bench",
            documents=n // 10,
            chunks=n,
        ),
    )
    reader = store.IndexReader(client=client, embeddings=emb, embedder_id=eid, prefix="corpus")
    for q in QUESTIONS[:3]:  # warm-up: loads the HNSW index into memory
        reader.dense_search(q, 4)
    times = []
    for i in range(queries):
        t = time.perf_counter()
        hits = reader.dense_search(QUESTIONS[i % len(QUESTIONS)], 4)
        times.append((time.perf_counter() - t) * 1000)
        assert len(hits) == 4
    times.sort()
    return {
        "chunks": n,
        "insert_s": round(insert_s, 1),
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts for the latency test")
    parser.add_argument("--chunks", type=int, default=300, help="synthetic corpus size (chunks)")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs (best kept)")
    args = parser.parse_args()

    emb = MiniLMEmbeddings()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-index-") as d:
        tmp = Path(d)
        results["throughput"] = bench_throughput(tmp, emb, args.chunks, args.repeats)
        results["unchanged"] = bench_unchanged(tmp, emb)
        results["latency"] = [
            bench_latency(tmp, emb, int(n)) for n in args.sizes.split(",") if n.strip()
        ]
    if args.json:
        print(json.dumps(results))
        return 0
    t, u = results["throughput"], results["unchanged"]
    print(f"{'measure':<44} {'value':>12}  target")
    print(f"{'synthetic corpus chunks':<44} {t['chunks']:>12}")
    print(f"{'raw embedder chunks/s':<44} {t['raw_chunks_per_s']:>12}")
    print(f"{'pipeline chunks/s':<44} {t['pipeline_chunks_per_s']:>12}")
    print(f"{'pipeline / raw':<44} {t['ratio']:>12}  >= 0.85")
    print(f"{'pipeline time not spent embedding':<44} {t['pipeline_overhead']:>12}")
    print(f"{'unchanged re-index, in process (s)':<44} {u['in_process_s']:>12}  < 3")
    print(f"{'unchanged re-index, python -m index (s)':<44} {u['cli_wall_s']:>12}  < 3")
    print(f"{'unchanged re-index embedded':<44} {u['embedded']:>12}  0")
    for lat in results["latency"]:
        n = lat["chunks"]
        print(f"{f'dense_search p50 at {n} chunks (ms)':<44} {lat['p50_ms']:>12}  <= 25 at 100k")
        print(f"{f'dense_search p95 at {n} chunks (ms)':<44} {lat['p95_ms']:>12}")
        print(f"{f'insert {n} random vectors (s)':<44} {lat['insert_s']:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
