"""The bot's cogs, loaded as extensions by `CorpusBot.setup_hook` (each module has `setup(bot)`)."""

EXTENSIONS = (
    "bot.discord.cogs.ask",
    "bot.discord.cogs.admin",
    "bot.discord.cogs.forum",
    "bot.discord.cogs.learn",
)
