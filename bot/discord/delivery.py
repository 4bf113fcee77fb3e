"""Computing an answer and posting it: shared by the Ask, Forum and context-menu paths.

`compute` never raises (an error becomes the user-facing text); `deliver` records the answer in
the feedback store, sends its payloads through a `send` callback (interaction follow-up, channel
send, ...) and puts the 👍/👎 buttons (and "Ask a human" under a declined answer, if a help
channel is set) on the last message.

In LLM mode an answer streams: `DraftStream` posts a draft message as soon as the model has
written a sentence that verifies (`LLMAnswerer.draft`: the verified complete sentences so far,
without [n] markers, ending in a "writing" marker) and edits it at most once per
`EDIT_INTERVAL_S` (Discord allows about 5 edits per 5 s on a channel). So a claim that fails
verification is never shown, not even for a moment. The final answer then replaces the draft
(`deliver(..., draft=)`), with its citations; a fallback or error message replaces it the same
way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import discord

from bot.discord.render import Payload, render_answer, render_error, truncate
from bot.discord.views import feedback_view
from bot.errors import user_text
from bot.models import Answer
from index.errors import CorpusBotError

if TYPE_CHECKING:
    from bot.discord.client import CorpusBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()

NOWHERE = 0  # the channel_id recorded for answers only their asker saw (ephemeral)
EDIT_INTERVAL_S = 1.0  # at most one draft edit per second (Discord: ~5 edits / 5 s / channel)
WRITING = "✍️ *writing…*"  # the end of a draft: the answer is still being written
DRAFT_MAX_CHARS = 1800  # draft text shown (the message limit is 2000)

Send = Callable[[Payload, discord.ui.View | None], Awaitable[discord.Message | None]]


async def send_followup(
    interaction: discord.Interaction,
    payload: Payload,
    view: discord.ui.View | None,
    *,
    ephemeral: bool = False,
) -> discord.Message:
    """Post one payload as an interaction follow-up (mentions never ping)."""
    return await interaction.followup.send(
        content=payload.content or discord.utils.MISSING,
        embeds=payload.discord_embeds(),
        view=view or discord.utils.MISSING,
        allowed_mentions=NO_MENTIONS,
        suppress_embeds=not payload.embeds,
        ephemeral=ephemeral,
        wait=True,
    )


async def send_to(
    target: discord.abc.Messageable,
    payload: Payload,
    view: discord.ui.View | None,
    *,
    reference: discord.MessageReference | None = None,
) -> discord.Message:
    """Post one payload in a channel or thread (mentions never ping)."""
    return await target.send(
        content=payload.content or None,
        embeds=payload.discord_embeds(),
        view=view,
        allowed_mentions=NO_MENTIONS,
        suppress_embeds=not payload.embeds,
        reference=reference,
    )


async def compute(
    bot: CorpusBot,
    question: str,
    history: Sequence[tuple[str, str]],
    *,
    draft: DraftStream | None = None,
) -> Answer | str:
    """The answer, or a user-facing message saying why there is none; with `draft`, the LLM's
    text is shown in it while being written."""
    try:
        if draft is not None:
            return await bot.service.aanswer(question, history, on_draft=draft.on_draft)
        return await bot.service.aanswer(question, history)
    except Exception as exc:
        if not isinstance(exc, CorpusBotError):
            log.exception("answering failed")
        return error_text(exc)


def error_text(exc: BaseException) -> str:
    """What a user is shown for a failure: a CorpusBotError's own message, else the one
    "Sorry" text of the table (the details go to the log, never to the user)."""
    if isinstance(exc, CorpusBotError):
        return render_error(str(exc))
    return user_text("internal")


async def deliver(
    bot: CorpusBot,
    result: Answer | str,
    *,
    send: Send,
    user_id: int,
    channel_id: int,
    guild_id: int | None,
    draft: discord.Message | None = None,
) -> list[discord.Message]:
    """Post `result`; returns the messages sent. The first message replaces `draft` if given."""
    if draft is not None:
        send = _replacing(draft, send)
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


def draft_content(text: str) -> str:
    """A draft message: the text so far and the "still writing" marker."""
    return f"{truncate(text, DRAFT_MAX_CHARS)} …\n\n{WRITING}"


def _replacing(draft: discord.Message, send: Send) -> Send:
    """`send`, except that the first payload is an edit of `draft` (a new message if that fails)."""
    pending = [draft]

    async def first_replaces(payload: Payload, view: discord.ui.View | None):
        if not pending:
            return await send(payload, view)
        msg = pending.pop()
        kwargs = {
            "content": payload.content or None,
            "embeds": payload.discord_embeds(),
            "view": view,
            "allowed_mentions": NO_MENTIONS,
        }
        if not isinstance(msg, discord.WebhookMessage):
            kwargs["suppress"] = not payload.embeds
        try:
            edited = await msg.edit(**kwargs)
        except discord.HTTPException as exc:  # the draft is gone: post the answer anew
            log.warning("could not replace the draft %s (%s); sending the answer", msg.id, exc)
            with contextlib.suppress(discord.HTTPException):
                await msg.delete()
            return await send(payload, view)
        return edited if edited is not None else msg

    return first_replaces


class DraftStream:
    """Shows an answer while the model writes it: one draft message, edited at most once per
    `interval_s`. Feed it with `on_draft` (from any thread); `close()` stops it and returns the
    draft message (None if none was posted) once the next edit is allowed, for the final
    answer to replace.
    """

    def __init__(
        self,
        post: Callable[[Payload], Awaitable[discord.Message | None]],
        *,
        clean: Callable[[str], str],
        interval_s: float = EDIT_INTERVAL_S,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._post = post
        self._clean = clean  # last guard on what is shown
        self._interval_s = interval_s
        self._text = ""
        self._dirty = asyncio.Event()
        self._closed = False
        self._broken = False
        self._task: asyncio.Task[None] | None = None
        self._last = float("-inf")  # loop time the last post/edit finished
        self._shown = ""
        self.message: discord.Message | None = None
        self.edits = 0  # draft edits made (the post and the final replacement not counted)
        self.first_shown_at: float | None = None  # loop time the draft was posted

    def on_draft(self, text: str) -> None:
        """Thread-safe: the answering thread calls this with the whole draft text so far."""
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody to show it to
            self._loop.call_soon_threadsafe(self._feed, text)

    def _feed(self, text: str) -> None:
        if self._closed or self._broken:
            return
        self._text = text
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name="draft-stream")

    async def _pump(self) -> None:
        while True:
            await self._dirty.wait()
            if self._closed:
                return
            wait = self._last + self._interval_s - self._loop.time()
            if self.message is not None and wait > 0:
                await asyncio.sleep(wait)
                if self._closed:
                    return
            self._dirty.clear()
            shown = self._clean(self._text)
            if not shown.strip() or shown == self._shown:
                continue
            content = draft_content(shown)
            try:
                if self.message is None:
                    self.message = await self._post(Payload(content=content))
                    self.first_shown_at = self._loop.time()
                    if self.message is None:
                        self._broken = True
                        return
                else:
                    kwargs = {"content": content, "allowed_mentions": NO_MENTIONS}
                    if not isinstance(self.message, discord.WebhookMessage):
                        kwargs["suppress"] = True
                    await self.message.edit(**kwargs)
                    self.edits += 1
                self._shown = shown
            except discord.HTTPException as exc:
                log.warning("draft update failed: %s", exc)
                if self.message is None:
                    self._broken = True  # no draft: the answer is simply sent at the end
                    return
            finally:
                self._last = self._loop.time()

    async def close(self) -> discord.Message | None:
        """Stop drafting; the draft message, once it may be edited again (or None)."""
        self._closed = True
        self._dirty.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self.message is not None:
            wait = self._last + self._interval_s - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        return self.message

    async def discard(self) -> None:
        """Stop drafting and delete the draft (answering failed; the caller says so)."""
        message = await self.close()
        if message is not None:
            with contextlib.suppress(discord.HTTPException):
                await message.delete()


def make_draft(bot: CorpusBot, post: Callable[[Payload], Awaitable[discord.Message | None]]):
    """A DraftStream when answers stream (LLM mode), else None (the offline answer does not)."""
    if not getattr(bot.service, "streams", False):
        return None
    from bot.mentions import neutralize_mentions

    return DraftStream(post, clean=neutralize_mentions)
