"""End to end: the "Ask the docs" message command and the "Ask a human" hand-off, through the
real discord.py client against the fake Discord."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.discord.handoff import handoff_text
from bot.service import AnswerService
from bot.settings import BotSettings
from tests.fakes.discord_server import FLAG_EPHEMERAL, FakeDiscord
from tests.fixtures.bot import (
    LIVE_MENTION,
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


def followups(fake: FakeDiscord) -> list[dict[str, Any]]:
    """Bodies of the bot's interaction follow-ups (webhook posts), in order."""
    return [r.json for r in fake.requests if r.method == "POST" and r.path.startswith("/webhooks/")]


def callbacks(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path.startswith("/interactions/")]


async def test_ask_the_docs_answers_the_selected_message(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
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
        assert "no question" in note[0]["content"] and note[0]["flags"] & FLAG_EPHEMERAL
        # Nor is the bot's own answer a question.
        fake.send_message_command("Ask the docs", answer, user="bob")
        await fake.wait_for(lambda: at_least(2, [c for c in callbacks(fake) if c["type"] == 4]))
        await idle(fake, bot)
        assert [m for m in answers_in(fake, general) if not m["flags"] & FLAG_EPHEMERAL] == [answer]


def interaction_texts(fake: FakeDiscord) -> list[str]:
    """Contents the bot showed through interactions (immediate replies and follow-ups)."""
    out = [c["data"].get("content") or "" for c in callbacks(fake) if c["type"] == 4]
    return out + [f.get("content") or "" for f in followups(fake)]


def with_custom_id(fake: FakeDiscord, channel_id: int, prefix: str) -> list[dict[str, Any]]:
    return [
        m
        for m in fake.messages_in(channel_id, author_id=fake.bot_id)
        if any(cid.startswith(prefix) for cid in custom_ids(m))
    ]


@pytest.mark.parametrize(
    "fake_discord_options",
    [
        {"channels": ("general", "helpers")},
        {"channels": ("general",), "forums": ("helpers",)},
    ],
    ids=["text-help-channel", "forum-help-channel"],
)
async def test_ask_a_human_hands_off_declined_and_downvoted_answers(
    fake_discord: FakeDiscord,
    fake_discord_options: dict[str, Any],
    seed_index: BotSettings,
    seed_service: AnswerService,
    tmp_path: Path,
) -> None:
    fake = fake_discord
    general, helpers = fake.channel_ids["general"], fake.channel_ids["helpers"]
    alice = fake.users["alice"]["id"]
    settings = bot_settings(
        seed_index,
        fake,
        discord_help_channel_id=helpers,
        # a watched help forum: the bot's own hand-off posts are no questions to answer
        discord_forum_channel_ids=[helpers] if "forums" in fake_discord_options else [],
    )
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        # A declined answer carries "Ask a human" next to 👍/👎.
        fake.send_slash(
            "ask", {"question": f"{OFF_TOPIC} @everyone <@{alice}>"}, user="bob", channel_id=general
        )
        (declined,) = await fake.wait_for(lambda: answers_in(fake, general), timeout=20)
        await idle(fake, bot)
        up, down, human = custom_ids(declined)
        assert human.startswith("human:") and human.split(":")[1] == up.split(":")[1]
        assert declined["components"][0]["components"][2]["label"] == "Ask a human"

        fake.click_button(declined, human, user="bob")
        (link,) = await fake.wait_for(
            lambda: [t for t in interaction_texts(fake) if "Passed on to the helpers" in t],
            timeout=10,
        )
        thread_id = int(link.rsplit("/", 1)[1])
        assert f"https://discord.com/channels/{fake.guild_id}/{thread_id}" in link
        posted = fake.messages_in(thread_id, author_id=fake.bot_id)
        (handoff,) = posted
        assert OFF_TOPIC in handoff["content"] and "The docs had no answer." in handoff["content"]
        assert "Passed on by Bob" in handoff["content"]
        assert f"/channels/{fake.guild_id}/{general}/{declined['id']}" in handoff["content"]

        # A second click (anyone) gets the same thread, not a new one.
        fake.click_button(declined, human, user="alice")
        await fake.wait_for(
            lambda: [t for t in interaction_texts(fake) if t.startswith("Already passed on")]
        )
        threads_made = [r for r in fake.requests if r.path == f"/channels/{helpers}/threads"]
        assert len(threads_made) == 1

        # A cited answer has no hand-off button; a 👎 on it offers one (ephemerally).
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        await fake.wait_for(lambda: at_least(2, answers_in(fake, general)), timeout=20)
        await idle(fake, bot)
        answered = answers_in(fake, general)[-1]
        up2, down2 = custom_ids(answered)
        fake.click_button(answered, down2, user="bob")
        (offer,) = await fake.wait_for(
            lambda: [
                m for m in with_custom_id(fake, general, "human:") if m["flags"] & FLAG_EPHEMERAL
            ],
            timeout=10,
        )
        assert "A person can help" in offer["content"]
        fake.click_button(offer, custom_ids(offer)[0], user="bob")
        links = await fake.wait_for(
            lambda: at_least(
                2, [t for t in interaction_texts(fake) if "Passed on to the helpers" in t]
            ),
            timeout=10,
        )
        second = int(links[-1].rsplit("/", 1)[1])
        (text,) = [m["content"] for m in fake.messages_in(second, author_id=fake.bot_id)]
        assert "The bot's answer** (marked not helpful)" in text and "17th of May" in text
        assert f"/channels/{fake.guild_id}/{general}/{answered['id']}" in text
        await idle(fake, bot)
    assert not fake.unknown_routes


async def test_no_help_channel_no_hand_off_button(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        fake.send_slash("ask", {"question": OFF_TOPIC}, user="bob", channel_id=general)
        (declined,) = await fake.wait_for(lambda: answers_in(fake, general), timeout=20)
        await idle(fake, bot)
        assert [c.split(":")[-1] for c in custom_ids(declined)] == ["up", "down"]
        fake.click_button(declined, custom_ids(declined)[1], user="bob")
        (thanks,) = await fake.wait_for(lambda: replies(fake))
        assert thanks["content"] == "Thanks for the feedback" and not thanks.get("components")


def replies(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [c["data"] for c in callbacks(fake) if c["type"] == 4]


def test_handoff_text_defuses_mentions_and_fits() -> None:
    text = handoff_text(
        question="Help @everyone <@123456789012345678> " + "why " * 600,
        answer="It is <@&42> [1]",
        passed_on_by="@here Bob",
        source_url="https://discord.com/channels/1/2/3",
    )
    assert len(text) <= 2000
    assert "@\u200beveryone" in text and "<@\u200b123456789012345678>" in text
    assert "<@&\u200b42>" in text and "@\u200bhere Bob" in text
    assert not LIVE_MENTION.search(text)


@pytest.mark.parametrize("fake_discord_options", [{"forums": ("chat",)}])
async def test_ephemeral_decline_does_not_turn_a_thread_into_a_conversation(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    settings = bot_settings(seed_index, fake)  # the forum is not watched: a plain thread
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        thread, starter = fake.create_forum_post(
            fake.channel_ids["chat"], "alice", "Pizza", OFF_TOPIC
        )
        thread_id = int(thread["id"])
        fake.send_message_command("Ask the docs", starter, user="bob")
        await fake.wait_for(lambda: followups(fake), timeout=20)
        await idle(fake, bot)
        assert followups(fake)[-1]["flags"] & FLAG_EPHEMERAL
        fake.send_message(thread_id, "alice", QUESTION)  # no mention: not a follow-up
        # a later mention elsewhere is answered, so the thread message has been passed over
        later = fake.send_message(
            fake.channel_ids["general"], "bob", f"<@{fake.bot_id}> {QUESTION}"
        )
        await fake.wait_for(lambda: answers_in(fake, int(later["id"])), timeout=20)
        await idle(fake, bot)
        assert bot.feedback.stats()["declined"] == 1
        assert not bot.feedback.has_answered_in(thread_id)
    public = [
        m
        for m in fake.messages_in(thread_id, author_id=fake.bot_id)
        if not m["flags"] & FLAG_EPHEMERAL
    ]
    assert public == []
