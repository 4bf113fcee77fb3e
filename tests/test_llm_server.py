"""LLMAnswerer against a real model: SmolLM2-135M served by llama.cpp (xllamacpp) over HTTP.

A 135M model answers poorly; what must hold is the contract: a verified cited answer or an
abstention, never an exception and never a citation that points nowhere.
"""

from __future__ import annotations

import logging
import re

import pytest
from langchain_core.documents import Document

from bot.errors import LLMError
from bot.llm import LLMAnswerer, make_chat_model
from tests.test_llm import _prompts

pytestmark = pytest.mark.llm
log = logging.getLogger(__name__)

QUESTIONS = [
    "When did North Korea start mining bitcoin?",
    "Who disclosed the report about North Korea's bitcoin mining?",
]


@pytest.fixture
def answerer(make_settings, llama_server) -> LLMAnswerer:
    settings = make_settings(
        openai_base_url=llama_server.base_url,
        openai_model="smollm2",
        llm_max_tokens=96,  # keeps each answer to a few seconds on 2 CPU threads
        llm_timeout_s=110,  # a shared CI core can be slow; the bound is not under test here
        llm_max_retries=0,
    )
    answer_prompt, condense_prompt = _prompts()
    return LLMAnswerer(
        llm=make_chat_model(settings),
        prompt=answer_prompt,
        condense_prompt=condense_prompt,
        max_retries=settings.llm_max_retries,
        # Not llm_deadline_s(settings): its 30 s reply bound is tested with the scripted
        # server; here a loaded 2-core machine must not turn a slow real model into a failure.
        deadline_s=120,
        condense_deadline_s=60,  # let the real model finish on a busy machine
    )


@pytest.fixture
def docs(seed_chunks: list[Document]) -> list[Document]:
    wanted = ("17th of May", "between May and July", "UN Security Council")
    return [next(c for c in seed_chunks if w in c.page_content) for w in wanted]


@pytest.mark.parametrize("question", QUESTIONS)
def test_real_model_answer_is_verified_or_abstains(answerer, docs, question):
    answer = answerer.answer(question, docs)
    log.info("SmolLM2 %.0f ms: %r", answer.latency_ms, answer.text)

    assert answer.mode == "llm" and answer.text.strip()
    if answer.abstained:
        assert answer.citations == []
        return
    by_id = {d.id: d for d in docs}
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert markers == {c.n for c in answer.citations}
    for c in answer.citations:
        chunk = by_id[c.chunk_id]
        base = chunk.metadata["start"]
        assert c.quote and chunk.page_content[c.start - base : c.end - base] == c.quote


def test_real_model_condense(answerer):
    history = [("Did North Korea mine bitcoin?", "Yes, between May and July [1].")]
    try:
        text = answerer.condense("When did it start?", history)
    except LLMError as err:  # allowed: the caller then uses its rule
        log.info("SmolLM2 condense failed: %s", err.kind)
    else:
        log.info("SmolLM2 condense: %r", text)
        assert isinstance(text, str) and 0 < len(text) <= 300


def test_real_model_streams(answerer, docs):
    """llama.cpp's SSE through ChatOpenAI.stream: deltas arrive, the result is verified."""
    question = QUESTIONS[0]
    deltas: list[str] = []
    stream = answerer.stream(question, docs)
    try:
        while True:
            deltas.append(next(stream))
    except StopIteration as done:
        answer = done.value
    except LLMError as err:  # a busy shared CPU can run past the deadline: still no crash
        log.info("SmolLM2 stream failed: %s after %d deltas", err.kind, len(deltas))
        return
    log.info("SmolLM2 streamed %d deltas: %r -> %r", len(deltas), "".join(deltas), answer.text)
    assert len(deltas) > 1 and answer.mode == "llm"
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert markers == {c.n for c in answer.citations}
