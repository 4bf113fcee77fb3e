"""The model client: factory, deadline arithmetic, bounded calls and error classification.

Retries are ours, not the SDK's: the openai client retries every 429, including
`insufficient_quota`, which never recovers. So the SDK gets max_retries=0 and `BoundedModel`
retries transient failures itself, inside one overall deadline; every failure becomes
`LLMError(kind=...)` so the chain can fall back to the extractive answer.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from bot.budget import DailyTokenBudget
from bot.errors import USER_TEXTS, LLMError
from bot.llm.sanitize import SECRET
from bot.settings import BotSettings

log = logging.getLogger(__name__)

REPLY_WITHIN_S = 30.0  # what a user may wait, LLM failures and fallback included
CONDENSE_DEADLINE_S = 5.0  # a follow-up rewrite must leave the answer most of the 30 s
_GRACE_S = 0.5  # the watchdog fires this long after the HTTP timeout should have
_RETRYABLE = frozenset({"timeout", "rate_limit", "server", "connection"})


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


class BoundedModel:
    """A chat model called within a deadline, with our own retries and the token budget."""

    def __init__(self, llm: BaseChatModel, *, budget: DailyTokenBudget | None = None) -> None:
        self._llm = llm
        self._budget = budget

    def invoke(
        self,
        messages: list[BaseMessage],
        *,
        deadline_s: float,
        max_retries: int,
        what: str,
        **kwargs: Any,
    ) -> str:
        self._check_budget(what)
        deadline = time.monotonic() + deadline_s
        attempts = max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                timeout = _attempt_timeout(deadline, attempts, attempt)
                message = _call_with_deadline(
                    lambda t=timeout: self._llm.invoke(messages, timeout=t, **kwargs),
                    timeout + _GRACE_S,
                )
                return self._reply(message, messages, message_text(message))
            except Exception as exc:  # noqa: BLE001 - every failure maps to one LLMError
                cause = exc
                err, detail, wait_s = _classify(exc)
            wait = _retry_wait(err, wait_s, attempt, attempts, deadline)
            _retry_or_raise(
                err, cause, wait, "LLM %s failed (%s, attempt %d/%d): %s",
                what, err.kind, attempt, attempts, detail,
            )  # fmt: skip
        raise AssertionError("unreachable")

    def stream(
        self, messages: list[BaseMessage], *, deadline_s: float, max_retries: int
    ) -> Generator[str, None, str]:
        """Like `invoke`, streamed: yields deltas, returns the whole text; same deadline."""
        self._check_budget("answer")
        deadline = time.monotonic() + deadline_s
        attempts = max_retries + 1
        for attempt in range(1, attempts + 1):
            parts: list[str] = []
            try:
                timeout = _attempt_timeout(deadline, attempts, attempt)
                # Each read is bounded by the HTTP timeout; the whole reply by the deadline.
                stream = _StreamWorker(self._llm, messages, timeout=timeout)
                try:
                    for delta in stream.deltas(until=deadline):
                        parts.append(delta)
                        yield delta
                finally:
                    stream.stop()
                return self._reply(stream.message, messages, "".join(parts))
            except Exception as exc:  # noqa: BLE001 - every failure maps to one LLMError
                cause = exc
                err, detail, wait_s = _classify(exc)
            # Text already shown cannot be taken back by a retry: give up, the caller falls back.
            wait = None if parts else _retry_wait(err, wait_s, attempt, attempts, deadline)
            _retry_or_raise(
                err, cause, wait, "LLM answer stream failed (%s, attempt %d/%d, after %d deltas): %s",
                err.kind, attempt, attempts, len(parts), detail,
            )  # fmt: skip
        raise AssertionError("unreachable")

    def _check_budget(self, what: str) -> None:
        if self._budget is not None and not self._budget.allow():
            log.warning("LLM %s skipped: the daily token budget is used up", what)
            raise LLMError(USER_TEXTS["budget"], kind="budget")

    def _reply(self, message: BaseMessage, sent: list[BaseMessage], text: str) -> str:
        """A finished reply's text, its tokens counted; an empty reply is malformed."""
        self._record_usage(message, sent, text)
        if not text.strip():
            raise LLMError(USER_TEXTS["malformed"], kind="malformed")
        return text

    def _record_usage(self, message: BaseMessage, sent: list[BaseMessage], text: str) -> None:
        if self._budget is None:
            return
        usage = getattr(message, "usage_metadata", None) or {}
        tokens = usage.get("total_tokens")
        if not tokens:  # servers that report no usage: ~4 characters a token
            tokens = (sum(len(str(m.content)) for m in sent) + len(text)) // 4 + 1
        self._budget.record(int(tokens))


def _retry_or_raise(
    err: LLMError, cause: BaseException, wait: float | None, message: str, *args: object
) -> None:
    """Log a failed attempt; raise `err` when there is no retry, else sleep until it."""
    log.warning(message + "%s", *args, "" if wait is None else f"; retrying in {wait:.2f}s")
    if wait is None:
        raise err from (None if cause is err else cause)
    time.sleep(wait)


def _attempt_timeout(deadline: float, attempts: int, attempt: int) -> float:
    """The HTTP timeout of one attempt: what is left split evenly over the attempts to come,
    so a hung first attempt still leaves room for a retry (the HTTP timeout fires first, the
    watchdog only if the reply drips in). LLMError(timeout) when too little is left."""
    timeout = (deadline - time.monotonic() - _GRACE_S) / (attempts - attempt + 1)
    if timeout <= 0.05:
        raise LLMError(USER_TEXTS["timeout"], kind="timeout")
    return timeout


def _retry_wait(
    err: LLMError, wait_s: float | None, attempt: int, attempts: int, deadline: float
) -> float | None:
    """Seconds to wait before retrying after `err`, or None to give up (last attempt, not a
    transient kind, or the wait alone would overrun the deadline). `wait_s` is the server's
    retry-after; without one, a short exponential backoff."""
    if attempt == attempts or err.kind not in _RETRYABLE:
        return None
    if wait_s is None:
        wait_s = 0.0 if err.kind == "timeout" else min(0.25 * 2**attempt, 2.0)
    return None if time.monotonic() + wait_s >= deadline else wait_s


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
                text = message_text(chunk)
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


def message_text(message: BaseMessage) -> str:
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
        detail = f"{type(exc).__name__}: {SECRET.sub('[redacted]', str(exc))[:300]}"
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
