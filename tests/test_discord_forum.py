"""End to end: forum channels (DISCORD_FORUM_CHANNEL_IDS) through the real discord.py client.

New posts are answered once, only with a cited answer (silent otherwise, or one notice line if
DISCORD_FORUM_DECLINE_NOTICE); follow-ups in an answered post work like thread follow-ups; a
restart answers the posts made while the bot was away and none twice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.discord.feedback import FeedbackStore
from bot.errors import user_text
from bot.service import AnswerService
from bot.settings import BotSettings
from tests.fakes.discord_server import FLAG_EPHEMERAL, FakeDiscord
from tests.fixtures.bot import (
    GatedService,
    answers_in,
    at_least,
    bot_settings,
    idle,
    running_bot,
    sources_text,
)

pytestmark = pytest.mark.slow

ANSWERABLE = [
    ("When did North Korea start mining bitcoin?", "I read they mine crypto. When did it begin?"),
    ("Bitcoin mining in North Korea", "When did North Korea start mining bitcoin?"),
    ("How long did North Korea's bitcoin mining last?", "Was it short-lived?"),
    ("North Korea and bitcoin", "When did North Korea start mining bitcoin? @everyone"),
    ("Question about North Korea", "When did North Korea start mining bitcoin?"),
]
OFF_TOPIC = [
    ("Best pizza in Naples?", "Looking for recommendations for a good pizzeria."),
    ("Printer jammed", "My office printer keeps jamming, how do I fix it?"),
    ("What is the capital of France?", "Just wondering."),
]


@pytest.fixture
def fake_discord_options() -> dict[str, Any]:
    return {"forums": ("help-forum",)}


def bot_posts(fake: FakeDiscord, thread_id: int) -> list[dict]:
    return fake.messages_in(thread_id, author_id=fake.bot_id)


def store_history_in(db: Path, channel_id: int) -> list:
    store = FeedbackStore(path=db)
    try:
        return store.history(channel_id)
    finally:
        store.close()


def settled(db: Path, thread_ids: list[int]) -> bool:
    """Every post has a final status in the store (none pending)."""
    store = FeedbackStore(path=db)
    try:
        statuses = [store.post_status(t) for t in thread_ids]
    finally:
        store.close()
    return all(s is not None and s[0] != "pending" for s in statuses)


async def test_forum_burst_restart_no_duplicates_and_follow_up(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    forum = fake.channel_ids["help-forum"]
    db = tmp_path / "fb.sqlite3"
    settings = bot_settings(seed_index, fake, discord_forum_channel_ids=[forum])
    answerable: list[int] = []
    off_topic: list[int] = []

    def post(i: int, pair: tuple[str, str], into: list[int], **kw: Any) -> None:
        thread, starter = fake.create_forum_post(forum, ("alice", "bob")[i % 2], *pair, **kw)
        assert starter["id"] == thread["id"]
        into.append(int(thread["id"]))

    async with running_bot(fake, settings, seed_service, db) as bot:
        # First half of the burst, including a starter message that arrives before the thread
        # and one that never arrives over the gateway (the bot fetches it).
        post(0, ANSWERABLE[0], answerable)
        post(1, OFF_TOPIC[0], off_topic)
        post(2, ANSWERABLE[1], answerable, message_first=True)
        post(3, ANSWERABLE[2], answerable, dispatch_message=False)
        post(4, OFF_TOPIC[1], off_topic)
        await fake.wait_for(lambda: all(answers_in(fake, t) for t in answerable), timeout=30)
        await fake.wait_for(lambda: settled(db, answerable + off_topic), timeout=20)
        await idle(fake, bot)
        first = answers_in(fake, answerable[0])[0]
        assert "17th of May" in first["content"] and "[1]" in first["content"]
        assert first["embeds"][0]["title"] == "Sources"
        assert "[1] North Korea" in sources_text(first)
        # a fetched starter: GET /channels/{post}/messages/{post}
        assert any(
            r.method == "GET" and r.path == f"/channels/{answerable[2]}/messages/{answerable[2]}"
            for r in fake.requests
        )

        # A follow-up in an answered post is a thread follow-up (no mention needed) ...
        fake.send_message(answerable[0], "alice", "And when did they start?")
        await fake.wait_for(lambda: at_least(2, answers_in(fake, answerable[0])), timeout=20)
        # ... chatter in a post the bot stayed silent in is not.
        fake.send_message(off_topic[0], "bob", "Anyone? I like thin crust.")
        await idle(fake, bot)

    # While the bot is down, the burst goes on (these events are lost with its session).
    post(5, ANSWERABLE[3], answerable)
    post(6, OFF_TOPIC[2], off_topic)
    # A post a crashed process had claimed but never answered is taken over after the restart.
    post(7, ANSWERABLE[4], answerable)
    store = FeedbackStore(path=db)
    assert store.claim_post(answerable[-1], "a-process-that-died")
    store.close()

    async with running_bot(fake, settings, seed_service, db) as bot:
        await fake.wait_for(lambda: all(answers_in(fake, t) for t in answerable), timeout=30)
        # one more post while it is up
        post(8, ANSWERABLE[0], answerable)
        await fake.wait_for(lambda: answers_in(fake, answerable[-1]), timeout=20)
        await fake.wait_for(lambda: settled(db, answerable + off_topic), timeout=20)
        await idle(fake, bot)

    store = FeedbackStore(path=db)
    stats = store.stats()
    store.close()
    assert stats["declined"] == len(off_topic)  # silent declines still show up as gaps
    assert not any(store_history_in(db, t) for t in off_topic)
    replies = {t: len(answers_in(fake, t)) for t in answerable}
    assert replies == {t: 2 if t == answerable[0] else 1 for t in answerable}  # + 1 follow-up
    assert all(not bot_posts(fake, t) for t in off_topic)  # silent by default
    assert not any(  # no typing, no message, nothing but reading the starter
        f"/channels/{t}/" in r.path and r.method != "GET" for t in off_topic for r in fake.requests
    )
    print(
        f"\nFORUM FIGURES: {len(answerable)} answerable posts -> "
        f"{sum(1 for t in answerable if answers_in(fake, t))} cited replies; "
        f"{len(off_topic)} off-topic -> {sum(len(bot_posts(fake, t)) for t in off_topic)} replies; "
        f"duplicates after restart: {sum(max(0, n - 1) for t, n in replies.items() if t != answerable[0])}"
    )


async def test_forum_decline_notice_and_other_channels_ignored(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    forum = fake.channel_ids["help-forum"]
    general = fake.channel_ids["general"]
    settings = bot_settings(
        seed_index,
        fake,
        discord_forum_channel_ids=[forum],
        discord_forum_decline_notice=True,
        discord_channel_ids=[general],  # an allow-list: the forum still counts
        discord_help_channel_id=fake.channel_ids["random"],
    )
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        declined, _ = fake.create_forum_post(forum, "bob", *OFF_TOPIC[0])
        answered, _ = fake.create_forum_post(forum, "alice", *ANSWERABLE[0])
        answered_id = int(answered["id"])
        (notice,) = await fake.wait_for(lambda: bot_posts(fake, int(declined["id"])), timeout=20)
        await fake.wait_for(lambda: answers_in(fake, answered_id), timeout=20)
        # A follow-up in the forum post passes the channel allow-list (its parent is the forum).
        fake.send_message(answered_id, "alice", "And when did they start?")
        await fake.wait_for(lambda: at_least(2, answers_in(fake, answered_id)), timeout=20)
        # The notice offers "Ask a human"; the hand-off links the post's notice.
        (human,) = [c["custom_id"] for r in notice["components"] for c in r["components"]]
        assert human.startswith("human:")
        fake.click_button(notice, human, user="bob")
        handed = await fake.wait_for(
            lambda: [r.json for r in fake.requests if r.path.startswith("/webhooks/")], timeout=10
        )
        assert "Passed on to the helpers" in handed[0]["content"]
        help_thread = int(handed[0]["content"].rsplit("/", 1)[1])
        (passed,) = fake.messages_in(help_thread, author_id=fake.bot_id)
        assert f"/{declined['id']}/{notice['id']}" in passed["content"]
        assert OFF_TOPIC[0][0] in passed["content"]
        # A thread the bot opened for a mention in a text channel is no forum post.
        question = fake.send_message(general, "bob", f"<@{fake.bot_id}> What is the capital?")
        await fake.wait_for(lambda: bot_posts(fake, int(question["id"])), timeout=20)
        await idle(fake, bot)

    assert notice["content"] == user_text("forum_no_answer")
    assert not notice["embeds"]
    visible = [m for m in bot_posts(fake, int(declined["id"])) if not m["flags"] & FLAG_EPHEMERAL]
    assert visible == [notice]  # the hand-off replies were ephemeral


async def test_forum_not_configured_posts_ignored(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    forum = fake.channel_ids["help-forum"]
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake)  # no forum ids
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        thread, _ = fake.create_forum_post(forum, "alice", *ANSWERABLE[0])
        later = fake.send_message(general, "bob", f"<@{fake.bot_id}> {ANSWERABLE[0][0]}")
        await fake.wait_for(lambda: answers_in(fake, int(later["id"])), timeout=20)
        await idle(fake, bot)
    assert not bot_posts(fake, int(thread["id"]))


async def test_restart_while_a_post_is_being_answered_answers_it_once(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    """The bot goes down with an answer in flight: the next process finds the post claimed but
    unanswered (no bot message in it), takes it over and answers; the old one never posts."""
    fake = fake_discord
    forum = fake.channel_ids["help-forum"]
    db = tmp_path / "fb.sqlite3"
    settings = bot_settings(seed_index, fake, discord_forum_channel_ids=[forum])
    gated = GatedService(seed_service)
    async with running_bot(fake, settings, gated, db, check_mentions=False):
        stuck, _ = fake.create_forum_post(forum, "alice", *ANSWERABLE[0])
        await asyncio.to_thread(gated.entered.wait, 10)
    # The process is gone (its feedback store closed); its answer is still being computed.
    stuck_id = int(stuck["id"])
    assert not bot_posts(fake, stuck_id)

    async with running_bot(fake, settings, seed_service, db) as bot:
        await fake.wait_for(lambda: answers_in(fake, stuck_id), timeout=30)
        gated.gate.set()  # the old process's answer comes back now: it must not be posted
        await asyncio.sleep(0.5)
        await idle(fake, bot)

    (answer,) = bot_posts(fake, stuck_id)
    assert "17th of May" in answer["content"]
