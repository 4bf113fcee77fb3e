"""End to end: the "Ask the docs" message command and the "Ask a human" hand-off, through the
real discord.py client against the fake Discord."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.service import AnswerService, build_service
from index.settings import Settings
from tests.fakes.discord_server import FLAG_EPHEMERAL, FakeDiscord
from tests.test_discord_e2e import (
    QUESTION,
    answers_in,
    at_least,
    bot_settings,
    custom_ids,
    idle,
    running_bot,
    sources_text,
)

pytestmark = pytest.mark.slow

OFF_TOPIC = "What is the capital of France?"


@pytest.fixture(scope="module")
def seed_service(seed_index: Settings) -> AnswerService:
    return build_service(seed_index, build_if_missing=False)


def followups(fake: FakeDiscord) -> list[dict[str, Any]]:
    """Bodies of the bot's interaction follow-ups (webhook posts), in order."""
    return [r.json for r in fake.requests if r.method == "POST" and r.path.startswith("/webhooks/")]


def callbacks(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path.startswith("/interactions/")]


async def test_ask_the_docs_answers_the_selected_message(
    fake_discord: FakeDiscord, seed_index: Settings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        (menu,) = [c for c in fake.commands(fake.guild_id) if c["name"] == "Ask the docs"]
        assert menu["type"] == 3  # a message context-menu command

        question = fake.send_message(general, "alice", QUESTION)  # no mention: ignored ...
        fake.send_message_command("Ask the docs", question, user="bob")  # ... until bob asks
        (answer,) = await fake.wait_for(lambda: answers_in(fake, general), timeout=20)
        assert answer["message_reference"]["message_id"] == question["id"]
        assert "17th of May" in answer["content"] and "[1]" in answer["content"]
        assert "[1] North Korea" in sources_text(answer)
        assert custom_ids(answer)[0].startswith("fb:")
        done = await fake.wait_for(lambda: at_least(1, followups(fake)), timeout=10)
        await idle(fake, bot)
        assert (
            callbacks(fake)[0]["type"] == 5 and callbacks(fake)[0]["data"]["flags"] & FLAG_EPHEMERAL
        )
        assert done[-1]["flags"] & FLAG_EPHEMERAL
        assert f"/channels/{fake.guild_id}/{general}/{answer['id']}" in done[-1]["content"]

        # An off-topic message: the decline goes to the invoker only, nothing in the channel.
        off = fake.send_message(general, "alice", f"{OFF_TOPIC} @everyone")
        fake.send_message_command("Ask the docs", off, user="bob")
        await fake.wait_for(lambda: at_least(2, followups(fake)), timeout=20)
        await idle(fake, bot)
        declined = followups(fake)[-1]
        assert declined["flags"] & FLAG_EPHEMERAL and "couldn't" in declined["content"]
        public = [
            m["id"]
            for m in fake.messages_in(general, author_id=fake.bot_id)
            if not m["flags"] & FLAG_EPHEMERAL
        ]
        assert public == [answer["id"]]  # placeholders and the decline were ephemeral

        # A message without text gets a short ephemeral note.
        empty = fake.send_message(general, "alice", "", embeds=[{"title": "just an embed"}])
        fake.send_message_command("Ask the docs", empty, user="bob")
        note = await fake.wait_for(
            lambda: [c["data"] for c in callbacks(fake) if c["type"] == 4], timeout=10
        )
        assert "no text" in note[0]["content"] and note[0]["flags"] & FLAG_EPHEMERAL
