"""Follow-up -> standalone question: the LLM rewrites it when there is one, a rule otherwise."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bot.sentences import STOPWORDS, normalize_word, words
from index.errors import LLMError

log = logging.getLogger(__name__)

_PRONOUNS = frozenset(
    "it its they them their theirs that this those these he him his she her there such".split()
)
_CONTINUATIONS = ("and ", "but ", "also ", "so ", "what about", "how about", "then ", "or ")
_MAX_OWN_TERMS = 1  # a question with this few content words leans on the previous one


def _content_words(text: str) -> list[str]:
    out, seen = [], set()
    for raw in words(text):
        w = normalize_word(raw)
        if w in STOPWORDS or w in _PRONOUNS or (len(w) < 2 and not w.isdigit()) or w in seen:
            continue
        seen.add(w)
        out.append(raw)
    return out


def needs_context(question: str) -> bool:
    """Does the question lean on an earlier turn ("and when?", "what did they do then")?"""
    q = question.strip().lower()
    lowered = {normalize_word(w) for w in words(q)}
    own = _content_words(question)
    if q.startswith(_CONTINUATIONS) or len(own) <= _MAX_OWN_TERMS:
        return True
    return bool(lowered & _PRONOUNS) and len(own) <= 4


def rule_condense(question: str, history: Sequence[tuple[str, str]]) -> str:
    """Append the previous question's key words when the follow-up needs them."""
    if not history or not needs_context(question):
        return question
    have = {normalize_word(w) for w in words(question)}
    # The previous question may itself be a follow-up: look back until one carries terms.
    for previous, _ in reversed(history):
        extra = [w for w in _content_words(previous) if normalize_word(w) not in have]
        if extra:
            return f"{question.rstrip()} ({' '.join(extra)})"
    return question


def condense(
    question: str, history: Sequence[tuple[str, str]], *, llm_answerer: Any | None = None
) -> str:
    """The standalone form of `question` given (user_question, bot_answer) pairs, oldest first."""
    if not history:
        return question
    if llm_answerer is not None:
        try:
            return llm_answerer.condense(question, history)
        except LLMError as err:
            log.info("LLM condense failed (%s); using the rule", err.kind)
    return rule_condense(question, history)
