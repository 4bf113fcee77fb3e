"""AnswerService: the one entry point the CLI and Discord use; build_service wires it up."""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable

from bot.answer.extractive import ExtractiveAnswerer, english_word_counts, load_common_words
from bot.chain import create_chain
from bot.errors import QuestionRejected, user_text
from bot.mentions import strip_mentions
from bot.models import Answer
from bot.retriever import HybridRetriever, QueryCachedEmbeddings
from bot.settings import BotSettings
from index.errors import CorpusBotError, IndexNotReady

log = logging.getLogger(__name__)


def clean_question(raw: str, *, max_chars: int) -> str:
    """Strip control/zero-width characters and mentions; reject empty or overlong questions."""
    text = "".join(
        " " if ch in "\t\r" else ch
        for ch in raw
        if ch in "\t\n\r" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    )
    # Line breaks stay (one per run): in chat a line is often a sentence of its own ("been
    # stuck for hours" on one, the question on the next).
    lines = (" ".join(line.split()) for line in strip_mentions(text).split("\n"))
    text = "\n".join(line for line in lines if line)
    if not text:
        raise QuestionRejected(user_text("empty_question"))
    if len(text) > max_chars:
        raise QuestionRejected(user_text("question_too_long", length=len(text), limit=max_chars))
    return text


def _redact(answer: Answer, secrets: Sequence[str]) -> None:
    for secret in secrets:
        if secret in answer.text:
            log.warning("redacted a configured secret from an answer")
            answer.text = answer.text.replace(secret, "[redacted]")
        for c in answer.citations:
            c.quote = c.quote.replace(secret, "[redacted]")


class AnswerService:
    def __init__(
        self,
        *,
        chain: Runnable,
        reader: Any,
        settings: BotSettings,
        retriever: Any = None,
        extractive: Any = None,
    ) -> None:
        self._chain = chain
        self.extractive = extractive  # the offline answerer (bench tools inspect it)
        self._reader = reader
        self._retriever = retriever
        self._settings = settings
        # Configured secrets never leave the process, whatever a model or document says.
        self._secrets = [
            v.get_secret_value().strip()
            for v in (settings.openai_api_key, settings.discord_token)
            if v is not None and len(v.get_secret_value().strip()) >= 6
        ]

    def answer(
        self,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        *,
        on_draft: Callable[[str], None] | None = None,
    ) -> Answer:
        """The answer; with `on_draft` (LLM mode) the verified text so far is passed to it
        while the model writes, from the answering thread (`LLMAnswerer.draft`)."""
        text = clean_question(question, max_chars=self._settings.max_question_chars)
        started = time.perf_counter()
        inputs: dict[str, Any] = {"question": text, "history": list(history)}
        if on_draft is not None:
            inputs["on_draft"] = lambda text: on_draft(self.redact(text))
        try:
            result: Answer = self._chain.invoke(inputs)
        except CorpusBotError:
            raise
        except Exception as err:  # noqa: BLE001 - the user gets a message, the log the trace
            log.exception("answering %r failed", text)
            raise CorpusBotError("Something went wrong while answering; please try again.") from err
        _redact(result, self._secrets)
        result.latency_ms = (time.perf_counter() - started) * 1000
        return result

    async def aanswer(
        self,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        *,
        on_draft: Callable[[str], None] | None = None,
    ) -> Answer:
        return await asyncio.to_thread(self.answer, question, history, on_draft=on_draft)

    @property
    def streams(self) -> bool:
        """Do answers stream (LLM mode)? The extractive answer never does."""
        return self._settings.llm_enabled

    def redact(self, text: str) -> str:
        """`text` without the configured secrets (drafts are shown before an answer exists)."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def search(self, question: str) -> list[Any]:
        """The retrieved chunks for a question, best first (a plain "search box")."""
        text = clean_question(question, max_chars=self._settings.max_question_chars)
        return self._retriever.invoke(text)

    def sources(self) -> list[dict[str, Any]]:
        return self._reader.snapshot().documents()

    def refresh_index(self, *, full: bool = False) -> Any:
        """Re-index CORPUS_DIR, or the DOCS_URL site (crawled again first): an IndexSummary.

        Answering goes on from the active generation meanwhile; readers follow the new one
        as soon as it is switched.
        """
        from index.crawl import refresh_index  # the indexing flow, only when asked for

        return refresh_index(self._settings, full=full)

    def index_info(self) -> dict[str, Any]:
        info = self._reader.snapshot().info.to_metadata()
        info["retrieval_mode"] = self._settings.retrieval_mode
        info["answer_mode"] = "llm" if self._settings.llm_enabled else "extractive"
        return info


def build_service(
    settings: BotSettings,
    *,
    build_if_missing: bool = True,
    announce: Callable[[str], None] = log.warning,
    warm: bool = False,
) -> AnswerService:
    """The composition root: store, embeddings, reader, retriever, answerers, chain.

    `warm` loads the model, BM25 and sentence caches now (a long-running bot), so the first
    user question doesn't pay for them.
    """
    from index.embedder import TOKENIZER_PATH, embedder_id, make_embeddings
    from index.store import IndexReader, index_exists, make_client

    # Cheap configuration first (prompt files, LLM settings): a mistake there is reported
    # before the model loads and the index is built or warmed up.
    llm = _llm_answerer(settings) if settings.llm_enabled else None
    client = make_client(settings, read_only_ok=True)  # asking needs no write access
    embeddings = QueryCachedEmbeddings(inner=make_embeddings(settings))
    if not index_exists(settings, client):
        if not build_if_missing:
            raise IndexNotReady("there is no index yet; run python -m index")
        if settings.docs_url:  # DOCS_URL: the index is built from the crawled docs site
            from index.crawl import crawl_and_index

            announce(f"No index yet: building it from {settings.docs_url}...")
            crawl, summary = crawl_and_index(
                settings, settings.docs_url, client=client, embeddings=embeddings.inner
            )
            announce(crawl.summary.line())
        else:
            from index.pipeline import reindex  # the loaders' imports: only when indexing

            announce(f"No index yet: building it from {settings.corpus_dir}...")
            summary = reindex(settings, client=client, embeddings=embeddings.inner)
        announce(summary.line())
    reader = IndexReader(
        client=client,
        embeddings=embeddings,
        embedder_id=embedder_id(settings),
        prefix=settings.collection_prefix,
        # Embedded store: each generation's HNSW files are checked before Chroma loads them.
        files_path=None if settings.chroma_host else Path(client.get_settings().persist_directory),
        settings=settings,  # follows python -m index --rebuild without a restart
    )
    english = load_common_words(TOKENIZER_PATH)
    retriever = HybridRetriever(
        reader=reader,
        k=settings.retrieval_k,
        mode=settings.retrieval_mode,
        fetch_k=max(20, 4 * settings.retrieval_k),
        english=english,
        english_counts=english_word_counts(),
    )
    extractive = ExtractiveAnswerer(
        lexicon=retriever.lexicon,
        embeddings=embeddings,
        common_words=english,
    )
    if warm:
        started = time.perf_counter()
        extractive.answer("warm-up", retriever.invoke("warm-up"))
        log.info("warmed up in %.1f s", time.perf_counter() - started)
    chain = create_chain(retriever=retriever, extractive=extractive, llm=llm)
    return AnswerService(
        chain=chain, reader=reader, settings=settings, retriever=retriever, extractive=extractive
    )


def _llm_answerer(settings: BotSettings) -> Any:
    from bot.budget import DailyTokenBudget
    from bot.llm import LLMAnswerer, llm_deadline_s, make_chat_model
    from bot.prompts import load_prompt

    return LLMAnswerer(
        llm=make_chat_model(settings),
        prompt=load_prompt(settings.prompts_dir / "answer.md"),
        condense_prompt=load_prompt(settings.prompts_dir / "condense.md"),
        max_retries=settings.llm_max_retries,
        deadline_s=llm_deadline_s(settings),
        budget=DailyTokenBudget(limit=settings.llm_daily_token_budget, path=settings.llm_budget_db)
        if settings.llm_daily_token_budget
        else None,
    )
