"""The offline answerer: quote the passage that answers, cite it, or say the corpus doesn't.

It reads evidence by its structure, the same way on any corpus:

* Each retrieved chunk sits in a section (its heading path) and holds prose and code.
  Headings are context, never the answer; code and doctest lines are quoted only when the
  question asks for code.
* A passage answers when its sentences share the question's informative words, or when it
  opens a section whose heading matches the question (a FAQ's answer is the paragraph under
  the question heading, whatever its words).
* The quote is the best sentence plus what finishes its thought: the following sentences of
  the same paragraph ("It is often expected that ... This is not what happens. ..."), the
  code block a sentence ending in ":" introduces, the sentence before one that starts with
  "This"/"However"; when it starts just inside its section, the section's opening; and
  below the page title, the rest of its section up to ~1000 characters (the answer often
  follows the sentence that restates the question).
* Whether to answer at all is decided from a few scale-free features of the best passage
  (dense similarity, how much of the question it covers, question words the corpus lacks),
  combined by a logistic model fitted on development sets (`bench/fit_decision.py`).

Per question it only tokenises the retrieved chunks: nothing proportional to the corpus and
no model runs beyond the retriever's one query embedding.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import math
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from bot.answer.asked import HeadingVectors, asked_heading
from bot.answer.features import DECISION_FEATURES, RANK_FEATURES, Decision, Ranking
from bot.errors import USER_TEXTS
from bot.followup import SITUATION_WEIGHT, Standalone, context_ranges
from bot.models import Answer, Citation
from bot.retriever import Lexicon
from bot.sentences import (
    SPELLED_OUT,
    is_content,
    normalize_word,
    placeholders,
    stem,
    symbol_names,
    tokenize,
    word_spans,
)
from index.chunker import context_of, question_heading
from index.embedder import DIMENSION
from index.sentences import (
    HEADING_VECTOR,
    ITEM_START,
    UNIT_VECTORS,
    decode_unit_vectors,
    units_of_chunk,
)

log = logging.getLogger(__name__)

NOT_FOUND = USER_TEXTS["not_found"]
QUOTE_CHARS = 600  # a passage of a few sentences, or a paragraph
MAX_CODE_IN_QUOTE = 300  # a longer code block ends the quote
SECTION_QUOTE_CHARS = 1000  # how far the chosen quote runs on within its section
MAX_QUOTES = 3  # the best passage and up to two that rank nearly as well
LEAD_IN_CHARS = 450  # a quote starting this close to its section's start starts there
NEAR_SOURCES = 3


def load_common_words(tokenizer_json: Path) -> frozenset[str]:
    """English words, as opposed to names and jargon: the whole words of a WordPiece
    vocabulary (~20k) and those of an English dictionary (`english_dictionary`, ~53k)."""
    vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    return frozenset(w for w in vocab if w.isalpha() and w.islower()) | english_dictionary()


def english_dictionary() -> frozenset[str]:
    """The words of pyspellchecker's English word-frequency list that are attested more than
    its floor count: the floor holds every rare entry, names among them ('pyongyang',
    'debian'), while 'sluggish' or 'propagate' are above it. Empty if the list is unreadable
    (the vocabulary alone still works, it only marks more words as rare)."""
    return frozenset(english_word_counts())


@cache
def english_word_counts() -> Mapping[str, int]:
    """`english_dictionary`'s words with their counts in the frequency list (read once)."""
    try:
        data = files("spellchecker").joinpath("resources", "en.json.gz").read_bytes()
        counts = json.loads(gzip.decompress(data))
        floor = min(counts.values())
        return MappingProxyType(
            {w: n for w, n in counts.items() if n > floor and w.isalpha() and w.islower()}
        )
    except (ImportError, OSError, ValueError, TypeError, AttributeError) as err:
        log.warning(
            "English dictionary unavailable (%s): rare-word checks use the vocabulary only", err
        )
        return MappingProxyType({})


# How much a question word the corpus never uses says the corpus lacks the answer, by how
# common the word is in English: up to RARE_COUNT uses in the frequency list it counts fully
# ("squash", "celery"), from EVERYDAY_COUNT not at all ("put", "left", "real": a small
# corpus lacks many everyday words and still answers), log-linear between.
RARE_COUNT = 10_000
EVERYDAY_COUNT = 1_000_000


def absence_weight(word: str, counts: Mapping[str, int]) -> float:
    n = counts.get(word.lower(), 0)
    span = math.log10(EVERYDAY_COUNT) - math.log10(RARE_COUNT)
    return min(1.0, max(0.0, (math.log10(EVERYDAY_COUNT) - math.log10(n + 1)) / span))


# --- the question -------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    term: str  # stemmed
    word: str  # as written
    hard: bool  # a name, number or rare word: the answer must be about exactly this
    weight: float = 1.0  # < 1 for subject words borrowed from an earlier turn
    # The words offered in its place ("a usb stick or pxe", "ETA / remaining time"): when
    # the corpus knows one of them, the corpus lacking this one is no sign it lacks the answer.
    alternatives: tuple[str, ...] = ()
    # An initialism's name as the corpus writes it ("drf": Django REST Framework), as terms:
    # a quote holding the name holds what the initialism names.
    spelled: tuple[str, ...] = ()

    def held_by(self, terms: set[str]) -> bool:
        return matches(self.term, terms) or (
            bool(self.spelled) and all(matches(w, terms) for w in self.spelled)
        )


def _is_common(word: str, common: frozenset[str]) -> bool:
    forms = {word}
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"),
                         ("ing", ""), ("ing", "e")):  # fmt: skip
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            forms.add(word[: -len(suffix)] + repl)
    return not forms.isdisjoint(common)


# Next to a word, these make it part of code or a command ("2>&1", "$((08 + 1))", "$1"):
# a number there is syntax, not a fact (a year, an amount) the answer must state.
_CODE_GLUE = set("<>&$(){}[]=|;+*/%~^#@`\\")


def _within(position: int, ranges: list[tuple[int, int]]) -> bool:
    """`position` falls in one of `ranges` (sorted, disjoint)."""
    i = bisect_right(ranges, (position, math.inf)) - 1  # the last range starting at or before
    return i >= 0 and position < ranges[i][1]


# A parenthesis that gives examples: "(like an ssl option)", "(e.g. a db handle)",
# "(populate_state etc)". What it names illustrates the question; the answer needn't hold it.
_EXAMPLES = re.compile(
    r"\((?:\s*(?:like|e\.?g\.?|such\s+as|for\s+example|for\s+instance)\b[^()]*"
    r"|[^()]*\betc\b\.?\s*)\)",
    re.IGNORECASE,
)


def example_ranges(question: str) -> list[tuple[int, int]]:
    """Where the question gives examples in parentheses (`_EXAMPLES`)."""
    return [m.span() for m in _EXAMPLES.finditer(question)]


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ranges sorted, overlapping ones joined (as `_within` expects)."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def question_terms(
    question: str,
    common: frozenset[str],
    *,
    weight: float = 1.0,
    counts: Mapping[str, int] = MappingProxyType({}),
) -> list[Term]:
    """Content terms of a question, marking names, numbers and rare words as hard. A chat
    shortening ("cmd") is an ordinary word, and so is a number inside code, and so is a
    word of a sentence that only describes the asker's situation (`context_ranges`), and so
    is an everyday English word typed in capitals for emphasis ("URGENT:", "it does NOT
    work"; `counts`: English word counts) where an acronym ("SPI", "DNS", "HA") stays a name."""
    out: dict[str, Term] = {}
    spans = word_spans(question)
    partners = _alternatives(question, spans)
    asker_own = placeholders(question)
    context = _merged(context_ranges(question, spans) + example_ranges(question))
    for i, m in enumerate(spans):
        raw = m.group()
        w = normalize_word(raw)
        if not is_content(w) or w in asker_own:
            continue
        parts = [p for p in w.replace("'", "-").split("-") if p]
        common_word = all(_is_common(p, common) for p in parts) or stem(w) in SPELLED_OUT
        # A capital on the first word is just sentence case; elsewhere it marks a name. Not in
        # an identifier: the capitals of DEFAULT_AUTHENTICATION_CLASSES are how settings are
        # spelled, and its words are as ordinary as those of show_default.
        glued = question[m.start() - 1 : m.start()] + question[m.end() : m.end() + 1]
        capital = (
            raw[:1].isupper() and (i > 0 or not common_word or raw.isupper()) and "_" not in glued
        )
        if raw.isupper() and len(raw) > 2 and counts.get(w, 0) >= RARE_COUNT:
            capital = False  # shouted, not named
        situation = _within(m.start(), context)
        if situation:
            hard = False
        elif any(ch.isdigit() for ch in w):
            hard = _CODE_GLUE.isdisjoint(glued)
        else:
            hard = capital or not common_word
        t = stem(w)
        prev = out.get(t)
        alts = tuple(stem(normalize_word(spans[j].group())) for j in partners.get(i, ()))
        out[t] = Term(
            t,
            raw,
            hard or (prev.hard if prev else False),
            max(weight * (SITUATION_WEIGHT if situation else 1.0), prev.weight if prev else 0.0),
            alternatives=alts + (prev.alternatives if prev else ()),
        )
    return list(out.values())


def named_terms(terms: list[Term], lexicon: Lexicon) -> list[Term]:
    """An acronym the corpus never uses, read as the name it writes with those initials
    ("DPRK": "Democratic People's Republic of Korea", `Lexicon.acronym_name`): that name's
    words, sharing the acronym's weight, none of them a name the quote must hold. The
    corpus names it, just not that way. One the corpus uses and also writes out ("drf":
    "Django REST Framework", `Lexicon.initialism_name`) stays a name, held by either form
    (`Term.held_by`)."""
    out: list[Term] = []
    have = {t.term for t in terms}
    for t in terms:
        name = lexicon.acronym_name(t.word) if t.hard else None
        parts = [w for w in dict.fromkeys(tokenize(name)) if w not in have] if name else []
        if not parts:
            # One the corpus uses, and also writes out: either form answers for it.
            written = lexicon.initialism_name(t.word) if t.hard else None
            out.append(replace(t, spelled=tuple(tokenize(written))) if written else t)
            continue
        out += [replace(t, term=w, word=w, hard=False, weight=t.weight / len(parts)) for w in parts]
        have.update(parts)
    return out


def _alternatives(question: str, spans: list[re.Match[str]]) -> dict[int, list[int]]:
    """Which content words are offered as alternatives of each other: the nearest content
    words on either side of an "or" ("a usb stick or over pxe"), or two words joined by a
    slash that is not a path's ("meta/alt", "ETA / remaining time"; not "/usr/bin")."""
    content = [is_content(normalize_word(m.group())) for m in spans]
    pairs: list[tuple[int, int]] = []

    def nearest(start: int, step: int) -> int | None:
        j = start
        for _ in range(2):  # skip at most one little word ("or over pxe")
            if not 0 <= j < len(spans):
                return None
            if content[j]:
                return j
            j += step
        return None

    for i, m in enumerate(spans):
        if m.group().lower() == "or":
            a, b = nearest(i - 1, -1), nearest(i + 1, 1)
            if a is not None and b is not None:
                pairs.append((a, b))
    for i in range(len(spans) - 1):
        a, b = spans[i], spans[i + 1]
        gap = question[a.end() : b.start()]
        before, after = question[a.start() - 1 : a.start()], question[b.end() : b.end() + 1]
        if gap.strip() == "/" and "/" not in before + after and content[i] and content[i + 1]:
            pairs.append((i, i + 1))
    partners: dict[int, list[int]] = {}
    for a, b in pairs:
        partners.setdefault(a, []).append(b)
        partners.setdefault(b, []).append(a)
    return partners


def matches(term: str, terms: set[str]) -> bool:
    """Exact, or one word a prefix of the other ('korea'/'korean', 'crypto'/'cryptocurrency')."""
    if term in terms:
        return True
    if term.isdigit() or len(term) < 5:
        return False
    return any(len(t) >= 5 and (t.startswith(term) or term.startswith(t)) for t in terms)


_LEAD = r"(?i)^\W*(?:(?:and|but|so|then|also)\s+)?"
_MONTH = "January|February|March|April|May|June|July|August|September|October|November|December"
_NUMBER = re.compile(
    r"\d|(?i:\b(?:one|two|three|four|five|six|seven|eight|nine|ten|dozens?|hundreds?"
    r"|thousands?|millions?|billions?|several|numerous)\b)"
)
# The classic answer types: what a sentence contains when it answers the question word.
_TYPES: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (re.compile(_LEAD + r"how\s+(?:many|much)\b"), _NUMBER),
    (
        # "when did it start" asks for a time; "when should I use X" or "when to use X" for
        # a condition.
        re.compile(
            _LEAD + r"(?:when(?!\s+(?:should|shall|to|would|must|can|could|do\s+(?:i|you|we)|"
            r"does\s+it\s+make|is\s+it\s+(?:better|best|ok|okay|safe|worth)))"
            r"|what\s+(?:year|date|day|month|time))\b"
        ),
        re.compile(
            rf"\b(?:{_MONTH})\b|\b(?:1[89]|20)\d\d\b|\b\d{{1,2}}(?:st|nd|rd|th)\b"
            r"|(?i:\b(?:yesterday|today|ago|last\s+(?:year|month|week)|since|until|after|before)\b)"
        ),
    ),
    (
        re.compile(_LEAD + r"(?:why|what\s+for)\b"),
        re.compile(
            r"(?i)\b(?:because|due\s+to|in\s+order\s+to|so\s+that|as\s+a\s+means|reason|since)\b"
        ),
    ),
    (
        # A symptom ("X never gets called", "the list still isn't paginated") is answered by
        # a limit or a condition: what the software does not do, or does only when. A bare
        # "not" is no symptom ("should I firewall them or just not run them").
        re.compile(
            r"(?i)\b(?:never|doesnt|dont|isnt|wont|cant|didnt|arent|still|\w+n[’']t|"
            r"(?:does|do|did|is|are|was|were|will|can|could)\s+not)\b"
        ),
        re.compile(
            r"(?i)\b(?:not|only|unless|must|need\s+to|needs\s+to|requires?|required|cannot|"
            r"\w+n[’']t|instead|both)\b"
        ),
    ),
)
_CODE_ASKED = re.compile(
    r"(?i)\b(?:code|example|snippet|syntax|command|commands|script|function\s+signature|"
    r"how\s+(?:do|can|would|should)\s+i\s+(?:write|call|type|run|use))\b"
)


# Questions about a document itself, answered from what it states about itself (front
# matter, HTML meta: `author`, `date`, `publisher` metadata) and quoted where its text says it.
_ABOUT_DOCUMENT = (
    ("author", re.compile(
        r"(?i)^\W*(?:who|whose)\b.*\b(?:wr[io]te|written|writer|author(?:ed)?|penned|byline)\b"
        r".*\b(?:article|piece|story|post|page|document|report|paper|essay|blog|this|it)\b"
    )),
    ("date", re.compile(
        r"(?i)^\W*(?:when|what date|which date|what day|what year)\s+(?:was|were|is)\b"
        r".*\b(?:published|posted|written|dated|last updated)\b"
    )),
    ("publisher", re.compile(
        r"(?i)^\W*(?:who|which (?:site|outlet|publication|website|newspaper|magazine))\b"
        r".*\bpublish(?:ed|es)?\b"
    )),
)  # fmt: skip


_IDENTITY = ("title", "publisher", "site", "source")  # what names a document


def quoted(citations: list[Citation]) -> str:
    """An extractive answer's text: each cited passage in quotes, with its [n]."""
    return " ".join(f"“{c.quote}” [{c.n}]" for c in citations)


def asks_for_code(question: str) -> bool:
    return bool(_CODE_ASKED.search(question))


def asks_about_document(question: str) -> str | None:
    """The metadata field a question asks about its document, if any ("Who wrote ...?")."""
    for name, pattern in _ABOUT_DOCUMENT:
        if pattern.search(question):
            return name
    return None


def states(text: str, name: str, value: str) -> bool:
    """Whether `text` states the metadata value (a date in any usual spelling)."""
    low = " ".join(text.casefold().split())
    if name != "date":
        return " ".join(value.casefold().split()) in low
    try:
        day = dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return value.strip().casefold() in low
    month, mon = day.strftime("%B").casefold(), day.strftime("%b").casefold()
    spellings = (
        [day.isoformat()]
        + [f"{m} {day.day}, {day.year}" for m in (month, mon)]
        + [f"{day.day} {m} {day.year}" for m in (month, mon)]
    )
    return any(x in low for x in spellings)


def answer_type(question: str) -> Callable[[str], bool] | None:
    for asks, answers in _TYPES:
        if asks.search(question):
            return lambda text, a=answers: bool(a.search(text))
    return None


# --- the evidence -------------------------------------------------------------------------


@dataclass
class Unit:
    """A sentence of prose, or a whole code block, inside one retrieved chunk."""

    text: str
    start: int  # absolute offsets in the document text
    end: int
    code: bool
    para: int  # paragraph number within the chunk
    terms: set[str] = field(default_factory=set)
    vector: np.ndarray | None = field(default=None, repr=False)  # pooled at index time
    lex: float = 0.0
    sem: float = 0.0
    score: float = 0.0


@dataclass
class Passage:
    chunk: Document
    rank: int
    units: list[Unit]
    context_terms: set[str]
    dense: float
    section_lead: bool  # the chunk starts its section's body
    # The text from this chunk's start to the end of its continuation (the next chunk of the
    # same section), and where it starts: quotes are cut from it.
    text: str = ""
    text_start: int = 0
    own_units: int = 0  # units[:own_units] are this chunk's; the rest continue it
    # The next chunk when it continues the section after a paragraph break (no overlap): its
    # units are quoted only when the chosen quote runs on (`_run_on`), so they are split
    # and decoded only then, not for every retrieved chunk.
    following: Document | None = None
    tail: list[Unit] | None = None  # following's units, once read
    # The chunk after a chunk in its section (the lexicon's), to read past `following`.
    next_chunk: Callable[[Document], Document | None] | None = None

    def tail_units(self) -> list[Unit]:
        """The units of `following` and, when that is one paragraph the chunker left in a
        chunk of its own ("For Stable and Testing, ... even more noticeable."), of the chunks
        after it in the section while the quote could still run on: such a paragraph must
        not end the section's answer before the paragraph that says it."""
        if self.tail is not None:
            return self.tail
        self.tail = []
        doc = self.following
        # The run-on ends within SECTION_QUOTE_CHARS of a quote in this chunk (`_run_on`).
        reach = _start(self.chunk) + len(self.chunk.page_content) + SECTION_QUOTE_CHARS
        while doc is not None:
            units = units_of(doc)
            self.tail += units
            end = self.text_start + len(self.text)
            if end >= reach or self.next_chunk is None or len({u.para for u in units}) > 1:
                break
            doc = self.next_chunk(doc)
            if doc is None or not same_section(self.chunk.metadata, doc.metadata):
                break
            joined = joined_text(self.text, self.text_start, doc.page_content, _start(doc))
            if joined is None:
                break
            self.text = joined
        return self.tail

    @property
    def source(self) -> str:
        return str(self.chunk.metadata.get("source", ""))


def _section_key(p: Passage) -> tuple[str, str] | None:
    """(source, heading) when the passage's section is headed by a question."""
    heading = question_heading(p.chunk.metadata)
    return (p.source, heading) if heading is not None else None


def _start(chunk: Document) -> int:
    """Where the chunk starts in its document's text."""
    return int(chunk.metadata.get("start", 0))


def units_of(chunk: Document) -> list[Unit]:
    """The chunk's sentences and code blocks (as the indexer cut them), with their vectors."""
    md = chunk.metadata
    base = _start(chunk)
    spans = units_of_chunk(chunk.page_content, md)
    out = [
        Unit(chunk.page_content[u.start - base : u.end - base], u.start, u.end, u.code, u.para)
        for u in spans
    ]
    vectors = decode_unit_vectors(md.get(UNIT_VECTORS), DIMENSION)
    if vectors is not None and len(vectors) == len(out):
        for u, v in zip(out, vectors, strict=True):
            u.vector = v if np.any(v) else None
    return out


# --- the answerer -------------------------------------------------------------------------


def joined_text(text: str, start: int, later: str, later_start: int) -> str | None:
    """The document's text from `start` through the end of `later` (another slice of it,
    starting at or after `start`), when the two overlap or are cut apart only by a
    paragraph break (up to 2 characters, which chunks leave out); else None."""
    end = start + len(text)
    if later_start < start or later_start - end > 2:
        return None
    if later_start <= end:
        return text[: later_start - start] + later
    return text + "\n" * (later_start - end) + later


def pairs_with(first: tuple[str, int, int, int], other: tuple[str, int, int, int]) -> bool:
    """Whether a quote (source, chunk rank, start, end) may be shown as [2] beside the first:
    the same document, another chunk, no overlap (the fitter mirrors the answerer by it)."""
    (src, rank, start, end), (src2, rank2, start2, end2) = first, other
    return src == src2 and rank != rank2 and not (start2 < end and start < end2)


def more_quotes(
    first: tuple[str, int, int, int],
    others: list[tuple[str, int, int, int]],
    scores: list[float],
    *,
    best: float,
    margin: float,
    limit: int = MAX_QUOTES - 1,
) -> list[int]:
    """Which of the next-ranked passages (`others`, best first, with their `scores`) are quoted
    beside the first quote (`first`, before it runs on; it stops where a later one of them
    starts): those scoring within `margin` of the `best`,
    each from another chunk of the same document and overlapping no quote already shown, up
    to `limit`. When the ranking can't tell passages apart, showing them beats guessing: a
    document often restates a question before answering it a paragraph or a chunk later."""
    shown, picked = [first], []
    for i, (key, score) in enumerate(zip(others, scores, strict=True)):
        if len(picked) >= limit or best - score > margin:
            break
        if all(pairs_with(k, key) for k in shown):
            shown.append(key)
            picked.append(i)
    return picked


def announces(unit: Unit) -> bool:
    """Whether the code after this sentence belongs to it: a sentence ending in ":" announces
    it, and one left open without its final stop ("... has an entry like") goes on through it."""
    text = unit.text.rstrip()
    return not unit.code and bool(text) and (text.endswith(":") or text[-1].isalnum())


def leads_in(units: list[Unit], start: Unit) -> bool:
    """Whether a quote starting at `start` starts at the first of `units` (its section's
    opening) instead: when the prose between them is within LEAD_IN_CHARS. Code between
    them doesn't count, up to SECTION_QUOTE_CHARS of it: the section's example sits between
    the statement that opens it and the detail that matched the question's words."""
    between = [u for u in units if u.start < start.start]
    if not between:
        return False
    code = sum(u.end - u.start for u in between if u.code)
    return code <= SECTION_QUOTE_CHARS and start.start - between[0].start - code <= LEAD_IN_CHARS


_WRAP = re.compile(r"[ \t]*\n[ \t]*")
_FENCE_LINE = re.compile(r"^[ \t]*```", re.MULTILINE)


def closed_code(quote: str, *, starts_in_code: bool) -> str:
    """A quote whose code block was cut by its start or end, with the block's fence put back:
    an unclosed fence would turn the rest of the reply (the closing quote mark, "[1]", the
    next quotes) into code."""
    if starts_in_code and not quote.lstrip().startswith("```"):
        quote = "```\n" + quote
    if len(_FENCE_LINE.findall(quote)) % 2:
        quote += "\n```"
    return quote


def runs_on(p: Passage) -> bool:
    """Whether the chosen quote runs on through its section: only in a section below the page
    title, which keeps to one topic (an FAQ entry, a manual's subsection). A news article's
    body is its title's section, and there the next paragraph is often another story."""
    return int(p.chunk.metadata.get("level") or 0) >= 2


def same_section(md: dict, other: dict) -> bool:
    """Two chunks' metadata place them in one section of one document."""
    start = md.get("section_start")
    return (
        start is not None
        and other.get("section_start") == start
        and other.get("source") == md.get("source")
    )


class ExtractiveAnswerer:
    """Answers with a verbatim passage from the retrieved chunks, cited [n]; or abstains."""

    def __init__(
        self,
        *,
        lexicon: Callable[[], Lexicon],
        embeddings: Embeddings,
        common_words: frozenset[str],
        word_counts: Mapping[str, int] | None = None,
        decision: Decision | None = None,
        ranking: Ranking | None = None,
    ) -> None:
        self._lexicon = lexicon
        self._embeddings = embeddings  # the retriever's (cached): the query is embedded once
        self._common = common_words
        self._counts = word_counts if word_counts is not None else english_word_counts()
        self.decision = decision or Decision.default()
        self.ranking = ranking or Ranking.default()
        self._headings = HeadingVectors(embeddings)
        self.trace: list[tuple[Passage, list[Unit], dict[str, float]]] | None = None

    def answer(self, question: str | Standalone, docs: list[Document]) -> Answer:
        q = question if isinstance(question, Standalone) else Standalone(question)
        answer, features = self.explain(q, docs)
        answer.features = features
        return answer

    def explain(self, q: Standalone, docs: list[Document]) -> tuple[Answer, dict[str, float]]:
        """The answer and the features the decision saw (for the dev-set tools)."""
        terms = question_terms(q.question, self._common, counts=self._counts)
        # A word put in for a typo is an ordinary word, as `_read` makes one (the chain
        # respells the question before it is embedded and searched).
        terms = [replace(t, hard=False) if t.word.lower() in q.respelled else t for t in terms]
        # Words beside the question weigh less: the asker's situation (never a name the
        # answer must hold) and subject words borrowed from earlier in the thread.
        aside: set[str] = set()  # the situation's words, as typed
        for text, weight, names in (
            (q.preamble, SITUATION_WEIGHT, False),
            (q.situation, SITUATION_WEIGHT, False),
            (" ".join(q.context), 0.5, True),
            # The name of a symbol typed alone: held by a passage that says it in words.
            (" ".join(symbol_names(q.question)), SITUATION_WEIGHT, False),
        ):
            own = {t.term for t in terms}
            more = [
                t if names else replace(t, hard=False)
                for t in question_terms(text, self._common, weight=weight, counts=self._counts)
                if t.term not in own
            ]
            terms += more
            if not names:
                aside |= {t.word for t in more}
        if not terms or not docs:
            return self._abstain(q, docs, "no content terms" if not terms else "no chunks"), {}
        lexicon = self._lexicon()
        # A word of the situation the corpus never uses picks no passage, and its absence
        # says nothing about the answer's ("i've been reading the docs and i'm stuck").
        terms = [t for t in terms if t.word not in aside or lexicon.knows(t.term)]
        terms = named_terms(terms, lexicon)
        terms = [self._read(t, lexicon) for t in terms]
        # Word weights from the documents that hold the evidence, not the whole corpus.
        idf_of = lexicon.idf_within({str(d.metadata.get("source", "")) for d in docs})
        idf = {t.term: idf_of(t.term) * t.weight for t in terms}
        total = sum(idf.values()) or 1.0

        def coverage(have: set[str]) -> float:
            return sum(idf[t.term] for t in terms if matches(t.term, have)) / total

        # Whether the passage answers is judged on what is asked: the situation's words help
        # pick a passage, but an answer need not speak of "windows 10" or "the latest version".
        asked_terms = [t for t in terms if t.word not in aside]
        asked_total = sum(idf[t.term] for t in asked_terms) or 1.0

        def answered(have: set[str]) -> float:
            return sum(idf[t.term] for t in asked_terms if matches(t.term, have)) / asked_total

        qvec = np.asarray(self._embeddings.embed_query(q.meaning), dtype=np.float32)
        qvec /= max(float(np.linalg.norm(qvec)), 1e-12)
        wants_code = asks_for_code(q.question)
        wanted = answer_type(q.question)
        passages = [self._passage(d, i, lexicon) for i, d in enumerate(docs)]
        # Names the quote must hold are the asker's own: one borrowed from an earlier
        # question ("pytest" before "how do i feed it input for a prompt") was that one's.
        hard_terms = [t for t in terms if t.hard and t.weight == 1.0]
        candidates: list[tuple[Passage, Unit, list[Unit], dict[str, float]]] = []
        best_bm25 = max(float(d.metadata.get("bm25_score", 0.0)) for d in docs)
        per_source = Counter(p.source for p in passages)
        about = asks_about_document(q.question)
        if about is not None:
            stated = self._stated(passages, about, [t.term for t in terms if t.hard])
            if stated is not None:
                return self._compose(q, [stated]), {"about_document": 1.0}
        for p in passages:
            head = coverage(p.context_terms)
            for u in p.units:
                u.lex = coverage(u.terms)
                u.sem = float(u.vector @ qvec) if u.vector is not None else p.dense
            own = p.units[: p.own_units]
            chunk = {
                "bm25": float(p.chunk.metadata.get("bm25_score", 0.0)) / best_bm25
                if best_bm25 > 0
                else 0.0,
                "chunk_sem": max((u.sem for u in own), default=p.dense),
                "chunk_lex": coverage(set().union(*(u.terms for u in own)) | p.context_terms),
                "votes": (per_source[p.source] - 1) / max(1, len(passages) - 1),
            }
            for i, u in enumerate(own):
                if u.code and not wants_code:
                    continue
                window = self._window(p, u, wants_code)
                after = window[window.index(u) + 1 :]
                quoted = set().union(*(x.terms for x in window)) | p.context_terms
                f = {
                    "lex": u.lex,
                    "sem": u.sem,
                    "dense": p.dense,
                    "lead": head if p.section_lead and u.para == 0 else 0.0,
                    "heading": head,
                    "answer_type": float(wanted is not None and wanted(u.text)),
                    "rank": -float(p.rank),
                    "short": -float(len(u.text) < 25),  # "-", "Example:": no answer alone
                    "wlex": coverage(quoted),
                    "wsem": max(x.sem if x.vector is not None else 0.0 for x in window),
                    "after_sem": max((x.sem for x in after if x.vector is not None), default=0.0),
                    "after_lex": coverage(set().union(*(x.terms for x in after))),
                    "asks": float(u.text.rstrip().endswith("?")),
                    "opens": float(i == 0 or p.units[i - 1].para != u.para),
                    "hard": (
                        sum(t.held_by(quoted) for t in hard_terms) / len(hard_terms)
                        if hard_terms
                        else 1.0
                    ),
                    "size": min(1.0, (window[-1].end - window[0].start) / QUOTE_CHARS),
                    **chunk,
                }
                candidates.append((p, u, window, f))
        if not candidates:
            return self._abstain(q, docs, "no prose in the evidence"), {}
        # Question-relative features: which candidate leads on meaning, words, chunk.
        top_sem = max(f["sem"] for *_, f in candidates)
        top_lex = max(f["lex"] for *_, f in candidates)
        top_dense = max(f["dense"] for *_, f in candidates)
        for p, u, window, f in candidates:
            f["sem_top"] = float(f["sem"] >= top_sem)
            f["lex_top"] = float(f["lex"] >= top_lex)
            f["dense_top"] = float(f["dense"] >= top_dense)
            f["holds_top"] = float(f["chunk_sem"] >= top_sem)
            assert set(f) == set(RANK_FEATURES)
            u.score = self.ranking.score(f)
            if self.trace is not None:  # bench/fit_ranker.py
                self.trace.append((p, window, f))
        ranked = sorted(candidates, key=lambda c: -c[1].score)
        asked = self._asked_section(passages, qvec)
        first = next((c for c in ranked if _section_key(c[0]) == asked), None) if asked else None
        if first is not None:
            # The section under a heading that asks this question answers it: its best
            # candidate goes first (`bot/answer/asked.py`).
            ranked.remove(first)
            ranked.insert(0, first)
        top, unit, window, _ = ranked[0]
        quoted = set().union(*(u.terms for u in window))
        missing = [t for t in terms if not lexicon.knows(t.term)]
        features = {
            "dense": top.dense,
            "best_dense": max(p.dense for p in passages),
            "coverage": answered(quoted | top.context_terms),
            "chunk_coverage": answered(
                set().union(*(u.terms for u in top.units)) | top.context_terms
            ),
            "heading": answered(top.context_terms),
            "missing": sum(
                idf[t.term] * (1.0 if t.hard else absence_weight(t.word, self._counts))
                for t in missing
                if t.word not in aside
            )
            / asked_total,
            "hard_missing": float(any(t in hard_terms for t in missing)),
            "hard_uncovered": float(
                any(not t.held_by(quoted | top.context_terms) for t in hard_terms)
            ),
            "lead": float(top.section_lead and unit.para == 0),
            "sem": unit.sem,
            "window_sem": max(u.sem for u in window),
        }
        assert set(features) == set(DECISION_FEATURES)
        p_answer = self.decision.probability(features)
        features["p"] = p_answer
        top = self._opened(top, window, lexicon)
        opening, quote = self.quote_parts(top, window, wants_code)
        rest = ranked[1:]
        # A near-tie passage further on in the section is quoted as its own [n]: the first
        # quote's run-on stops where it starts rather than leave it out.
        picked = more_quotes(
            (top.source, top.rank, opening[0].start, opening[-1].end),
            [(p.source, p.rank, w[0].start, w[-1].end) for p, _, w, _ in rest],
            [u.score for _, u, _, _ in rest],
            best=unit.score,
            margin=self.ranking.second_margin,
        )
        later = [rest[i][2][0].start for i in picked if rest[i][2][0].start >= opening[-1].end]
        if later:
            quote = [u for u in quote if u.end <= min(later)]
        composed = self._compose(q, [(top, quote)] + [(rest[i][0], rest[i][2]) for i in picked])
        if p_answer < self.decision.threshold:
            reason = ", ".join(f"{k} {v:.2f}" for k, v in features.items())
            declined = self._abstain(q, docs, f"declined ({reason})")
            declined.candidate = composed.citations[0]
            return declined, features
        composed.candidate = composed.citations[0]
        return composed, features

    def _asked_section(self, passages: list[Passage], qvec: np.ndarray) -> tuple[str, str] | None:
        """(source, heading) of the retrieved section whose heading asks the question."""
        keys: list[tuple[str, str]] = []
        vectors: dict[str, np.ndarray] = {}
        for p in passages:
            if (key := _section_key(p)) is None:
                continue
            keys.append(key)
            stored = decode_unit_vectors(p.chunk.metadata.get(HEADING_VECTOR), DIMENSION)
            if stored is not None and len(stored) == 1:
                vectors[key[1]] = stored[0]
        vectors.update(self._headings.of(h for _, h in keys if h not in vectors))
        heading = asked_heading(vectors, qvec)
        # The same question heading on two pages: the one retrieved first.
        return next((k for k in keys if k[1] == heading), None)

    def _read(self, t: Term, lexicon: Lexicon) -> Term:
        """A question word as the corpus spells it: a chat shortening spelled out ("repo"),
        a typo of an English word the corpus uses corrected ("seperate"); else as typed. A
        corrected word is an ordinary word, not a rare name the answer must hold."""
        if (full := lexicon.spelled_out(t.term)) != t.term:
            return replace(t, term=full, hard=False)
        if not t.hard:
            return t
        fixed = lexicon.corrected(t.word, t.term, self._common, self._counts)
        if fixed != t.term:
            return replace(t, term=fixed, hard=False)
        if not lexicon.knows(t.term) and any(lexicon.knows(a) for a in t.alternatives):
            return replace(t, hard=False)  # "install from a usb stick or over pxe"
        return t

    # --- evidence -------------------------------------------------------------------------

    @staticmethod
    def _passage(doc: Document, rank: int, lexicon: Lexicon) -> Passage:
        md = doc.metadata
        units = units_of(doc)
        own = len(units)
        following = None
        text, start = doc.page_content, _start(doc)
        nxt = lexicon.next_chunk(doc)
        if nxt is not None:
            n_start = _start(nxt)
            end = start + len(text)
            joined = joined_text(text, start, nxt.page_content, n_start)
            if n_start <= end:  # overlapping chunks: the next one carries the text on
                text = joined or text
                units += [u for u in units_of(nxt) if u.start >= end]
            elif joined is not None and same_section(md, nxt.metadata):
                # Cut between two paragraphs of one section: only the chosen quote runs on.
                text = joined
                following = nxt
        for u in units:
            u.terms = set(tokenize(u.text))
        section_start = md.get("section_start")
        lead = section_start is not None and start <= int(section_start) + 2
        return Passage(
            chunk=doc,
            rank=rank,
            units=units,
            context_terms=set(tokenize(context_of(md))),
            dense=float(md.get("dense_score", 0.0)),
            section_lead=bool(lead)
            or (section_start is None and int(md.get("chunk_index", 1)) == 0),
            text=text,
            text_start=start,
            own_units=own,
            following=following,
            next_chunk=lexicon.next_chunk,
        )

    @staticmethod
    def quote_of(p: Passage, window: list[Unit]) -> str:
        return p.text[window[0].start - p.text_start : window[-1].end - p.text_start]

    @staticmethod
    def shown(p: Passage, window: list[Unit]) -> str:
        """The quote as shown: a line break inside a sentence of prose is where a printed
        page (a PDF) or a hard-wrapped source (Markdown at 80 columns) wrapped it, so it reads
        as a space; paragraph breaks, list items and code keep their lines."""
        parts: list[str] = []
        for prev, u in zip([None, *window[:-1]], window, strict=True):
            text = p.text[u.start - p.text_start : u.end - p.text_start]
            if prev is not None:
                gap = p.text[prev.end - p.text_start : u.start - p.text_start]
                # One line break between two prose sentences wraps a paragraph (a blank
                # line would end it); text between them is a sentence cut by a chunk's end.
                wrapped = gap.count("\n") == 1
                prose = not prev.code and not u.code and not ITEM_START.match(text)
                parts.append(_WRAP.sub(" ", gap) if wrapped and prose else gap)
            parts.append(text if u.code else _WRAP.sub(" ", text))
        return "".join(parts)

    @staticmethod
    def _window(p: Passage, unit: Unit, wants_code: bool) -> list[Unit]:
        """The best sentence and what completes it, within its paragraph: the sentence
        before it when the paragraph opens there or it refers back ("This is why ..."), the
        sentences after it up to QUOTE_CHARS, and the code an ending ":" announces."""
        i = p.units.index(unit)
        window = [unit]
        if i > 0:
            prev = p.units[i - 1]
            opens = i < 2 or p.units[i - 2].para != unit.para
            refers = re.match(
                r"(?i)^(?:this|that|these|it|they|however|but|so|thus|hence)\b", unit.text
            )
            if prev.para == unit.para and not prev.code and (opens or refers):
                window.insert(0, prev)
        j = i + 1
        while j < len(p.units):
            nxt = p.units[j]
            size = sum(len(u.text) for u in window) + len(nxt.text)
            introduces = window[-1].text.rstrip().endswith(":")
            if nxt.code and not (introduces or wants_code) or len(nxt.text) > MAX_CODE_IN_QUOTE:
                break
            # The answer often follows the sentence that restates the question, in the next
            # sentence or paragraph of the section: run on up to QUOTE_CHARS.
            if size > QUOTE_CHARS and not introduces:
                break
            window.append(nxt)
            j += 1
        while (
            window[-1].code
            and not wants_code
            and len(window) > 1
            and not window[-2].text.rstrip().endswith(":")
        ):
            window.pop()
        return window

    @classmethod
    def quote_parts(
        cls, p: Passage, window: list[Unit], wants_code: bool
    ) -> tuple[list[Unit], list[Unit]]:
        """The chosen window's opening (from its section's opening when it starts just inside
        it) and its quote (the opening, on through the section below the page title):
        near-tie passages are chosen against the opening (bench/fit_ranker.py labels
        candidates by the quote)."""
        opening = cls._lead_in(p, window)
        return opening, cls._run_on(p, opening, wants_code) if runs_on(p) else opening

    @staticmethod
    def _run_on(p: Passage, window: list[Unit], wants_code: bool) -> list[Unit]:
        """The chosen quote goes on through its section, into the section's next chunk, up to
        SECTION_QUOTE_CHARS: the sentence that matched the question's words often restates it,
        and the answer follows a paragraph later ("In case of frequent updates, this directory
        can quickly take a lot of disk space" ... "apt-get clean entirely empties it"); an FAQ
        entry's answer is its whole short body. Unannounced code ends it."""
        out = list(window)
        units = p.units + p.tail_units()
        j = units.index(out[-1]) + 1
        code = sum(u.end - u.start for u in out if u.code)
        while j < len(units):
            nxt = units[j]
            if nxt.code and not wants_code and not announces(out[-1]):
                break
            extra = code + (nxt.end - nxt.start if nxt.code else 0)
            if nxt.end - out[0].start - min(extra, SECTION_QUOTE_CHARS) > SECTION_QUOTE_CHARS:
                break
            code = extra
            out.append(nxt)
            j += 1
        return out

    @staticmethod
    def _opened(p: Passage, window: list[Unit], lexicon: Lexicon) -> Passage:
        """The passage with its section's opening put back in front when the chunk starts
        a little way into the section (the section runs over two chunks) and the chosen
        quote is near its start: then `_lead_in` can quote from the opening, where an
        FAQ-style answer or a section's first statement usually is."""
        md = p.chunk.metadata
        section_start = md.get("section_start")
        if p.section_lead or section_start is None or int(md.get("level") or 0) < 2:
            return p
        if window[0].start - int(section_start) > LEAD_IN_CHARS + SECTION_QUOTE_CHARS:
            return p  # too far in even if all between were code (see `leads_in`)
        prev = lexicon.previous_chunk(p.chunk)
        if prev is None or _start(prev) > int(section_start) + 2:
            return p
        first = p.units[0].start if p.units else p.text_start
        before = [u for u in units_of(prev) if u.end <= first]
        prev_start = _start(prev)
        text = joined_text(prev.page_content, prev_start, p.text, p.text_start)
        if not before or text is None or not leads_in(before + p.units, window[0]):
            return p
        for u in before:
            u.terms = set(tokenize(u.text))
        return replace(
            p,
            units=before + p.units,
            own_units=p.own_units + len(before),
            text=text,
            text_start=prev_start,
            section_lead=True,
        )

    @staticmethod
    def _lead_in(p: Passage, window: list[Unit]) -> list[Unit]:
        """A quote that starts a little way into a section starts at the section instead:
        the section's opening sentences state what it is about ("To implement a custom type,
        subclass ParamType.") before the detail that matched the words. Only below a page's
        title: the opening of a whole page or article is its byline and lede."""
        first = p.units.index(window[0])
        level = int(p.chunk.metadata.get("level") or 0)
        if not p.section_lead or level < 2 or first == 0 or first >= p.own_units:
            return window
        before = p.units[:first]
        return before + window if leads_in(p.units, window[0]) else window

    # --- output ---------------------------------------------------------------------------

    def _stated(
        self, passages: list[Passage], name: str, names: list[str]
    ) -> tuple[Passage, list[Unit]] | None:
        """The passage where the best-ranked document that has metadata `name` states it,
        when the question's names (`names`: "the CCN article") are the document's own (its
        title, publisher, site or file), not something it reports on ("the FireEye report")."""
        first = next((p for p in passages if p.chunk.metadata.get(name)), None)
        if first is None:
            return None
        md = first.chunk.metadata
        own = set(tokenize(" ".join(str(md.get(k) or "") for k in _IDENTITY)))
        if not all(matches(t, own) for t in names):
            return None
        source = first.source
        for p in passages:
            if p.source != source:
                continue
            value = str(p.chunk.metadata[name])
            for u in p.units[: p.own_units]:
                if not u.code and states(u.text, name, value):
                    return p, self._window(p, u, False)
        return None  # not in the retrieved text (perhaps only in the metadata): no quote

    @staticmethod
    def _citation(n: int, p: Passage, window: list[Unit]) -> Citation:
        quote = closed_code(ExtractiveAnswerer.shown(p, window), starts_in_code=window[0].code)
        return Citation.of_chunk(n, p.chunk, quote=quote, start=window[0].start, end=window[-1].end)

    @staticmethod
    def _compose(q: Standalone, quotes: list[tuple[Passage, list[Unit]]]) -> Answer:
        citations = [ExtractiveAnswerer._citation(n, p, w) for n, (p, w) in enumerate(quotes, 1)]
        return Answer(question=q.question, text=quoted(citations), citations=citations)

    def _abstain(self, q: Standalone, docs: list[Document], reason: str) -> Answer:
        log.debug("abstain on %r: %s", q.question, reason)
        text = NOT_FOUND
        near = [
            str(d.metadata.get("title") or d.metadata.get("source"))
            for d in docs
            if float(d.metadata.get("dense_score", 0.0)) >= self.decision.near_dense
        ]
        near = list(dict.fromkeys(near))[:NEAR_SOURCES]
        if near:
            text += " Nearest sources: " + "; ".join(near) + "."
        return Answer(question=q.question, text=text, abstained=True)
