"""Every setting is documented: in .env.example (as NAME=) and in the README's table."""

from __future__ import annotations

import re

import pytest

from index.settings import REPO_ROOT, Settings

ENV_EXAMPLE = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [f.upper() for f in Settings.model_fields])
def test_setting_is_documented(name: str) -> None:
    assert re.search(rf"^{name}=", ENV_EXAMPLE, re.M), f"{name} missing from .env.example"
    assert f"`{name}`" in README, f"{name} missing from README"


def test_env_example_parses_to_the_defaults(tmp_path) -> None:
    """Copying .env.example to .env changes nothing but paths (relative to the cwd)."""
    env = tmp_path / ".env"
    env.write_text(ENV_EXAMPLE, encoding="utf-8")
    from_file = Settings(_env_file=env)
    defaults = Settings(_env_file=None)
    differ = {
        f
        for f in Settings.model_fields
        if getattr(from_file, f) != getattr(defaults, f)
        and not f.endswith("_dir")  # relative in .env.example, absolute defaults
    }
    assert differ == set()
