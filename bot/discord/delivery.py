"""Computing an answer and posting it: shared by the Ask, Forum and context-menu paths.

`compute` never raises (an error becomes the user-facing text); `deliver` records the answer in
the feedback store, sends its payloads through a `send` callback (interaction follow-up, channel
send, ...) and puts the 👍/👎 buttons (and "Ask a human" under a declined answer, if a help
channel is set) on the last message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import discord

from bot.discord.render import Payload, render_answer, render_error
from bot.discord.views import feedback_view
from bot.models import Answer
from index.errors import CorpusBotError

if TYPE_CHECKING:
    from bot.discord.client import CorpusBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
SORRY = "Sorry, something went wrong while answering. Please try again later."

NOWHERE = 0  # the channel_id recorded for answers only their asker saw (ephemeral)

Send = Callable[[Payload, discord.ui.View | None], Awaitable[discord.Message | None]]


async def compute(
    bot: CorpusBot, question: str, history: Sequence[tuple[str, str]]
) -> Answer | str:
    """The answer, or a user-facing message saying why there is none."""
    try:
        return await bot.service.aanswer(question, history)
    except CorpusBotError as exc:
        return render_error(str(exc))
    except Exception:
        log.exception("answering failed")
        return SORRY


async def deliver(
    bot: CorpusBot,
    result: Answer | str,
    *,
    send: Send,
    user_id: int,
    channel_id: int,
    guild_id: int | None,
) -> list[discord.Message]:
    """Post `result`; returns the messages sent."""
    if isinstance(result, str):
        msg = await send(Payload(content=result), None)
        return [msg] if msg is not None else []
    store = bot.feedback
    answer_id = await asyncio.to_thread(
        store.record_answer,
        answer=result,
        user_id=user_id,
        channel_id=channel_id,
        guild_id=guild_id,
    )
    handoff = result.abstained and bot.settings.discord_help_channel_id is not None
    payloads = render_answer(result)
    sent = []
    for i, payload in enumerate(payloads):
        view = feedback_view(answer_id, handoff=handoff) if i == len(payloads) - 1 else None
        sent.append(await send(payload, view))
    messages = [m for m in sent if m is not None]
    await asyncio.to_thread(store.record_messages, answer_id, [m.id for m in messages])
    return messages
