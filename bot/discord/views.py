"""👍/👎 feedback and "Ask a human" buttons that keep working after a restart.

The answer id and the vote live in the custom_id ("fb:<answer_id>:up", "human:<answer_id>"), so
any instance of the bot can handle a click on any old message once the buttons are registered
with `bot.add_dynamic_items`. "Ask a human" is shown under declined answers and offered after a
👎, only when DISCORD_HELP_CHANNEL_ID is set.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import discord

from bot.discord.handoff import hand_off
from bot.errors import user_text

log = logging.getLogger(__name__)

_VOTES = {"up": 1, "down": -1}


class FeedbackButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"fb:(?P<answer_id>[0-9]{1,18}):(?P<vote>up|down)",
):
    def __init__(self, answer_id: int, vote: str) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                emoji="👍" if vote == "up" else "👎",
                custom_id=f"fb:{answer_id}:{vote}",
            )
        )
        self.answer_id = answer_id
        self.vote = vote

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> FeedbackButton:
        return cls(int(match["answer_id"]), match["vote"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        store = interaction.client.feedback  # CorpusBot.feedback
        stored = await asyncio.to_thread(
            store.record_vote,
            answer_id=self.answer_id,
            user_id=interaction.user.id,
            vote=_VOTES[self.vote],
        )
        text = "Thanks for the feedback" if stored else user_text("answer_gone")
        if stored and self.vote == "down" and _handoff_enabled(interaction):
            text += ". Not what you needed? A person can help:"
            view = discord.ui.View(timeout=None)
            view.add_item(HandoffButton(self.answer_id))
            await interaction.response.send_message(text, ephemeral=True, view=view)
            return
        await interaction.response.send_message(text, ephemeral=True)


def _handoff_enabled(interaction: discord.Interaction[Any]) -> bool:
    return interaction.client.settings.discord_help_channel_id is not None


class HandoffButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"human:(?P<answer_id>[0-9]{1,18})",
):
    def __init__(self, answer_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                label="Ask a human",
                emoji="🙋",
                custom_id=f"human:{answer_id}",
            )
        )
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> HandoffButton:
        return cls(int(match["answer_id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await hand_off(interaction, self.answer_id)


def feedback_view(answer_id: int, *, handoff: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton(answer_id, "up"))
    view.add_item(FeedbackButton(answer_id, "down"))
    if handoff:
        view.add_item(HandoffButton(answer_id))
    return view
