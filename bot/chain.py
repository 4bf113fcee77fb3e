"""The answering chain as LangChain runnables.

{"question", "history"} -> standalone question -> retriever -> answerer -> Answer.
With an LLM answerer, its failures (LLMError) fall back to the extractive answer. An optional
"on_draft" input (a callable) gets the LLM answer's verified text so far while it streams
(`LLMAnswerer.draft`); the extractive answer never streams.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from operator import itemgetter
from typing import Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnablePassthrough

from bot.answer.extractive import ExtractiveAnswerer
from bot.errors import LLMError, fallback_note
from bot.followup import Standalone, condense
from bot.models import Answer
from bot.retriever import HybridRetriever
from bot.sentences import words

log = logging.getLogger(__name__)


def create_chain(
    *,
    retriever: BaseRetriever,
    extractive: ExtractiveAnswerer,
    llm: Any | None = None,  # bot.llm.LLMAnswerer: answers and rewrites follow-ups
) -> Runnable:
    respell = getattr(retriever, "respelled", None)  # HybridRetriever: typos as the corpus spells

    def standalone(inputs: dict[str, Any]) -> Standalone:
        s = condense(inputs["question"], inputs.get("history") or (), llm_answerer=llm)
        if respell is None:
            return s
        parts = (s.question, s.preamble, s.situation)
        fixed = tuple(respell(p) for p in parts)
        # The words put in for typos: ordinary words, not names the answer must hold.
        fixes = set()
        for was, now in zip(parts, fixed, strict=True):
            before, after = words(was), words(now)
            if len(before) == len(after):  # one word for one word
                fixes |= {b.lower() for a, b in zip(before, after, strict=True) if a != b}
        return replace(
            s,
            question=fixed[0],
            preamble=fixed[1],
            situation=fixed[2],
            respelled=s.respelled | frozenset(fixes),
        )

    def answer(inputs: dict[str, Any]) -> Answer:
        question: Standalone = inputs["standalone"]
        docs = inputs["docs"]
        if llm is None:
            result = extractive.answer(question, docs)
        else:
            try:
                on_draft = inputs.get("on_draft")  # streaming callers (Discord drafts)
                if on_draft is None:
                    result = llm.answer(question.query, docs)
                else:
                    result = llm.answer(question.query, docs, on_draft=on_draft)
            except LLMError as err:
                log.warning("LLM failed (%s): %s; answering extractively", err.kind, err)
                result = extractive.answer(question, docs)
                result.mode = "extractive-fallback"
                result.note = fallback_note(err.kind)
        result.question = inputs["question"]
        if question.query != " ".join(inputs["question"].split()):
            result.standalone_question = question.query
        return result

    def retrieve(s: Standalone, config: RunnableConfig) -> list[Document]:
        if isinstance(retriever, HybridRetriever):  # searches by words and by meaning apart
            return retriever.invoke(s.query, config, meaning=s.meaning)
        return retriever.invoke(s.query, config)

    return (
        RunnablePassthrough.assign(standalone=RunnableLambda(standalone))
        | RunnablePassthrough.assign(docs=itemgetter("standalone") | RunnableLambda(retrieve))
        | RunnableLambda(answer)
    ).with_config(run_name="answer_question")
