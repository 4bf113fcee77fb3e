"""LLM answers streamed into a Discord draft: the real CorpusBot and AnswerService (seed index,
LLM mode against the scripted OpenAI server streaming 40 chunks 50 ms apart) on the fake Discord.

The draft shows the verified complete sentences so far (no [n] markers) with the "writing"
marker, edited at most once a second; the final answer replaces it. A claim that fails
verification is in no draft and not in the final text.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.citations import claim_supported
from bot.discord.delivery import EDIT_INTERVAL_S, WRITING
from bot.service import AnswerService, build_service
from bot.settings import BotSettings
from tests.fakes import openai_server as fake_llm
from tests.fakes.discord_server import FakeDiscord, RecordedRequest
from tests.fixtures.bot import QUESTION, answers_in, bot_settings, idle, running_bot

pytestmark = pytest.mark.slow

PIECES, INTERVAL_S = 40, 0.05
WRONG_CLAIM = "Kaspersky traced seven attacks on bitcoin exchanges"


@pytest.fixture
def llm_service(seed_index: BotSettings, openai_fake) -> AnswerService:
    settings = seed_index.model_copy(
        update={
            "openai_base_url": openai_fake.base_url,
            "openai_api_key": SecretStr("sk-test-0123456789abcdef"),
        }
    )
    return build_service(settings, build_if_missing=False)


LONG_EXTRA = (
    "The Democratic People's Republic of Korea is taking an unexpected interest in Bitcoin and "
    "other digital currencies [{n}]. It is hard to imagine a country sustaining itself on "
    "bitcoin mining rewards alone [{n}]. As a country rather than a company, it likely has all "
    "the processing power it needs to mine bitcoin efficiently [{n}]. Recent reports indicate "
    "this unexpected interest in digital currencies is new [{n}]."
)


def scripted_reply(service: AnswerService, *, long: bool = False) -> str:
    """A reply citing the 17th-of-May chunk by its number in the prompt, with one claim
    (the second) that no chunk supports; `long`: four more right sentences."""
    docs = service.search(QUESTION)
    n = 1 + next(i for i, d in enumerate(docs) if "17th of May" in d.page_content)
    reply = (
        f"North Korea started mining bitcoin on the 17th of May [{n}]. {WRONG_CLAIM} [{n}]. "
        f"The regime may be funding itself with the cryptocurrency, according to an "
        f"intelligence research firm [{n}]. The mining was meant to generate more revenue "
        f"that could sustain the country [{n}]."
    )
    return f"{reply} {LONG_EXTRA.format(n=n)}" if long else reply


def content_requests(fake: FakeDiscord, message_id: int | None = None) -> list[RecordedRequest]:
    """The bot's message-creating/editing requests (of one message id, when given)."""
    out = []
    for r in fake.message_requests():
        if r.path.startswith("/interactions/") or r.status >= 400:
            continue
        if message_id is None or r.method == "POST" or r.path.endswith(f"/{message_id}"):
            out.append(r)
    return out


def shown_messages(fake: FakeDiscord, channel_id: int) -> list[dict]:
    """The bot's messages with text (not the deferred interaction's "thinking" placeholder)."""
    return [m for m in fake.messages_in(channel_id, author_id=fake.bot_id) if m["content"]]


def unverified_claims(final: dict, service: AnswerService) -> int:
    """Sentences of the final text whose [n] the cited chunk does not support (only the
    17th-of-May chunk is cited in these scripts, as [1])."""
    chunk = next(d for d in service.search(QUESTION) if "17th of May" in d.page_content)
    text = final["content"]
    claims = [c for c in re.split(r"(?<=[.!?])\s+", text) if re.search(r"\[\d+\]", c)]
    assert claims
    title = chunk.metadata["title"]
    return sum(not claim_supported(c, chunk.page_content, QUESTION, title) for c in claims)


def report(
    path: str, started: float, figures: dict[str, float], unverified: int, pieces: int = PIECES
) -> None:
    print(
        f"\nstream[{path}]: {pieces} chunks x {INTERVAL_S * 1000:.0f} ms: "
        f"first visible text {figures['first_text_s'] - started:.2f} s, "
        f"complete answer {figures['final_s'] - started:.2f} s, "
        f"{figures['edits']} draft edits + 1 final, unverified claims in final: {unverified}"
    )


def check_stream(requests: list[RecordedRequest], final: dict) -> dict[str, float]:
    """The draft/edit/final sequence of one answer; returns its figures."""
    draft, *edits, last = requests
    assert draft.method == "POST" and WRITING in draft.json["content"]
    assert all(r.method == "PATCH" for r in [*edits, last])
    for r in [draft, *edits]:
        assert WRITING in r.json["content"] and "[" not in r.json["content"]  # no [n] in drafts
    # At most one edit per interval, the final replacement included.
    patches = [r.at for r in [draft, *edits, last]]
    gaps = [b - a for a, b in zip(patches, patches[1:], strict=False)]
    assert all(g >= EDIT_INTERVAL_S - 0.02 for g in gaps), gaps
    assert "17th of May" in draft.json["content"]  # the first verified sentence
    # The unverifiable claim was streamed by the model but never shown.
    assert not any("Kaspersky" in (r.json.get("content") or "") for r in requests)
    assert "Kaspersky" not in final["content"]
    assert WRITING not in final["content"]
    assert "17th of May [1]" in final["content"]
    assert final["embeds"][0]["title"] == "Sources" and final["components"]
    return {
        "first_text_s": draft.at,
        "final_s": last.at,
        "edits": len(edits),
    }


@pytest.mark.parametrize("pieces, long", [(PIECES, False), (2 * PIECES, True)])
async def test_slash_ask_streams_a_draft_then_replaces_it(
    fake_discord: FakeDiscord,
    seed_index: BotSettings,
    llm_service: AnswerService,
    openai_fake,
    tmp_path: Path,
    pieces: int,
    long: bool,
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    reply = scripted_reply(llm_service, long=long)
    openai_fake.script(fake_llm.stream(reply, pieces=pieces, interval_s=INTERVAL_S))
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, llm_service, tmp_path / "fb.sqlite3") as bot:
        started = time.monotonic()
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        (final,) = await fake.wait_for(lambda: answers_in(fake, general), timeout=20)
        await idle(fake, bot)
    assert openai_fake.chat_requests[0].json["stream"] is True
    (ack,) = [r for r in fake.requests if r.path.startswith("/interactions/")]
    assert ack.json["type"] == 5  # deferred first, as without streaming
    requests = content_requests(fake, int(final["id"]))
    assert all(r.path.startswith("/webhooks/") for r in requests)
    figures = check_stream(requests, final)
    # The draft was up well before the answer was complete (40 chunks x 50 ms = 2 s).
    assert figures["final_s"] - figures["first_text_s"] > 1.0
    unverified = unverified_claims(final, llm_service)
    assert unverified == 0
    if long:
        assert figures["edits"] >= 2 and "other digital currencies [1]." in final["content"]
    report("/ask", started, figures, unverified, pieces=pieces)
    assert len(shown_messages(fake, general)) == 1  # one message, edited


async def test_mention_streams_into_the_thread(
    fake_discord: FakeDiscord,
    seed_index: BotSettings,
    llm_service: AnswerService,
    openai_fake,
    tmp_path: Path,
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    openai_fake.script(
        fake_llm.stream(scripted_reply(llm_service), pieces=PIECES, interval_s=INTERVAL_S)
    )
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, llm_service, tmp_path / "fb.sqlite3") as bot:
        started = time.monotonic()
        question = fake.send_message(general, "alice", f"<@{fake.bot_id}> {QUESTION}")
        thread_id = int(question["id"])
        (final,) = await fake.wait_for(lambda: answers_in(fake, thread_id), timeout=20)
        await idle(fake, bot)
    requests = content_requests(fake, int(final["id"]))
    assert all(r.path.startswith(f"/channels/{thread_id}/messages") for r in requests)
    figures = check_stream(requests, final)
    unverified = unverified_claims(final, llm_service)
    assert unverified == 0
    report("@mention", started, figures, unverified)
    assert len(fake.messages_in(thread_id, author_id=fake.bot_id)) == 1
    assert not fake.messages_in(general, author_id=fake.bot_id)


async def test_stream_failing_midway_is_replaced_by_the_extractive_answer(
    fake_discord: FakeDiscord,
    seed_index: BotSettings,
    llm_service: AnswerService,
    openai_fake,
    tmp_path: Path,
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    reply = scripted_reply(llm_service)
    openai_fake.script(fake_llm.stream(reply, pieces=PIECES, interval_s=INTERVAL_S, break_after=30))
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, llm_service, tmp_path / "fb.sqlite3") as bot:
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        (final,) = await fake.wait_for(lambda: answers_in(fake, general), timeout=20)
        await idle(fake, bot)
    assert len(openai_fake.chat_requests) == 1  # not retried once text was shown
    draft, *_ = content_requests(fake, int(final["id"]))
    assert WRITING in draft.json["content"]
    assert WRITING not in final["content"] and "Kaspersky" not in final["content"]
    assert "17th of May" in final["content"]  # the quoted (extractive) answer
    assert len(shown_messages(fake, general)) == 1


async def test_offline_mode_does_not_stream(
    fake_discord: FakeDiscord, seed_index: BotSettings, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    service = build_service(seed_index, build_if_missing=False)
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, service, tmp_path / "fb.sqlite3") as bot:
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        (final,) = await fake.wait_for(lambda: answers_in(fake, general), timeout=20)
        await idle(fake, bot)
    (request,) = content_requests(fake)
    assert request.method == "POST" and WRITING not in request.json["content"]
    assert "17th of May" in final["content"]
