"""The routing decisions (bot/discord/routing.py: forum posts, messages), without Discord;
and the store's post claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.discord.feedback import FeedbackStore
from bot.discord.routing import (
    ForumPost,
    HistoryFrom,
    MessagePlan,
    PostDecision,
    PostReply,
    channel_allowed,
    is_forum_starter,
    message_plan,
    post_decision,
    post_question,
    post_reply,
)
from bot.followup import is_acknowledgement
from bot.models import Answer, Citation

FORUM, OTHER, BOT, USER = 10, 20, 1, 2


def post(parent: int | None = FORUM, owner: int = USER, created_ms: int = 5_000) -> ForumPost:
    return ForumPost(thread_id=99, parent_id=parent, owner_id=owner, created_ms=created_ms)


@pytest.mark.parametrize(
    ("kwargs", "handled", "expected"),
    [
        ({}, False, PostDecision.ANSWER),
        ({}, True, PostDecision.DONE),
        ({"parent": OTHER}, False, PostDecision.IGNORE),  # not a watched forum
        ({"parent": None}, False, PostDecision.IGNORE),
        ({"owner": BOT}, False, PostDecision.IGNORE),  # the bot's own post (a hand-off)
        ({"created_ms": 999}, False, PostDecision.IGNORE),  # before the bot watched
        ({"created_ms": 999}, True, PostDecision.IGNORE),
    ],
)
def test_post_decision(kwargs: dict, handled: bool, expected: PostDecision) -> None:
    decision = post_decision(
        post(**kwargs), forum_ids=[FORUM], bot_id=BOT, handled=handled, not_before_ms=1_000
    )
    assert decision is expected


def test_no_forums_configured_ignores_everything() -> None:
    assert post_decision(post(), forum_ids=[], bot_id=BOT, handled=False) is PostDecision.IGNORE


def test_is_forum_starter() -> None:
    assert is_forum_starter(message_id=99, channel_id=99, parent_id=FORUM, forum_ids=[FORUM])
    assert not is_forum_starter(message_id=98, channel_id=99, parent_id=FORUM, forum_ids=[FORUM])
    assert not is_forum_starter(message_id=99, channel_id=99, parent_id=OTHER, forum_ids=[FORUM])
    assert not is_forum_starter(message_id=99, channel_id=99, parent_id=None, forum_ids=[FORUM])


def test_post_question_title_then_body_bounded() -> None:
    assert post_question(" Title? ", " Body. ", max_chars=100) == "Title?\n\nBody."
    assert post_question("Title?", "", max_chars=100) == "Title?"
    assert post_question("Same", "same question here", max_chars=100) == "same question here"
    long = post_question("T", "word " * 500, max_chars=100)
    assert len(long) <= 100 and not long.endswith(" ")


def answer(*, abstained: bool, cited: bool = True) -> Answer:
    cites = [Citation(n=1, title="t", source="s.md", quote="q")] if cited else []
    return Answer(question="q", text="a [1]", citations=cites, abstained=abstained)


@pytest.mark.parametrize(
    ("result", "notice", "expected"),
    [
        (answer(abstained=False), False, PostReply.ANSWER),
        (answer(abstained=False), True, PostReply.ANSWER),
        (answer(abstained=True), False, PostReply.SILENT),
        (answer(abstained=True), True, PostReply.NOTICE),
        (answer(abstained=False, cited=False), False, PostReply.SILENT),  # uncited: not an answer
        ("The question is too long.", False, PostReply.SILENT),  # an error text
        ("The question is too long.", True, PostReply.NOTICE),
    ],
)
def test_post_reply(result: Answer | str, notice: bool, expected: PostReply) -> None:
    assert post_reply(result, decline_notice=notice) is expected


def test_post_claims_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path=db)
    assert store.watch_since_ms(1000) == 1000
    assert store.claim_post(7, "boot-a") and not store.claim_post(7, "boot-a")
    assert store.post_status(7) == ("pending", "boot-a")
    store.close()

    store = FeedbackStore(path=db)  # a restart
    assert store.watch_since_ms(5000) == 1000  # set once
    assert not store.claim_post(7, "boot-b")
    assert store.take_over_post(7, "boot-b") and not store.take_over_post(7, "boot-b")
    store.finish_post(7, "error", "boot-a")  # the dead owner's late write is ignored
    assert store.post_status(7) == ("pending", "boot-b")
    store.finish_post(7, "answer", "boot-b")
    assert store.post_status(7) == ("answer", "boot-b")
    assert not store.take_over_post(7, "boot-c")  # finished posts are never taken over
    store.close()


# --- messages: routing.message_plan / channel_allowed ----------------------------------------

BASE = {
    "dm": False,
    "allow_dms": True,
    "allowed": True,
    "in_thread": False,
    "followup_thread": False,
    "replies_to_bot": False,
    "mentioned": False,
    "text_channel": True,
}
CHANNEL, REPLY, NONE = HistoryFrom.CHANNEL, HistoryFrom.REPLY, HistoryFrom.NONE


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"dm": True}, MessagePlan(CHANNEL)),  # a DM is one conversation
        ({"dm": True, "allow_dms": False}, None),
        ({"dm": True, "acknowledgement": True}, None),  # "thanks!" in a DM
        ({"mentioned": True, "allowed": False}, None),  # not an allowed channel
        ({}, None),  # an ordinary message in a channel
        ({"mentioned": True}, MessagePlan(NONE, new_thread=True)),
        ({"mentioned": True, "text_channel": False}, MessagePlan(NONE)),  # e.g. a voice chat
        ({"replies_to_bot": True}, MessagePlan(REPLY)),  # answered in place
        ({"replies_to_bot": True, "mentioned": True}, MessagePlan(REPLY)),
        ({"in_thread": True}, None),  # someone else's thread
        ({"in_thread": True, "followup_thread": True}, MessagePlan(CHANNEL)),
        ({"in_thread": True, "mentioned": True}, MessagePlan(CHANNEL)),
        ({"in_thread": True, "replies_to_bot": True}, MessagePlan(CHANNEL)),
        # In the bot's thread people also talk to each other, and thank it.
        ({"in_thread": True, "followup_thread": True, "mentions_others": True}, None),
        ({"in_thread": True, "followup_thread": True, "acknowledgement": True}, None),
        (
            {
                "in_thread": True,
                "followup_thread": True,
                "acknowledgement": True,
                "mentioned": True,
            },
            MessagePlan(CHANNEL),
        ),
        (
            {"in_thread": True, "mentions_others": True, "replies_to_bot": True},
            MessagePlan(CHANNEL),
        ),
    ],
)
def test_message_plan(facts: dict, expected: MessagePlan | None) -> None:
    assert message_plan(**{**BASE, **facts}) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thanks!", True),
        ("ok thx, that worked 🙏", True),
        ("perfect, makes sense now lol", True),
        ("👍", True),
        ("thanks! and how do I install it?", False),  # a question after the thanks
        ("thanks, what about pipes", False),
        ("it doesn't work", False),
        ("And when did they start", False),
        ("why", False),  # a question without its question mark
        ("tell me more", False),
        ("and the other one", False),
        ("i don't understand", False),  # a problem, not thanks
        ("still not clear", False),
        ("no", True),
        ("", True),  # an attachment or a sticker alone
    ],
)
def test_is_acknowledgement(text: str, expected: bool) -> None:
    assert is_acknowledgement(text) is expected


def test_channel_allow_list() -> None:
    assert channel_allowed(5, None, channel_ids=[], forum_ids=[])  # no list: everywhere
    assert channel_allowed(5, None, channel_ids=[5], forum_ids=[])
    assert channel_allowed(7, 5, channel_ids=[5], forum_ids=[])  # a thread in a listed one
    assert channel_allowed(7, FORUM, channel_ids=[5], forum_ids=[FORUM])  # a watched forum's post
    assert not channel_allowed(7, 6, channel_ids=[5], forum_ids=[FORUM])
