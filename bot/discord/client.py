"""The discord.py Bot: wiring only (intents, cogs, command sync) and `run(settings)`.

Shaped like discord.py's examples/advanced_startup.py: dependencies are built outside and
passed in, `setup_hook` loads the cogs and syncs the slash commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
import time
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.cogs import EXTENSIONS
from bot.discord.delivery import NO_MENTIONS, error_text
from bot.discord.feedback import FeedbackStore
from bot.discord.limits import Limiter
from bot.discord.views import FeedbackButton, HandoffButton
from bot.errors import user_text
from bot.service import build_service
from bot.settings import BotSettings
from index.errors import CorpusBotError

log = logging.getLogger(__name__)

# The bot uses no voice: don't warn at every start that the voice libraries are missing.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False


def bot_intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True  # privileged: needed to read @mention questions
    return intents


class CorpusBot(commands.Bot):
    def __init__(
        self,
        *,
        service: Any,  # bot.service.AnswerService
        settings: BotSettings,
        feedback: FeedbackStore,
        limiter: Limiter,
        **options: Any,
    ) -> None:
        options.setdefault("intents", bot_intents())
        super().__init__(
            command_prefix=commands.when_mentioned,  # unused: no prefix commands, see on_message
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.service = service
        self.settings = settings
        self.feedback = feedback
        self.limiter = limiter
        self.tree.error(self.on_app_command_error)  # the one handler of slash/menu failures

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """A command or menu that raised: the user gets the text for the error (only to
        them), the log the details."""
        exc = getattr(error, "original", error)
        command = interaction.command.name if interaction.command else "?"
        if not isinstance(exc, CorpusBotError):
            log.error("command %s failed", command, exc_info=exc)
        text = error_text(exc)
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            else:
                await interaction.response.send_message(
                    text, ephemeral=True, allowed_mentions=NO_MENTIONS
                )

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.add_dynamic_items(FeedbackButton, HandoffButton)  # clicks work after a restart
        if self.settings.discord_guild_id:
            guild = discord.Object(id=self.settings.discord_guild_id)
            self.tree.copy_global_to(guild=guild)  # guild commands appear at once
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()  # global commands can take a while to appear
        log.info("synced %d application commands", len(synced))

    async def on_ready(self) -> None:
        log.info("logged in as %s (%s)", self.user, getattr(self.user, "id", "?"))

    async def on_message(self, message: discord.Message) -> None:
        # Questions are handled by the Ask cog's listener; there are no prefix commands.
        return


class ShardedCorpusBot(CorpusBot, commands.AutoShardedBot):
    """The same bot over several gateway shards (settings.discord_shard_count)."""


def make_bot(
    *,
    service: Any,
    settings: BotSettings,
    feedback: FeedbackStore,
    limiter: Limiter,
    **options: Any,
) -> CorpusBot:
    cls = CorpusBot
    if settings.discord_shard_count:
        cls = ShardedCorpusBot
        options.setdefault("shard_count", settings.discord_shard_count)
    return cls(service=service, settings=settings, feedback=feedback, limiter=limiter, **options)


async def _serve(bot: CorpusBot, token: str) -> None:
    async with bot:
        await bot.start(token)


async def _check_token(token: str) -> None:
    """Log in over HTTP only (GET /users/@me): a bad token fails here, in a second."""
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(token)
    finally:
        await client.close()


def _connect(coro_factory: Any) -> int | None:
    """Run a Discord coroutine; None when it ended normally, else the exit code (after a message)."""
    try:
        asyncio.run(coro_factory())
    except discord.LoginFailure:
        print(
            "Discord rejected DISCORD_TOKEN (401 Unauthorized). Copy the bot token again from "
            "the Developer Portal (Applications > your app > Bot > Reset Token) into .env.",
            file=sys.stderr,
        )
        return 2
    except discord.PrivilegedIntentsRequired:
        print(
            "Discord refused the Message Content intent. Enable it in the Developer Portal "
            "(Applications > your app > Bot > Privileged Gateway Intents > Message Content).",
            file=sys.stderr,
        )
        return 2
    except (aiohttp.ClientError, OSError, discord.GatewayNotFound) as exc:
        # No network, DNS failure, Discord down: say so instead of a traceback.
        print(f"Could not reach Discord: {exc}. Check the network and try again.", file=sys.stderr)
        return 1
    except discord.HTTPException as exc:
        print(f"Discord refused the connection: {exc}", file=sys.stderr)
        return 1
    return None


def open_feedback(settings: BotSettings) -> FeedbackStore:
    """The feedback DB; in memory when INDEX_DIR is read-only (answering must go on)."""
    try:
        return FeedbackStore(path=settings.feedback_db)
    except (sqlite3.Error, OSError) as exc:
        log.warning(
            "feedback DB %s cannot be opened (%s); feedback is kept in memory until restart",
            settings.feedback_db,
            exc,
        )
        return FeedbackStore(path=":memory:")


def run(settings: BotSettings) -> int:
    """Run the bot until interrupted; returns the process exit code.

    Cheap checks first, so a maintainer waits seconds, not a model warm-up, to learn that the
    token is missing or wrong: no token -> 2 at once; the token is then tried with an HTTP
    login before the answer service (model, index) is built.
    """
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        print(user_text("no_token"), file=sys.stderr)
        return 2
    token = settings.discord_token.get_secret_value().strip()
    try:
        failed = _connect(lambda: _check_token(token))
        if failed is not None:
            return failed
        started = time.perf_counter()
        service = build_service(settings, warm=True)
        # Before the gateway login, so a slow start shows where its time went.
        log.info(
            "answer service ready in %.1f s; logging in to Discord", time.perf_counter() - started
        )
    except CorpusBotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    feedback = open_feedback(settings)
    limiter = Limiter.from_settings(settings)
    bot = make_bot(service=service, settings=settings, feedback=feedback, limiter=limiter)
    try:
        return _connect(lambda: _serve(bot, token)) or 0
    except KeyboardInterrupt:
        return 0
    finally:
        feedback.close()
