""" "Ask a human": pass a declined or 👎 question to people in DISCORD_HELP_CHANNEL_ID.

The question (and the bot's answer, if it gave one) becomes a new thread in the help channel
(a text channel: a public thread; a forum: a new post), without pinging anyone: allowed_mentions
none and mention syntax defused. The clicker gets an ephemeral link to the thread. Each answer is
handed off once; later clicks get the same link.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord

from bot.discord.render import CONTENT_MAX, thread_name, truncate
from bot.errors import user_text
from bot.mentions import neutralize_mentions

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
QUESTION_MAX = 900
ANSWER_MAX = 700

_in_flight: set[int] = set()  # answer ids being handed off right now (double clicks)


def handoff_text(
    *, question: str, answer: str | None, passed_on_by: str, source_url: str | None
) -> str:
    """The help-thread message: who passed it on, the question, the bot's answer if any."""
    where = f" from {source_url}" if source_url else ""
    lines = [
        f"**Passed on by {neutralize_mentions(passed_on_by)}**{where}; the bot could not help.",
        "",
        "**Question:** " + truncate(neutralize_mentions(question.strip()), QUESTION_MAX),
        "",
    ]
    if answer:
        lines.append("**The bot's answer** (marked not helpful):")
        lines.append(truncate(neutralize_mentions(answer.strip()), ANSWER_MAX))
    else:
        lines.append("The docs had no answer.")
    return truncate("\n".join(lines), CONTENT_MAX)


def answer_link(record: dict[str, Any]) -> str | None:
    """A link to the answer's first message (the click may come from an ephemeral 👎 reply,
    which cannot be linked)."""
    if not record.get("message_id") or not record.get("channel_id"):
        return None
    guild = record.get("guild_id") or "@me"
    return f"https://discord.com/channels/{guild}/{record['channel_id']}/{record['message_id']}"


def _message_link(message: discord.Message | None) -> str | None:
    if message is None or message.flags.ephemeral:
        return None  # an ephemeral message cannot be linked
    return message.jump_url


async def hand_off(interaction: discord.Interaction[Any], answer_id: int) -> None:
    bot = interaction.client
    help_id = bot.settings.discord_help_channel_id
    if help_id is None:
        await interaction.response.send_message(user_text("handoff_not_set_up"), ephemeral=True)
        return
    if answer_id in _in_flight:
        await interaction.response.send_message(
            "Already on its way to the helpers.", ephemeral=True
        )
        return
    _in_flight.add(answer_id)
    try:
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await _hand_off(interaction, bot, help_id, answer_id)
    except Exception:
        log.exception("hand-off of answer %s failed", answer_id)
        text = user_text("handoff_failed")
    finally:
        _in_flight.discard(answer_id)
    await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def _hand_off(
    interaction: discord.Interaction[Any], bot: Any, help_id: int, answer_id: int
) -> str:
    store = bot.feedback
    existing = await asyncio.to_thread(store.handoff_url, answer_id)
    if existing:
        return f"Already passed on to the helpers: {existing}"
    record = await asyncio.to_thread(store.answer_record, answer_id)
    if record is None:
        return user_text("answer_gone")
    channel = bot.get_channel(help_id) or await bot.fetch_channel(help_id)
    content = handoff_text(
        question=record["question"],
        answer=None if record["abstained"] else record["answer"],
        passed_on_by=interaction.user.display_name,
        source_url=answer_link(record) or _message_link(interaction.message),
    )
    name = thread_name(record["question"])
    if isinstance(channel, discord.ForumChannel):
        created = await channel.create_thread(
            name=name, content=content, allowed_mentions=NO_MENTIONS, suppress_embeds=True
        )
        thread = created.thread
    elif isinstance(channel, discord.TextChannel):
        thread = await channel.create_thread(
            name=name, type=discord.ChannelType.public_thread, auto_archive_duration=1440
        )
        await thread.send(content, allowed_mentions=NO_MENTIONS, suppress_embeds=True)
    else:
        log.error("DISCORD_HELP_CHANNEL_ID %s is not a text or forum channel", help_id)
        return user_text("handoff_failed")
    await asyncio.to_thread(store.record_handoff, answer_id, thread.jump_url)
    log.info("answer %s handed off to thread %s", answer_id, thread.id)
    return f"Passed on to the helpers: {thread.jump_url}"
