"""A message asking several questions: told apart (a pure function), answered one by one and
put together in one reply (`bot.answer.combined`), end to end on the seed index."""

from __future__ import annotations

import pytest

from bot.answer.combined import combine_answers
from bot.followup import Asked, separate_questions
from bot.models import Answer, Citation
from bot.service import build_service

FIRST = "When did North Korea start mining bitcoin?"
SECOND = "who wrote the CCN article?"


@pytest.mark.parametrize(
    ("message", "parts"),
    [
        (
            "how do i pin a version? also, is there a changelog somewhere?",
            [("how do i pin a version?", "how do i pin a version?"),
             ("is there a changelog somewhere?", "is there a changelog somewhere?")],
        ),
        # The scene set before the first question goes with every one; what follows a
        # question, up to the next, with it.
        (
            "im on windows 10. how do i pin a version? it keeps upgrading. also how do i clear the cache?",
            [("how do i pin a version?", "im on windows 10. how do i pin a version? it keeps upgrading."),
             ("how do i clear the cache?", "im on windows 10.\nhow do i clear the cache?")],
        ),
        # After a question, "also, ..." asks too, "?" or not.
        (
            "how do i pin a version? also, load plugins lazily from a folder",
            [("how do i pin a version?", "how do i pin a version?"),
             ("load plugins lazily from a folder", "load plugins lazily from a folder")],
        ),
        (
            "how do i pin a version also, is there a changelog somewhere?",
            [("how do i pin a version", "how do i pin a version"),
             ("is there a changelog somewhere?", "is there a changelog somewhere?")],
        ),
        # A question saying much of its own has its pronoun's noun with it.
        (
            "how do i pin a version? also, the group callback runs every time I run a subcommand, is that expected?",
            [("how do i pin a version?", "how do i pin a version?"),
             ("the group callback runs every time I run a subcommand, is that expected?",
              "the group callback runs every time I run a subcommand, is that expected?")],
        ),
        # ... and so does what "also" follows.
        (
            "load plugins lazily from a folder also, is there a changelog somewhere?",
            [("load plugins lazily from a folder", "load plugins lazily from a folder"),
             ("is there a changelog somewhere?", "is there a changelog somewhere?")],
        ),
        # One word of its own will do after "also, <question word>".
        (
            "is the bug tracker public? also, what is SPI",
            [("is the bug tracker public?", "is the bug tracker public?"),
             ("what is SPI", "what is SPI")],
        ),
        # "?" after a bracket ends a question too; a possessive after a quantified noun is
        # that noun's ("every user ... their"), so the second leans on nothing before.
        (
            "where do apps keep config in my home (xdg)? also, does every user get their own crontab?",
            [("where do apps keep config in my home (xdg)?", "where do apps keep config in my home (xdg)?"),
             ("does every user get their own crontab?", "does every user get their own crontab?")],
        ),
        # Typed without "?", one per line.
        (
            "how do i pin a version\nhow do i upgrade all packages",
            [("how do i pin a version", "how do i pin a version"),
             ("how do i upgrade all packages", "how do i upgrade all packages")],
        ),
    ],
)  # fmt: skip
def test_questions_of_their_own_are_told_apart(message, parts):
    assert separate_questions(message) == [Asked(q, text) for q, text in parts]


@pytest.mark.parametrize(
    "message",
    [
        "how do i pin a version?",
        # Leaning on the first, or saying too little of its own: part of the first.
        "Can I use Redis? Does it support priorities?",
        "how do i pin a version? also, does it work on windows?",
        "how do i make an option required? what is the default?",
        "why does my list keep growing? is that a bug?",
        "can one option take a string and an int? different types per value?",  # restated
        "how do i pin a version? im on windows 10",  # a statement, not a question
        "how do i pin a version? also im on windows 10 with python 3.11",  # the asker's own
        "im on windows 10 with python 3.11. also, how do i pin a version?",
        "how do i pin a version also is there a changelog",  # one sentence
        "how do i make an option required? also, why?",  # nothing of its own
        "how do i reset a user's password? also, can i expire their passwords?",  # leans
    ],
)
def test_one_question_is_not_split(message):
    assert separate_questions(message) == []


def test_no_more_than_three_questions_are_answered_apart():
    asked = [
        "how do i pin a version?",
        "how do i clear the cache?",
        "how do i list installed packages?",
        "how do i remove old kernels?",
        "how do i upgrade everything?",
    ]
    parts = separate_questions(" ".join(asked))
    assert [p.question for p in parts] == asked[:3]
    assert [p.text for p in parts] == asked[:2] + [" ".join(asked[2:])]


def _cited(n: int, quote: str, chunk: str) -> Citation:
    return Citation(
        n=n, title="T", source="a.md", quote=quote, start=0, end=len(quote), chunk_id=chunk
    )


def test_answers_are_put_together_under_their_questions_numbered_through():
    one = Answer(
        "q1", "“alpha” [1] “beta” [2]", [_cited(1, "alpha", "c1"), _cited(2, "beta", "c2")]
    )
    two = Answer(
        "q2", "“beta” [1] “gamma” [2]", [_cited(1, "beta", "c2"), _cited(2, "gamma", "c3")]
    )
    none = Answer("q3", "I couldn't find that in the indexed sources.", abstained=True)
    got = combine_answers("q1 q2 q3", [("q1?", one), ("q2?", two), ("q3?", none)])
    assert got.text == (
        "> q1?\n“alpha” [1] “beta” [2]\n\n"
        "> q2?\n“beta” [2] “gamma” [3]\n\n"  # a passage cited twice keeps its number
        "> q3?\nI couldn't find that in the indexed sources."
    )
    assert [(c.n, c.quote) for c in got.citations] == [(1, "alpha"), (2, "beta"), (3, "gamma")]
    assert not got.abstained and got.question == "q1 q2 q3"
    assert combine_answers("q", [("a?", none), ("b?", none)]).abstained


def test_each_question_of_a_message_gets_its_own_answer(seed_index):
    service = build_service(seed_index, build_if_missing=False)
    first, second = service.answer(FIRST), service.answer(SECOND)
    assert not first.abstained and not second.abstained
    got = service.answer(f"{FIRST} also, {SECOND}")
    assert [c.quote for c in got.citations] == [c.quote for c in first.citations + second.citations]
    assert got.text.startswith(f"> {FIRST}\n") and f"\n\n> {SECOND}\n" in got.text
    # A question the corpus can't answer is declined under it; the other is answered.
    got = service.answer(f"{FIRST} also, what is the capital of Australia?")
    assert [c.quote for c in got.citations] == [c.quote for c in first.citations]
    assert got.text.endswith(
        "> what is the capital of Australia?\n"
        + service.answer("what is the capital of Australia?").text
    )
