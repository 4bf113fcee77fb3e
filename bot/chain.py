"""The answering chain as LangChain runnables.

{"question", "history"} -> standalone question -> retriever -> answerer -> Answer.
With an LLM answerer, its failures (LLMError) fall back to the extractive answer. An optional
"on_draft" input (a callable) gets the LLM answer's verified text so far while it streams
(`LLMAnswerer.draft`); the extractive answer never streams.
"""

from __future__ import annotations

import logging
from operator import itemgetter
from typing import Any

from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from bot.answer.extractive import ExtractiveAnswerer
from bot.errors import LLMError, fallback_note
from bot.followup import Standalone, condense
from bot.models import Answer

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
        return Standalone(respell(s.question), s.context) if respell is not None else s

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
        if question.query != inputs["question"]:
            result.standalone_question = question.query
        return result

    return (
        RunnablePassthrough.assign(standalone=RunnableLambda(standalone))
        | RunnablePassthrough.assign(
            docs=itemgetter("standalone") | RunnableLambda(lambda s: s.query) | retriever
        )
        | RunnableLambda(answer)
    ).with_config(run_name="answer_question")
