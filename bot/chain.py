"""The answering chain as LangChain runnables.

{"question", "history"} -> standalone question -> retriever -> answerer -> Answer.
A message asking several questions of their own is answered question by question, the
answers put together (`bot.answer.combined`).
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

from bot.answer.combined import combine_answers
from bot.answer.extractive import ExtractiveAnswerer
from bot.errors import LLMError, fallback_note
from bot.followup import Standalone, condense, separate_questions
from bot.framing import core_question
from bot.models import Answer
from bot.retriever import HybridRetriever

log = logging.getLogger(__name__)


def create_chain(
    *,
    retriever: BaseRetriever,
    extractive: ExtractiveAnswerer,
    llm: Any | None = None,  # bot.llm.LLMAnswerer: answers and rewrites follow-ups
) -> Runnable:
    # HybridRetriever: typos read as the corpus spells them, and search by words and by
    # meaning apart; any other retriever gets the query as typed.
    hybrid = retriever if isinstance(retriever, HybridRetriever) else None

    def standalone(inputs: dict[str, Any]) -> Standalone:
        s = condense(inputs["question"], inputs.get("history") or (), llm_answerer=llm)
        if hybrid is None:
            return s
        (question, q_fixes), (preamble, p_fixes), (situation, s_fixes) = (
            hybrid.respelled(part) for part in (s.question, s.preamble, s.situation)
        )
        # The words put in for typos: ordinary words, not names the answer must hold.
        return replace(
            s,
            question=question,
            preamble=preamble,
            situation=situation,
            respelled=s.respelled | q_fixes | p_fixes | s_fixes,
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
        if hybrid is not None:
            return hybrid.invoke(s.query, config, meaning=s.meaning)
        return retriever.invoke(s.query, config)

    single = (
        RunnablePassthrough.assign(standalone=RunnableLambda(standalone))
        | RunnablePassthrough.assign(docs=itemgetter("standalone") | RunnableLambda(retrieve))
        | RunnableLambda(answer)
    ).with_config(run_name="answer_question")

    def answer_message(inputs: dict[str, Any], config: RunnableConfig) -> Answer:
        # Several questions in one message ("how do i X? also, is there a Y?") are answered
        # one by one, each from its own search. A model reads the whole message itself.
        parts = [] if llm is not None else separate_questions(core_question(inputs["question"]))
        if not parts:
            return single.invoke(inputs, config)
        answers = [single.invoke({**inputs, "question": p.text}, config) for p in parts]
        if all(a.abstained for a in answers):  # perhaps they ask one thing together
            return single.invoke(inputs, config)
        return combine_answers(
            inputs["question"], [(p.question, a) for p, a in zip(parts, answers, strict=True)]
        )

    return RunnableLambda(answer_message).with_config(run_name="answer_message")
