"""Learning from moderators, end to end: "Add to knowledge base" saves a moderator's answer as a
Markdown document and re-indexes, so a question the bot declined is then answered with a citation
to it; `/forget` removes it again. Plus the pure helpers in bot/discord/learned.py."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.discord.learned import (
    learned_document,
    learned_filename,
    resolve_learned,
)
from bot.service import build_service
from bot.settings import BotSettings
from tests.fakes.discord_server import FLAG_EPHEMERAL, FakeDiscord
from tests.fixtures.bot import (
    LIVE_MENTION,
    answers_in,
    at_least,
    bot_settings,
    idle,
    running_bot,
    sources_text,
)

QUESTION = "When does the lunar eclipse viewing party start?"
ANSWER = "The lunar eclipse viewing party starts at nine in the evening on the observatory roof."


def front_matter(text: str) -> dict[str, Any]:
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, text
    return yaml.safe_load(match.group(1))


def interaction_texts(fake: FakeDiscord) -> list[str]:
    out = []
    for r in fake.message_requests():
        if r.path.startswith("/interactions/"):
            out.append(r.json["data"].get("content") or "")
        elif r.path.startswith("/webhooks/"):
            out.append(r.json.get("content") or "")
    return out


def saying(fake: FakeDiscord, needle: str) -> list[str]:
    return [t for t in interaction_texts(fake) if needle in t]


@pytest.mark.slow
async def test_moderator_answer_is_learned_cited_and_forgotten(
    fake_discord: FakeDiscord, index_settings: BotSettings, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(index_settings, fake)
    service = build_service(settings, build_if_missing=False)
    async with running_bot(fake, settings, service, tmp_path / "fb.sqlite3") as bot:
        learn = bot.get_cog("Learn")
        menus = {c["name"]: c for c in fake.commands(fake.guild_id) if c["type"] == 3}
        assert int(menus["Add to knowledge base"]["default_member_permissions"]) == 1 << 5

        # The bot declines the question ...
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        (declined,) = await fake.wait_for(lambda: answers_in(fake, general), timeout=20)
        assert "couldn't" in declined["content"]
        await idle(fake, bot)

        # ... bob asks the channel, and alice (a moderator) replies with the answer.
        asked = fake.send_message(general, "bob", f"{QUESTION} <@{fake.users['bob']['id']}>")
        reply = fake.send_message(
            general, "alice", f"{ANSWER} Tell @everyone!", message_reference=asked
        )

        fake.send_message_command("Add to knowledge base", reply, user="bob")  # not a moderator
        (refusal,) = await fake.wait_for(lambda: saying(fake, "Manage Server"))

        fake.send_message_command("Add to knowledge base", reply, user="alice")
        (saved,) = await fake.wait_for(lambda: saying(fake, "Saved as"), timeout=10)
        shown = re.search(r"`(learned/[^`]+\.md)`", saved).group(1)
        path = settings.corpus_dir / shown
        text = path.read_text(encoding="utf-8")
        meta = front_matter(text)
        assert meta["title"].startswith(QUESTION) and not LIVE_MENTION.search(meta["title"])
        assert (
            meta["url"] == f"https://discord.com/channels/{fake.guild_id}/{general}/{reply['id']}"
        )
        assert meta["date"] == dt.datetime.now(dt.UTC).date().isoformat()
        assert "author" not in meta  # LEARNED_INCLUDE_AUTHOR is off by default
        assert ANSWER in text and "@\u200beveryone" in text and not LIVE_MENTION.search(text)

        await learn.reindexer.wait()  # one background re-index
        assert learn.reindexer.runs == 1
        assert service.index_info()["documents"] == 3

        # The same question is now answered, citing the saved message.
        fake.send_slash("ask", {"question": QUESTION}, user="bob", channel_id=general)
        answers = await fake.wait_for(lambda: at_least(2, answers_in(fake, general)), timeout=20)
        answered = answers[-1]
        assert "nine in the evening" in answered["content"] and "[1]" in answered["content"]
        assert meta["url"] in sources_text(answered)
        await idle(fake, bot)

        # /forget: moderators only, only files inside LEARNED_DIR.
        fake.send_slash("forget", {"path": shown}, user="bob", channel_id=general)
        await fake.wait_for(lambda: at_least(2, saying(fake, "Manage Server")))
        for outside in ("north-korea-begins-mining-bitcoin.md", "learned/../eclipse.md", "../x.md"):
            fake.send_slash("forget", {"path": outside}, user="alice", channel_id=general)
        await fake.wait_for(lambda: at_least(3, saying(fake, "No saved answer")))
        assert (settings.corpus_dir / "north-korea-begins-mining-bitcoin.md").exists()
        fake.send_slash("forget", {"path": shown}, user="alice", channel_id=general)
        (removed,) = await fake.wait_for(lambda: saying(fake, "Removed"))
        await learn.reindexer.wait()
        assert not path.exists() and service.index_info()["documents"] == 2
        replies = [
            r.json["data"] for r in fake.message_requests() if r.path.startswith("/interactions/")
        ]
        assert all(d["flags"] & FLAG_EPHEMERAL for d in replies)
        assert refusal


@pytest.mark.slow
async def test_learned_from_a_thread_with_author(
    fake_discord: FakeDiscord, index_settings: BotSettings, tmp_path: Path
) -> None:
    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(index_settings, fake, learned_include_author=True)
    service = build_service(settings, build_if_missing=False)
    async with running_bot(fake, settings, service, tmp_path / "fb.sqlite3") as bot:
        learn = bot.get_cog("Learn")
        question = fake.send_message(general, "bob", f"<@{fake.bot_id}> {QUESTION}")
        thread_id = int(question["id"])
        await fake.wait_for(lambda: answers_in(fake, thread_id), timeout=20)
        await idle(fake, bot)
        # alice answers in the thread (no reply): the question is the thread's first message
        answer = fake.send_message(thread_id, "alice", ANSWER)
        fake.send_message_command("Add to knowledge base", answer, user="alice")
        (saved,) = await fake.wait_for(lambda: saying(fake, "Saved as"), timeout=10)
        shown = re.search(r"`(learned/[^`]+\.md)`", saved).group(1)
        meta = front_matter((settings.corpus_dir / shown).read_text(encoding="utf-8"))
        assert meta["title"] == QUESTION  # the bot mention stripped
        assert meta["author"] == "Alice"
        assert meta["url"].endswith(f"/{thread_id}/{answer['id']}")
        # A reply to the bot's (declined) answer answers the question the bot was asked.
        (declined,) = answers_in(fake, thread_id)[:1]
        fixed = fake.send_message(
            thread_id, "alice", f"{ANSWER} (again)", message_reference=declined
        )
        fake.send_message_command("Add to knowledge base", fixed, user="alice")
        await fake.wait_for(lambda: at_least(2, saying(fake, "Saved as")), timeout=10)
        again = re.search(r"`(learned/[^`]+\.md)`", saying(fake, "Saved as")[1]).group(1)
        assert front_matter((settings.corpus_dir / again).read_text("utf-8"))["title"] == QUESTION
        # The bot's own messages are not saved.
        fake.send_message_command("Add to knowledge base", declined, user="alice")
        await fake.wait_for(lambda: saying(fake, "my own message"), timeout=10)
        # the thread's first message itself is no answer to anything
        fake.send_message_command("Add to knowledge base", question, user="alice")
        await fake.wait_for(lambda: saying(fake, "couldn't tell which question"), timeout=10)
        await learn.reindexer.wait()
        await idle(fake, bot)


def test_learned_document_and_filename() -> None:
    text = learned_document(
        question='Why "quotes": and\n<@123456789012345678> @here?',
        answer="Because.\r\n\r\n" + "x " * 3000,
        url="https://discord.com/channels/1/2/3",
        date="2026-11-27",
    )
    meta = front_matter(text)
    assert meta == {
        "title": 'Why "quotes": and <@\u200b123456789012345678> @\u200bhere?',
        "url": "https://discord.com/channels/1/2/3",
        "date": "2026-11-27",
    }
    body = text.split("---\n", 2)[2]
    assert len(body) < 4100 and "\r" not in body and body.strip().endswith("…")
    assert learned_filename("Why is the sky blue?!", 42) == "why-is-the-sky-blue-42.md"
    assert learned_filename("¿Qué?", 7) == "que-7.md"
    assert learned_filename("<>", 7) == "answer-7.md"
    assert len(learned_filename("word " * 100, 7)) <= 60 + len("-7.md")


def test_resolve_learned_stays_inside_learned_dir(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "learned").mkdir(parents=True)
    (corpus / "learned" / "a-1.md").write_text("x", encoding="utf-8")
    (corpus / "doc.md").write_text("x", encoding="utf-8")
    (corpus / "learned" / "notes.txt").write_text("x", encoding="utf-8")
    settings = BotSettings(_env_file=None, corpus_dir=corpus, index_dir=tmp_path / "i")
    target = (corpus / "learned" / "a-1.md").resolve()
    assert resolve_learned("learned/a-1.md", settings) == target
    assert resolve_learned("a-1.md", settings) == target
    for bad in ("doc.md", "learned/../doc.md", "../doc.md", "learned/notes.txt", "", "learned"):
        assert resolve_learned(bad, settings) is None, bad
    elsewhere = BotSettings(
        _env_file=None, corpus_dir=corpus, index_dir=tmp_path / "i", learned_dir=tmp_path / "L"
    )
    assert elsewhere.learned_path == tmp_path / "L"
    assert resolve_learned("learned/a-1.md", elsewhere) is None
