"""Follow-up -> standalone question: the LLM rewrites it when there is one, a rule otherwise.

The rule never rewrites the user's words; it may add the earlier subject beside them, as
`Standalone.context` terms that retrieval uses and the answerer weighs less than the user's
own words. It does so when the follow-up leans on the conversation:
* it is elliptical ("and when?", "why?", "what about the second one?"): the previous
  question's content words;
* it refers back ("how do i undo that", "does it work for arguments too?", "and for a
  group?"): the previous question's words that the previous answer also holds, i.e. what
  the exchange was about in the documents ("cancel setTimeout"), not how it was asked.
  A possessive after a name of the question's own ("Did the DPRK keep its mining going?")
  is that name's, not a reference back.
Any other follow-up stands alone ("Who is FireEye's research director?"), and so does one
that says it changes the topic ("unrelated, but ...").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.errors import LLMError
from bot.framing import core_question
from bot.sentences import STOPWORDS, normalize_word, stem, word_spans, words

log = logging.getLogger(__name__)

_PRONOUNS = frozenset(
    "it its they them their theirs that this those these he him his she her there such one".split()
)
_CONTINUATIONS = ("and ", "but ", "also ", "so ", "what about", "how about", "then ", "or ")
# Question scaffolding that says what kind of answer is wanted, not what it is about.
_SCAFFOLD = frozenset("why how when where who what which long many much else more".split())


@dataclass(frozen=True)
class Standalone:
    """The question to answer: the user's words, plus subject terms borrowed from earlier."""

    question: str
    context: tuple[str, ...] = field(default_factory=tuple)

    @property
    def query(self) -> str:
        """What retrieval searches for."""
        return f"{self.question} {' '.join(self.context)}" if self.context else self.question


def content_words(text: str) -> list[str]:
    """The words that say what a question is about (no function words, pronouns, scaffolding)."""
    out, seen = [], set()
    for raw in words(text):
        w = normalize_word(raw)
        if w in STOPWORDS or w in _PRONOUNS or w in _SCAFFOLD or w in seen:
            continue
        if len(w) < 2 and not w.isdigit():
            continue
        seen.add(w)
        out.append(raw)
    return out


def needs_context(question: str) -> bool:
    """Is the question elliptical: too few words of its own to say what it is about?"""
    own = content_words(question)
    q = question.strip().lower()
    if len(own) <= 1:
        return True
    return q.startswith(_CONTINUATIONS) and len(own) <= 2


# Words of a message that thanks or acknowledges rather than asks ("ok thanks, that worked!").
_ACKNOWLEDGING = frozenset(
    """thanks thank thx ty tysm cheers ok okay k kk cool great nice perfect awesome amazing
    brilliant excellent good fine sweet neat wow yes yep yeah yup sure right true no nope lol
    lmao haha hah heh worked fixed solved helped helps helpful useful
    appreciate appreciated got makes sense understand see clear gotcha sorry welcome
    bye later""".split()
)


_ASKING = frozenset("how what when where which who whom whose why more".split())
# "I don't understand", "still not clear": a problem, not thanks.
_NEGATING = frozenset(
    """not never don doesn didn isn wasn aren weren can cannot couldn won wouldn dont doesnt
    didnt isnt wasnt cant wont still but""".split()
)


def is_acknowledgement(text: str) -> bool:
    """Thanks or agreement, not a question: acknowledging words with at most filler around
    them ("thanks, that worked!"), or only emoji. "why", "tell me more", "and stable?" and
    "I don't understand" are not."""
    said = [normalize_word(raw) for raw in words(text)]
    if "?" in text or not _ASKING.isdisjoint(said) or not _NEGATING.isdisjoint(said):
        return False
    if not said:
        return True
    return any(w in _ACKNOWLEDGING for w in said) and all(
        w in STOPWORDS or w in _ACKNOWLEDGING for w in said
    )


# Words that point back at what was just discussed. "it" in "is it possible to ..." and
# "that" in "a tool that ..." point nowhere; those uses are taken out first.
_REFERRING = frozenset("it its they them their theirs that this those these same".split())
_NOT_REFERRING = re.compile(
    r"(?i)\b(?:(?:is|was|would|will|isn't|isnt)\s+it|it(?:'s|s|\s+is|\s+was)?)\s+"
    r"(?:possible|ok|okay|safe|worth|better|best|normal|necessary|true|recommended|a\s+good)\b"
    r"|\b(?:(?:a|an|the|some|any)\s+\w+|\w+(?:thing|one|body)|so|such|sure)\s+that\b"
)
_POSSESSIVE = frozenset({"its", "their"})
_THE_ONE = re.compile(r"(?i)\b(?:the|that|this)\s+(?:\w+\s+)?ones?\b")  # "the linux one"
# A question that says it starts a new topic: "unrelated, but ...", "different question:
# ...", "off topic - ..." at its start (punctuation or "but" after the marker, so that
# "unrelated histories" stays a question about them), or "btw" / "by the way" anywhere.
_NEW_TOPIC = re.compile(
    r"(?i)^\W*(?:(?:totally|completely|slightly|kinda|kind\s+of|somewhat)\s+)?"
    r"(?:unrelated|off[- ]?topic|(?:an?\s+)?(?:different|separate|new|another|other)\s+"
    r"(?:question|topic|thing))(?:\s+(?:question|q))?"
    r"(?:\s*[,:;.!?-]+\s*(?:but\b)?|\s+but\b)[\s,:]*"
)
_BY_THE_WAY = re.compile(r"(?i)\b(?:btw|by\s+the\s+way)\b")


def without_new_topic(question: str) -> str:
    """The question without the words announcing a new topic ("unrelated, but ..."): they
    say nothing about what is asked, and a corpus never holds them."""
    return _NEW_TOPIC.sub("", question, count=1) or question


def refers_back(question: str) -> bool:
    """Does the follow-up lean on what was just discussed: a continuation ("and ...",
    "what about ...") or a word pointing back ("undo that", "does it work for ...")?"""
    if _NEW_TOPIC.match(question) or _BY_THE_WAY.search(question):
        return False
    q = re.sub(r"(?i)^\W*(?:(?:ok(?:ay)?|so|right|cool|thanks|thx)\W+)*", "", question.strip())
    if q.lower().startswith(_CONTINUATIONS):
        return True
    if _THE_ONE.search(q):
        return True
    said = [normalize_word(w) for w in words(_NOT_REFERRING.sub(" ", q))]
    # A possessive after a name of the question's own is that name's ("Did the DPRK keep its
    # mining going", "does Celery retry their tasks"), not the conversation's.
    named = _first_name_end(q)
    later = {normalize_word(w) for w in words(q[named:])} if named is not None else set()
    return any(w in _REFERRING and not (w in _POSSESSIVE and w in later) for w in said)


def _first_name_end(question: str) -> int | None:
    """Where the question's first name ends: an acronym, or a capitalised word after the
    first word (not "I" nor "I'm")."""
    for i, m in enumerate(word_spans(question)):
        w = m.group()
        if (len(w) >= 2 and w.isalpha() and w.isupper()) or (
            i > 0 and w[:1].isupper() and w[1:2].isalpha()
        ):
            return m.end()
    return None


def rule_condense(question: str, history: Sequence[tuple[str, str]]) -> Standalone:
    """Borrow the previous subject when the follow-up has none of its own or refers back."""
    if not history or is_acknowledgement(question):
        return Standalone(question)  # "thanks!" is not a question about the last subject
    elliptical = needs_context(question)
    if not elliptical and not refers_back(question):
        return Standalone(question)
    have = {normalize_word(w) for w in words(question)}
    # The previous question may itself be elliptical: look back until one has a subject.
    for previous, answer in reversed(history):
        extra = [w for w in content_words(previous) if normalize_word(w) not in have]
        if not elliptical:
            found = {stem(normalize_word(w)) for w in words(answer)}
            extra = [w for w in extra if stem(normalize_word(w)) in found]
        if extra:
            return Standalone(question, tuple(extra))
    return Standalone(question)


def condense(
    question: str, history: Sequence[tuple[str, str]], *, llm_answerer: Any | None = None
) -> Standalone:
    """The standalone form of `question` given (user_question, bot_answer) pairs, oldest first.
    Greetings and thanks around a question (`bot/framing.py`) are not part of it."""
    question = core_question(question)
    history = [(core_question(q), a) for q, a in history]
    if not history or is_acknowledgement(question) or _NEW_TOPIC.match(question):
        return Standalone(without_new_topic(question))  # nothing to carry over
    if llm_answerer is not None:
        try:
            return Standalone(llm_answerer.condense(question, history))
        except LLMError as err:
            log.info("LLM condense failed (%s); using the rule", err.kind)
    return rule_condense(question, history)
