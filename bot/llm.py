"""OpenAI-compatible answerer (langchain-openai) with verified citations and bounded time.

The model only proposes: its [n] markers are checked against the retrieved chunks, each kept
citation gets a verbatim quote chosen from its chunk, and the text is sanitised (foreign URLs,
Discord mentions, markdown images). Every failure becomes `LLMError(kind=...)` so the chain
can fall back to the extractive answer.

Retries are ours, not the SDK's: the openai client retries every 429, including
`insufficient_quota`, which never recovers. So the SDK gets max_retries=0 and `LLMAnswerer`
retries transient failures itself, inside one overall deadline.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.prompts import ChatPromptTemplate

from bot.budget import DailyTokenBudget
from bot.citations import claim_supported
from bot.errors import USER_TEXTS, LLMError
from bot.mentions import MASS_MENTION, MENTION, neutralize_mentions
from bot.models import Answer, Citation
from bot.sentences import Sentence, best_sentences, split_sentences
from bot.settings import BotSettings

log = logging.getLogger(__name__)

CONDENSE_MAX_TOKENS = 96
CONDENSE_MAX_CHARS = 300
REPLY_WITHIN_S = 30.0  # what a user may wait, LLM failures and fallback included
CONDENSE_DEADLINE_S = 5.0  # a follow-up rewrite must leave the answer most of the 30 s
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")
_GRACE_S = 0.5  # the watchdog fires this long after the HTTP timeout should have
_RETRYABLE = frozenset({"timeout", "rate_limit", "server", "connection"})

# [1], [1, 2], [1 and 2], [Source 1]; not [1](url), which is a markdown link.
_MARKER = re.compile(r"\[\s*(?:sources?\s*)?(\d{1,3}(?:\s*(?:,|and)\s*\d{1,3})*)\s*\](?!\()", re.I)
_IMAGE = re.compile(r"!\[[^\]\n]*\](?:\([^)\n]*\)|\[[^\]\n]*\])")
_LINK = re.compile(r"\[([^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^>\s]+)>")
_URL = re.compile(r"(?:https?|ftp)://[^\s<>()\[\]{}\"'`]+|\bwww\.[^\s<>()\[\]{}\"'`]+", re.I)
_REFUSAL = re.compile(
    r"(?:could\s*n[o']t|can\s*n?[o']t|cannot|unable to|did\s*n[o']t|do\s*n[o']t|was\s*n[o']t able to)"
    r"\s+(?:find|locate|answer|know)"
    r"|\bno (?:relevant )?information\b|\bnot (?:enough|sufficient) information\b"
    r"|\b(?:sources?|context|documents?) (?:do|does)\s*(?:n[o']t| not) (?:contain|mention|say|cover)",
    re.I,
)
_SECRET = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-*]{6,}")
# A rewrite that starts like a transcript line echoes the history instead of asking.
_ROLE_ECHO = re.compile(r"^\s*(?:user|bot|assistant|ai|human)\s*:", re.I)
_LABEL = re.compile(r"^\s*(?:standalone\s+)?(?:question|rewritten(?: question)?)\s*:\s*", re.I)


def make_chat_model(settings: BotSettings) -> BaseChatModel | None:
    """ChatOpenAI for the configured endpoint, or None when no key and no base URL are set."""
    if not settings.llm_enabled:
        return None
    from langchain_openai import ChatOpenAI  # only needed when an LLM is configured

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
    return ChatOpenAI(
        model=settings.openai_model,
        api_key=key,
        base_url=settings.openai_base_url,
        timeout=settings.llm_timeout_s,
        max_retries=0,  # LLMAnswerer retries (never on insufficient_quota)
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
    )


def llm_deadline_s(settings: BotSettings) -> float:
    """Wall-clock bound for one answer step: every attempt at full timeout, plus slack,
    capped so that a follow-up rewrite plus the answer still reply within REPLY_WITHIN_S."""
    wanted = settings.llm_timeout_s * (settings.llm_max_retries + 1) + 2.0
    return min(wanted, REPLY_WITHIN_S - CONDENSE_DEADLINE_S - 1.0)


def format_sources(docs: Sequence[Document]) -> str:
    """Numbered sources for the prompt: "[n] title (publisher, date)" then the chunk text."""
    parts = []
    for n, doc in enumerate(docs, 1):
        meta = doc.metadata
        title = meta.get("title") or meta.get("source") or "Untitled"
        details = ", ".join(str(meta[k]) for k in ("publisher", "date") if meta.get(k))
        head = f"[{n}] {title}" + (f" ({details})" if details else "")
        parts.append(f"{head}\n{doc.page_content.strip()}")
    return "\n\n".join(parts)


def format_history(history: Sequence[tuple[str, str]]) -> str:
    """(question, answer) pairs, oldest first, as a short transcript."""
    lines = []
    for question, answer in history:
        lines.append(f"User: {question}")
        if answer:
            lines.append(f"Bot: {answer}")
    return "\n".join(lines)


@dataclass
class _Claim:
    """One [..] marker in the model text and the sentence it supports."""

    start: int
    end: int
    numbers: list[int]  # as written, 1-based, already deduplicated
    claim: str


class LLMAnswerer:
    def __init__(
        self,
        *,
        llm: BaseChatModel,
        prompt: ChatPromptTemplate,
        condense_prompt: ChatPromptTemplate | None = None,
        max_retries: int,
        deadline_s: float,
        condense_deadline_s: float = CONDENSE_DEADLINE_S,
        budget: DailyTokenBudget | None = None,
    ) -> None:
        self._llm = llm
        self._prompt = prompt
        self._condense_prompt = condense_prompt
        self._max_retries = max_retries
        self._deadline_s = deadline_s
        self._condense_deadline_s = condense_deadline_s
        self._budget = budget
        # Word 5-grams of the instructions: an answer sentence sharing one is an echo.
        self._prompt_grams = _ngrams(
            " ".join(
                m.prompt.template
                for m in prompt.messages
                if isinstance(getattr(getattr(m, "prompt", None), "template", None), str)
            )
            .replace("{sources}", " ")
            .replace("{question}", " ")
        )

    # --- public ---------------------------------------------------------------------------

    def answer(
        self,
        question: str,
        docs: Sequence[Document],
        *,
        on_draft: Callable[[str], None] | None = None,
    ) -> Answer:
        """The verified answer. With `on_draft` the reply is streamed, and whenever another
        sentence is complete, the verified text so far (`draft`) is passed to it (from this
        thread): a draft to show while the model writes. The result is verified as always."""
        if on_draft is not None:
            return self._answer_with_drafts(question, list(docs), on_draft)
        started = time.monotonic()
        docs = list(docs)
        messages = self._prompt.format_messages(question=question, sources=format_sources(docs))
        raw = self._invoke(
            messages, deadline_s=self._deadline_s, max_retries=self._max_retries, what="answer"
        )
        answer = self._verify(question, raw, docs)
        answer.latency_ms = (time.monotonic() - started) * 1000
        return answer

    def stream(self, question: str, docs: Sequence[Document]) -> Generator[str, None, Answer]:
        """Yield the model's raw text deltas as they arrive, then return the verified Answer.

        The deltas are unverified model text: never show them as they are (`draft` is what
        may be shown of the text so far). Failures raise LLMError like `answer`; one before
        the first delta is retried, one after it is not (the caller has shown text already,
        and falls back as a whole).
        """
        started = time.monotonic()
        docs = list(docs)
        messages = self._prompt.format_messages(question=question, sources=format_sources(docs))
        raw = yield from self._stream(
            messages, deadline_s=self._deadline_s, max_retries=self._max_retries
        )
        answer = self._verify(question, raw, docs)
        answer.latency_ms = (time.monotonic() - started) * 1000
        return answer

    def draft(self, question: str, docs: Sequence[Document], raw: str) -> str:
        """What may be shown of a reply still being written: its complete sentences, verified
        exactly like the final answer (claims failing verification, prompt echoes, foreign
        URLs, mentions and secrets never show), without [n] markers (the final numbering is
        known only at the end). "" when nothing is verified yet."""
        done = _complete_prefix(raw)
        if not done.strip():
            return ""
        answer = self._verify(question, done, list(docs))
        return "" if answer.abstained else unmarked(answer.text)

    def _answer_with_drafts(
        self, question: str, docs: list[Document], on_draft: Callable[[str], None]
    ) -> Answer:
        stream = self.stream(question, docs)
        raw, prefix, shown = "", "", ""
        while True:
            try:
                raw += next(stream)
            except StopIteration as done:
                return done.value
            if (current := _complete_prefix(raw)) == prefix:
                continue  # no new complete sentence: nothing new to verify
            prefix = current
            text = self.draft(question, docs, raw)
            if text and text != shown:
                shown = text
                on_draft(text)

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """Rewrite a follow-up as a standalone question; LLMError when the reply is unusable."""
        if self._condense_prompt is None:
            raise LLMError(USER_TEXTS["malformed"], kind="malformed")
        messages = self._condense_prompt.format_messages(
            question=question, history=format_history(history)
        )
        raw = self._invoke(
            messages,
            deadline_s=min(self._deadline_s, self._condense_deadline_s),
            max_retries=0,  # the caller's rule is a fine fallback; don't spend the budget
            what="condense",
            max_tokens=CONDENSE_MAX_TOKENS,
        )
        lines = [ln.strip() for ln in raw.strip().splitlines() if ln.strip()]
        text = _LABEL.sub("", lines[0]).strip().strip("\"'“”").strip() if lines else ""
        if not text or len(text) > CONDENSE_MAX_CHARS or _ROLE_ECHO.match(text):
            log.warning("LLM condense gave an unusable rewrite (%d chars)", len(raw))
            raise LLMError(USER_TEXTS["malformed"], kind="malformed")
        return neutralize_mentions(text)

    # --- the bounded call -----------------------------------------------------------------

    def _invoke(
        self,
        messages: list[BaseMessage],
        *,
        deadline_s: float,
        max_retries: int,
        what: str,
        **kwargs: Any,
    ) -> str:
        if self._budget is not None and not self._budget.allow():
            log.warning("LLM %s skipped: the daily token budget is used up", what)
            raise LLMError(USER_TEXTS["budget"], kind="budget")
        deadline = time.monotonic() + deadline_s
        attempts = max_retries + 1
        for attempt in range(1, attempts + 1):
            remaining = deadline - time.monotonic()
            # Split what is left evenly so a hung first attempt still leaves room for a retry;
            # the HTTP timeout fires first, the watchdog only if the reply drips in.
            timeout = (remaining - _GRACE_S) / (attempts - attempt + 1)
            try:
                if timeout <= 0.05:
                    raise LLMError(USER_TEXTS["timeout"], kind="timeout")
                message = _call_with_deadline(
                    lambda t=timeout: self._llm.invoke(messages, timeout=t, **kwargs),
                    timeout + _GRACE_S,
                )
                text = _message_text(message)
                self._record_usage(message, messages, text)
                if not text.strip():
                    raise LLMError(USER_TEXTS["malformed"], kind="malformed")
                return text
            except Exception as exc:  # noqa: BLE001 - every failure maps to one LLMError
                cause = exc
                err, detail, wait_s = _classify(exc)
            last = attempt == attempts or err.kind not in _RETRYABLE
            if not last:
                if wait_s is None:  # no retry-after: short exponential backoff
                    wait_s = 0.0 if err.kind == "timeout" else min(0.25 * 2**attempt, 2.0)
                if time.monotonic() + wait_s >= deadline:
                    last = True  # the wait alone would overrun the deadline: give up now
            log.warning(
                "LLM %s failed (%s, attempt %d/%d): %s%s",
                what,
                err.kind,
                attempt,
                attempts,
                detail,
                "" if last else f"; retrying in {wait_s:.2f}s",
            )
            if last:
                raise err from (None if cause is err else cause)
            time.sleep(wait_s)
        raise AssertionError("unreachable")

    def _stream(
        self, messages: list[BaseMessage], *, deadline_s: float, max_retries: int
    ) -> Generator[str, None, str]:
        """Like `_invoke`, streamed: yields deltas, returns the whole text; same deadline."""
        if self._budget is not None and not self._budget.allow():
            log.warning("LLM answer skipped: the daily token budget is used up")
            raise LLMError(USER_TEXTS["budget"], kind="budget")
        deadline = time.monotonic() + deadline_s
        attempts = max_retries + 1
        for attempt in range(1, attempts + 1):
            remaining = deadline - time.monotonic()
            timeout = (remaining - _GRACE_S) / (attempts - attempt + 1)
            parts: list[str] = []
            try:
                if timeout <= 0.05:
                    raise LLMError(USER_TEXTS["timeout"], kind="timeout")
                # Each read is bounded by the HTTP timeout; the whole reply by the deadline.
                stream = _StreamWorker(self._llm, messages, timeout=timeout)
                try:
                    for delta in stream.deltas(until=deadline):
                        parts.append(delta)
                        yield delta
                finally:
                    stream.stop()
                text = "".join(parts)
                self._record_usage(stream.message, messages, text)
                if not text.strip():
                    raise LLMError(USER_TEXTS["malformed"], kind="malformed")
                return text
            except Exception as exc:  # noqa: BLE001 - every failure maps to one LLMError
                cause = exc
                err, detail, wait_s = _classify(exc)
            # Text already shown cannot be taken back by a retry: give up, the caller falls back.
            last = attempt == attempts or err.kind not in _RETRYABLE or bool(parts)
            if not last:
                if wait_s is None:
                    wait_s = 0.0 if err.kind == "timeout" else min(0.25 * 2**attempt, 2.0)
                if time.monotonic() + wait_s >= deadline:
                    last = True
            log.warning(
                "LLM answer stream failed (%s, attempt %d/%d, after %d deltas): %s%s",
                err.kind,
                attempt,
                attempts,
                len(parts),
                detail,
                "" if last else f"; retrying in {wait_s:.2f}s",
            )
            if last:
                raise err from (None if cause is err else cause)
            time.sleep(wait_s)
        raise AssertionError("unreachable")

    def _record_usage(self, message: BaseMessage, sent: list[BaseMessage], text: str) -> None:
        if self._budget is None:
            return
        usage = getattr(message, "usage_metadata", None) or {}
        tokens = usage.get("total_tokens")
        if not tokens:  # servers that report no usage: ~4 characters a token
            tokens = (sum(len(str(m.content)) for m in sent) + len(text)) // 4 + 1
        self._budget.record(int(tokens))

    # --- verification ---------------------------------------------------------------------

    def _verify(self, question: str, raw: str, docs: list[Document]) -> Answer:
        text = _IMAGE.sub("", raw).strip()
        if not text or _REFUSAL.search(_first_sentence(text)):
            return self._abstain(question)
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
            if self._echoes_prompt(plain):
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
            return self._abstain(question)
        renumber = {i: k for k, i in enumerate(order, 1)}
        body = _PLACEHOLDER.sub(lambda m: f"[{renumber[int(m.group(1))]}]", body)

        cited_docs = [docs[i] for i in order]
        body = _strip_foreign_urls(body, _allowed_urls(cited_docs))
        body = neutralize_mentions(body)
        body = _SECRET.sub("[redacted]", body)  # API-key shapes, whatever a source says
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

    def _echoes_prompt(self, sentence: str) -> bool:
        grams = _ngrams(sentence)
        return bool(grams & self._prompt_grams)

    @staticmethod
    def _abstain(question: str) -> Answer:
        return Answer(question=question, text=USER_TEXTS["not_found"], abstained=True, mode="llm")


# --- helpers ---------------------------------------------------------------------------------


def _call_with_deadline(fn: Callable[[], BaseMessage], limit_s: float) -> BaseMessage:
    """Run fn in a daemon thread and stop waiting at limit_s.

    The HTTP timeout bounds each socket read, not the whole reply (a server can drip bytes);
    this is the hard bound. An abandoned call runs on in its daemon thread, result unused.
    """
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()  # keep LangChain callbacks/tracing parentage

    def run() -> None:
        try:
            box["value"] = ctx.run(fn)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="llm-call", daemon=True)
    worker.start()
    worker.join(limit_s)
    if worker.is_alive():
        raise LLMError(USER_TEXTS["timeout"], kind="timeout")
    if "error" in box:
        raise box["error"]
    return box["value"]


class _StreamWorker:
    """Runs `llm.stream(messages)` in a daemon thread and hands its text deltas over a queue,
    so the consumer can stop waiting at a deadline (a server can drip chunks forever)."""

    def __init__(self, llm: BaseChatModel, messages: list[BaseMessage], *, timeout: float) -> None:
        self.message: BaseMessage | None = None  # the aggregated chunks (usage, if any)
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        ctx = contextvars.copy_context()  # keep LangChain callbacks/tracing parentage
        self._thread = threading.Thread(
            target=ctx.run,
            args=(self._run, llm, messages, timeout),
            name="llm-stream",
            daemon=True,
        )
        self._thread.start()

    def _run(self, llm: BaseChatModel, messages: list[BaseMessage], timeout: float) -> None:
        try:
            total = None
            for chunk in llm.stream(messages, timeout=timeout):
                if self._stop.is_set():
                    return  # abandoned: leaving the loop closes the HTTP response
                total = chunk if total is None else total + chunk
                text = _message_text(chunk)
                if text:
                    self._queue.put(("delta", text))
            self._queue.put(("done", total))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            self._queue.put(("error", exc))

    def deltas(self, *, until: float) -> Generator[str, None, None]:
        while True:
            try:
                kind, value = self._queue.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                raise LLMError(USER_TEXTS["timeout"], kind="timeout") from None
            if kind == "delta":
                yield value
            elif kind == "error":
                raise value
            else:
                self.message = value
                return

    def stop(self) -> None:
        self._stop.set()


def unmarked(text: str) -> str:
    """`text` without its [n] markers (and the space they leave before punctuation)."""
    text = _MARKER.sub("", text)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


# A sentence is complete once its end punctuation (and closing quotes/brackets) is followed by
# whitespace; the reply's last characters may still grow ("May [1" -> "May [1].").
_SENTENCE_DONE = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)|\n")


def _complete_prefix(raw: str) -> str:
    """The reply up to its last complete sentence."""
    ends = [m.end() for m in _SENTENCE_DONE.finditer(raw)]
    return raw[: ends[-1]] if ends else ""


def _message_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        p if isinstance(p, str) else str(p.get("text", ""))
        for p in content
        if isinstance(p, str) or p.get("type") == "text"
    )


def _classify(exc: BaseException) -> tuple[LLMError, str, float | None]:
    """(error to raise, log detail without secrets, server-requested wait in seconds)."""
    if isinstance(exc, LLMError):
        return exc, exc.kind, None
    wait_s = None
    if isinstance(exc, openai.APITimeoutError):
        kind = "timeout"
    elif isinstance(exc, openai.APIConnectionError):
        kind = "connection"
    elif isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            quota = "insufficient_quota" in (exc.code, exc.type)
            kind = "quota" if quota else "rate_limit"
            wait_s = None if quota else _retry_after(exc.response.headers)
        elif status in (401, 403):
            kind = "auth"
        elif status >= 500:
            kind = "server"
        else:
            kind = "bad_request"
    elif isinstance(exc, openai.APIResponseValidationError | ValueError | KeyError | TypeError):
        kind = "malformed"  # non-JSON body, missing/empty choices, wrong shapes
    elif isinstance(exc, IndexError):
        kind = "malformed"  # empty generations
    else:
        kind = "connection" if isinstance(exc, OSError) else "malformed"
    if kind == "auth":
        # The provider's message may echo the key; keep only what cannot contain it.
        detail = f"{type(exc).__name__}: HTTP {exc.status_code}"  # type: ignore[attr-defined]
    else:
        detail = f"{type(exc).__name__}: {_SECRET.sub('[redacted]', str(exc))[:300]}"
    return LLMError(USER_TEXTS[kind], kind=kind), detail, wait_s


def _retry_after(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            return None  # an HTTP date: fall back to our own backoff
    return None


class _Support:
    """Does chunk i back a claim? `bot.citations.claim_supported`: its numbers, dates and names
    must all occur in the chunk, and most of its informative terms (not in the question or the
    chunk's title: restating those proves nothing)."""

    def __init__(self, question: str, docs: Sequence[Document]) -> None:
        self._question = question
        self._docs = list(docs)

    def ok(self, claim: str, i: int) -> bool:
        # Link targets, URLs and mentions are checked elsewhere; only the words are evidence.
        claim = _LINK.sub(r"\1", _IMAGE.sub(" ", claim))
        claim = _URL.sub(" ", _AUTOLINK.sub(" ", claim))
        claim = MENTION.sub(" ", MASS_MENTION.sub(" ", claim))
        doc = self._docs[i]
        title = str(doc.metadata.get("title", ""))
        return claim_supported(claim, doc.page_content, self._question, title)


def _ngrams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = [x.lower() for x in re.findall(r"\w+", text)]
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def _find_claims(text: str) -> list[_Claim]:
    sentences = split_sentences(text)
    claims = []
    for m in _MARKER.finditer(text):
        numbers = list(dict.fromkeys(int(x) for x in re.findall(r"\d+", m.group(1))))
        claims.append(_Claim(m.start(), m.end(), numbers, _claim_text(sentences, m.start())))
    return claims


def _claim_text(sentences: list[Sentence], pos: int) -> str:
    """The sentence a marker at pos belongs to; a marker standing alone cites the one before."""
    best = ""
    for s in sentences:
        if s.start > pos:
            break
        text = _MARKER.sub(" ", s.text).strip()
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
    return Citation(
        n=n,
        title=str(meta.get("title") or meta.get("source") or "Untitled"),
        source=str(meta.get("source", "")),
        quote=quote,
        start=start,
        end=end,
        page=meta.get("page"),
        publisher=meta.get("publisher"),
        author=meta.get("author"),
        date=meta.get("date"),
        url=meta.get("url"),
        chunk_id=doc.id,
    )


def _allowed_urls(docs: Sequence[Document]) -> set[str]:
    urls = set()
    for d in docs:
        if d.metadata.get("url"):
            urls.add(_norm_url(str(d.metadata["url"])))
        urls.update(_norm_url(u) for u in _URL.findall(d.page_content))
    return urls


def _norm_url(url: str) -> str:
    return url.rstrip(".,;:!?").rstrip("/").lower()


def _strip_foreign_urls(text: str, allowed: set[str]) -> str:
    """Keep only URLs that appear in the cited chunks (their text or `url` metadata)."""

    def link(m: re.Match[str]) -> str:
        return m.group(0) if _norm_url(m.group(2)) in allowed else m.group(1)

    def auto(m: re.Match[str]) -> str:
        return m.group(0) if _norm_url(m.group(1)) in allowed else ""

    def bare(m: re.Match[str]) -> str:
        url = m.group(0)
        trail = url[len(url.rstrip(".,;:!?")) :]
        return url if _norm_url(url) in allowed else trail

    text = _LINK.sub(link, text)
    text = _AUTOLINK.sub(auto, text)
    # Bare URLs outside kept markdown links: split so a kept link's target is not re-checked.
    parts = re.split(r"(\[[^\]\n]*\]\([^)\s]+\))", text)
    return "".join(p if i % 2 else _URL.sub(bare, p) for i, p in enumerate(parts))
