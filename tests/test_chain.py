from __future__ import annotations

import pytest

from bot.chain import create_chain
from bot.errors import LLMError, QuestionRejected, user_text
from bot.followup import (
    Standalone,
    condense,
    needs_context,
    refers_back,
    rule_condense,
    without_new_topic,
)
from bot.prompts import load_prompt, parse_prompt
from bot.service import build_service
from bot.settings import BotSettings
from index.errors import ConfigError
from index.settings import REPO_ROOT
from tests.fakes.openai_server import chat, server_error


def _settings(seed: BotSettings, **extra) -> BotSettings:
    return BotSettings(
        _env_file=None, corpus_dir=seed.corpus_dir, index_dir=seed.index_dir, **extra
    )


@pytest.fixture(scope="module")
def service(seed_index):
    return build_service(_settings(seed_index), build_if_missing=False)


# --- the offline chain --------------------------------------------------------------------


def test_offline_chain_answers_extractively(service):
    answer = service.answer("  Which exchange hack is North Korea the prime suspect for?\n")
    assert answer.mode == "extractive" and not answer.abstained
    assert answer.question == "Which exchange hack is North Korea the prime suspect for?"
    assert answer.standalone_question is None
    assert "Youbit" in answer.citations[0].quote
    assert answer.latency_ms > 0


def test_the_chain_reads_the_situation_and_typos_before_answering(service):
    """What the answerer gets: the question apart from the scene set before it, typos
    respelled (and marked as such: ordinary words, not names)."""
    seen: list[Standalone] = []

    class Recording:
        def answer(self, question, docs):
            seen.append(question)
            return service.extractive.answer(question, docs)

    chain = create_chain(retriever=service._retriever, extractive=Recording())
    chain.invoke({"question": "im on windows 10.\nWhen did North Korea start minnig bitocin?"})
    assert seen == [
        Standalone(
            "When did North Korea start mining bitcoin?",
            preamble="im on windows 10.",
            respelled=frozenset({"mining", "bitcoin"}),
        )
    ]


def test_follow_up_uses_the_previous_question(service):
    first = "Which cybersecurity firm traced attacks on bitcoin exchanges?"
    answer = service.answer("And how many?", [(first, "...")])
    assert answer.standalone_question and "attacks" in answer.standalone_question
    assert "five different attacks" in answer.citations[0].quote


async def test_async_answer(service):
    answer = await service.aanswer("Why do most countries have sanctions on North Korea?")
    assert "nuclear missile program" in answer.text


def test_sources_and_index_info(service):
    sources = service.sources()
    assert [s["source"] for s in sources] == [
        "north-korea-begins-mining-bitcoin.md",
        "north-korea-short-lived-bitcoin-mining.md",
    ]
    info = service.index_info()
    assert info["documents"] == 2 and info["chunks"] == sum(s["chunks"] for s in sources)
    assert info["answer_mode"] == "extractive"


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["", "   \n\t ", "<@123456789>", "<@!42> <#7> @everyone", "\u200b\u200d"]
)
def test_empty_questions_are_rejected(service, raw):
    with pytest.raises(QuestionRejected, match="Please ask a question"):
        service.answer(raw)
    assert user_text("empty_question").startswith("Please ask a question")


def test_too_long_question_names_the_limit(seed_index):
    small = build_service(_settings(seed_index, max_question_chars=50), build_if_missing=False)
    with pytest.raises(QuestionRejected, match="limit is 50"):
        small.answer("why " * 20)


def test_control_and_zero_width_characters_are_stripped(service):
    answer = service.answer(
        "<@99> Which exchange\u200b hack is North\x00 Korea the prime suspect for?"
    )
    assert answer.question == "Which exchange hack is North Korea the prime suspect for?"
    assert not answer.abstained


# --- with an LLM (the fake OpenAI-compatible server on 127.0.0.1) --------------------------


@pytest.fixture
def llm_service(seed_index, openai_fake):
    settings = _settings(
        seed_index,
        openai_base_url=openai_fake.base_url,
        openai_api_key="sk-test-not-real",
        llm_max_retries=0,
        llm_timeout_s=5,
    )
    return build_service(settings, build_if_missing=False)


def test_llm_answer_is_used(llm_service, openai_fake):
    openai_fake.script(chat("North Korea started mining Bitcoin on the 17th of May [1]."))
    answer = llm_service.answer("When did North Korea start mining Bitcoin?")
    assert answer.mode == "llm"
    assert answer.citations and "[1]" in answer.text
    sent = openai_fake.chat_requests[0].json["messages"]
    assert "17th of May" in sent[-1]["content"]  # the numbered sources reached the model


def test_llm_failure_falls_back_to_extractive(llm_service, openai_fake):
    openai_fake.script(server_error(500))
    answer = llm_service.answer("When did North Korea start mining Bitcoin?")
    assert answer.mode == "extractive-fallback"
    assert answer.note == "LLM unavailable (server); showing quoted passages instead."
    assert "17th of May" in answer.text and answer.citations


def test_llm_condenses_follow_ups_and_rule_covers_its_failure(llm_service, openai_fake):
    history = [("Which cybersecurity firm traced attacks on bitcoin exchanges?", "FireEye [1]")]
    openai_fake.script(
        chat("How many attacks on bitcoin exchanges did FireEye trace?"),
        chat("FireEye traced five different attacks [1]."),
    )
    answer = llm_service.answer("And how many?", history)
    assert answer.standalone_question == "How many attacks on bitcoin exchanges did FireEye trace?"
    assert answer.mode == "llm"

    openai_fake.script(server_error(500), server_error(500))
    answer = llm_service.answer("And how many?", history)
    assert answer.mode == "extractive-fallback"
    assert "traced" in answer.standalone_question  # the rule stepped in


# --- follow-up rule and prompts -----------------------------------------------------------


def test_follow_up_rule():
    history = [("When did North Korea start mining bitcoin?", "On the 17th of May [1].")]
    assert needs_context("and why?") and needs_context("What about then?")
    assert not needs_context("Which firm traced attacks on bitcoin exchanges?")
    # An elliptical follow-up borrows the earlier subject, as typed context terms.
    assert rule_condense("Why?", history) == Standalone(
        "Why?", ("North", "Korea", "start", "mining", "bitcoin")
    )
    # A follow-up naming its own subject stands alone: no stray words carried over.
    assert rule_condense("Who is FireEye's research director?", history) == Standalone(
        "Who is FireEye's research director?"
    )
    history = [("who wrote the CCN article?", "By Jack Mathis [1]")]
    assert rule_condense("How much bitcoin did they mine?", history) == Standalone(
        "How much bitcoin did they mine?"
    )
    assert condense("and why?", []) == Standalone("and why?")


def test_follow_up_that_refers_back_borrows_the_subject_its_answer_holds():
    history = [
        (
            "how do i put a package on hold so apt upgrade leaves it alone",
            "\u201cUse apt-mark hold to keep a package at its version.\u201d [1]",
        )
    ]
    # "that" points back: the previous question's words the answer also holds, not its
    # phrasing ("leaves", "alone", "upgrade" are not what the answer was about).
    assert rule_condense("ok and how do i undo that later", history) == Standalone(
        "ok and how do i undo that later", ("package", "hold")
    )
    assert rule_condense("what about for a whole repository?", history).context
    # A new topic, said so or not pointing back, stands alone.
    for own in (
        "unrelated but is there a tool that helps me file a bug report",
        "how do i see the changelog of a package",
        "is it possible to downgrade a package",
    ):
        assert rule_condense(own, history) == Standalone(own)


def test_what_refers_back():
    for q in (
        "does it work for arguments too?",
        "and for a group?",
        "can they still log in",
        "how do i build the linux one",
        "so what about windows",
        "ok, is that safe?",
        "how do I change its color",  # no name of its own before "its"
        "Is their API stable",
        "ok so what should i use instead?",  # instead of what was just said
        "does the client always have to send limit then?",
    ):
        assert refers_back(q), q
    for q in (
        "is it possible to hide an option",
        "is there a tool that files bug reports",
        "btw how do i print to stderr",
        "is there anything that lists held packages",
        "how do i make sure that an option is set",
        "how do I make an option required",
        "Did the DPRK keep its crypto mining going for long?",  # its = the DPRK's
        "does Celery retry their tasks",
        "should i use ed25519 instead of rsa for the key",
    ):
        assert not refers_back(q), q


def test_new_topic_words_are_not_searched_for():
    history = [("how do i put a package on hold", "\u201cUse apt-mark hold.\u201d [1]")]
    said = "unrelated, but how do I file a bug report?"
    assert condense(said, history) == Standalone("how do I file a bug report?")
    assert condense("Different question: who is FireEye?", []) == Standalone("who is FireEye?")
    # Only an opening marker followed by punctuation or "but" is taken out.
    for own in ("unrelated histories error when merging", "what does unrelated mean here"):
        assert without_new_topic(own) == own


def test_standalone_query_is_what_retrieval_searches():
    assert Standalone("and when?", ("North", "Korea")).query == "and when? North Korea"
    # A user's own parentheses are their words, never parsed as carried context.
    assert Standalone("what is the KDB (bank)?").query == "what is the KDB (bank)?"


def test_condense_falls_back_to_rule_on_llm_error():
    class Failing:  # stands in for the OpenAI layer only
        def condense(self, question, history):
            raise LLMError("down", kind="timeout")

    history = [("Who traced attacks on bitcoin exchanges?", "FireEye [1]")]
    got = condense("And how many?", history, llm_answerer=Failing())
    assert got == Standalone("And how many?", ("traced", "attacks", "bitcoin", "exchanges"))


def test_thanks_is_not_a_follow_up_about_the_last_subject():
    class Asked:  # the LLM is not asked to rewrite a thank-you
        def condense(self, question, history):
            raise AssertionError("condense called")

    history = [("Who traced attacks on bitcoin exchanges?", "FireEye [1]")]
    assert condense("thanks lol", history) == Standalone("thanks lol")
    assert condense("ok thx, that worked", history, llm_answerer=Asked()) == Standalone(
        "ok thx, that worked"
    )
    assert condense("why?", history).context  # a real follow-up still borrows the subject


def test_prompt_files_parse():
    answer = load_prompt(REPO_ROOT / "prompts" / "answer.md")
    assert set(answer.input_variables) == {"question", "sources"}
    system, human = answer.format_messages(question="Q?", sources="[1] T\ntext")
    assert (
        system.type == "system" and "I couldn't find that in the indexed sources." in system.content
    )
    assert human.type == "human" and "[1] T\ntext" in human.content
    condense_prompt = load_prompt(REPO_ROOT / "prompts" / "condense.md")
    assert set(condense_prompt.input_variables) == {"question", "history"}
    with pytest.raises(ConfigError):
        parse_prompt("## system\nno human section")
    with pytest.raises(ConfigError):
        load_prompt(REPO_ROOT / "prompts" / "missing.md")
