"""Prompt files -> ChatPromptTemplate.

Format: plain text split into sections by lines "## system", "## human" (or "## ai"); each
section is one message template with {variables}. Lines before the first section are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from langchain_core.prompts import ChatPromptTemplate

from index.errors import ConfigError

_SECTION = re.compile(r"^##\s*(system|human|ai)\s*$", re.M | re.I)


def parse_prompt(text: str, *, name: str = "prompt") -> ChatPromptTemplate:
    parts = _SECTION.split(text)
    # parts = [preamble, role1, body1, role2, body2, ...]
    messages = [
        (role.lower(), body.strip()) for role, body in zip(parts[1::2], parts[2::2], strict=True)
    ]
    if not messages or not any(role == "human" for role, _ in messages):
        raise ConfigError(f"{name}: needs a '## human' section (and usually '## system')")
    return ChatPromptTemplate.from_messages(messages)


def load_prompt(path: Path) -> ChatPromptTemplate:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read prompt file {path}: {err.strerror}") from err
    return parse_prompt(text, name=str(path))
