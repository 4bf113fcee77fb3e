"""Every setting is documented: in .env.example (as NAME=) and in the README's table.

The settings are the shared `index.settings.Settings` plus the bot's `BotSettings`
(which extends it, so its fields are all of them).
"""

from __future__ import annotations

import re

import pytest

from bot.settings import BotSettings
from index.settings import REPO_ROOT, Settings

ENV_EXAMPLE = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_bot_settings_extend_the_shared_ones() -> None:
    assert set(Settings.model_fields) < set(BotSettings.model_fields)


@pytest.mark.parametrize("name", [f.upper() for f in BotSettings.model_fields])
def test_setting_is_documented(name: str) -> None:
    assert re.search(rf"^{name}=", ENV_EXAMPLE, re.M), f"{name} missing from .env.example"
    assert f"`{name}`" in README, f"{name} missing from README"


@pytest.mark.parametrize("cls", [Settings, BotSettings])
def test_env_example_parses_to_the_defaults(tmp_path, cls) -> None:
    """Copying .env.example to .env changes nothing but paths (relative to the cwd)."""
    env = tmp_path / ".env"
    env.write_text(ENV_EXAMPLE, encoding="utf-8")
    from_file = cls(_env_file=env)
    defaults = cls(_env_file=None)
    differ = {
        f
        for f in cls.model_fields
        if getattr(from_file, f) != getattr(defaults, f)
        and not f.endswith("_dir")  # relative in .env.example, absolute defaults
    }
    assert differ == set()
