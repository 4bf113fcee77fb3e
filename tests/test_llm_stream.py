"""LLMAnswerer.stream: deltas as the scripted server sends them, then the verified Answer."""

from __future__ import annotations

import time

import pytest
from langchain_core.documents import Document

from bot.errors import LLMError
from bot.llm import LLMAnswerer, llm_deadline_s, make_chat_model, unmarked
from bot.prompts import load_prompt
from index.settings import REPO_ROOT
from tests.fakes import openai_server as fake

A_17TH_MAY = "North Korea has started mining Bitcoin on the 17th of May"
A_MAY_JULY = "launched an effort to mine bitcoin between May and July"
QUESTION = "When did North Korea mine bitcoin?"
RIGHT_1 = "North Korea started mining bitcoin on the 17th of May [1]."
WRONG = "Kaspersky traced seven attacks on exchanges [1]."
RIGHT_2 = (
    "A research unit of the Korea Development Bank said the effort ran between May and July [2]."
)
REPLY = f"{RIGHT_1} {WRONG} {RIGHT_2}"


@pytest.fixture
def answerer(make_settings, openai_fake) -> LLMAnswerer:
    settings = make_settings(openai_base_url=openai_fake.base_url, openai_api_key="sk-test-0123")
    return LLMAnswerer(
        llm=make_chat_model(settings),
        prompt=load_prompt(REPO_ROOT / "prompts" / "answer.md"),
        max_retries=settings.llm_max_retries,
        deadline_s=llm_deadline_s(settings),
    )


@pytest.fixture
def docs(seed_chunks: list[Document]) -> list[Document]:
    return [next(c for c in seed_chunks if n in c.page_content) for n in (A_17TH_MAY, A_MAY_JULY)]


def test_stream_yields_deltas_early_then_returns_the_verified_answer(answerer, openai_fake, docs):
    openai_fake.script(fake.stream(REPLY, pieces=40, interval_s=0.05))
    started = time.monotonic()
    stream = answerer.stream(QUESTION, docs)
    deltas, arrivals = [], []
    while True:
        try:
            deltas.append(next(stream))
            arrivals.append(time.monotonic() - started)
        except StopIteration as done:
            answer = done.value
            break
    total = time.monotonic() - started
    assert "".join(deltas) == REPLY and len(deltas) == 40
    assert arrivals[0] < 0.5 * total  # text long before the end (40 x 50 ms)
    assert openai_fake.chat_requests[0].json["stream"] is True
    # Verified as without streaming: the unsupported Kaspersky claim is gone.
    assert answer.mode == "llm" and answer.text == f"{RIGHT_1} {RIGHT_2}"
    assert len(answer.citations) == 2


def test_answer_with_on_draft_shows_verified_sentences_only(answerer, openai_fake, docs):
    openai_fake.script(fake.stream(REPLY, pieces=30))
    drafts: list[str] = []
    answer = answerer.answer(QUESTION, docs, on_draft=drafts.append)
    # The first complete sentence, without [1]; the last one (no whitespace after it yet)
    # only shows in the final answer.
    assert drafts == [unmarked(RIGHT_1)]
    assert not any("Kaspersky" in d or "[" in d for d in drafts)
    assert answer.text == f"{RIGHT_1} {RIGHT_2}"


def test_draft_of_a_partial_reply(answerer, docs):
    assert answerer.draft(QUESTION, docs, "North Korea started mining bitcoin on the 17") == ""
    assert answerer.draft(QUESTION, docs, f"{WRONG} North Korea") == ""  # nothing verified
    partial = f"{RIGHT_1} {WRONG} A research unit of the Korea Development Bank said [2"
    assert answerer.draft(QUESTION, docs, partial) == unmarked(RIGHT_1)
    echo = "Never cite a number that is not listed [1]. "  # the system prompt, echoed
    assert answerer.draft(QUESTION, docs, f"{echo}{RIGHT_1} ") == unmarked(RIGHT_1)


def test_failure_before_the_first_delta_is_retried(answerer, openai_fake, docs):
    openai_fake.script(fake.server_error(), fake.stream(REPLY, pieces=4))
    drafts: list[str] = []
    answer = answerer.answer(QUESTION, docs, on_draft=drafts.append)
    assert drafts and not answer.abstained
    assert len(openai_fake.chat_requests) == 2


def test_failure_mid_stream_is_not_retried(answerer, openai_fake, docs):
    openai_fake.script(fake.stream(REPLY, pieces=10, break_after=3), fake.stream(REPLY))
    seen: list[str] = []
    stream = answerer.stream(QUESTION, docs)
    with pytest.raises(LLMError):
        for delta in stream:
            seen.append(delta)
    assert seen and "".join(seen) != REPLY
    assert len(openai_fake.chat_requests) == 1  # shown text is not taken back by a retry


def test_a_stream_past_the_deadline_times_out(make_settings, openai_fake, docs):
    settings = make_settings(openai_base_url=openai_fake.base_url, openai_api_key="sk-test-0123")
    answerer = LLMAnswerer(
        llm=make_chat_model(settings),
        prompt=load_prompt(REPO_ROOT / "prompts" / "answer.md"),
        max_retries=0,
        deadline_s=1.0,
    )
    openai_fake.script(fake.stream(REPLY, pieces=40, interval_s=0.1))  # 4 s of chunks
    started = time.monotonic()
    with pytest.raises(LLMError) as err:
        answerer.answer(QUESTION, docs, on_draft=lambda _: None)
    assert err.value.kind == "timeout" and time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "text, shown",
    [
        ("Mining began on the 17th of May [1]. It ran", "Mining began on the 17th of May. It ran"),
        ("It ran from May to July [1, 2].", "It ran from May to July."),
        ("It ran [1][2] from May [3] to July.", "It ran from May to July."),
    ],
)
def test_unmarked(text, shown):
    assert unmarked(text) == shown
