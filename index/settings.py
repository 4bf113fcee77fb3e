"""The shared settings base, read once at startup from the environment and `.env`.

`Settings` holds what indexing needs and the bot shares (corpus and index folders,
embedding, chunking, store, crawl, logging); `bot.settings.BotSettings` extends it with
Discord, LLM, answering and forum settings. `bot` may import from `index`, never the
reverse. Every field is documented in `.env.example` and the README.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run from a checkout (also an editable install): the repo's folders are the defaults.
# Installed from a wheel, REPO_ROOT is site-packages: see _packaged() and _user_index_dir().
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "prompts").is_dir()
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _packaged(name: str) -> Path:
    """`prompts` or `corpus` as shipped in the wheel (package data `corpusbot_data/<name>`)."""
    spec = importlib.util.find_spec("corpusbot_data")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / name).is_dir():
            return Path(location) / name
    return REPO_ROOT / name  # not installed either: the error will name the missing path


def _user_index_dir() -> Path:
    """An installed corpusbot keeps its index in the user's data dir, never in site-packages."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "corpusbot" / "index"


def _default_corpus_dir() -> Path:
    return REPO_ROOT / "corpus" if IN_CHECKOUT else _packaged("corpus")


def _default_index_dir() -> Path:
    return REPO_ROOT / ".index" if IN_CHECKOUT else _user_index_dir()


def default_prompts_dir() -> Path:
    """The prompts folder (a bot setting; the checkout-or-wheel choice is made here)."""
    return REPO_ROOT / "prompts" if IN_CHECKOUT else _packaged("prompts")


CURRENT_FILE = "current"  # INDEX_DIR/current names the active Chroma folder (after --rebuild)
_CHROMA_DIR_NAME = re.compile(r"chroma(?:-[0-9A-Za-z_]{1,40})?")

S = TypeVar("S", bound="Settings")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `NAME=` in .env means "use the default"
    )

    # --- corpus and index -------------------------------------------------------------
    corpus_dir: Path = Field(default_factory=_default_corpus_dir)
    index_dir: Path = Field(default_factory=_default_index_dir)
    collection_prefix: str = Field("corpus", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{1,40}$")
    chunk_size: int = Field(600, ge=100, le=8000)
    chunk_overlap: int = Field(100, ge=0, le=2000)
    max_document_bytes: int = Field(50_000_000, ge=1)
    embedder: Literal["minilm", "openai"] = "minilm"
    embed_batch_size: int = Field(32, ge=1, le=1024)
    openai_embedding_model: str = "text-embedding-3-small"
    keep_generations: int = Field(2, ge=1, le=10)
    # A re-index that changes at most this share of the chunks builds a layer over the last
    # full generation instead of copying every vector (0 = always a full copy).
    layer_max_share: float = Field(0.1, ge=0, le=1)
    # A file with more chunks is truncated to this many (with a warning in the summary).
    max_chunks_per_document: int = Field(2000, ge=1)
    # How long a re-index waits for another one holding INDEX_DIR/reindex.lock.
    reindex_lock_wait_s: float = Field(600.0, ge=0)

    # --- docs site crawl (`python -m index --url`; unset DOCS_URL = index CORPUS_DIR) -----
    docs_url: str | None = None
    # Where the files of CORPUS_DIR are published (".../docs/" + their relative path): lets
    # citations link to the page and section when a document states no URL itself.
    corpus_base_url: str | None = None
    crawl_delay_s: float = Field(0.5, ge=0, le=60)
    crawl_max_pages: int = Field(2000, ge=1, le=1_000_000)
    crawl_timeout_s: float = Field(20.0, gt=0, le=300)

    # --- Chroma server (unset = embedded PersistentClient under index_dir) --------------
    chroma_host: str | None = None
    chroma_port: int = Field(8000, ge=1, le=65535)
    chroma_ssl: bool = False

    # --- OpenAI-compatible endpoint (the `openai` embedder; the bot's LLM too) ----------
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None

    log_level: str = "INFO"

    @field_validator("openai_base_url", "chroma_host", "docs_url", "corpus_base_url", mode="before")
    @classmethod
    def _blank_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, v: object) -> object:
        # Case-insensitive; normalised to the upper-case name logging expects.
        level = v.strip().upper() if isinstance(v, str) else v
        if level not in LOG_LEVELS:
            raise PydanticCustomError("log_level", "must be one of " + ", ".join(LOG_LEVELS))
        return level

    @field_validator("docs_url", "corpus_base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"https?://[^/\s]+(/\S*)?$", v.strip(), re.I):
            raise ValueError("must be an http:// or https:// URL")  # the value is not echoed
        return v.strip() if v else v

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


def read_settings(cls: type[S], **overrides: object) -> S:
    """Read settings of class `cls` once; an invalid value becomes a ConfigError naming it."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{name.upper()}: {err['msg']}")
        raise ConfigError("Invalid setting " + "; ".join(problems)) from None
    except (ValueError, json.JSONDecodeError) as exc:  # e.g. a non-JSON list from the environment
        raise ConfigError(f"Invalid setting: {exc}") from None


def load_settings(**overrides: object) -> Settings:
    """The indexing flow's settings (`python -m index`)."""
    return read_settings(Settings, **overrides)
