"""Sentence splitting and lexical matching shared by the answerers and the retriever.

Offsets are absolute (into `SourceDoc.text`) so a quote can always be checked against the
document: `doc.text[s.start:s.end] == s.text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.documents import Document

# Function words and question scaffolding: they carry no evidence of an answer.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren as at be because been
    before being below between both but by can could did didn do does doesn doing don down during
    each else ever few for from further get got had has have having he her here hers herself him
    himself his how i if in into is isn it its itself just let me might more most much must my
    myself no nor not now of off on once only or other ought our ours ourselves out over own same
    shall she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up upon us very was wasn we were weren what when where
    whether which while who whom whose why will with won would yet you your yours yourself
    yourselves s t ll ve re d m
    according describe explain tell list name say says said know mention mentioned mentions
    article articles text thing things anything something please happen happened happens""".split()
)

_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
# Single letters and dotted initialisms ("U.S", "e.g") before a period are not sentence ends.
_ABBREV = frozenset(
    "mr mrs ms dr prof sr jr st vs etc inc ltd co corp dept fig no jan feb mar apr jun jul aug sep "
    "sept oct nov dec approx est gen gov sen rep".split()
)
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+|$)")


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # absolute offsets: source_text[start:end] == text
    end: int
    heading: bool = False  # markdown heading / front-matter line: callers skip it as evidence


# Common irregular verb forms, so "give up" meets "gave up" and "steal" meets "stolen".
_IRREGULAR = {
    "gave": "give", "given": "give", "began": "begin", "begun": "begin", "stole": "steal",
    "stolen": "steal", "took": "take", "taken": "take", "made": "make", "ran": "run",
    "went": "go", "gone": "go", "won": "win", "sold": "sell", "bought": "buy", "paid": "pay",
    "sent": "send", "spent": "spend", "brought": "bring", "held": "hold", "led": "lead",
    "left": "leave", "lost": "lose", "met": "meet", "saw": "see", "seen": "see",
    "thought": "think", "told": "tell", "wrote": "write", "written": "write", "chose": "choose",
    "chosen": "choose", "fell": "fall", "fallen": "fall", "rose": "rise", "risen": "rise",
    "knew": "know", "known": "know", "grew": "grow", "grown": "grow", "drew": "draw",
}  # fmt: skip


def stem(word: str) -> str:
    """Very light suffix stripping so 'attacks'/'attacked'/'attacking' match 'attack'."""
    w = _IRREGULAR.get(word, word)
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed") and not w.endswith("eed"):
        w = w[:-2]
    elif len(w) > 4 and w.endswith("es") and w[-3] in "sxz":
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 4 and w.endswith("ly"):
        w = w[:-2]
    # 'mining' -> 'min' and 'mine' -> 'min': drop a final e so both forms meet.
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    # 'stopped' -> 'stopp' -> 'stop'
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]
    return w


def normalize_word(raw: str) -> str:
    """Lowercase, drop possessive 's and ordinal suffixes ('17th' -> '17')."""
    w = raw.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if w[:1].isdigit():
        w = re.sub(r"(?<=\d)(st|nd|rd|th)$", "", w)
    return w


def words(text: str) -> list[str]:
    """Raw word tokens (original case), with internal apostrophes/hyphens kept."""
    return _WORD.findall(text)


def tokenize(text: str) -> list[str]:
    """Content terms: lowercase, stopwords removed, lightly stemmed. Used for BM25 and overlap."""
    return _terms(text)


def _terms(text: str) -> list[str]:
    out = []
    for raw in words(text):
        w = normalize_word(raw)
        if w in STOPWORDS or (len(w) < 2 and not w.isdigit()):
            continue
        out.append(stem(w))
    return out


_ABBREV_TAIL = re.compile(r"(?<!\w)([^\W\d_]+(?:\.[^\W\d_]+)*)$")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Is the period at `dot` part of an abbreviation rather than a sentence end?"""
    # Only the word before the dot matters: a bounded window keeps splitting linear.
    m = _ABBREV_TAIL.search(text, max(0, dot - 40), dot)
    if not m:
        return False
    token = m.group(1)
    return "." in token or len(token) == 1 or token.lower() in _ABBREV


def _split_line(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    pos = start
    for m in _END.finditer(text, start, end):
        if m.group().startswith(".") and len(m.group().rstrip("\"'”’)]")) == 1:
            if _is_abbreviation(text, m.start()):
                # "U.S. Treasury" stays one sentence; "in the U.S. Then" is accepted as a cost.
                continue
        nxt = text[m.end() : m.end() + 3].lstrip()
        if nxt and nxt[0].islower():
            continue  # "e.g. the ..." or an ellipsis mid-sentence
        spans.append((pos, m.end()))
        pos = m.end()
    spans.append((pos, end))
    return spans


def split_sentences(text: str, base: int = 0) -> list[Sentence]:
    """Split text into sentences; lines are hard boundaries, headings are their own unit."""
    out: list[Sentence] = []
    line_start = 0
    for line in text.splitlines(keepends=True):
        line_end = line_start + len(line)
        stripped = line.strip()
        if stripped:
            heading = stripped.startswith("#") or stripped == "---" or stripped.startswith("|")
            spans = [(line_start, line_end)] if heading else _split_line(text, line_start, line_end)
            for a, b in spans:
                seg = text[a:b]
                lead = len(seg) - len(seg.lstrip())
                trail = len(seg) - len(seg.rstrip())
                a, b = a + lead, b - trail
                if b > a:
                    out.append(Sentence(text[a:b], base + a, base + b, heading))
        line_start = line_end
    return out


def best_sentences(query: str, chunk: Document, *, max_sentences: int = 2) -> list[Sentence]:
    """The chunk sentences sharing the most query terms, best first.

    Offsets are absolute (chunk.metadata["start"] + local offset). Headings never count.
    When no sentence shares a term, the first sentence stands in so a citation always has a quote.
    """
    q_terms = set(tokenize(query))
    base = int(chunk.metadata.get("start", 0))
    sentences = [s for s in split_sentences(chunk.page_content, base) if not s.heading]
    if not sentences:
        return []
    scored = []
    for i, s in enumerate(sentences):
        terms = set(tokenize(s.text))
        # Longer matched terms are rarer and say more; short sentences are slightly preferred.
        score = sum(len(t) for t in q_terms & terms) / (1.0 + 0.01 * len(s.text))
        scored.append((score, -i, s))
    scored.sort(key=lambda x: (x[0], x[1]), reverse=True)
    best = [s for score, _, s in scored[:max_sentences] if score > 0]
    return best or [sentences[0]]
