"""The bot's settings: the shared `index.settings.Settings` plus what only answering needs.

Discord, the LLM, retrieval and answering, the token budget, forums and learned answers
live here, so adding one never touches the indexing package. Env names and defaults are
those documented in `.env.example` and the README.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from index.settings import Settings, default_prompts_dir, read_settings


class BotSettings(Settings):
    # --- answering ----------------------------------------------------------------------
    prompts_dir: Path = Field(default_factory=default_prompts_dir)
    retrieval_mode: Literal["hybrid", "dense"] = "hybrid"
    retrieval_k: int = Field(6, ge=1, le=20)
    max_question_chars: int = Field(1000, ge=10, le=10000)

    # --- LLM (unset key and base URL = offline extractive answers) ----------------------
    # OPENAI_API_KEY and OPENAI_BASE_URL are shared with the `openai` embedder (Settings).
    openai_model: str = "gpt-4o-mini"
    llm_timeout_s: float = Field(12.0, gt=0, le=120)
    llm_max_retries: int = Field(1, ge=0, le=5)
    llm_max_tokens: int = Field(400, ge=16, le=4096)
    llm_temperature: float = Field(0.0, ge=0, le=2)
    llm_daily_token_budget: int = Field(0, ge=0)  # 0 = unlimited

    # --- Discord ------------------------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_guild_id: int | None = None
    discord_allow_dms: bool = True
    discord_channel_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    discord_shard_count: int | None = Field(None, ge=1)
    user_cooldown_s: float = Field(10.0, ge=0)
    max_concurrent_answers: int = Field(4, ge=1, le=64)
    # How long a question may wait for a free answer slot before "busy"; bounded so that
    # /ask is still deferred within Discord's 3 s.
    answer_queue_wait_s: float = Field(0.5, ge=0, le=2.0)
    # Forum channels whose new posts the bot answers (only with a cited answer by default).
    discord_forum_channel_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    discord_forum_decline_notice: bool = False
    # Where "Ask a human" hands a question over (unset = no such button).
    discord_help_channel_id: int | None = None
    # Moderator answers saved with "Add to knowledge base" (unset = CORPUS_DIR/learned).
    learned_dir: Path | None = None
    learned_include_author: bool = False

    @field_validator("discord_channel_ids", "discord_forum_channel_ids", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        # Accept "1,2,3" as well as JSON "[1,2,3]" from the environment.
        if isinstance(v, str):
            v = v.strip()
            if not v:
                return []
            if v.startswith("["):
                return json.loads(v)
            return [x.strip() for x in v.split(",") if x.strip()]
        return v

    @property
    def learned_path(self) -> Path:
        return self.learned_dir if self.learned_dir is not None else self.corpus_dir / "learned"

    @property
    def feedback_db(self) -> Path:
        return self.index_dir / "feedback.sqlite3"

    @property
    def llm_budget_db(self) -> Path:
        return self.index_dir / "llm_budget.sqlite3"


def load_bot_settings(**overrides: object) -> BotSettings:
    """The answering flow's settings (`python -m bot`); a bad value is a ConfigError."""
    return read_settings(BotSettings, **overrides)
