"""Scale benchmark: a real docs tree at a chosen size, ours vs a plain LangChain pipeline.

    python bench/bench_scale.py --pages 60 --out scale-700.json
    python bench/bench_scale.py --chunks 700
    python bench/bench_scale.py --all --out scale-all.json
    python bench/bench_scale.py --all --skip-langchain --skip-raw      # only our figures

The corpus is copied from a docs tree of HTML pages (default: the Python documentation that
Debian's `python3-doc` installs, /usr/share/doc/python3/html; `--docs DIR` for another). Only
`*.html` files are copied (no `_sources/`, `_static/`); pages are taken evenly spread over the
sorted tree, so a small corpus samples every part of it. This corpus is for scale and loader
work only: the questions are derived mechanically from its headings, never written about it,
and nothing here tunes answering.

One run prints (and with `--out` writes as JSON), for ours and for plain LangChain:

* index wall time (a subprocess: `python -m index --full --json`, spawn to exit), chunks,
  embedded tokens/s, and the raw embedder's tokens/s (`MiniLMEmbeddings.embed_documents` on
  the same texts, in this process, just before and just after the build; their mean) -> the
  ratio;
* indexing peak RSS (the largest of the indexer's processes, via /usr/bin/time) and the peak
  of all its processes together (parse workers, the Chroma writer: summed PSS, sampled);
* first answer in a new process: `python -m bot ask --json "..."`, spawn to exit, index built;
* warm answers: `python -m bot ask --json -` fed one warm-up question and then ~50 questions,
  p50/p95 of their latency_ms; RSS of that process after the warm run (and its peak).

The LangChain reference is `langchain_chroma.Chroma.from_documents` with the same MiniLM
embeddings on the same chunks (our loader and chunker produce them; page_content is
embedded) and `similarity_search(k=4)` for answers, each in its own subprocess too.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DOCS = Path("/usr/share/doc/python3/html")
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)
QUESTION_SEED = 11
N_QUESTIONS = 50
_HEADING = re.compile(r"<h([23])[^>]*>(.*?)</h\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


# ----------------------------------------------------------------------------------------
# corpus and questions


def html_pages(docs: Path) -> list[Path]:
    """The tree's HTML pages (relative), sorted; Sphinx's _sources/_static/... left out."""
    pages = []
    for p in sorted(docs.rglob("*.html")):
        rel = p.relative_to(docs)
        if any(part.startswith("_") for part in rel.parts[:-1]):
            continue
        pages.append(rel)
    return pages


def spread(items: list, n: int) -> list:
    """n items evenly spread over `items` (all of them when n >= len)."""
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def copy_pages(docs: Path, pages: list[Path], dst: Path) -> None:
    for rel in pages:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(docs / rel, target)


def count_chunks(corpus: Path) -> int:
    from index.chunker import chunk_document
    from index.loader import load_corpus

    settings = _settings(corpus, corpus.parent / "unused-index")
    docs, _ = load_corpus(corpus, max_bytes=settings.max_document_bytes)
    return sum(
        len(chunk_document(d, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap))
        for d in docs
    )


def pages_for_chunks(docs: Path, pages: list[Path], target: int, work: Path) -> list[Path]:
    """The smallest evenly spread page sample with at least `target` chunks (bisection)."""
    lo, hi = 1, len(pages)
    while lo < hi:
        mid = (lo + hi) // 2
        probe = work / f"probe-{mid}"
        copy_pages(docs, spread(pages, mid), probe)
        n = count_chunks(probe)
        shutil.rmtree(probe)
        if n >= target:
            hi = mid
        else:
            lo = mid + 1
    return spread(pages, lo)


def questions_from_headings(corpus: Path, n: int = N_QUESTIONS) -> list[str]:
    """Neutral questions made mechanically from the corpus's h2/h3 headings."""
    headings: set[str] = set()
    for p in sorted(corpus.rglob("*.html")):
        for _, raw in _HEADING.findall(p.read_text(errors="replace")):
            text = " ".join(html.unescape(_TAG.sub("", raw)).replace("¶", "").split())
            text = re.sub(r"^[\d.]+\s+", "", text)  # "3.1. Foo" -> "Foo"
            if 3 <= len(text) <= 80 and len(text.split()) >= 2:
                headings.add(text)
    picked = random.Random(QUESTION_SEED).sample(sorted(headings), min(n, len(headings)))
    return [f"What does the documentation say about {h}?" for h in picked]


# ----------------------------------------------------------------------------------------
# subprocess measurement


def _env(corpus: Path, index: Path) -> dict[str, str]:
    # The tokenizer's parallelism is left as the caller has it, as for the raw embedder run in
    # this process: the indexer is measured as a user runs it, against the same reference.
    env = {k: v for k, v in os.environ.items() if k not in _setting_names()}
    env.update(
        CORPUS_DIR=str(corpus),
        INDEX_DIR=str(index),
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def _setting_names() -> set[str]:
    from index.settings import Settings

    return {name.upper() for name in Settings.model_fields}


def _settings(corpus: Path, index: Path):
    from index.settings import Settings

    for name in _setting_names():
        os.environ.pop(name, None)
    return Settings(_env_file=None, corpus_dir=corpus, index_dir=index)


def _proc_mb(path: str, key: str) -> float:
    """A kB field of a /proc file, in MB (0 if the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _rss_mb(pid: int) -> float:
    return _proc_mb(f"/proc/{pid}/status", "VmRSS:")


def _timed(cmd: list[str], rss_file: Path) -> list[str]:
    """`cmd` under /usr/bin/time, which writes the child's peak RSS (KB) to `rss_file`.

    Not wait4 on our own child: Linux folds the *parent's* peak RSS into a child's ru_maxrss
    at exec (fork/vfork share the parent's mm until then), so a bench process that loaded
    the model would inflate every figure. /usr/bin/time is small, so its child's is clean.
    """
    return [TIME, "-f", "%M", "-o", str(rss_file), *cmd]


def _peak_kb(rss_file: Path) -> float:
    lines = [x for x in rss_file.read_text().split() if x.isdigit()]
    return float(lines[-1]) if lines else 0.0


def _grandchild(pid: int) -> int:
    """The process /usr/bin/time started."""
    for _ in range(100):
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    return pid


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = [int(k) for k in (task / "children").read_text().split()]
                out.extend(kids)
                todo.extend(kids)
        except OSError:  # gone meanwhile
            continue
    return out


def _pss_mb(pid: int) -> float:
    return _proc_mb(f"/proc/{pid}/smaps_rollup", "Pss:")


class TreeMemory:
    """Peak of the summed PSS of a process's descendants, sampled every 0.1 s: the memory
    of the whole run when it has helper processes (parse workers, the Chroma writer), which
    a single process's peak RSS does not show. PSS shares forked pages out fairly."""

    def __init__(self, pid: int) -> None:
        self.peak_mb = 0.0
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            total = sum(_pss_mb(p) for p in _descendants(self._pid))
            self.peak_mb = max(self.peak_mb, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak_mb, 1)


def run_measured(
    cmd: list[str], *, env: dict[str, str], cwd: Path, stdin: str | None = None
) -> dict:
    """Run to exit: wall seconds, peak RSS (largest process), peak memory of all its
    processes (summed PSS, sampled), stdout, stderr, exit code."""
    rss_file = cwd / f".rss-{time.monotonic_ns()}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        _timed(cmd, rss_file),
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.append(proc.stdout.read())),
        threading.Thread(target=lambda: err.append(proc.stderr.read())),
    ]
    for t in readers:
        t.start()
    tree = TreeMemory(proc.pid)
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    proc.wait()
    seconds = time.perf_counter() - started
    tree_peak = tree.stop()
    for t in readers:
        t.join()
    return {
        "seconds": seconds,
        "peak_rss_mb": _peak_kb(rss_file) / 1024,
        "tree_peak_mb": tree_peak,
        "stdout": out[0] if out else "",
        "stderr": err[0] if err else "",
        "rc": proc.returncode,
    }


def warm_run(cmd: list[str], questions: list[str], *, env: dict[str, str], cwd: Path) -> dict:
    """Feed a warm-up question then `questions`, one JSON line back each; RSS read after the
    last answer while the process still lives; latencies as the process reports them."""
    rss_file = cwd / f".rss-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        _timed(cmd, rss_file),
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    err: list[str] = []
    t = threading.Thread(target=lambda: err.append(proc.stderr.read()))
    t.start()
    results = []
    for q in ["warm-up question about the documentation", *questions]:
        proc.stdin.write(q + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            break
        results.append(json.loads(line))
    rss = _rss_mb(_grandchild(proc.pid)) if proc.poll() is None else 0.0
    proc.stdin.close()
    proc.wait()
    t.join()
    lat = [float(r.get("latency_ms", 0.0)) for r in results[1:] if "error" not in r]
    if len(results) < len(questions) + 1:
        raise RuntimeError(f"warm run ended early: {err[0][-2000:] if err else ''}")
    return {
        "n": len(lat),
        "p50_ms": round(statistics.median(lat), 1),
        "p95_ms": round(_pct(lat, 95), 1),
        "max_ms": round(max(lat), 1),
        "rss_after_mb": round(rss, 1),
        "peak_rss_mb": round(_peak_kb(rss_file) / 1024, 1),
        "answered": sum(1 for r in results[1:] if r.get("abstained") is False),
    }


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


# ----------------------------------------------------------------------------------------
# ours


def bench_ours(corpus: Path, work: Path, questions: list[str]) -> dict:
    index = work / "index-ours"
    # A first build: with --keep, an index left by an earlier run would make this a rebuild
    # that also drops the old generation, and the next run (the changed page) reclaim its
    # space (measured: one changed page 10.1 s instead of 5.2 s, peak 811 instead of 694 MB).
    shutil.rmtree(index, ignore_errors=True)
    env = _env(corpus, index)
    r = run_measured([sys.executable, "-m", "index", "--full", "--json"], env=env, cwd=work)
    if r["rc"] not in (0, 3):
        raise RuntimeError(f"python -m index failed ({r['rc']}): {r['stderr'][-3000:]}")
    summary = json.loads(r["stdout"])
    res = {
        "index_seconds": round(r["seconds"], 1),
        "index_seconds_in_process": summary["seconds"],
        "documents": summary["documents"],
        "chunks": summary["chunks"],
        "index_peak_rss_mb": round(r["peak_rss_mb"], 1),
        "index_peak_all_processes_mb": r["tree_peak_mb"],
    }
    first = [
        run_measured(
            [sys.executable, "-m", "bot", "ask", "--json", questions[i]], env=env, cwd=work
        )
        for i in range(2)
    ]
    for f in first:
        if f["rc"] != 0:
            raise RuntimeError(f"bot ask failed: {f['stderr'][-3000:]}")
    res["first_answer_s"] = round(first[0]["seconds"], 2)
    res["first_answer_s_again"] = round(first[1]["seconds"], 2)
    res["first_answer_latency_ms"] = round(json.loads(first[0]["stdout"])["latency_ms"], 1)
    res["first_answer_peak_rss_mb"] = round(first[0]["peak_rss_mb"], 1)
    # The bot warns when it has to build the BM25 index itself (no usable lexical cache).
    res["lexical_cache_used"] = "building the BM25 index" not in first[0]["stderr"]
    res["warm"] = warm_run(
        [sys.executable, "-m", "bot", "ask", "--json", "-"], questions, env=env, cwd=work
    )
    return res


def edit_one_page(corpus: Path) -> str:
    """Add a sentence inside the content of one page (the middle one by name), the way a
    docs edit would: after a run of words of its text found verbatim in the HTML."""
    from index.loader import load_file

    pages = sorted(corpus.rglob("*.html"))
    for page in pages[len(pages) // 2 :] + pages[: len(pages) // 2]:
        raw = page.read_text(encoding="utf-8", errors="replace")
        try:
            text = load_file(page, root=corpus, max_bytes=50_000_000).text
        except Exception:  # noqa: BLE001 - not a content page: try the next
            continue
        words = text.split()
        for i in range(len(words) // 2, len(words) - 6):
            run = " ".join(words[i : i + 6])
            at = raw.find(run)
            if at >= 0 and "<" not in run and ">" not in run:
                end = at + len(run)
                page.write_text(raw[:end] + " An edit added this sentence." + raw[end:])
                return page.relative_to(corpus).as_posix()
    raise RuntimeError("no page of the corpus could be edited")


def bench_one_page(corpus: Path, work: Path, questions: list[str]) -> dict:
    """`python -m index` after one page changed, then the warm run on the index it leaves."""
    env = _env(corpus, work / "index-ours")
    page = edit_one_page(corpus)
    r = run_measured([sys.executable, "-m", "index", "--json"], env=env, cwd=work)
    if r["rc"] not in (0, 3):
        raise RuntimeError(f"python -m index failed ({r['rc']}): {r['stderr'][-3000:]}")
    summary = json.loads(r["stdout"])
    return {
        "page": page,
        "seconds": round(r["seconds"], 1),
        "peak_rss_mb": round(r["peak_rss_mb"], 1),
        "peak_all_processes_mb": r["tree_peak_mb"],
        "embedded": summary["embedded"],
        "reused": summary["reused"],
        "layer": summary.get("base") is not None,
        "warm_after": warm_run(
            [sys.executable, "-m", "bot", "ask", "--json", "-"], questions, env=env, cwd=work
        ),
    }


def chunk_texts(corpus: Path, work: Path) -> list[str]:
    """What our pipeline will embed, from the loader and chunker (before any index exists)."""
    from index.chunker import embedding_text
    from index.loader import load_corpus
    from index.pipeline import _chunk_all

    settings = _settings(corpus, work / "unused-index")
    docs, _ = load_corpus(corpus, max_bytes=settings.max_document_bytes)
    return [embedding_text(c) for c in _chunk_all(docs, settings)[0]]


def our_texts(corpus: Path, work: Path) -> list[str]:
    """What our pipeline embeds: each chunk's embedding_text (heading path + text), read back
    from the built index (the same texts, not re-derived)."""
    import chromadb
    from langchain_core.documents import Document

    from index import store
    from index.chunker import embedding_text

    settings = _settings(corpus, work / "index-ours")
    client = chromadb.PersistentClient(path=str(settings.chroma_path))
    info = store.read_pointer(client, settings.collection_prefix)
    view = store.open_view(client, info.generation)
    return [
        embedding_text(Document(page_content=text or "", metadata=md))
        for _, text, md in store.iter_rows(view, ["documents", "metadatas"])
    ]


# ----------------------------------------------------------------------------------------
# plain LangChain reference (each step in its own process: `--_lc index|ask`)


def _lc_documents(corpus: Path):
    from index.chunker import chunk_document
    from index.loader import load_corpus

    settings = _settings(corpus, corpus.parent / "unused-index")
    docs, _ = load_corpus(corpus, max_bytes=settings.max_document_bytes)
    out = []
    for d in docs:
        out.extend(
            chunk_document(d, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
        )
    return out


def _lc_main(mode: str, corpus: Path, persist: Path) -> int:
    from langchain_chroma import Chroma

    from index.embedder import MiniLMEmbeddings

    emb = MiniLMEmbeddings()
    if mode == "index":
        docs = _lc_documents(corpus)
        Chroma.from_documents(
            docs,
            emb,
            persist_directory=str(persist),
            collection_name="langchain",
            collection_metadata={"hnsw:space": "cosine"},
        )
        print(json.dumps({"chunks": len(docs), "texts": [d.page_content for d in docs]}))
        return 0
    db = Chroma(persist_directory=str(persist), collection_name="langchain", embedding_function=emb)
    for line in sys.stdin:
        if not line.strip():
            continue
        started = time.perf_counter()
        hits = db.similarity_search(line.strip(), k=4)
        ms = (time.perf_counter() - started) * 1000
        print(json.dumps({"latency_ms": ms, "hits": len(hits), "abstained": False}), flush=True)
    return 0


def bench_langchain(corpus: Path, work: Path, questions: list[str]) -> tuple[dict, list[str]]:
    persist = work / "index-lc"
    shutil.rmtree(persist, ignore_errors=True)  # a first build, as for ours
    env = _env(corpus, work / "unused-index")
    me = [sys.executable, str(Path(__file__).resolve()), "--_lc"]
    r = run_measured([*me, "index", str(corpus), str(persist)], env=env, cwd=work)
    if r["rc"] != 0:
        raise RuntimeError(f"langchain index failed: {r['stderr'][-3000:]}")
    out = json.loads(r["stdout"])
    res = {
        "index_seconds": round(r["seconds"], 1),
        "chunks": out["chunks"],
        "index_peak_rss_mb": round(r["peak_rss_mb"], 1),
    }
    first = run_measured(
        [*me, "ask", str(corpus), str(persist)], env=env, cwd=work, stdin=questions[0] + "\n"
    )
    res["first_answer_s"] = round(first["seconds"], 2)
    res["warm"] = warm_run([*me, "ask", str(corpus), str(persist)], questions, env=env, cwd=work)
    return res, out["texts"]


# ----------------------------------------------------------------------------------------
# raw embedder


def raw_embed(texts: list[str], *, call: int = 256) -> dict:
    """embed_documents on `texts`, in calls of `call` texts (the pipeline's EMBED_BATCH_SIZE *
    CALL_BATCHES) sorted by token count as the pipeline sorts them (counting not timed):
    seconds and tokens (as the model sees them)."""
    from index.embedder import MiniLMEmbeddings, embedding_order

    emb = MiniLMEmbeddings()
    emb.embed_documents(["load the model"])
    tokens = sum(emb.token_counts(texts))
    ordered = [texts[i] for i in embedding_order(emb, texts)]
    started = time.perf_counter()
    for i in range(0, len(ordered), call):
        emb.embed_documents(ordered[i : i + call])
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), "tokens": tokens, "tokens_per_s": round(tokens / seconds)}


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--pages", type=int, help="this many pages, evenly spread over the tree")
    size.add_argument(
        "--chunks", type=int, help="the fewest pages giving at least this many chunks"
    )
    size.add_argument("--all", action="store_true", help="every page of the tree")
    ap.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="HTML docs tree")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--questions", type=int, default=N_QUESTIONS)
    ap.add_argument("--skip-langchain", action="store_true")
    ap.add_argument("--skip-raw", action="store_true", help="no raw-embedder run")
    ap.add_argument(
        "--raw-sample",
        type=int,
        default=0,
        help="raw embedder on this many evenly spread texts (tokens scaled up); 0 = all",
    )
    ap.add_argument("--keep", type=Path, help="build in this dir and keep it (else a tmp dir)")
    ap.add_argument("--_lc", nargs=3, metavar=("MODE", "CORPUS", "PERSIST"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._lc:
        return _lc_main(args._lc[0], Path(args._lc[1]), Path(args._lc[2]))

    docs = args.docs.resolve()
    if not docs.is_dir():
        sys.exit(f"no docs tree at {docs}: apt-get install python3-doc, or pass --docs DIR")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results["loadavg_start"] = _loadavg()
    try:
        pages = html_pages(docs)
        if args.all:
            chosen = pages
        elif args.chunks:
            chosen = pages_for_chunks(docs, pages, args.chunks, work)
        else:
            chosen = spread(pages, args.pages or 60)
        corpus = work / "corpus"
        if corpus.exists():
            shutil.rmtree(corpus)
        copy_pages(docs, chosen, corpus)
        questions = questions_from_headings(corpus, args.questions)
        results.update(docs=str(docs), pages=len(chosen), questions=len(questions))
        print(f"corpus: {len(chosen)} pages from {docs}; {len(questions)} questions", flush=True)

        def sample(texts: list[str]) -> list[str]:
            # tokens/s of the raw embedder on an evenly spread sample of the same texts
            return spread(sorted(texts), args.raw_sample) if args.raw_sample else texts

        # The raw embedder runs just before and just after the index build, in this process,
        # and the ratio uses their mean: on a shared machine the load drifts within minutes.
        raw_before = None if args.skip_raw else raw_embed(sample(chunk_texts(corpus, work)))
        ours = bench_ours(corpus, work, questions)
        results["ours"] = ours
        print(f"ours: {json.dumps(ours)}", flush=True)
        texts = all_texts = our_texts(corpus, work)
        if args.raw_sample and len(texts) > args.raw_sample:
            texts = sample(texts)
            results["raw_sample"] = args.raw_sample
        if raw_before is not None:
            raw = raw_embed(texts)
            raw["tokens_per_s_before_index"] = raw_before["tokens_per_s"]
            raw["tokens_per_s_after_index"] = raw["tokens_per_s"]
            raw["tokens_per_s"] = round((raw_before["tokens_per_s"] + raw["tokens_per_s"]) / 2)
            results["raw_ours_texts"] = raw
            ours["embedded_tokens"] = tokens = round(raw["tokens"] * len(all_texts) / len(texts))
            ours["tokens_per_s"] = round(tokens / ours["index_seconds"])
            ours["vs_raw"] = round(ours["tokens_per_s"] / raw["tokens_per_s"], 3)
            print(f"raw (our texts): {json.dumps(raw)}", flush=True)
        ours["one_page"] = bench_one_page(corpus, work, questions)
        print(f"one changed page: {json.dumps(ours['one_page'])}", flush=True)
        if not args.skip_langchain:
            lc, lc_texts = bench_langchain(corpus, work, questions)
            results["langchain"] = lc
            if not args.skip_raw:
                raw_lc = raw_embed(lc_texts)
                results["raw_langchain_texts"] = raw_lc
                lc["embedded_tokens"] = raw_lc["tokens"]
                lc["tokens_per_s"] = round(raw_lc["tokens"] / lc["index_seconds"])
                lc["vs_raw"] = round(lc["tokens_per_s"] / raw_lc["tokens_per_s"], 3)
            print(f"langchain: {json.dumps(lc)}", flush=True)
    finally:
        results["loadavg_end"] = _loadavg()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def print_table(r: dict) -> None:
    ours, lc = r.get("ours", {}), r.get("langchain", {})

    def g(d: dict, *path: str) -> str:
        for p in path:
            d = d.get(p, {}) if isinstance(d, dict) else {}
        return "-" if d in ({}, None) else str(d)

    rows = [
        ("chunks", "chunks"),
        ("index wall s (subprocess)", "index_seconds"),
        ("embedded tokens/s", "tokens_per_s"),
        ("  vs raw embedder", "vs_raw"),
        ("index peak RSS MB", "index_peak_rss_mb"),
        ("  all processes (PSS) MB", "index_peak_all_processes_mb"),
        ("first answer s (new process)", "first_answer_s"),
        ("warm p50 ms", "warm", "p50_ms"),
        ("warm p95 ms", "warm", "p95_ms"),
        ("RSS after warm run MB", "warm", "rss_after_mb"),
        ("one changed page: re-index s", "one_page", "seconds"),
        ("  then warm p50 / p95 ms", "one_page", "warm_after", "p50_ms"),
        ("", "one_page", "warm_after", "p95_ms"),
    ]
    print(
        f"\n{r.get('pages')} pages, {r.get('date')}, load {r.get('loadavg_start')} -> "
        f"{r.get('loadavg_end')}"
    )
    print(f"{'':32} {'ours':>12} {'langchain':>12}")
    for label, *path in rows:
        print(f"{label:32} {g(ours, *path):>12} {g(lc, *path):>12}")


if __name__ == "__main__":
    sys.exit(main())
