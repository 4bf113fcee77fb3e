"""The question inside a chat message (`bot/framing.py`): a pure function, then the chain."""

from __future__ import annotations

import pytest

from bot.followup import Standalone, condense, split_situation
from bot.framing import core_question
from bot.service import build_service

QUESTION = "When did North Korea start mining bitcoin?"


@pytest.mark.parametrize(
    ("message", "question"),
    [
        ("hey everyone, how do I pin a version? thanks in advance!", "how do I pin a version?"),
        ("Hi all! Quick question: does it run on Windows? Thanks!", "does it run on Windows?"),
        ("quick question\nwhere is the config file", "where is the config file"),
        ("sorry if this is a dumb question but how do I X", "how do I X"),
        ("noob here, what is a venv :)", "what is a venv"),
        ("hello there, any help appreciated: why does it hang", "why does it hang"),
        ("can someone help? my build fails with exit 2", "my build fails with exit 2"),
        ("please help me, my build fails", "my build fails"),
        ("please explain the cache", "explain the cache"),
        ("how do i do X? tia", "how do i do X?"),
        ("how do I make X, thanks 🙏", "how do I make X"),
        ("how do I X any help would be greatly appreciated!", "how do I X"),
        ("when would i turn on `acks_late`?", "when would i turn on acks_late?"),
        ("what does **--force** do", "what does --force do"),
        ("pls how do I X???", "how do I X?"),
        ("HOW DO I MAKE AN OPTION REQUIRED", "how do i make an option required"),
        ("why does it 404 https://example.org/a/b.html", "why does it 404"),
        ("is [this page](https://example.org/p) current?", "is this page current?"),
        ("how do I X\ni tried googling but found nothing", "how do I X"),
        ("how do I X? couldn't find it in the docs", "how do I X?"),
        ("here is my code:\n```py\nx = load(path)\n```\nwhy does it fail", "why does it fail"),
        ("why does it fail?\n```\nTraceback (most recent call last):\n```", "why does it fail?"),
        ("```what is a venv```", "what is a venv"),  # only a block: its text is the question
        ("URGENT: how do I X", "how do I X"),
        ("[help] why does it hang?", "why does it hang?"),
        ("help! my build fails", "my build fails"),
        ("why does it 404 lol", "why does it 404"),
    ],
)
def test_framing_around_the_question_goes(message, question):
    assert core_question(message) == question


@pytest.mark.parametrize(
    "message",
    [
        # The same words inside the question are the question's own.
        "how do I thank a contributor",
        "is there a way to thank you",
        "how do i say thanks",
        "what does the quick option do",
        "can someone help me understand why X fails",
        "how do I say hello world in click",
        "how do i find what i looked up in the docs",
        "what does ETA mean",
        "what does the config: key do",
        "so far, how many workers can it run",
        "help options: what does -h do",
        "what is lol",
        # Single * and __ are code, not formatting.
        "is a*b the same as b*a",
        "why is __init__ called twice",
        # A message that is only framing stays as typed (the chain decides what it is).
        "hi all!",
        "thanks!",
    ],
)
def test_the_question_own_words_stay(message):
    assert core_question(message) == message


def test_condense_reads_past_the_framing_of_questions_and_history():
    history = [("hey all, who traced attacks on bitcoin exchanges? thx", "FireEye [1]")]
    got = condense("quick question: and how many?", history)
    assert got == Standalone("and how many?", ("traced", "attacks", "bitcoin", "exchanges"))
    assert condense("thanks!", history) == Standalone("thanks!")  # still an acknowledgement


@pytest.mark.parametrize(
    ("message", "asked", "before", "after"),
    [
        # Statements before or after a question that asks on its own describe the asker.
        ("im on windows 10. how do I pin a version?", "how do I pin a version?", "im on windows 10.", ""),
        ("how do I pin a version? it keeps upgrading", "how do I pin a version?", "", "it keeps upgrading"),
        ("ok. how do I pin a version? it keeps upgrading", "how do I pin a version?", "ok.", "it keeps upgrading"),
        # After the question, a statement about the asker sets the scene as one before does.
        ("how do I pin a version? im on windows", "how do I pin a version?", "im on windows", ""),
        # Typed without "?": a sentence that opens like a question asks, else the last one.
        ("been stuck for hours. how do i pin a version", "how do i pin a version", "been stuck for hours.", ""),
        ("been stuck for hours\nset A4 as the default paper size", "set A4 as the default paper size", "been stuck for hours", ""),
        # ... or one with a question word after a colon or comma, or last.
        ("been stuck for hours\nCliRunner: how do i invoke a subcommand", "CliRunner: how do i invoke a subcommand", "been stuck for hours", ""),
        ("been stuck for hours\nI removed foo but foo-data is still there, why", "I removed foo but foo-data is still there, why", "been stuck for hours", ""),
        ("been stuck for hours and dont know what to do\nset A4 as the default paper size", "set A4 as the default paper size", "been stuck for hours and dont know what to do", ""),
        # One word of its own is enough after a question word, not as a bare tag.
        ("im new here. what is SPI", "what is SPI", "im new here.", ""),
        ("set -e doesnt exit inside an if. bug?", "set -e doesnt exit inside an if. bug?", "", ""),
        # Its pronouns' nouns are in a question that says much of its own.
        ("im on windows 10. if the user doesn't pass --name can click ask them for it instead", "if the user doesn't pass --name can click ask them for it instead", "im on windows 10.", ""),
        # A question pointing back at the statement asks about it.
        ("vars set in the loop are empty after it. any way to keep them?", "vars set in the loop are empty after it. any way to keep them?", "", ""),
    ],
)  # fmt: skip
def test_the_askers_situation_is_read_apart_from_what_is_asked(message, asked, before, after):
    assert split_situation(message) == (asked, before, after)
    got = condense(message, [])
    assert got == Standalone(asked, preamble=before, situation=after)
    # Searched by its words with the situation; by meaning without the scene set before it.
    assert got.query == " ".join(x for x in (before, asked, after) if x)
    assert got.meaning == " ".join(x for x in (asked, after) if x)


def test_a_framed_question_gets_the_bare_question_answer(seed_index):
    service = build_service(seed_index, build_if_missing=False)
    bare = service.answer(QUESTION)
    for framed in (
        f"hey everyone, quick question: {QUESTION} thanks in advance! 🙏",
        f"hi guys\n{QUESTION.lower()} any help appreciated",
        f"I've been reading the docs for a while and I'm stuck.\n{QUESTION}",
        f"URGENT: {QUESTION.replace('mining', 'MINING')}",
        f"im on windows 10 with the latest version. {QUESTION}",
    ):
        got = service.answer(framed)
        assert got.question == framed  # what the user typed, as shown
        assert [c.quote for c in got.citations] == [c.quote for c in bare.citations]
        assert got.text == bare.text
        # Whether it answers is judged on what is asked, whatever the asker says beside it.
        for feature in ("coverage", "chunk_coverage", "heading", "missing"):
            assert got.features[feature] == bare.features[feature]
