"""Questions: `/ask`, @mentions (answered in a thread), follow-ups in threads and replies, DMs.

Limits are checked before anything is sent, so a refused user gets one short message; an
admitted one gets a deferral/typing indicator at once while the answer runs in a worker
thread (`service.aanswer`), never on the event loop. In LLM mode `/ask` and @mention answers
stream into a draft message that the verified answer replaces (`delivery.DraftStream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.delivery import (
    NOWHERE,
    DraftStream,
    compute,
    deliver,
    make_draft,
    send_followup,
    send_to,
)
from bot.discord.render import Payload, strip_bot_mention, thread_name
from bot.discord.routing import HistoryFrom, channel_allowed, is_forum_starter, message_plan
from bot.errors import user_text
from bot.followup import is_acknowledgement
from bot.mentions import mentions_user
from bot.models import Answer

if TYPE_CHECKING:
    from bot.discord.client import CorpusBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
ASK_DOCS_MENU = "Ask the docs"
HISTORY_PAIRS = 5


@contextlib.asynccontextmanager
async def typing(channel: discord.abc.Messageable) -> AsyncIterator[None]:
    """`channel.typing()`, best effort: a failed typing request must not cost the answer."""
    indicator = channel.typing()
    try:
        await indicator.__aenter__()
    except discord.HTTPException as exc:
        log.debug("typing indicator failed: %s", exc)
        yield
        return
    try:
        yield
    finally:
        await indicator.__aexit__(None, None, None)


class Ask(commands.Cog):
    def __init__(self, bot: CorpusBot) -> None:
        self.bot = bot
        # Context menus cannot be declared with a decorator inside a cog.
        self.ask_docs_menu = app_commands.ContextMenu(
            name=ASK_DOCS_MENU, callback=self.ask_the_docs
        )

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.ask_docs_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(ASK_DOCS_MENU, type=self.ask_docs_menu.type)

    # --- /ask ----------------------------------------------------------------------------

    async def _admitted(self, interaction: discord.Interaction) -> bool:
        """The rate limiter lets the user ask now; else they are told why, privately."""
        refusal = await self.bot.limiter.admit(interaction.user.id)
        if refusal is not None:
            await interaction.response.send_message(refusal.message, ephemeral=True)
            return False
        return True

    @app_commands.command(name="ask", description="Ask a question about the indexed documents")
    @app_commands.describe(question="Your question")
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        channel = interaction.channel
        if not self._allowed(channel, dm=interaction.guild_id is None):
            await interaction.response.send_message(user_text("not_here"), ephemeral=True)
            return
        if not await self._admitted(interaction):
            return
        draft: DraftStream | None = None
        try:
            await interaction.response.defer(thinking=True)  # Discord wants a reply within 3 s
            history: Sequence[tuple[str, str]] = ()
            if isinstance(channel, discord.Thread):
                history = await self._history(channel.id)

            async def send(payload: Payload, view: discord.ui.View | None) -> discord.Message:
                return await send_followup(interaction, payload, view)

            draft = make_draft(self.bot, lambda payload: send(payload, None))
            result = await self._compute(question, history, draft=draft)
            await deliver(
                self.bot,
                result,
                send=send,
                user_id=interaction.user.id,
                channel_id=interaction.channel_id or 0,
                guild_id=interaction.guild_id,
                draft=await draft.close() if draft is not None else None,
            )
        except Exception:
            log.exception("could not answer /ask")
            if draft is not None:
                await draft.discard()
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(user_text("internal"), allowed_mentions=NO_MENTIONS)
        finally:
            self.bot.limiter.release()

    # --- "Ask the docs" (message context menu) -------------------------------------------

    async def ask_the_docs(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """Answer the selected message's text as a reply to it; confirm to the invoker only.

        Only a cited answer is posted in the channel; a declined one (or an error) is shown to
        the invoker alone, so nobody's message gets a public "I don't know" under it.
        """
        channel = interaction.channel
        if not self._allowed(channel, dm=interaction.guild_id is None):
            await interaction.response.send_message(user_text("not_here"), ephemeral=True)
            return
        me = self.bot.user
        question = strip_bot_mention(message.content, me.id if me else 0)
        if not question or (me is not None and message.author.id == me.id):
            await interaction.response.send_message(user_text("no_question"), ephemeral=True)
            return
        if not await self._admitted(interaction):
            return
        try:
            await interaction.response.defer(thinking=True, ephemeral=True)
            history: Sequence[tuple[str, str]] = ()
            if isinstance(channel, discord.Thread):
                history = await self._history(channel.id)
            result = await self._compute(question, history)
            public = isinstance(result, Answer) and not result.abstained and bool(result.citations)
            reference = message.to_reference(fail_if_not_exists=False)

            async def send(payload: Payload, view: discord.ui.View | None) -> discord.Message:
                nonlocal reference
                if not public:
                    return await send_followup(interaction, payload, view, ephemeral=True)
                ref, reference = reference, None  # the first message replies to the question
                return await send_to(message.channel, payload, view, reference=ref)

            sent = await deliver(
                self.bot,
                result,
                send=send,
                user_id=interaction.user.id,
                # An answer only the invoker saw is no conversation in the channel: recorded
                # nowhere, so it makes no thread follow-up-enabled and is no history there.
                channel_id=message.channel.id if public else NOWHERE,
                guild_id=interaction.guild_id,
            )
            if public and sent:
                await interaction.followup.send(
                    f"Answered under the message: {sent[0].jump_url}",
                    ephemeral=True,
                    allowed_mentions=NO_MENTIONS,
                )
        finally:  # a failure is shown (to the invoker only) by CorpusBot.on_app_command_error
            self.bot.limiter.release()

    # --- messages ------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if message.author.bot or me is None or message.author.id == me.id:
            return
        channel = message.channel
        if is_forum_starter(
            message_id=message.id,
            channel_id=channel.id,
            parent_id=getattr(channel, "parent_id", None),
            forum_ids=self.bot.settings.discord_forum_channel_ids,
        ):
            return  # a new forum post: the Forum cog answers it (once)
        mentioned = mentions_user(message.content, me.id)
        plan = await self._plan(message, mentioned=mentioned)
        if plan is None:
            return
        history, in_thread = plan

        question = strip_bot_mention(message.content, me.id)
        if not question:
            if mentioned:
                await self._reply(message, user_text("hint"))
            return
        refusal = await self.bot.limiter.admit(message.author.id)
        if refusal is not None:
            await self._reply(message, refusal.message)
            return
        draft: DraftStream | None = None
        try:
            target: discord.abc.Messageable | None = None  # chosen at the first message sent
            reference = message.to_reference(fail_if_not_exists=False)

            async def send(payload: Payload, view: discord.ui.View | None) -> discord.Message:
                nonlocal reference, target
                if target is None:  # a streamed draft: an answer is coming
                    target = await self._open_thread(message, question) if in_thread else channel
                # The first message replies to the question unless it starts a new thread.
                ref = reference if target is channel else None
                reference = None
                return await send_to(target, payload, view, reference=ref)

            draft = make_draft(self.bot, lambda payload: send(payload, None))
            async with typing(channel):
                result = await self._compute(question, history, draft=draft)
            shown = await draft.close() if draft is not None else None
            if target is None:
                target = channel
                if in_thread and isinstance(result, Answer):
                    target = await self._open_thread(message, question)
            await deliver(
                self.bot,
                result,
                send=send,
                user_id=message.author.id,
                channel_id=getattr(target, "id", channel.id),
                guild_id=message.guild.id if message.guild else None,
                draft=shown,
            )
        except Exception:
            log.exception("could not answer message %s", message.id)
            if draft is not None:
                await draft.discard()
            await self._reply(message, user_text("internal"))
        finally:
            self.bot.limiter.release()

    # --- helpers -------------------------------------------------------------------------

    async def _plan(
        self, message: discord.Message, *, mentioned: bool
    ) -> tuple[list[tuple[str, str]], bool] | None:
        """Whether to answer a message: None, or (history, answer in a new thread?).

        The decision is `routing.message_plan`; this gathers its facts (stored answers and
        history are looked up only when the decision needs them).
        """
        channel, me = message.channel, self.bot.user
        dm = message.guild is None
        allowed = not dm and self._allowed(channel, dm=False)
        in_thread = isinstance(channel, discord.Thread)
        replied = await self._replied_history(message) if allowed else None
        followup_thread = (
            allowed
            and in_thread
            and (
                channel.owner_id == me.id
                or await asyncio.to_thread(self.bot.feedback.has_answered_in, channel.id)
            )
        )
        plan = message_plan(
            dm=dm,
            allow_dms=self.bot.settings.discord_allow_dms,
            allowed=allowed,
            in_thread=in_thread,
            followup_thread=followup_thread,
            replies_to_bot=replied is not None,
            mentioned=mentioned,
            text_channel=isinstance(channel, discord.TextChannel),
            mentions_others=bool(message.role_mentions or message.mention_everyone)
            or any(u.id != me.id for u in message.mentions),
            acknowledgement=is_acknowledgement(message.content),
        )
        if plan is None:
            return None
        if plan.history is HistoryFrom.CHANNEL:
            return await self._history(channel.id), plan.new_thread
        if plan.history is HistoryFrom.REPLY and replied is not None:
            return replied, plan.new_thread
        return [], plan.new_thread

    def _allowed(self, channel: object, *, dm: bool) -> bool:
        if dm:
            return self.bot.settings.discord_allow_dms
        settings = self.bot.settings
        return channel_allowed(
            getattr(channel, "id", None),
            getattr(channel, "parent_id", None),
            channel_ids=settings.discord_channel_ids,
            forum_ids=settings.discord_forum_channel_ids,
        )

    async def _history(self, channel_id: int) -> list[tuple[str, str]]:
        return await asyncio.to_thread(self.bot.feedback.history, channel_id, limit=HISTORY_PAIRS)

    async def _replied_history(self, message: discord.Message) -> list[tuple[str, str]] | None:
        """History for a reply to one of our messages (None if it is not one)."""
        ref = message.reference
        if ref is None or ref.message_id is None:
            return None
        pair = await asyncio.to_thread(self.bot.feedback.answer_for_message, ref.message_id)
        if pair is not None:
            return [pair]
        resolved = ref.resolved
        if isinstance(resolved, discord.Message) and resolved.author.id == self.bot.user.id:
            return []  # ours, but not an answer (e.g. an error message)
        return None

    async def _compute(
        self,
        question: str,
        history: Sequence[tuple[str, str]],
        *,
        draft: DraftStream | None = None,
    ) -> Answer | str:
        return await compute(self.bot, question, history, draft=draft)

    async def _open_thread(
        self, message: discord.Message, question: str
    ) -> discord.abc.Messageable:
        try:
            return await message.create_thread(
                name=thread_name(question), auto_archive_duration=1440
            )
        except discord.HTTPException as exc:  # no permission, or the message is gone
            log.warning("could not create a thread, answering in place: %s", exc)
            return message.channel

    async def _reply(self, message: discord.Message, text: str) -> None:
        try:
            await message.channel.send(
                text,
                reference=message.to_reference(fail_if_not_exists=False),
                allowed_mentions=NO_MENTIONS,
            )
        except discord.HTTPException:
            log.exception("could not reply to message %s", message.id)


async def setup(bot: CorpusBot) -> None:
    await bot.add_cog(Ask(bot))
