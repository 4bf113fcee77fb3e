"""The offline MiniLM embedder (real model, real tokenizer) and the embedder factory."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from langchain_openai import OpenAIEmbeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from index.embedder import (
    DIMENSION,
    MODEL_SHA256,
    MiniLMEmbeddings,
    default_model_path,
    embedder_id,
    make_embeddings,
)
from index.errors import ConfigError

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"

TEXTS = [
    "North Korea has begun mining bitcoin, according to a new report.",
    "",
    "short",
    "The mining operation appears to have been short-lived, researchers said on Tuesday "
    "after examining the network traffic for several weeks.",
    "What is the capital of France?",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 3,
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbeddings:
    return MiniLMEmbeddings()


def _cos(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class TestMiniLMUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[MiniLMEmbeddings]:
        return MiniLMEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"batch_size": 8}


class TestMiniLMIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[MiniLMEmbeddings]:
        return MiniLMEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"batch_size": 8}


def test_dimension_and_normalised(minilm: MiniLMEmbeddings) -> None:
    vectors = np.array(minilm.embed_documents(TEXTS))
    assert vectors.shape == (len(TEXTS), DIMENSION)
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_string_is_a_real_vector(minilm: MiniLMEmbeddings) -> None:
    v = np.array(minilm.embed_query(""))
    assert np.all(np.isfinite(v))
    assert abs(np.linalg.norm(v) - 1.0) < 1e-5


def test_empty_list(minilm: MiniLMEmbeddings) -> None:
    assert minilm.embed_documents([]) == []


def test_matches_sentence_transformers_reference(minilm: MiniLMEmbeddings) -> None:
    # Reference: fp32 all-MiniLM-L6-v2 in torch, mean pooling + normalise (see the file's "method").
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    ours = np.array(minilm.embed_documents(ref["sentences"]))
    theirs = np.array(ref["vectors"])
    cos = (ours * theirs).sum(axis=1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
    )
    assert cos.mean() >= 0.995, cos
    assert cos.min() >= 0.98, cos


def test_batch_equals_single(minilm: MiniLMEmbeddings) -> None:
    # Padding to the longest text in a batch must not change any vector.
    batched = minilm.embed_documents(TEXTS)
    for text, vec in zip(TEXTS, batched, strict=True):
        assert _cos(minilm.embed_query(text), vec) > 0.9999


def test_batch_size_does_not_change_results() -> None:
    texts = TEXTS * 3
    a = MiniLMEmbeddings(batch_size=1).embed_documents(texts)
    b = MiniLMEmbeddings(batch_size=4).embed_documents(texts)
    for x, y in zip(a, b, strict=True):
        assert _cos(x, y) > 0.9999


def test_order_preserved(minilm: MiniLMEmbeddings) -> None:
    forward = minilm.embed_documents(TEXTS)
    backward = minilm.embed_documents(TEXTS[::-1])[::-1]
    for text, f, b in zip(TEXTS, forward, backward, strict=True):
        assert _cos(f, b) > 0.9999, text
    # Distinct texts give distinct vectors, so a shuffled result would be caught above.
    assert _cos(forward[0], forward[4]) < 0.9


def test_semantic_sanity(minilm: MiniLMEmbeddings) -> None:
    q, para, other = minilm.embed_documents(
        [
            "North Korea has begun mining bitcoin.",
            "A report says Pyongyang started mining cryptocurrency.",
            "I baked a chocolate cake for my sister's birthday.",
        ]
    )
    assert _cos(q, para) > _cos(q, other) + 0.3


def test_long_text_truncated_at_256_tokens(minilm: MiniLMEmbeddings) -> None:
    head = "apple " * 300  # 300 tokens: past the 256 limit
    tail = "completely different words about cats, rockets and parliament " * 20  # ~180 more
    a, b, c = minilm.embed_documents([head, head + tail, tail + head])
    assert len(a) == DIMENSION
    # Everything past token 256 is cut, so the tail cannot change the vector...
    assert _cos(a, b) > 0.9999
    # ...while the same words first do.
    assert _cos(a, c) < 0.9


def test_token_counts_are_what_the_model_sees(minilm: MiniLMEmbeddings) -> None:
    texts = ["apple " * 300, "", "two words"] * 400  # past one tokenizing slice
    counts = minilm.token_counts(texts)
    # [CLS] + words + [SEP], cut at 256 like the embedding itself.
    assert counts[:3] == [256, 2, 4] and counts == counts[:3] * 400


def test_texts_tokenized_beforehand_embed_exactly_as_raw_text(minilm: MiniLMEmbeddings) -> None:
    """The indexer tokenizes a corpus once (to order it) and embeds those tokens: the same
    vectors, and the same sentence vectors, as embedding the text itself."""
    texts = [TEXTS[0], "Short one. Then a second sentence here.", "A third. Right."]
    spans = [[(0, 10)], [(0, 10), (11, 39)], [(0, 8), (9, 15)]]
    tokens = minilm.tokenize(texts, offsets=True)
    assert [len(t) for t in tokens] == minilm.token_counts(texts)
    given, given_spans = minilm.embed_with_spans(texts, spans, tokens=tokens)
    alone, alone_spans = minilm.embed_with_spans(texts, spans)
    assert np.array_equal(given, alone)
    assert all(np.array_equal(a, b) for a, b in zip(given_spans, alone_spans, strict=True))
    assert np.allclose(given, minilm.embed_documents(texts), atol=1e-6)
    # A span past the truncation pools nothing: zeros.
    cut = minilm.embed_with_spans(["word " * 300], [[(0, 4), (1400, 1404)]])[1][0]
    assert cut[0].any() and not cut[1].any()


def test_concurrent_queries_are_consistent(minilm: MiniLMEmbeddings) -> None:
    expected = minilm.embed_documents(TEXTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(minilm.embed_query, TEXTS * 4))
    for i, vec in enumerate(got):
        assert _cos(vec, expected[i % len(TEXTS)]) > 0.9999


def test_first_use_from_many_threads() -> None:
    emb = MiniLMEmbeddings()
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(emb.embed_query, ["same text"] * 4))
    assert all(_cos(g, got[0]) > 0.9999 for g in got)


async def _loop_ticks_during(coro):
    """How often another task ran while `coro` was awaited, and its result."""
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    result = await coro
    seen = ticks - before  # read before yielding to the loop again
    done = True
    await task
    return seen, result


async def test_async_does_not_block_the_event_loop(minilm: MiniLMEmbeddings) -> None:
    seen, vectors = await _loop_ticks_during(minilm.aembed_documents(TEXTS * 4))
    assert len(vectors) == len(TEXTS) * 4 and seen > 0
    seen, query = await _loop_ticks_during(minilm.aembed_query("foo"))
    assert len(query) == DIMENSION and seen > 0


def test_sha_mismatch_raises_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    shutil.copyfile(default_model_path(), bad)
    with bad.open("r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    emb = MiniLMEmbeddings(model_path=bad)
    with pytest.raises(ConfigError, match="sha256"):
        emb.embed_query("hello")


def test_missing_model_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        MiniLMEmbeddings(model_path=tmp_path / "nope.onnx").embed_query("hello")


def test_missing_tokenizer_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Tokenizer"):
        MiniLMEmbeddings(tokenizer_path=tmp_path / "nope.json").embed_query("hello")


def test_bad_batch_size() -> None:
    with pytest.raises(ConfigError, match="EMBED_BATCH_SIZE"):
        MiniLMEmbeddings(batch_size=0)


def test_make_embeddings_minilm(make_settings) -> None:
    emb = make_embeddings(make_settings(embedder="minilm", embed_batch_size=7))
    assert isinstance(emb, MiniLMEmbeddings)
    assert emb.batch_size == 7


def test_make_embeddings_openai_needs_key(make_settings) -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        make_embeddings(make_settings(embedder="openai"))


def test_make_embeddings_openai(make_settings) -> None:
    emb = make_embeddings(
        make_settings(
            embedder="openai", openai_api_key="sk-test", openai_embedding_model="text-embed-x"
        )
    )
    assert isinstance(emb, OpenAIEmbeddings)
    assert emb.model == "text-embed-x"
    assert emb.openai_api_key.get_secret_value() == "sk-test"


async def test_make_embeddings_openai_compatible_server(make_settings) -> None:
    """Against a local server speaking the OpenAI embeddings wire protocol: raw text is sent."""
    requests: list[dict] = []

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        requests.append(body)
        data = []
        for i, text in enumerate(body["input"]):
            vec = np.array([len(text), 1.0, 0.0], dtype=np.float32)
            if body.get("encoding_format") == "base64":
                emb = base64.b64encode(vec.tobytes()).decode()
            else:
                emb = vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        emb = make_embeddings(
            make_settings(
                embedder="openai",
                openai_base_url=f"http://127.0.0.1:{port}/v1",
                openai_embedding_model="local-embed",
            )
        )
        vectors = await emb.aembed_documents(["abc", "hello"])
    finally:
        await runner.cleanup()
    assert requests and requests[0]["model"] == "local-embed"
    assert requests[0]["input"] == ["abc", "hello"]  # text, not tiktoken ids
    assert [v[0] for v in vectors] == [3.0, 5.0]


def test_embedder_id(make_settings) -> None:
    minilm_id = embedder_id(make_settings(embedder="minilm"))
    assert minilm_id == f"minilm-l6-int8:{MODEL_SHA256[:12]}:256"
    assert embedder_id(make_settings(embedder="minilm", embed_batch_size=3)) == minilm_id
    a = embedder_id(make_settings(embedder="openai", openai_embedding_model="m1"))
    b = embedder_id(make_settings(embedder="openai", openai_embedding_model="m2"))
    assert a == "openai:m1" and b == "openai:m2"
    assert len({minilm_id, a, b}) == 3


def test_a_second_session_that_fails_to_open_leaves_the_first_embedding(monkeypatch, caplog):
    emb = MiniLMEmbeddings(batch_size=2, threads=2)
    texts = [f"sentence number {i} about embedding" for i in range(8)]
    expected = MiniLMEmbeddings(batch_size=2, threads=1).embed_documents(texts)
    emb.embed_query("open the first session")

    def no_more_sessions(self):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(MiniLMEmbeddings, "_new_session", no_more_sessions)
    with caplog.at_level("WARNING", logger="index.embedder"):
        got = emb.embed_documents(texts)  # several batches: asks for the second session
        emb._load().pool.shutdown(wait=True)  # the session is opened in the background
    assert got == expected
    assert "could not open another embedding session" in caplog.text
