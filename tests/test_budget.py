"""Cost bounds: the daily token budget, question length, per-user cooldown, global
concurrency and the max answer tokens sent to the model are each enforced."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from bot.budget import KEEP_DAYS, DailyTokenBudget
from bot.errors import QuestionRejected
from bot.llm import CONDENSE_MAX_TOKENS
from bot.service import AnswerService, build_service
from bot.settings import BotSettings
from index.settings import REPO_ROOT
from tests.fakes import openai_server as oai
from tests.fakes.openai_server import FakeOpenAIServer

QUESTION = "When did North Korea start mining bitcoin?"
GOOD_REPLY = "North Korea started mining bitcoin on the 17th of May [1]."


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# --- DailyTokenBudget -----------------------------------------------------------------------


def test_zero_limit_is_unlimited(tmp_path):
    budget = DailyTokenBudget(limit=0, path=tmp_path / "b.sqlite3")
    budget.record(10**12)
    assert budget.allow() and budget.remaining() is None
    assert budget.used() == 10**12


def test_allows_until_the_limit_then_refuses(tmp_path):
    budget = DailyTokenBudget(limit=1000, path=tmp_path / "b.sqlite3")
    assert budget.allow() and budget.remaining() == 1000
    budget.record(600)
    assert budget.allow() and budget.remaining() == 400
    budget.record(399)
    assert budget.allow()
    budget.record(1)
    assert not budget.allow() and budget.remaining() == 0
    budget.record(500)  # an answer already in flight still gets counted
    assert budget.used() == 1500 and budget.remaining() == 0


def test_usage_persists_across_instances(tmp_path):
    path = tmp_path / "nested" / "b.sqlite3"
    DailyTokenBudget(limit=100, path=path).record(100)
    again = DailyTokenBudget(limit=100, path=path)  # e.g. after a restart
    assert again.used() == 100 and not again.allow()
    assert DailyTokenBudget(limit=200, path=path).allow()  # a raised limit applies at once


def test_resets_on_a_new_utc_day(tmp_path):
    clock = Clock(datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC))
    budget = DailyTokenBudget(limit=100, path=tmp_path / "b.sqlite3", clock=clock)
    budget.record(100)
    assert not budget.allow()
    clock.now += timedelta(seconds=1)
    assert budget.allow() and budget.used() == 0


def test_days_are_utc_days_whatever_the_clock_zone(tmp_path):
    seoul = timezone(timedelta(hours=9))
    # 08:30 in Seoul on March 2nd is still March 1st in UTC.
    clock = Clock(datetime(2025, 3, 2, 8, 30, tzinfo=seoul))
    budget = DailyTokenBudget(limit=100, path=tmp_path / "b.sqlite3", clock=clock)
    budget.record(100)
    clock.now = datetime(2025, 3, 1, 23, 45, tzinfo=UTC)
    assert not budget.allow()
    clock.now = datetime(2025, 3, 2, 9, 0, tzinfo=seoul)  # 00:00 UTC March 2nd
    assert budget.allow()


def test_old_days_are_pruned(tmp_path):
    import sqlite3

    clock = Clock(datetime(2025, 1, 1, tzinfo=UTC))
    path = tmp_path / "b.sqlite3"
    budget = DailyTokenBudget(limit=100, path=path, clock=clock)
    for _ in range(KEEP_DAYS + 10):
        budget.record(1)
        clock.now += timedelta(days=1)
    with sqlite3.connect(path) as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM usage").fetchone()
    assert rows == KEEP_DAYS + 1


def test_concurrent_threads_lose_nothing(tmp_path):
    budget = DailyTokenBudget(limit=10**9, path=tmp_path / "b.sqlite3")

    def work() -> None:
        for _ in range(50):
            budget.record(3)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.used() == 8 * 50 * 3


def test_concurrent_processes_share_one_budget(tmp_path):
    path = tmp_path / "b.sqlite3"
    code = (
        "import sys; from bot.budget import DailyTokenBudget\n"
        "b = DailyTokenBudget(limit=0, path=sys.argv[1])\n"
        "for _ in range(100): b.record(7)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=REPO_ROOT) for _ in range(3)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert DailyTokenBudget(limit=0, path=path).used() == 3 * 100 * 7


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        DailyTokenBudget(limit=-1, path=tmp_path / "b")
    with pytest.raises(ValueError):
        DailyTokenBudget(limit=10, path=tmp_path / "b").record(-5)


def test_unreadable_budget_file_fails_closed(tmp_path, caplog):
    path = tmp_path / "b.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    budget = DailyTokenBudget(limit=1000, path=path)
    assert not budget.allow()  # no LLM spend we cannot account for
    budget.record(10)  # logged, never raised into an answer
    assert "token budget" in caplog.text or "could not record" in caplog.text
    assert DailyTokenBudget(limit=0, path=path).allow()  # unlimited needs no file


# --- question length ---------------------------------------------------------------------------


@pytest.fixture
def llm_service(seed_index: BotSettings, openai_fake: FakeOpenAIServer):
    def make(**overrides) -> AnswerService:
        values = {
            "openai_base_url": openai_fake.base_url,
            "openai_api_key": SecretStr("sk-test-budget"),
            "llm_max_retries": 0,
        }
        values.update(overrides)
        return build_service(seed_index.model_copy(update=values), build_if_missing=False)

    return make


def test_max_question_length_is_enforced_before_any_llm_call(llm_service, openai_fake):
    service = llm_service(max_question_chars=60)
    with pytest.raises(QuestionRejected, match="limit is 60") as info:
        service.answer("Why " + "really " * 20 + "did North Korea mine bitcoin?")
    assert "shorten" in str(info.value)
    assert openai_fake.chat_requests == []  # rejected questions cost nothing
    openai_fake.script(oai.chat(GOOD_REPLY))
    assert len(QUESTION) <= 60 and service.answer(QUESTION).mode == "llm"


# --- max answer tokens ----------------------------------------------------------------------------


def _max_tokens(body: dict) -> int | None:
    return body.get("max_completion_tokens", body.get("max_tokens"))


def test_max_answer_tokens_is_sent_to_the_model(llm_service, openai_fake):
    service = llm_service(llm_max_tokens=77)
    openai_fake.script(oai.chat(GOOD_REPLY))
    service.answer(QUESTION)
    openai_fake.script(oai.chat("When did North Korea stop mining bitcoin?"), oai.chat(GOOD_REPLY))
    service.answer("And when did it stop?", [(QUESTION, GOOD_REPLY)])  # condense + answer
    bounds = [_max_tokens(r.json) for r in openai_fake.chat_requests]
    assert bounds == [77, CONDENSE_MAX_TOKENS, 77]


# --- per-user cooldown and global concurrency, through the real bot ---------------------------


@pytest.mark.slow
async def test_cooldown_and_concurrency_are_enforced_by_the_bot(
    fake_discord, seed_index, openai_fake, tmp_path
):
    from tests.fixtures.bot import at_least, running_bot

    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = seed_index.model_copy(
        update={
            "openai_base_url": openai_fake.base_url,
            "openai_api_key": SecretStr("sk-test-budget"),
            "llm_max_retries": 0,
            "llm_timeout_s": 30.0,
            "discord_guild_id": fake.guild_id,
            "user_cooldown_s": 3600.0,
            "max_concurrent_answers": 1,
        }
    )
    service = await asyncio.to_thread(build_service, settings, build_if_missing=False)
    async with running_bot(
        fake, settings, service, tmp_path / "fb.sqlite3", check_mentions=False
    ) as bot:
        # Alice's answer is held in flight: the model replies only once released.
        openai_fake.script(oai.Reply("chat", content=GOOD_REPLY, delay_s=60))
        fake.send_slash("ask", {"question": QUESTION}, user="alice", channel_id=general)
        await fake.wait_for(lambda: len(openai_fake.chat_requests) == 1, timeout=20)
        assert bot.limiter.active == 1

        # Bob while the one slot is taken: "busy", and no model call.
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        busy = await fake.wait_for(lambda: _ephemeral_replies(fake), timeout=10)
        assert "busy" in busy[0]
        assert len(openai_fake.chat_requests) == 1

        # Closing the server drops the held reply: alice gets a (labelled) fallback.
        openai_fake.close()
        await fake.wait_for(lambda: bot.limiter.active == 0 and _answers(fake), timeout=40)

        # Alice again at once: cooldown (ephemeral), bob (not cooled down) is answered.
        fake.send_slash("ask", {"question": QUESTION}, user="alice", channel_id=general)
        replies = await fake.wait_for(lambda: at_least(2, _ephemeral_replies(fake)), 10)
        assert "try again in" in replies[1]
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        await fake.wait_for(lambda: at_least(2, _answers(fake)), timeout=40)


def _ephemeral_replies(fake) -> list[str]:
    return [
        r.json["data"]["content"]
        for r in fake.requests
        if r.path.startswith("/interactions/")
        and isinstance(r.json, dict)
        and r.json.get("type") == 4
        and r.json["data"].get("flags", 0) & 64
    ]


def _answers(fake) -> list[dict]:
    return [
        r.json
        for r in fake.requests
        if r.path.startswith("/webhooks/") and isinstance(r.json, dict) and r.json.get("components")
    ]


def test_daily_budget_is_enforced_by_the_service(llm_service, openai_fake):
    """Once today's tokens pass LLM_DAILY_TOKEN_BUDGET, answers are extractive (labelled)."""
    service = llm_service(llm_daily_token_budget=5)
    openai_fake.script(oai.chat(GOOD_REPLY), oai.chat(GOOD_REPLY))
    assert service.answer(QUESTION).mode == "llm"  # the fake reports > 5 tokens used
    second = service.answer(QUESTION)
    assert second.mode == "extractive-fallback" and "budget" in (second.note or "")
    assert len(openai_fake.chat_requests) == 1  # the LLM was not called again
