"""Admin commands: `/stats`, `/reindex` (Manage Server) and `/sources` (everyone).

`default_permissions` only hides commands by default and a server can override it, so the
Manage Server commands also check `interaction.permissions` themselves.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.render import render_error, render_reindex, render_sources, render_stats
from bot.errors import user_text
from index.errors import CorpusBotError

if TYPE_CHECKING:
    from bot.discord.client import CorpusBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


class Admin(commands.Cog):
    def __init__(self, bot: CorpusBot) -> None:
        self.bot = bot
        self._reindexing = asyncio.Lock()

    async def _refuse_non_admin(self, interaction: discord.Interaction) -> bool:
        perms = interaction.permissions
        if perms.manage_guild or perms.administrator:
            return False
        await interaction.response.send_message(user_text("needs_manage"), ephemeral=True)
        return True

    @app_commands.command(name="stats", description="Answered and declined questions, feedback")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def stats(self, interaction: discord.Interaction) -> None:
        if await self._refuse_non_admin(interaction):
            return
        stats = await asyncio.to_thread(self.bot.feedback.stats)
        await interaction.response.send_message(
            render_stats(stats), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @app_commands.command(name="reindex", description="Re-index the corpus (new and changed files)")
    @app_commands.describe(full="Rebuild everything from scratch instead of only what changed")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def reindex(self, interaction: discord.Interaction, full: bool = False) -> None:
        if await self._refuse_non_admin(interaction):
            return
        if self._reindexing.locked():
            await interaction.response.send_message(
                "A re-index is already running.", ephemeral=True
            )
            return
        async with self._reindexing:
            await interaction.response.defer(thinking=True, ephemeral=True)
            log.info("re-index (full=%s) requested by %s", full, interaction.user.id)
            try:
                # The bot keeps answering from the active generation meanwhile.
                summary = await asyncio.to_thread(self.bot.service.refresh_index, full=full)
                text = render_reindex(summary.to_dict())
            except CorpusBotError as exc:
                text = render_error(str(exc))
            except Exception:
                log.exception("re-index failed")
                text = user_text("admin_failed")
            await self._report(interaction, text)

    async def _report(self, interaction: discord.Interaction, text: str) -> None:
        """The /reindex result as an ephemeral follow-up, else (the interaction token lasts
        15 minutes, a long re-index may outlive it) as a DM to the admin who asked."""
        try:
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        except discord.HTTPException as exc:
            log.warning("could not send the re-index result as a follow-up (%s); sending a DM", exc)
        try:
            await interaction.user.send(text, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:
            log.exception("could not deliver the re-index result to %s", interaction.user.id)

    @app_commands.command(name="sources", description="List the indexed documents")
    async def sources(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        service = self.bot.service  # a failure is shown by CorpusBot.on_app_command_error
        docs, info = await asyncio.to_thread(lambda: (service.sources(), service.index_info()))
        embed = discord.Embed.from_dict(render_sources(docs, info))
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: CorpusBot) -> None:
    await bot.add_cog(Admin(bot))
