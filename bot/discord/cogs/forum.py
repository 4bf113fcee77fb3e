"""Forum channels (DISCORD_FORUM_CHANNEL_IDS): answer each new post once, only when cited.

A new post fires `on_thread_create`; its question is the post's title + first message (the
starter message, id == thread id, fetched if not cached). The post is claimed in the feedback
store before answering, so it is answered at most once, also across restarts and duplicate
gateway events. After (re)connecting, posts created while the bot was away (active threads in
GUILD_CREATE, newer than when the bot first watched forums) are caught up; a post a dead process
left half-done is taken over only if the thread has no message from the bot.
Follow-ups inside an answered post are handled by the Ask cog like any thread follow-up.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.discord.delivery import NO_MENTIONS, NOWHERE, compute, deliver, send_to
from bot.discord.render import Payload
from bot.discord.routing import (
    ForumPost,
    PostDecision,
    PostReply,
    post_decision,
    post_question,
    post_reply,
)
from bot.discord.views import HandoffButton
from bot.errors import user_text
from bot.models import Answer

if TYPE_CHECKING:
    from bot.discord.client import CorpusBot

log = logging.getLogger(__name__)

STARTER_FETCH_TRIES = 3


class Forum(commands.Cog):
    def __init__(self, bot: CorpusBot) -> None:
        self.bot = bot
        self.boot = secrets.token_hex(8)  # this process, as the owner of claimed posts
        self.since_ms = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def forum_ids(self) -> list[int]:
        return self.bot.settings.discord_forum_channel_ids

    async def cog_load(self) -> None:
        if self.forum_ids:
            now_ms = int(time.time() * 1000)
            self.since_ms = await asyncio.to_thread(self.bot.feedback.watch_since_ms, now_ms)

    async def cog_unload(self) -> None:
        for task in self._tasks:
            task.cancel()

    @commands.Cog.listener()
    async def on_thread_create(self, thread: discord.Thread) -> None:
        await self.consider(thread, catch_up=False)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Catch up on posts created while the bot was away (on_ready comes per new session)."""
        if not self.forum_ids:
            return
        for guild in self.bot.guilds:
            for thread in guild.threads:
                if thread.parent_id in self.forum_ids:
                    task = asyncio.create_task(self.consider(thread, catch_up=True))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def consider(self, thread: discord.Thread, *, catch_up: bool) -> None:
        me = self.bot.user
        if me is None or not self.forum_ids:
            return
        store = self.bot.feedback
        status = await asyncio.to_thread(store.post_status, thread.id)
        post = ForumPost(
            thread_id=thread.id,
            parent_id=thread.parent_id,
            owner_id=thread.owner_id,
            created_ms=int(discord.utils.snowflake_time(thread.id).timestamp() * 1000),
        )
        decision = post_decision(
            post,
            forum_ids=self.forum_ids,
            bot_id=me.id,
            handled=status is not None,
            not_before_ms=self.since_ms,
        )
        if decision is PostDecision.IGNORE:
            return
        if decision is PostDecision.DONE:
            if not (catch_up and status is not None and status[0] == "pending"):
                return
            if status[1] == self.boot or await self._bot_replied(thread):
                return  # ours in flight, or a dead process did reply
            if not await asyncio.to_thread(store.take_over_post, thread.id, self.boot):
                return
        elif not await asyncio.to_thread(store.claim_post, thread.id, self.boot):
            return  # a concurrent handler (live event vs. catch-up) claimed it first
        outcome = "error"
        await self.bot.limiter.acquire()
        try:
            outcome = await self._answer(thread)
        except Exception:
            log.exception("could not answer forum post %s", thread.id)
        finally:
            self.bot.limiter.release()
            try:
                await asyncio.to_thread(store.finish_post, thread.id, outcome, self.boot)
            except sqlite3.Error as exc:  # shutting down: the post stays "pending" for takeover
                log.warning("could not record forum post %s as %s: %s", thread.id, outcome, exc)

    async def _answer(self, thread: discord.Thread) -> str:
        starter = await self._starter(thread)
        if starter is None or starter.author.bot:
            return "silent"
        settings = self.bot.settings
        question = post_question(
            thread.name, starter.content, max_chars=settings.max_question_chars
        )
        if not question:
            return "silent"
        result = await compute(self.bot, question, ())
        reply = post_reply(result, decline_notice=settings.discord_forum_decline_notice)
        log.info("forum post %s: %s", thread.id, reply.value)
        if reply is not PostReply.ANSWER:
            await self._decline(thread, result, starter, notice=reply is PostReply.NOTICE)
        else:

            async def send(payload: Payload, view: discord.ui.View | None) -> discord.Message:
                return await send_to(thread, payload, view)

            await deliver(
                self.bot,
                result,
                send=send,
                user_id=starter.author.id,
                channel_id=thread.id,
                guild_id=thread.guild.id,
            )
        return reply.value

    async def _decline(
        self,
        thread: discord.Thread,
        result: Answer | str,
        starter: discord.Message,
        *,
        notice: bool,
    ) -> None:
        """Record the declined question (for /stats' gaps) nowhere visible, so no follow-up
        conversation starts in the post; post the one-line notice if asked to, with
        "Ask a human" if a help channel is set."""
        store = self.bot.feedback
        answer_id = None
        if isinstance(result, Answer):
            answer_id = await asyncio.to_thread(
                store.record_answer,
                answer=result,
                user_id=starter.author.id,
                channel_id=NOWHERE,
                guild_id=thread.guild.id,
            )
        if not notice:
            return
        view = None
        if answer_id is not None and self.bot.settings.discord_help_channel_id is not None:
            view = discord.ui.View(timeout=None)
            view.add_item(HandoffButton(answer_id))
        sent = await thread.send(
            user_text("forum_no_answer"),
            view=view or discord.utils.MISSING,
            allowed_mentions=NO_MENTIONS,
        )
        if answer_id is not None:
            await asyncio.to_thread(store.record_messages, answer_id, [sent.id])

    async def _starter(self, thread: discord.Thread) -> discord.Message | None:
        """The post's first message: from the cache, else fetched (it may lag the thread)."""
        for attempt in range(STARTER_FETCH_TRIES):
            if thread.starter_message is not None:
                return thread.starter_message
            try:
                return await thread.fetch_message(thread.id)
            except discord.NotFound:
                await asyncio.sleep(0.5 * (attempt + 1))
        log.warning("forum post %s has no starter message", thread.id)
        return None

    async def _bot_replied(self, thread: discord.Thread) -> bool:
        me = self.bot.user
        try:
            async for message in thread.history(limit=50):
                if me is not None and message.author.id == me.id:
                    return True
        except discord.HTTPException as exc:
            log.warning("could not read forum post %s: %s", thread.id, exc)
            return True  # unsure: never risk a second answer
        return False


async def setup(bot: CorpusBot) -> None:
    await bot.add_cog(Forum(bot))
