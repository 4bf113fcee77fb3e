"""The one table of user-facing texts (bot/errors.py) and the errors that use it."""

from __future__ import annotations

import re
from pathlib import Path

from bot.answer.extractive import NOT_FOUND
from bot.errors import LLM_KINDS, USER_TEXTS, LLMError, QuestionRejected, fallback_note, user_text
from index.errors import CorpusBotError
from index.settings import REPO_ROOT


def test_bot_errors_share_the_base() -> None:
    assert issubclass(QuestionRejected, CorpusBotError)
    assert issubclass(LLMError, CorpusBotError)


def test_every_llm_kind_has_a_text_and_an_error_uses_it() -> None:
    for kind in LLM_KINDS:
        err = LLMError(kind=kind)
        assert err.kind == kind and str(err) == USER_TEXTS[kind]
    assert str(LLMError("down", kind="timeout")) == "down"


def test_fallback_note_names_the_kind() -> None:
    assert fallback_note("server") == "LLM unavailable (server); showing quoted passages instead."
    assert fallback_note() == "LLM unavailable; showing quoted passages instead."


def test_one_not_found_wording() -> None:
    # The extractive answerer keeps its own constant (it is being rewritten); same text.
    assert NOT_FOUND == user_text("not_found")


def test_placeholders_are_filled() -> None:
    assert user_text("cooldown", seconds=3) == "You're asking quickly; try again in 3 s."
    assert "1200 characters long; the limit is 1000" in user_text(
        "question_too_long", length=1200, limit=1000
    )


def test_no_user_text_is_written_twice_in_bot() -> None:
    """A table text appears in no other module of bot/ (wording lives in one place)."""
    sources = {
        p: p.read_text(encoding="utf-8")
        for p in (REPO_ROOT / "bot").rglob("*.py")
        if p != REPO_ROOT / "bot" / "errors.py" and p.parent.name != "answer"
    }
    for kind, text in USER_TEXTS.items():
        literal = re.split(r"\{\w*\}", text)[0][:40]
        if len(literal) < 20:
            continue
        where = [str(p.relative_to(REPO_ROOT)) for p, s in sources.items() if literal in s]
        assert not where, (kind, where)


def test_errors_module_is_pure() -> None:
    text = Path(REPO_ROOT / "bot" / "errors.py").read_text(encoding="utf-8")
    assert "import discord" not in text and "langchain" not in text
