"""Does a chunk back a claim? Pure functions, no model, no server.

A claim passes when both hold:

1. its key tokens all occur in the cited chunk: numbers ("17", "17th", "seventeenth" and
   "2014" are numbers; "10,000" is 10000), dates (month and weekday names: "May 17" and
   "17th of May" are the same tokens {May, 17}) and proper names (capitalised words not at a
   sentence start, acronyms, CamelCase words, and sentence-start words outside the common
   English lexicon). Matching is normalised: case, ordinal suffixes, punctuation, possessives;
   a name may match a longer form ("FireEye" in "FireEye's", "Korea" in "Korean") and an
   acronym may match the initials of a capitalised name ("DPRK" in "Democratic People's
   Republic of Korea"). A name in the cited document's title is exempt (the document is about
   it); numbers and dates never are.
2. most of its informative terms (those not in the question or the title: restating those
   proves nothing) occur in the chunk (`MIN_SUPPORT`), so a paraphrase passes but a claim
   about something else does not.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from bot.sentences import STOPWORDS, acronym_key, initialisms, is_acronym, tokenize

MIN_SUPPORT = 0.5  # share of a claim's informative terms its cited chunk must contain

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_AMBIGUOUS_MONTHS = frozenset({"may", "march", "mar", "jan", "dec", "sept"})  # also words
_WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
# "one"/"first" are left out: far more often "one of", "at first" than a quantity.
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
    "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "hundred": "hundred", "hundreds": "hundred", "thousand": "thousand",
    "thousands": "thousand", "million": "million", "millions": "million",
    "billion": "billion", "billions": "billion", "dozen": "12", "dozens": "12",
    "second": "2", "third": "3", "fourth": "4", "fifth": "5", "sixth": "6", "seventh": "7",
    "eighth": "8", "ninth": "9", "tenth": "10", "eleventh": "11", "twelfth": "12",
    "thirteenth": "13", "fourteenth": "14", "fifteenth": "15", "sixteenth": "16",
    "seventeenth": "17", "eighteenth": "18", "nineteenth": "19", "twentieth": "20",
    "thirtieth": "30",
}  # fmt: skip

_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:st|nd|rd|th|s)?(?![\w])", re.I)
_TOKEN = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*(?:['’]s?)?")
_MARKER = re.compile(r"\[\s*(?:sources?\s*)?\d{1,3}(?:\s*(?:,|and)\s*\d{1,3})*\s*\]", re.I)
# What may sit between a sentence end and the next sentence's first word.
_OPENERS = " \t\r\n\"'“”‘’([{*_-–—•>#"


@dataclass(frozen=True)
class KeyTokens:
    """What a claim must not get wrong: normalised numbers, dates and names."""

    numbers: frozenset[str] = field(default_factory=frozenset)  # "17", "2014", "3.5", "million"
    dates: frozenset[str] = field(default_factory=frozenset)  # "month:5", "day:monday"
    names: frozenset[str] = field(default_factory=frozenset)  # "fireeye", "korea"
    acronyms: frozenset[str] = field(default_factory=frozenset)  # "kdb", "un"

    def __bool__(self) -> bool:
        return bool(self.numbers or self.dates or self.names or self.acronyms)


def key_tokens(text: str) -> KeyTokens:
    """The numbers, dates and proper names of a claim (normalised)."""
    text = _MARKER.sub(" ", text)
    numbers, dates = _numbers_and_dates(text)
    names, acronyms = set(), set()
    common = _common_words()
    for m in _TOKEN.finditer(text):
        raw = m.group(0)
        word = _strip_possessive(raw)
        low = word.lower()
        if not any(ch.isupper() for ch in word) or low in _MONTHS or low in _WEEKDAYS:
            continue
        if low in STOPWORDS or low in _NUMBER_WORDS:
            continue
        if is_acronym(word):
            acronyms.add(acronym_key(word))
            continue
        camel = any(ch.isupper() for ch in word[1:])
        if _at_sentence_start(text, m.start()) and not camel:
            # "Researchers found ..." is no name; "Kaspersky found ..." is. Without a lexicon
            # a sentence-start word is never taken for a name.
            if not common or _is_common(low, common):
                continue
        names.add(low)
    return KeyTokens(frozenset(numbers), frozenset(dates), frozenset(names), frozenset(acronyms))


def missing_key_tokens(claim: str, chunk_text: str, title: str = "") -> list[str]:
    """The claim's key tokens that the chunk lacks (names in `title` are exempt)."""
    keys = key_tokens(claim)
    if not keys:
        return []
    chunk = _chunk_index(chunk_text)
    title_index = _chunk_index(title) if title else None
    missing = [n for n in sorted(keys.numbers) if n not in chunk.numbers]
    missing += [d for d in sorted(keys.dates) if d not in chunk.dates]
    for name in sorted(keys.names):
        if not chunk.has_name(name) and not (title_index and title_index.has_name(name)):
            missing.append(name)
    for acro in sorted(keys.acronyms):
        if not chunk.has_acronym(acro) and not (title_index and title_index.has_acronym(acro)):
            missing.append(acro.upper())
    return missing


def informative_terms(claim: str, question: str = "", title: str = "") -> set[str]:
    """The claim's content terms minus those of the question and the title."""
    return set(tokenize(_MARKER.sub(" ", claim))) - set(tokenize(question)) - set(tokenize(title))


def claim_supported(claim: str, chunk_text: str, question: str = "", title: str = "") -> bool:
    """Does `chunk_text` (a chunk of the document titled `title`) back `claim`?"""
    informative = informative_terms(claim, question, title)
    if not informative:
        return False
    terms = _chunk_index(chunk_text).terms
    if len(informative & terms) < MIN_SUPPORT * len(informative):
        return False
    return not missing_key_tokens(claim, chunk_text, title)


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ChunkIndex:
    numbers: frozenset[str]
    dates: frozenset[str]
    words: frozenset[str]  # lowercased, possessive stripped; hyphenated words also split
    initialisms: frozenset[str]  # "dprk" for "Democratic People's Republic of Korea"
    terms: frozenset[str]  # tokenize() terms, for the overlap share

    def has_name(self, name: str) -> bool:
        if name in self.words:
            return True
        for w in self.words:
            if w.startswith(name):  # a longer form: "Korea" in "Korean"
                return True
            if len(w) >= 4 and name.startswith(w) and len(name) - len(w) <= 3:
                return True  # "Koreans" for "Korea", "FireEye's" forms
        return False

    def has_acronym(self, acro: str) -> bool:
        return acro in self.words or acro in self.initialisms


@functools.lru_cache(maxsize=512)
def _chunk_index(text: str) -> _ChunkIndex:
    numbers, dates = _numbers_and_dates(text)
    words: set[str] = set()
    for m in _TOKEN.finditer(text):
        word = _strip_possessive(m.group(0)).lower()
        words.add(word)
        if "-" in word:
            words.update(p for p in word.split("-") if p)
        if is_acronym(_strip_possessive(m.group(0))):
            words.add(acronym_key(word))
    return _ChunkIndex(
        numbers=frozenset(numbers),
        dates=frozenset(dates),
        words=frozenset(words),
        initialisms=frozenset(initialisms(text)),
        terms=frozenset(tokenize(text)),
    )


def _numbers_and_dates(text: str) -> tuple[set[str], set[str]]:
    numbers: set[str] = set()
    dates: set[str] = set()

    def iso(m: re.Match[str]) -> str:
        year, month, day = m.groups()
        numbers.update({_norm_number(year), _norm_number(day)})
        if 1 <= int(month) <= 12:
            dates.add(f"month:{int(month)}")
        return " "

    text = _ISO_DATE.sub(iso, text)
    for m in _NUMBER.finditer(text):
        numbers.add(_norm_number(m.group(0)))
    for m in _TOKEN.finditer(text):
        word = _strip_possessive(m.group(0))
        low = word.lower().rstrip(".")
        if low in _NUMBER_WORDS:
            numbers.add(_NUMBER_WORDS[low])
        elif low in _MONTHS and (word[0].isupper() or low not in _AMBIGUOUS_MONTHS):
            if low == "may" and word == "May" and _at_sentence_start(text, m.start()):
                nxt = text[m.end() : m.end() + 12].lstrip().lower()
                if nxt.split(" ")[0] in {"i", "we", "you", "it", "they", "he", "she", "be"}:
                    continue  # "May I ...": the verb
            if word[0].isupper() or len(low) > 3:
                dates.add(f"month:{_MONTHS[low]}")
        elif low in _WEEKDAYS:
            dates.add(f"day:{low}")
    return numbers, dates


def _norm_number(raw: str) -> str:
    s = re.sub(r"(?i)(st|nd|rd|th|s)$", "", raw)
    if re.fullmatch(r"\d{1,3}(,\d{3})+", s):
        s = s.replace(",", "")
    s = s.replace(",", ".") if re.fullmatch(r"\d+,\d{1,2}", s) else s.replace(",", "")
    if "." in s:
        s = s.rstrip("0").rstrip(".") if re.fullmatch(r"\d+\.\d+", s) else s
    return s.lstrip("0") or "0"


def _strip_possessive(word: str) -> str:
    word = word.replace("’", "'")
    if word.endswith("'s"):
        return word[:-2]
    return word.rstrip("'")


def _at_sentence_start(text: str, pos: int) -> bool:
    before = text[:pos].rstrip(_OPENERS)
    return not before or before[-1] in ".!?:;\n"


def _is_common(word: str, common: frozenset[str]) -> bool:
    forms = {word}
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"),
                         ("ing", ""), ("ing", "e"), ("ly", "")):  # fmt: skip
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            forms.add(word[: -len(suffix)] + repl)
    return not forms.isdisjoint(common)


@functools.lru_cache(maxsize=1)
def _common_words() -> frozenset[str]:
    """Whole lowercase words of the embedder's WordPiece vocabulary (~20k common words)."""
    import json

    try:
        from index.embedder import TOKENIZER_PATH

        vocab = json.loads(TOKENIZER_PATH.read_text(encoding="utf-8"))["model"]["vocab"]
    except (OSError, ValueError, KeyError, ImportError):
        return frozenset()
    return frozenset(w for w in vocab if w.isalpha() and w.islower())
