"""Root fixtures. Area fixtures live in tests/fixtures/*.py (registered below)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.settings import BotSettings
from index.settings import REPO_ROOT

pytest_plugins = [
    "tests.fixtures.index",
    "tests.fixtures.llm",
    "tests.fixtures.discord",
    "tests.fixtures.bot",
]

SEED_CORPUS = REPO_ROOT / "corpus"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Tests never see the developer's env vars or .env: every setting is explicit."""
    for name in BotSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # so no stray .env is read


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A private copy of the seed corpus."""
    dst = tmp_path / "corpus"
    shutil.copytree(SEED_CORPUS, dst)
    return dst


@pytest.fixture
def make_settings(tmp_path: Path):
    """BotSettings (shared + bot settings) with the index in a tmp dir; overrides win."""

    def _make(**overrides) -> BotSettings:
        values = {"corpus_dir": SEED_CORPUS, "index_dir": tmp_path / "index"}
        values.update(overrides)
        return BotSettings(_env_file=None, **values)

    return _make
