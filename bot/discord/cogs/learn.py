"""Learning from moderators: "Add to knowledge base" (message context menu) and `/forget`.

Both need Manage Server, checked by the bot itself (`interaction.permissions`). "Add to
knowledge base" on a message saves it as the answer to its question (the message it replies to,
or the stored question of the bot answer it replies to; else the thread's first message) as Markdown under LEARNED_DIR, then re-indexes in the
background; `/forget path:` deletes such a file and re-indexes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.learned import (
    BackgroundReindex,
    display_path,
    learned_document,
    learned_filename,
    learned_files,
    resolve_learned,
    write_atomically,
)
from bot.discord.render import strip_bot_mention
from bot.discord.routing import post_question
from bot.errors import user_text
from bot.mentions import neutralize_mentions

if TYPE_CHECKING:
    from bot.discord.client import CorpusBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
ADD_MENU = "Add to knowledge base"


def _is_admin(interaction: discord.Interaction) -> bool:
    perms = interaction.permissions
    return perms.manage_guild or perms.administrator


class Learn(commands.Cog):
    def __init__(self, bot: CorpusBot) -> None:
        self.bot = bot
        self.reindexer = BackgroundReindex(bot.settings)
        self.add_menu = app_commands.ContextMenu(name=ADD_MENU, callback=self.add_to_knowledge_base)
        self.add_menu.default_permissions = discord.Permissions(manage_guild=True)
        self.add_menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.add_menu)
        settings = self.bot.settings
        if not settings.learned_path.resolve().is_relative_to(settings.corpus_dir.resolve()):
            log.warning(
                "LEARNED_DIR %s is outside CORPUS_DIR: saved answers will not be indexed",
                settings.learned_path,
            )

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(ADD_MENU, type=self.add_menu.type)

    # --- "Add to knowledge base" -----------------------------------------------------------

    async def add_to_knowledge_base(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        if not _is_admin(interaction):
            await interaction.response.send_message(user_text("needs_manage"), ephemeral=True)
            return
        answer = message.content.strip()
        if not answer:
            await interaction.response.send_message(user_text("no_text_to_save"), ephemeral=True)
            return
        if self.bot.user is not None and message.author.id == self.bot.user.id:
            await interaction.response.send_message(user_text("own_message"), ephemeral=True)
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        try:
            question = await self._question_for(message)
            if not question:
                await interaction.followup.send(user_text("which_question"), ephemeral=True)
                return
            settings = self.bot.settings
            guild_id = message.guild.id if message.guild else "@me"
            url = f"https://discord.com/channels/{guild_id}/{message.channel.id}/{message.id}"
            text = learned_document(
                question=question,
                answer=answer,
                url=url,
                date=message.created_at.date().isoformat(),
                author=message.author.display_name if settings.learned_include_author else None,
            )
            path = settings.learned_path / learned_filename(question, message.id)
            await asyncio.to_thread(write_atomically, path, text)
            self.reindexer.request()
            shown = display_path(path, settings)
            log.info("saved %s to the knowledge base (by %s)", shown, interaction.user.id)
            await interaction.followup.send(
                f"Saved as `{shown}`; re-indexing in the background, so it can be cited in a "
                f"moment. `/forget path:{shown}` removes it.",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
        except Exception:
            log.exception("could not save message %s to the knowledge base", message.id)
            await interaction.followup.send(user_text("save_failed"), ephemeral=True)

    async def _question_for(self, message: discord.Message) -> str | None:
        """The question `message` answers: the message it replies to, else its thread's first."""
        me_id = self.bot.user.id if self.bot.user else 0
        ref = message.reference
        if ref is not None and ref.message_id is not None:
            # A reply to one of the bot's answers (say, a declined one) answers its question.
            pair = await asyncio.to_thread(self.bot.feedback.answer_for_message, ref.message_id)
            if pair is not None:
                return pair[0]
            replied = ref.resolved if isinstance(ref.resolved, discord.Message) else None
            if replied is None:
                try:
                    replied = await message.channel.fetch_message(ref.message_id)
                except discord.HTTPException:
                    replied = None
            if replied is not None and replied.author.id != me_id and replied.content.strip():
                return strip_bot_mention(replied.content, me_id)
        channel = message.channel
        if not isinstance(channel, discord.Thread) or message.id == channel.id:
            return None
        first = await self._thread_first(channel)
        if first is None or first.id == message.id:
            return None
        question = strip_bot_mention(first.content, me_id)
        if isinstance(channel.parent, discord.ForumChannel):
            question = post_question(
                channel.name, question, max_chars=self.bot.settings.max_question_chars
            )
        return question or None

    async def _thread_first(self, thread: discord.Thread) -> discord.Message | None:
        """A forum post's starter, the channel message a thread was started from, or else the
        thread's oldest message."""
        if thread.starter_message is not None:
            return thread.starter_message
        for where in (thread, thread.parent):
            if where is None or isinstance(where, discord.ForumChannel):
                continue
            try:
                return await where.fetch_message(thread.id)
            except discord.HTTPException:
                pass
        async for first in thread.history(limit=1, oldest_first=True):
            return first
        return None

    # --- /forget ---------------------------------------------------------------------------

    @app_commands.command(name="forget", description="Remove an answer saved to the knowledge base")
    @app_commands.describe(path="The saved file, as shown when it was saved (learned/....md)")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def forget(self, interaction: discord.Interaction, path: str) -> None:
        if not _is_admin(interaction):
            await interaction.response.send_message(user_text("needs_manage"), ephemeral=True)
            return
        settings = self.bot.settings
        target = await asyncio.to_thread(resolve_learned, path, settings)
        if target is None:
            named = neutralize_mentions(path.replace("`", "'"))[:200]
            await interaction.response.send_message(
                f"No saved answer at `{named}`.",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        await asyncio.to_thread(target.unlink, missing_ok=True)
        self.reindexer.request()
        shown = display_path(target, settings)
        log.info("forgot %s (by %s)", shown, interaction.user.id)
        await interaction.response.send_message(
            f"Removed `{shown}`; re-indexing in the background.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @forget.autocomplete("path")
    async def _forget_paths(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if not _is_admin(interaction):
            return []
        settings = self.bot.settings
        files = await asyncio.to_thread(learned_files, settings)
        shown = [display_path(p, settings) for p in files]
        return [
            app_commands.Choice(name=s[:100], value=s)
            for s in shown
            if current.lower() in s.lower() and len(s) <= 100
        ][:25]


async def setup(bot: CorpusBot) -> None:
    await bot.add_cog(Learn(bot))
