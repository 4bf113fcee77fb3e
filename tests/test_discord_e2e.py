"""End to end: the real CorpusBot + a real AnswerService on the seed index, against the fake Discord.

Every test ends by checking every message-creating request the bot made: allowed_mentions
parse == [] and no live @everyone/@here/<@ in any content.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import discord
import pytest
from pydantic import SecretStr

from bot.discord.client import run
from bot.errors import user_text
from bot.service import AnswerService, build_service
from bot.settings import BotSettings
from tests.fakes.discord_server import FLAG_EPHEMERAL, FakeDiscord
from tests.fixtures.bot import (
    QUESTION,
    GatedService,
    answers_in,
    at_least,
    bot_settings,
    custom_ids,
    idle,
    running_bot,
    sources_text,
)

pytestmark = pytest.mark.slow


async def test_mention_opens_thread_and_follow_up_uses_history(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        question = fake.send_message(general, "alice", f"<@{fake.bot_id}> {QUESTION}")
        thread_id = int(question["id"])  # Discord gives a thread started from a message its id
        (answer,) = await fake.wait_for(lambda: answers_in(fake, thread_id), timeout=20)
        thread = next(r for r in fake.requests if r.path.endswith(f"/{thread_id}/threads"))
        assert thread.json["name"] == QUESTION
        assert "17th of May" in answer["content"] and "[1]" in answer["content"]
        assert answer["embeds"][0]["title"] == "Sources"
        assert "[1] North Korea" in sources_text(answer)
        assert "> " in sources_text(answer)  # the quoted passage
        assert custom_ids(answer)[0].startswith("fb:")
        assert not answers_in(fake, general)  # nothing but the thread in the channel
        assert any(r.path == f"/channels/{general}/typing" for r in fake.requests)

        # A follow-up without a mention; it only makes sense with the thread's history.
        fake.send_message(thread_id, "alice", "And when did they start?")
        answers = await fake.wait_for(lambda: at_least(2, answers_in(fake, thread_id)), timeout=20)
        assert "17th of May" in answers[1]["content"]
        await idle(fake, bot)
        history = bot.feedback.history(thread_id)
        assert [q for q, _ in history] == [QUESTION, "And when did they start?"]

        # People go on talking in the thread: thanks, and a word to someone else, get no answer.
        said = len(fake.messages_in(thread_id, author_id=fake.bot_id))
        bob = fake.users["bob"]["id"]
        fake.send_message(thread_id, "alice", "thanks, that worked! 🙏")
        fake.send_message(thread_id, "alice", f"<@{bob}> did you see when they started mining")
        fake.send_message(thread_id, "bob", "Which firm traced the attacks?")
        answers = await fake.wait_for(lambda: at_least(3, answers_in(fake, thread_id)), timeout=20)
        await idle(fake, bot)
        assert "FireEye" in answers[2]["content"]
        assert len(fake.messages_in(thread_id, author_id=fake.bot_id)) == said + 1

        # Chatter without a mention in a channel is ignored; a later mention is answered.
        fake.send_message(general, "bob", "hello people, no bot here")
        later = fake.send_message(general, "bob", f"<@{fake.bot_id}> {QUESTION}")
        await fake.wait_for(lambda: answers_in(fake, int(later["id"])), timeout=20)
        await idle(fake, bot)
        assert not fake.messages_in(general, author_id=fake.bot_id)


async def test_reply_to_bot_message_is_a_follow_up(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        (first,) = await fake.wait_for(lambda: answers_in(fake, general), timeout=20)
        await idle(fake, bot)
        fake.send_message(general, "bob", "And when did they start?", message_reference=first)
        answers = await fake.wait_for(lambda: at_least(2, answers_in(fake, general)), timeout=20)
        assert "17th of May" in answers[1]["content"]
        assert answers[1]["message_reference"]["message_id"] is not None


async def test_slash_ask_defers_then_answers_with_sources(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        assert {c["name"] for c in fake.commands(fake.guild_id)} >= {
            "ask",
            "stats",
            "reindex",
            "sources",
        }
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        (answer,) = await fake.wait_for(lambda: answers_in(fake, general), timeout=20)
        await idle(fake, bot)
        callbacks = [r for r in fake.requests if r.path.startswith("/interactions/")]
        followups = [r for r in fake.requests if r.path.startswith("/webhooks/")]
        assert [c.json["type"] for c in callbacks] == [5]  # deferred first ...
        assert fake.requests.index(callbacks[0]) < fake.requests.index(followups[0])  # ... then
        assert "17th of May" in followups[-1].json["content"]
        assert followups[-1].json["embeds"][0]["title"] == "Sources"
        assert "[1] North Korea" in sources_text(answer)

        # Feedback: the click is stored in SQLite, once per user; a re-click changes it.
        up, down = custom_ids(answer)
        answer_id = int(up.split(":")[1])

        def thanks() -> list:
            return [
                r.json["data"]
                for r in fake.message_requests()
                if r.path.startswith("/interactions/") and "Thanks" in r.json["data"]["content"]
            ]

        for n, (custom_id, user) in enumerate([(up, "alice"), (up, "bob"), (down, "bob")], 1):
            fake.click_button(answer, custom_id, user=user)
            await fake.wait_for(lambda n=n: at_least(n, thanks()))
        assert all(d["flags"] & FLAG_EPHEMERAL for d in thanks())
        assert bot.feedback.votes(answer_id) == {"up": 1, "down": 1}


async def test_declined_question_and_stats(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        fake.send_slash(
            "ask", {"question": "What is the capital of France?"}, user="alice", channel_id=general
        )
        await fake.wait_for(lambda: at_least(2, answers_in(fake, general)), timeout=20)
        await idle(fake, bot)
        declined = next(m for m in answers_in(fake, general) if "couldn't" in m["content"])
        assert not declined["embeds"] or declined["embeds"][0]["title"] == "Nearest sources"

        fake.send_slash("stats", user="bob", channel_id=general)  # not an admin
        fake.send_slash("stats", user="alice", channel_id=general)
        replies = await fake.wait_for(
            lambda: at_least(
                2,
                [
                    r.json["data"]
                    for r in fake.message_requests()
                    if r.path.startswith("/interactions/")
                ],
            ),
            timeout=10,
        )
        refused, stats = sorted(replies, key=lambda d: "Answered" in d["content"])
        assert "Manage Server" in refused["content"]
        assert "**Answered:** 1  **Declined:** 1" in stats["content"]
        assert "What is the capital of France?" in stats["content"]
        assert stats["flags"] & FLAG_EPHEMERAL

        fake.send_slash("sources", user="bob", channel_id=general)  # for everyone
        (listing,) = await fake.wait_for(
            lambda: [
                e
                for r in fake.requests
                if r.path.startswith("/webhooks/")
                for e in r.json.get("embeds", [])
                if e.get("title") == "Indexed documents"
            ]
        )
        info = seed_service.index_info()
        assert (
            f"{info['documents']} documents, {info['chunks']} chunks; built <t:"
            in (listing["description"])
        )
        for doc in seed_service.sources():
            assert f"**{doc['title']}** ({doc['chunks']} chunks)" in listing["description"]
        assert "· CCN · 2021-03-04" in listing["description"]


async def test_reindex_refused_for_non_admin_and_run_for_admin(
    fake_discord: FakeDiscord, index_settings: BotSettings, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(index_settings, fake)
    service = build_service(settings, build_if_missing=False)
    async with running_bot(fake, settings, service, tmp_path / "fb.sqlite3") as bot:
        # bob may run the command (the fake, like a server with overridden defaults, lets him),
        # but the bot checks Manage Server itself.
        fake.send_slash("reindex", user="bob", channel_id=general)
        refusal = await fake.wait_for(
            lambda: [
                r.json["data"]
                for r in fake.message_requests()
                if r.path.startswith("/interactions/")
            ],
        )
        assert "Manage Server" in refusal[0]["content"]
        assert service.index_info()["documents"] == 2

        # A new document mentioning @everyone and a user; an admin re-indexes.
        (settings.corpus_dir / "eclipse.md").write_text(
            "# Eclipse schedule\n\nThe lunar eclipse viewing party starts at nine in the evening "
            "on the observatory roof; tell @everyone and <@123456789012345678> to bring warm coats.\n",
            encoding="utf-8",
        )
        fake.send_slash("reindex", user="alice", channel_id=general)
        done = await fake.wait_for(
            lambda: [r.json for r in fake.requests if r.path.startswith("/webhooks/")], timeout=60
        )
        assert "3 documents" in done[0]["content"] and "added 1" in done[0]["content"]
        assert done[0]["flags"] & FLAG_EPHEMERAL
        assert service.index_info()["documents"] == 3  # the running bot sees the new generation

        fake.send_message(
            general, "bob", f"<@{fake.bot_id}> When does the lunar eclipse viewing party start?"
        )
        thread_id = int(fake.messages_in(general)[-1]["id"])
        (answer,) = await fake.wait_for(lambda: answers_in(fake, thread_id), timeout=20)
        assert "nine in the evening" in answer["content"] + sources_text(answer)
        assert "@\u200beveryone" in answer["content"] + sources_text(answer)  # quoted, defused
        await idle(fake, bot)


async def test_cooldown_second_question_gets_short_message(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake, user_cooldown_s=3600)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        fake.send_message(general, "bob", f"<@{fake.bot_id}> {QUESTION}")
        await fake.wait_for(lambda: answers_in(fake, general), timeout=20)
        await idle(fake, bot)
        callbacks = [r.json for r in fake.requests if r.path.startswith("/interactions/")]
        assert sorted(c["type"] for c in callbacks) == [4, 5]
        (cooldown,) = [c["data"] for c in callbacks if c["type"] == 4]
        assert "try again in" in cooldown["content"] and cooldown["flags"] & FLAG_EPHEMERAL
        (reply,) = await fake.wait_for(
            lambda: [
                m
                for m in fake.messages_in(general, author_id=fake.bot_id)
                if "try again in" in m["content"] and not m["flags"] & FLAG_EPHEMERAL
            ]
        )
        assert reply["message_reference"]  # the mention got a reply, not a thread
        assert len(answers_in(fake, general)) == 1


async def test_rate_limited_send_is_retried_once(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        fake.fail_next("POST", r"^/channels/\d+/messages$", status=429, retry_after=0.2)
        question = fake.send_message(general, "alice", f"<@{fake.bot_id}> {QUESTION}")
        thread_id = int(question["id"])
        await fake.wait_for(lambda: answers_in(fake, thread_id), timeout=20)
        await idle(fake, bot)
        posts = [
            r
            for r in fake.requests
            if r.method == "POST" and r.path == f"/channels/{thread_id}/messages"
        ]
        assert [r.status for r in posts] == [429, 200]
        assert len(fake.messages_in(thread_id, author_id=fake.bot_id)) == 1


async def test_overlong_question_rejected_in_place(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        fake.send_message(general, "alice", f"<@{fake.bot_id}> {'why ' * 400}")
        (reply,) = await fake.wait_for(lambda: fake.messages_in(general, author_id=fake.bot_id))
        await idle(fake, bot)
        assert "characters long; the limit is 1000" in reply["content"]
        assert reply["message_reference"] and not any(
            r.path.endswith("/threads") for r in fake.requests
        )

        fake.send_slash("ask", {"question": "   "}, user="bob", channel_id=general)
        await fake.wait_for(lambda: [r for r in fake.requests if r.path.startswith("/webhooks/")])
        await idle(fake, bot)
        (followup,) = [r.json for r in fake.requests if r.path.startswith("/webhooks/")]
        assert followup["content"] == "Please ask a question about the indexed documents."


def test_bad_token_exits_2_with_clear_message(
    fake_discord: FakeDiscord,
    index_settings: BotSettings,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = SecretStr("not-the-right-token-xyz")
    settings = bot_settings(index_settings, fake_discord, discord_token=token)
    assert run(settings) == 2
    err = capsys.readouterr().err
    assert "Discord rejected DISCORD_TOKEN" in err
    assert token.get_secret_value() not in err + caplog.text and "Traceback" not in err
    assert any(r.path == "/users/@me" and r.status == 401 for r in fake_discord.requests)


def test_unreachable_discord_exits_1_with_clear_message(
    index_settings: BotSettings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
    settings = index_settings.model_copy(update={"discord_token": SecretStr("tok")})
    assert run(settings) == 1
    err = capsys.readouterr().err
    assert "Could not reach Discord" in err and "Traceback" not in err


@pytest.mark.parametrize("abrupt", [False, True], ids=["close-4000", "tcp-cut"])
async def test_gateway_dropped_mid_answer_resumes_and_delivers_once(
    fake_discord: FakeDiscord,
    seed_index: BotSettings,
    seed_service: AnswerService,
    tmp_path: Path,
    abrupt: bool,
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    gated = GatedService(seed_service)
    settings = bot_settings(seed_index, fake)
    async with running_bot(fake, settings, gated, tmp_path / "fb.sqlite3") as bot:
        question = fake.send_message(general, "alice", f"<@{fake.bot_id}> {QUESTION}")
        await asyncio.to_thread(gated.entered.wait, 10)  # the answer is being computed
        fake.drop_gateway(abrupt=abrupt)
        await fake.wait_for(lambda: fake.events("RESUMED"), timeout=15)
        gated.gate.set()
        thread_id = int(question["id"])
        await fake.wait_for(lambda: answers_in(fake, thread_id), timeout=20)
        await idle(fake, bot)
        # A later question still reaches the bot over the resumed session.
        later = fake.send_message(general, "bob", f"<@{fake.bot_id}> {QUESTION}")
        await fake.wait_for(lambda: answers_in(fake, int(later["id"])), timeout=20)
        await idle(fake, bot)

    (answer,) = answers_in(fake, thread_id)  # exactly once, not re-sent after the resume
    assert "17th of May" in answer["content"]
    assert len(fake.messages_in(thread_id, author_id=fake.bot_id)) == 1
    ops = [e["op"] for e in fake.gateway_log if e["op"] in (2, 6)]
    assert ops == [2, 6]  # identified once, then resumed (no new session)


def ephemeral_replies(fake: FakeDiscord) -> list[dict]:
    """The bodies of the bot's immediate interaction replies (type 4 callbacks)."""
    return [
        r.json["data"]
        for r in fake.message_requests()
        if r.path.startswith("/interactions/") and r.json["type"] == 4
    ]


async def test_dm_question_is_answered_in_the_dm_and_follow_up_uses_its_history(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    # Global commands (no guild id): Discord offers only those in DMs.
    settings = bot_settings(seed_index, fake, discord_guild_id=None)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        question = fake.send_dm("alice", QUESTION)  # no mention needed in a DM
        dm = int(question["channel_id"])
        (answer,) = await fake.wait_for(lambda: answers_in(fake, dm), timeout=20)
        assert "17th of May" in answer["content"] and "[1]" in answer["content"]
        assert "guild_id" not in answer
        assert answer["message_reference"]["message_id"] == question["id"]
        assert answer["embeds"][0]["title"] == "Sources"
        assert "[1] North Korea" in sources_text(answer)
        up, down = custom_ids(answer)
        assert up.startswith("fb:") and up.endswith(":up") and down.endswith(":down")
        assert any(r.path == f"/channels/{dm}/typing" for r in fake.requests)

        fake.send_dm("alice", "And when did they start?")
        answers = await fake.wait_for(lambda: at_least(2, answers_in(fake, dm)), timeout=20)
        assert "17th of May" in answers[1]["content"]
        await idle(fake, bot)
        assert [q for q, _ in bot.feedback.history(dm)] == [QUESTION, "And when did they start?"]

        # The buttons work in the DM (the click arrives with "user", not "member").
        fake.click_button(answer, up, user="alice")
        await fake.wait_for(lambda: ephemeral_replies(fake))
        assert bot.feedback.votes(int(up.split(":")[1])) == {"up": 1, "down": 0}

        # /ask works in a DM too: deferred, then answered there.
        fake.send_slash("ask", {"question": QUESTION}, user="bob", dm=True)
        bob_dm = fake.dm_channel_id("bob")
        (slash_answer,) = await fake.wait_for(lambda: answers_in(fake, bob_dm), timeout=20)
        await idle(fake, bot)
        assert "17th of May" in slash_answer["content"]

    assert not any(r.path.endswith("/threads") for r in fake.requests)  # no threads in DMs
    assert not any(answers_in(fake, c) for c in fake.channel_ids.values())


async def test_dms_disabled_get_no_answer_and_ask_is_refused(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake, discord_guild_id=None, discord_allow_dms=False)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        fake.send_dm("alice", QUESTION)
        dm = fake.dm_channel_id("alice")
        # A guild question sent after the DM is answered; by then the DM has been passed over.
        later = fake.send_message(general, "bob", f"<@{fake.bot_id}> {QUESTION}")
        await fake.wait_for(lambda: answers_in(fake, int(later["id"])), timeout=20)

        fake.send_slash("ask", {"question": QUESTION}, user="alice", dm=True)
        (refusal,) = await fake.wait_for(lambda: ephemeral_replies(fake))
        await idle(fake, bot)
        assert bot.feedback.history(dm) == []

    assert refusal["content"] == "I don't answer questions in this channel."
    assert refusal["flags"] & FLAG_EPHEMERAL
    assert [m["content"] for m in fake.messages_in(dm, author_id=fake.bot_id)] == [
        refusal["content"]
    ]  # the ephemeral refusal is the only thing the bot said in the DM
    assert not any(f"/channels/{dm}/" in r.path for r in fake.requests)  # not even typing


async def test_channel_allow_list(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general, random = fake.channel_ids["general"], fake.channel_ids["random"]
    settings = bot_settings(seed_index, fake, discord_channel_ids=[general])
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        ignored = fake.send_message(random, "alice", f"<@{fake.bot_id}> {QUESTION}")
        allowed = fake.send_message(general, "alice", f"<@{fake.bot_id}> {QUESTION}")
        thread_id = int(allowed["id"])
        await fake.wait_for(lambda: answers_in(fake, thread_id), timeout=20)

        # The thread's parent is on the list, so a follow-up in it is answered.
        fake.send_message(thread_id, "alice", "And when did they start?")
        await fake.wait_for(lambda: at_least(2, answers_in(fake, thread_id)), timeout=20)

        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=random)
        (refusal,) = await fake.wait_for(lambda: ephemeral_replies(fake))

        # DMs are governed by discord_allow_dms, not by the channel list.
        fake.send_dm("bob", QUESTION)
        await fake.wait_for(lambda: answers_in(fake, fake.dm_channel_id("bob")), timeout=20)
        await idle(fake, bot)
        assert len(bot.feedback.history(thread_id)) == 2

    assert refusal["content"] == "I don't answer questions in this channel."
    assert refusal["flags"] & FLAG_EPHEMERAL
    assert [m["content"] for m in fake.messages_in(random, author_id=fake.bot_id)] == [
        refusal["content"]
    ]
    assert fake.message(ignored["id"]).get("thread") is None
    # no typing, no reply, no thread in the channel that is not on the list
    assert not any(r.path.startswith(f"/channels/{random}/") for r in fake.requests)


async def test_sharded_bot_answers_over_two_shards(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake, discord_shard_count=2)
    async with running_bot(fake, settings, seed_service, tmp_path / "fb.sqlite3") as bot:
        assert bot.shard_count == 2
        question = fake.send_message(general, "alice", f"<@{fake.bot_id}> {QUESTION}")
        (answer,) = await fake.wait_for(lambda: answers_in(fake, int(question["id"])), timeout=20)
        assert "17th of May" in answer["content"]
        await idle(fake, bot)
    identifies = [e["d"]["shard"] for e in fake.gateway_log if e["op"] == 2]
    assert sorted(identifies) == [[0, 2], [1, 2]]


class BrokenSources:
    """The real service, but listing the sources fails unexpectedly."""

    def __init__(self, inner: AnswerService) -> None:
        self.inner = inner

    def sources(self):
        raise RuntimeError("the store went away")

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def test_a_failing_command_shows_the_one_sorry_text_to_the_invoker(
    fake_discord: FakeDiscord, seed_index: BotSettings, seed_service: AnswerService, tmp_path: Path
) -> None:
    """Errors of slash commands and menus are handled once (CorpusBot.on_app_command_error)."""
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(seed_index, fake)
    service = BrokenSources(seed_service)
    async with running_bot(fake, settings, service, tmp_path / "fb.sqlite3") as bot:
        fake.send_slash("sources", user="bob", channel_id=general)
        (reply,) = await fake.wait_for(
            lambda: [
                r.json
                for r in fake.requests
                if r.path.startswith("/webhooks/") and isinstance(r.json, dict)
            ]
        )
        await idle(fake, bot)
    assert reply["content"] == user_text("internal")
    assert reply["flags"] & FLAG_EPHEMERAL
    assert "went away" not in reply["content"]
