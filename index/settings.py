"""The one Settings object, read once at startup from the environment and `.env`.

Lives in `index` because both flows need it and `bot` may import from `index`, never
the reverse. Every field is documented in `.env.example` and the README.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from index.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
CURRENT_FILE = "current"  # INDEX_DIR/current names the active Chroma folder (after --rebuild)
_CHROMA_DIR_NAME = re.compile(r"chroma(?:-[0-9A-Za-z_]{1,40})?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `NAME=` in .env means "use the default"
    )

    # --- corpus and index -------------------------------------------------------------
    corpus_dir: Path = REPO_ROOT / "corpus"
    index_dir: Path = REPO_ROOT / ".index"
    collection_prefix: str = Field("corpus", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{1,40}$")
    chunk_size: int = Field(900, ge=100, le=8000)
    chunk_overlap: int = Field(150, ge=0, le=2000)
    max_document_bytes: int = Field(50_000_000, ge=1)
    embedder: Literal["minilm", "openai"] = "minilm"
    embed_batch_size: int = Field(32, ge=1, le=1024)
    openai_embedding_model: str = "text-embedding-3-small"
    keep_generations: int = Field(2, ge=1, le=10)
    # A file with more chunks is truncated to this many (with a warning in the summary).
    max_chunks_per_document: int = Field(2000, ge=1)
    # How long a re-index waits for another one holding INDEX_DIR/reindex.lock.
    reindex_lock_wait_s: float = Field(600.0, ge=0)

    # --- Chroma server (unset = embedded PersistentClient under index_dir) --------------
    chroma_host: str | None = None
    chroma_port: int = Field(8000, ge=1, le=65535)
    chroma_ssl: bool = False

    # --- answering ----------------------------------------------------------------------
    prompts_dir: Path = REPO_ROOT / "prompts"
    retrieval_mode: Literal["hybrid", "dense"] = "hybrid"
    retrieval_k: int = Field(4, ge=1, le=20)
    max_question_chars: int = Field(1000, ge=10, le=10000)

    # --- LLM (unset key and base URL = offline extractive answers) ----------------------
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
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

    log_level: str = "INFO"

    @field_validator("openai_base_url", "chroma_host", mode="before")
    @classmethod
    def _blank_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("discord_channel_ids", mode="before")
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
    def llm_enabled(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def chroma_path(self) -> Path:
        """The embedded Chroma folder: INDEX_DIR/chroma, or the one INDEX_DIR/current names.

        `python -m index --rebuild` builds a fresh folder beside a damaged one and switches
        to it by replacing the `current` file (one atomic rename).
        """
        try:
            name = (self.index_dir / CURRENT_FILE).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        return self.index_dir / (name if _CHROMA_DIR_NAME.fullmatch(name) else "chroma")

    @property
    def feedback_db(self) -> Path:
        return self.index_dir / "feedback.sqlite3"

    @property
    def llm_budget_db(self) -> Path:
        return self.index_dir / "llm_budget.sqlite3"


def load_settings(**overrides: object) -> Settings:
    """Read settings once; an invalid value becomes a ConfigError naming the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{name.upper()}: {err['msg']}")
        raise ConfigError("Invalid setting " + "; ".join(problems)) from None
    except (ValueError, json.JSONDecodeError) as exc:  # e.g. a non-JSON list from the environment
        raise ConfigError(f"Invalid setting: {exc}") from None
