"""Follow-up -> standalone question: the LLM rewrites it when there is one, a rule otherwise.

The rule appends the earlier question's words in parentheses ("and when did it stop? (North
Korea mining bitcoin)"); `split_context` reads them back so the answerer can weigh them less.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bot.sentences import STOPWORDS, normalize_word, relation, search_terms, stem, words
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
    # A follow-up naming its own relation replaces the previous one: after "When did they
    # start mining?", "and when did it stop?" is about stopping, so "start" must not come along.
    replaces = any(t.startswith("@") for t in search_terms(question))
    # The previous question may itself be a follow-up: look back until one carries terms.
    for previous, _ in reversed(history):
        extra = [
            w
            for w in _content_words(previous)
            if normalize_word(w) not in have
            and not (replaces and relation(stem(normalize_word(w))))
        ]
        if extra:
            return f"{question.rstrip()} ({' '.join(extra)})"
    return question


def split_context(standalone: str) -> tuple[str, str]:
    """(the user's own words, the context words `rule_condense` appended in parentheses)."""
    text = standalone.rstrip()
    cut = text.rfind(" (")
    if not text.endswith(")") or cut < 0:
        return standalone, ""
    return text[:cut], text[cut + 2 : -1]


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
