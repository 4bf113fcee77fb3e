"""Citation verification of a model reply against the retrieved chunks: pure functions.

The model only proposes: its [n] markers are checked against the chunks (whether a chunk
backs a claim is `bot.citations.claim_supported`, the one home of claim checks), each kept
citation gets a verbatim quote chosen from its chunk, and the text is sanitised
(`bot.llm.sanitize`). Testable without a model or a server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate

from bot.citations import claim_supported
from bot.errors import USER_TEXTS
from bot.llm.sanitize import (
    AUTOLINK,
    IMAGE,
    LINK,
    MARKER,
    SECRET,
    URL,
    allowed_urls,
    strip_foreign_urls,
    unmarked,
)
from bot.mentions import MASS_MENTION, MENTION, neutralize_mentions
from bot.models import Answer, Citation
from bot.sentences import Sentence, best_sentences, split_sentences

_PLACEHOLDER = re.compile("\x00(\\d+)\x00")
_REFUSAL = re.compile(
    r"(?:could\s*n[o']t|can\s*n?[o']t|cannot|unable to|did\s*n[o']t|do\s*n[o']t|was\s*n[o']t able to)"
    r"\s+(?:find|locate|answer|know)"
    r"|\bno (?:relevant )?information\b|\bnot (?:enough|sufficient) information\b"
    r"|\b(?:sources?|context|documents?) (?:do|does)\s*(?:n[o']t| not) (?:contain|mention|say|cover)",
    re.I,
)


@dataclass
class _Claim:
    """One [..] marker in the model text and the sentence it supports."""

    start: int
    end: int
    numbers: list[int]  # as written, 1-based, already deduplicated
    claim: str


def verify_reply(
    question: str, raw: str, docs: list[Document], *, prompt_grams: set[tuple[str, ...]]
) -> Answer:
    """The model's reply as a verified Answer (or a decline), against the retrieved chunks.

    1. each [n] survives only if chunk n supports the sentence it is attached to; 2. cited
    sentences are kept, uncited ones only when a cited chunk supports them, and none that
    echoes the instructions (`prompt_grams`); 3. markers are renumbered in order of use, each
    citation quotes its chunk verbatim, and the text is sanitised (foreign URLs, mentions,
    secrets).
    """
    text = IMAGE.sub("", raw).strip()
    if not text or _REFUSAL.search(_first_sentence(text)):
        return abstain(question)
    support = _Support(question, docs)
    # 1. Each [n] survives only if chunk n supports the sentence it is attached to.
    #    Kept markers become placeholders holding the doc index until renumbering.
    out, pos = [], 0
    for c in _find_claims(text):
        kept = [n - 1 for n in c.numbers if 1 <= n <= len(docs) and support.ok(c.claim, n - 1)]
        out.append(text[pos : c.start])
        if not kept and out:
            out[-1] = out[-1].rstrip(" \t")  # "foo [9]." -> "foo."
        out.append("".join(f"\x00{i}\x00" for i in kept))
        pos = c.end
    out.append(text[pos:])
    body = "".join(out)
    # 2. Keep cited sentences, and uncited ones only when a cited chunk supports them;
    #    drop anything echoing the system prompt (prompt extraction, rule dumps).
    cited = sorted({int(i) for i in _PLACEHOLDER.findall(body)})
    kept_parts: list[str] = []
    prev_end = 0
    for sent in split_sentences(body):
        plain = _PLACEHOLDER.sub(" ", sent.text)
        if not re.search(r"\w", plain):  # a marker standing alone: keep with the sentence
            if kept_parts and _PLACEHOLDER.search(sent.text):
                kept_parts.append(" " + sent.text.strip())
                prev_end = sent.end
            continue
        if ngrams(plain) & prompt_grams:
            continue
        if not _PLACEHOLDER.search(sent.text) and not any(support.ok(plain, i) for i in cited):
            continue
        gap = body[prev_end : sent.start]
        kept_parts.append(("\n\n" if "\n" in gap else " ") if kept_parts else "")
        kept_parts.append(sent.text)
        prev_end = sent.end
    body = "".join(kept_parts)
    order = list(dict.fromkeys(int(i) for i in _PLACEHOLDER.findall(body)))
    if not order:
        return abstain(question)
    renumber = {i: k for k, i in enumerate(order, 1)}
    body = _PLACEHOLDER.sub(lambda m: f"[{renumber[int(m.group(1))]}]", body)

    cited_docs = [docs[i] for i in order]
    body = strip_foreign_urls(body, allowed_urls(cited_docs))
    body = neutralize_mentions(body)
    body = SECRET.sub("[redacted]", body)  # API-key shapes, whatever a source says
    body = re.sub(r"[ \t]{2,}", " ", body)
    body = re.sub(r"\n{3,}", "\n\n", body).strip()

    supported: dict[int, list[str]] = {}  # citation number -> the claims it backs
    for c in _find_claims(body):
        for n in c.numbers:
            supported.setdefault(n, []).append(c.claim)
    citations = [
        _citation(k, docs[i], " ".join(supported.get(k, ())) or question)
        for i, k in renumber.items()
    ]
    return Answer(question=question, text=body, citations=citations, mode="llm")


def abstain(question: str) -> Answer:
    """The LLM's decline: no answer in the sources."""
    return Answer(question=question, text=USER_TEXTS["not_found"], abstained=True, mode="llm")


def prompt_grams(prompt: ChatPromptTemplate) -> set[tuple[str, ...]]:
    """Word 5-grams of the instructions: an answer sentence sharing one is an echo."""
    return ngrams(
        " ".join(
            m.prompt.template
            for m in prompt.messages
            if isinstance(getattr(getattr(m, "prompt", None), "template", None), str)
        )
        .replace("{sources}", " ")
        .replace("{question}", " ")
    )


def draft_text(
    question: str, docs: Sequence[Document], raw: str, *, prompt_grams: set[tuple[str, ...]]
) -> str:
    """What may be shown of a reply still being written: its complete sentences, verified
    exactly like the final answer, without [n] markers. "" when nothing is verified yet."""
    done = complete_prefix(raw)
    if not done.strip():
        return ""
    answer = verify_reply(question, done, list(docs), prompt_grams=prompt_grams)
    return "" if answer.abstained else unmarked(answer.text)


# A sentence is complete once its end punctuation (and closing quotes/brackets) is followed by
# whitespace; the reply's last characters may still grow ("May [1" -> "May [1].").
_SENTENCE_DONE = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)|\n")


def complete_prefix(raw: str) -> str:
    """The reply up to its last complete sentence."""
    ends = [m.end() for m in _SENTENCE_DONE.finditer(raw)]
    return raw[: ends[-1]] if ends else ""


class _Support:
    """Does chunk i back a claim? `bot.citations.claim_supported`: its numbers, dates and names
    must all occur in the chunk, and most of its informative terms (not in the question or the
    chunk's title: restating those proves nothing)."""

    def __init__(self, question: str, docs: Sequence[Document]) -> None:
        self._question = question
        self._docs = list(docs)

    def ok(self, claim: str, i: int) -> bool:
        # Link targets, URLs and mentions are checked elsewhere; only the words are evidence.
        claim = LINK.sub(r"\1", IMAGE.sub(" ", claim))
        claim = URL.sub(" ", AUTOLINK.sub(" ", claim))
        claim = MENTION.sub(" ", MASS_MENTION.sub(" ", claim))
        doc = self._docs[i]
        title = str(doc.metadata.get("title", ""))
        return claim_supported(claim, doc.page_content, self._question, title)


def ngrams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = [x.lower() for x in re.findall(r"\w+", text)]
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def _find_claims(text: str) -> list[_Claim]:
    sentences = split_sentences(text)
    claims = []
    for m in MARKER.finditer(text):
        numbers = list(dict.fromkeys(int(x) for x in re.findall(r"\d+", m.group(1))))
        claims.append(_Claim(m.start(), m.end(), numbers, _claim_text(sentences, m.start())))
    return claims


def _claim_text(sentences: list[Sentence], pos: int) -> str:
    """The sentence a marker at pos belongs to; a marker standing alone cites the one before."""
    best = ""
    for s in sentences:
        if s.start > pos:
            break
        text = MARKER.sub(" ", s.text).strip()
        if re.search(r"\w", text):
            best = text
        if s.start <= pos < s.end and re.search(r"\w", text):
            return text
    return best


def _first_sentence(text: str) -> str:
    sentences = split_sentences(text)
    return sentences[0].text if sentences else text


def _citation(n: int, doc: Document, query: str) -> Citation:
    """A Citation whose quote is an exact slice of the chunk: the best sentence, or the best
    two when they are adjacent."""
    meta = doc.metadata
    base = int(meta.get("start", 0))
    best = best_sentences(query, doc, max_sentences=2)
    first = best[0]
    start, end = first.start, first.end
    if len(best) > 1:
        a, b = sorted(best[:2], key=lambda s: s.start)
        if not doc.page_content[a.end - base : b.start - base].strip():
            start, end = a.start, b.end
    quote = doc.page_content[start - base : end - base]
    return Citation.of_chunk(n, doc, quote=quote, start=start, end=end)
