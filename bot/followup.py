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

Every message, first or follow-up, is also read apart from the asker's situation
(`split_situation`): statements before or after a question that asks on its own ("im on
windows 10. how do i pin a version?", "been stuck for hours\nset A4 as the default paper
size"). They are searched with the question and weigh a quarter of its words; the scene set
before it stays out of the query's vector (`Standalone.meaning`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.errors import LLMError
from bot.framing import core_question
from bot.sentences import STOPWORDS, is_content, normalize_word, stem, word_spans, words

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
    # The statements beside the question that describe the asker's situation
    # (`split_situation`): searched with it, weighed less. Those before the question set
    # the scene ("been stuck for hours. how do i ..."), those after often say it again in
    # other words ("can an option take a str and an int? different types per value").
    preamble: str = ""
    situation: str = ""
    respelled: frozenset[str] = frozenset()  # words put in for typos (lower case)

    @property
    def query(self) -> str:
        """What retrieval searches for, by words."""
        return " ".join(
            x for x in (self.preamble, self.question, self.situation, *self.context) if x
        )

    @property
    def meaning(self) -> str:
        """What retrieval searches for by meaning (the query's vector): not the scene set
        before the question, which would pull the vector away from what is asked."""
        return " ".join(x for x in (self.question, self.situation, *self.context) if x)


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
_QUANTIFIED = re.compile(r"(?i)\b(?:every|each|all|any)\s+[^\W\d_]+")
_THE_ONE = re.compile(r"(?i)\b(?:the|that|this|which)\s+(?:\w+\s+)?ones?\b")  # "the linux one"
# An adverb closing the question that stands for what was just said: "what should i use
# instead?" (of that), "does the client have to send limit then?" (in that case).
_CLOSING_ANAPHOR = re.compile(r"(?i)\b(?:instead|then|anyway|otherwise|either)\W*$")
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
_FIRST_PERSON = re.compile(r"(?i)\s*(?:i|i'?m|i'?ve|i'?d|i'?ll|my|we|we'?re|we'?ve|our|me)\b")
# Words that open one more question of the same message ("...? also, is there a Y?").
_ANOTHER = re.compile(
    r"(?i)^\s*(?:and\s+)?(?:also|plus|btw|by\s+the\s+way|one\s+more\s+thing|"
    r"another\s+(?:thing|question)|second(?:ly)?|lastly|finally)\b[\s,:;.-]*"
)


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
    if _THE_ONE.search(q) or _CLOSING_ANAPHOR.search(q):
        return True
    said = [normalize_word(w) for w in words(_NOT_REFERRING.sub(" ", q))]
    # A possessive after a name of the question's own is that name's ("Did the DPRK keep its
    # mining going", "does Celery retry their tasks"), not the conversation's.
    named = _first_name_end(q)
    # ... and so is one after a quantified noun ("does every user get their own crontab").
    quantified = _QUANTIFIED.search(q)
    ends = [e for e in (named, quantified.end() if quantified else None) if e is not None]
    later = {normalize_word(w) for w in words(q[min(ends) :])} if ends else set()
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
        asked, before, after = split_situation(without_new_topic(question))
        return Standalone(asked, preamble=before, situation=after)  # nothing to carry over
    if llm_answerer is not None:
        try:
            return Standalone(llm_answerer.condense(question, history))
        except LLMError as err:
            log.info("LLM condense failed (%s); using the rule", err.kind)
    asked, before, after = split_situation(question)
    return replace(rule_condense(asked, history), preamble=before, situation=after)


# A sentence ends at . ? or ! right after a word (not "$?"), before a space, or at a line
# break. An ellipsis ("dpkg, apt, aptitude... which one") and a dotted abbreviation ("e.g.",
# "etc.", "vs.") end none: what follows still belongs to what came before.
_SENTENCE_END = re.compile(
    r"(?<!\b[^\W\d_]\.[^\W\d_])(?<!\betc)(?<!\bvs)(?<!\bcf)"  # not after "e.g" nor "etc"
    r"(?<=[^\W_])(?:[?!][.?!]*|\.(?!\.))(?=\s)"
    r"|(?<=[)\]\"'’”])[?!][.?!]*(?=\s)"  # "... in my home dir (xdg)? also, ..."
    r"|\n+"
    # "how do i X also, is there a Y": a second question typed on in the same sentence.
    r"|(?<=[^\W_]),?(?=\s+(?:and\s+)?also\b,?\s+(?:how|what|why|when|where|which|who|is|are|"
    r"can|could|does|do|did|should|would|will|any\s+way)\b)"
)
_WH_WORD = r"how|what|what's|whats|why|when|where|which|who|whose"
_WH = re.compile(rf"(?i)\s*(?:{_WH_WORD})\b")
_ASKS_INSIDE = re.compile(rf"(?i)[,:;]\s*(?:{_WH_WORD})\b|\b(?:{_WH_WORD})\W*$")
# How a question typed without "?" opens.
_OPENS_QUESTION = re.compile(
    rf"(?i)\s*(?:{_WH_WORD}|is|are|was|were|do|does|did|can|could|should|would|will|has|have|"
    r"any\s+(?:way|idea))\b"
)


# A word of the asker's situation weighs a quarter of a question word: it may help pick the
# passage, but the answer needn't hold it ("...? im on windows 10"). Tune halves: 0.5, 0.25
# and 0 answer 33, 34 and 34 sphinx-site questions, the rest alike.
SITUATION_WEIGHT = 0.25
# A question sentence with more content words than this says what it is about by itself.
SELF_CONTAINED = 3


@dataclass(frozen=True)
class _Sentences:
    """A message read sentence by sentence (`_read_sentences`)."""

    bounds: list[tuple[int, int]]  # each sentence's start and end
    asks: list[bool]  # is a question: "?", opening like one, or a request beside "also"
    opens: list[bool]  # opens like a question ("how ...", "is there ...") or another ("also, ...")
    said: list[int]  # its content words
    wh: list[bool]  # opens with a question word
    leans: list[bool]  # refers back to what came before ("does it work on windows?")
    own: list[bool]  # says what it asks about itself, not leaning back
    # Where its own words start: past an opening "also, " ("another question"), else its start.
    after: list[int]


def _read_sentences(question: str, spans: list[re.Match[str]]) -> _Sentences:
    """The message's sentences (ending at . ? ! or a line break, or before "also, <question>"
    typed on in one) and what each does: ask, open like a question, lean back."""
    bounds, start = [], 0
    for end in _SENTENCE_END.finditer(question):
        bounds.append((start, end.end()))
        start = end.end()
    bounds.append((start, len(question)))
    opens = [bool(_OPENS_QUESTION.match(question[a:b])) for a, b in bounds]
    asks = [
        question[a:b].rstrip().endswith("?") or o for (a, b), o in zip(bounds, opens, strict=True)
    ]
    said = [
        sum(is_content(normalize_word(m.group())) for m in spans if a <= m.start() < b)
        for a, b in bounds
    ]
    if not any(asks):
        # Typed without a question mark, a question opens like one ("how do i ...", "is it
        # ok to ..."); else it is the sentence that says the most, the last of equals ("been
        # stuck for hours. set A4 as the default paper size", not "...\nedit: still stuck").
        # A question word after a colon or comma, or last, asks too ("CliRunner: how do i
        # ...", "options vs arguments, when should i use which", "... still there, why").
        inside = [bool(_ASKS_INSIDE.search(question[a:b])) for a, b in bounds]
        most = max(range(len(bounds)), key=lambda i: (said[i], i))
        if any(opens):
            asks = opens
        elif any(inside):
            asks = inside
        else:
            asks = [i == most for i in range(len(bounds))]
    # After a question, "also, <request>" asks too ("...? also, load commands lazily from a
    # folder"), unless it says something of the asker ("also, im on windows 10").
    another = [_ANOTHER.match(question[a:b]) for a, b in bounds]  # "also, ..."
    after = [a + (m.end() if m else 0) for (a, _), m in zip(bounds, another, strict=True)]
    wh = [bool(_WH.match(question[a:b])) for a, (_, b) in zip(after, bounds, strict=True)]
    for i, (_, b) in enumerate(bounds[1:], 1):
        if another[i] and any(asks[:i]) and not _FIRST_PERSON.match(question[after[i] : b]):
            asks[i] = True
    # ... and what "also" follows asked too ("load commands lazily from a folder also, is
    # there a changelog?"), unless it says something of the asker ("im on windows 10").
    for i, (a, b) in enumerate(bounds[:-1]):
        if (
            asks[i + 1]
            and another[i + 1]
            and said[i] >= 2
            and not _FIRST_PERSON.match(question[a:b])
        ):
            asks[i] = True
    # "also" after a question opens another one; it leans only if its words do ("also, is
    # there a changelog?" does not, "also, does it work on windows?" does).
    # The first sentence has nothing of the message's own before it to lean on.
    # One that says much of its own has its pronouns' nouns with it ("if the user doesn't
    # pass --name can click ask them for it", "the group callback runs every time I run a
    # subcommand, is that expected?").
    leans = [False] + [
        refers_back(question[start:b]) and n <= SELF_CONTAINED
        for start, (_, b), n in zip(after[1:], bounds[1:], said[1:], strict=True)
    ]
    # Two words of its own say what a question is about; one does after a question word
    # ("what is SPI"), not as a bare tag ("bug?") nor after "is it" ("is it fast?").
    own = [
        (n >= 2 or (n == 1 and w)) and not back for n, w, back in zip(said, wh, leans, strict=True)
    ]
    opens = [o or m is not None for o, m in zip(opens, another, strict=True)]
    return _Sentences(bounds, asks, opens, said, wh, leans, own, after)


def context_ranges(question: str, spans: list[re.Match[str]]) -> list[tuple[int, int]]:
    """Where a question describes the asker's situation rather than asks: the statements
    beside a question sentence that asks on its own ("when would i turn on acks_late? my
    worker sometimes gets oom killed mid task"). Their words say what the asker runs or
    sees, not what the answer must be about."""
    read = _read_sentences(question, spans)
    bounds, asks, said, wh, leans, own = (
        read.bounds,
        read.asks,
        read.said,
        read.wh,
        read.leans,
        read.own,
    )
    # A second question of its own after the first ("how do i X? also, is there a Y?") is
    # answered apart (`separate_questions`): this answer is the first one's. One that leans
    # on the first ("... ? how?", "does it work on windows?") is part of it.
    first = next((i for i, (q, o) in enumerate(zip(asks, own, strict=True)) if q and o), None)
    if first is not None:
        asks = [q and not (i > first and own[i]) for i, q in enumerate(asks)]
    rest = [
        (a, b) for (a, b), q in zip(bounds, asks, strict=True) if not q and question[a:b].strip()
    ]
    if not any(asks) or not rest:
        return []
    content = sum(n for n, q in zip(said, asks, strict=True) if q)
    opened = all(w for w, q in zip(wh, asks, strict=True) if q)
    # A question sentence pointing back at a statement before it ("... empty after the loop.
    # any way to keep them?") or a bare tag of one word ("... inside an if. bug?") leaves the
    # statement as what is asked. A pronoun can't point at a statement that comes after.
    first_statement = min(a for a, _ in rest)
    pointing = any(
        back
        for (a, _), q, back in zip(bounds, asks, leans, strict=True)
        if q and a > first_statement
    )
    if content < (1 if opened else 2) or pointing:
        return []
    return rest


# At most this many questions of one message are answered apart; later ones go with the last.
MAX_QUESTIONS = 3


@dataclass(frozen=True)
class Asked:
    """One of the questions a message asks (`separate_questions`)."""

    question: str  # the question sentence, as typed
    text: str  # what is answered: it, the statements after it, the scene set before the first


def separate_questions(message: str) -> list[Asked]:
    """The questions of a message that each ask something of their own ("how do i make an
    option required? also, is there a changelog somewhere?"), each with the statements
    after it up to the next one, and the scene set before the first (said for all). A
    question leaning on the one before ("does it work on windows too?") or saying less than
    two words the message has not said yet ("what's the default?") goes with that one.
    One question: []."""
    spans = word_spans(message)
    read = _read_sentences(message, spans)
    heads = [i for i, (q, o) in enumerate(zip(read.asks, read.own, strict=True)) if q and o]

    def said(a: int, b: int) -> set[str]:
        return {
            stem(w)
            for m in spans
            if a <= m.start() < b
            if is_content(w := normalize_word(m.group()))
        }

    # A later question asks something of its own with two words the message has not said yet
    # ("... prints bar?? where did foo go" asks about the same foo).
    # A fragment ending in "?" after the first often restates it ("... together? different
    # types per value?"): another question opens like one, or with "also".
    # One word will do after "also, <question word>" ("also, what is SPI"): the asker says
    # outright that this is another question.
    def new_words(i: int) -> int:
        return len(said(*read.bounds[i]) - said(0, read.bounds[i][0]))

    def marked(i: int) -> bool:
        return read.wh[i] and read.after[i] > read.bounds[i][0]

    heads = heads[:1] + [
        i for i in heads[1:] if read.opens[i] and new_words(i) >= (1 if marked(i) else 2)
    ]
    if len(heads) < 2:
        return []
    heads = heads[:MAX_QUESTIONS]
    starts = [read.bounds[i][0] for i in heads]
    scene = message[: starts[0]]
    out = []
    for k, i in enumerate(heads):
        end = starts[k + 1] if k + 1 < len(starts) else len(message)
        a, b = read.bounds[i]
        if k == 0:
            out.append(Asked(" ".join(message[a:b].split()), message[:end].strip()))
            continue
        # "also, is there ..." asks "is there ...".
        own = message[read.after[i] : end]
        asked = message[read.after[i] : b]
        # A line break keeps the scene a sentence of its own.
        out.append(
            Asked(" ".join(asked.split()), "\n".join(x for x in (scene.strip(), own.strip()) if x))
        )
    return out


def split_situation(message: str) -> tuple[str, str, str]:
    """(what is asked, the statements before it, those after it): the message's question
    sentences and the statements beside them that `context_ranges` finds ("" for none)."""
    ranges = context_ranges(message, word_spans(message))
    if not ranges:
        return message, "", ""
    asked, last = [], 0
    for a, b in ranges:
        asked.append(message[last:a])
        last = b
    asked.append(message[last:])
    starts = [0] + [b for _, b in ranges]  # where each asked piece starts
    first = next((s for s, piece in zip(starts, asked, strict=True) if piece.strip()), 0)

    def joined(pieces: list[str]) -> str:
        return " ".join(" ".join(pieces).split())

    # After the question, a statement about the asker ("im on windows 10") sets the scene
    # as one before it does; others often restate what is asked ("different types per value").
    scene = [(a, b) for a, b in ranges if b <= first or _FIRST_PERSON.match(message[a:b])]
    return (
        joined(asked),
        joined([message[a:b] for a, b in scene]),
        joined([message[a:b] for a, b in ranges if (a, b) not in scene]),
    )
