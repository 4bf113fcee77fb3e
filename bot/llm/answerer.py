"""`LLMAnswerer`: answers (plain, streamed, with drafts) and follow-up rewrites from an
OpenAI-compatible model; the model is called through `client.BoundedModel`, its reply
checked by `verify.verify_reply`."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator, Sequence

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate

from bot.budget import DailyTokenBudget
from bot.errors import USER_TEXTS, LLMError
from bot.llm.client import CONDENSE_DEADLINE_S, BoundedModel
from bot.llm.verify import complete_prefix, draft_text, prompt_grams, verify_reply
from bot.mentions import neutralize_mentions
from bot.models import Answer

log = logging.getLogger(__name__)

CONDENSE_MAX_TOKENS = 96
CONDENSE_MAX_CHARS = 300
# A rewrite that starts like a transcript line echoes the history instead of asking.
_ROLE_ECHO = re.compile(r"^\s*(?:user|bot|assistant|ai|human)\s*:", re.I)
_LABEL = re.compile(r"^\s*(?:standalone\s+)?(?:question|rewritten(?: question)?)\s*:\s*", re.I)


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
        self._model = BoundedModel(llm, budget=budget)
        self._prompt = prompt
        self._condense_prompt = condense_prompt
        self._max_retries = max_retries
        self._deadline_s = deadline_s
        self._condense_deadline_s = condense_deadline_s
        self._prompt_grams = prompt_grams(prompt)  # an answer sentence sharing one is an echo

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
        raw = self._model.invoke(
            messages, deadline_s=self._deadline_s, max_retries=self._max_retries, what="answer"
        )
        answer = verify_reply(question, raw, docs, prompt_grams=self._prompt_grams)
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
        raw = yield from self._model.stream(
            messages, deadline_s=self._deadline_s, max_retries=self._max_retries
        )
        answer = verify_reply(question, raw, docs, prompt_grams=self._prompt_grams)
        answer.latency_ms = (time.monotonic() - started) * 1000
        return answer

    def draft(self, question: str, docs: Sequence[Document], raw: str) -> str:
        """What may be shown of a reply still being written: its complete sentences, verified
        exactly like the final answer (claims failing verification, prompt echoes, foreign
        URLs, mentions and secrets never show), without [n] markers (the final numbering is
        known only at the end). "" when nothing is verified yet."""
        return draft_text(question, docs, raw, prompt_grams=self._prompt_grams)

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
            if (current := complete_prefix(raw)) == prefix:
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
        raw = self._model.invoke(
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
