"""Routing decisions for messages and forum posts, as pure functions over plain values (no
Discord objects).

A forum post is a thread in a forum channel (type 15) whose starter message has the thread's id.
The bot answers a new post once: only with a cited answer, otherwise it stays silent (or posts
one short notice if DISCORD_FORUM_DECLINE_NOTICE is set). Follow-ups inside a post are ordinary
thread follow-ups, handled by the Ask cog once the bot has answered there.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

from bot.models import Answer


@dataclass(frozen=True)
class ForumPost:
    thread_id: int
    parent_id: int | None
    owner_id: int | None
    created_ms: int  # when the post was created (its snowflake time), Unix ms


class PostDecision(Enum):
    ANSWER = "answer"  # read the post and answer it
    IGNORE = "ignore"  # not a watched forum, the bot's own post, or too old
    DONE = "done"  # already handled (answered, declined or in progress)


def post_decision(
    post: ForumPost,
    *,
    forum_ids: Collection[int],
    bot_id: int,
    handled: bool,
    not_before_ms: int | None = None,
) -> PostDecision:
    """Whether to answer a forum post the bot has just seen (live, or at start-up catch-up).

    ``handled``: the post id is already recorded in the feedback store. ``not_before_ms``: posts
    created earlier are ignored (catch-up never answers posts from before the bot watched).
    """
    if post.parent_id is None or post.parent_id not in forum_ids:
        return PostDecision.IGNORE
    if post.owner_id == bot_id:
        return PostDecision.IGNORE
    if not_before_ms is not None and post.created_ms < not_before_ms:
        return PostDecision.IGNORE
    if handled:
        return PostDecision.DONE
    return PostDecision.ANSWER


def is_forum_starter(
    *, message_id: int, channel_id: int, parent_id: int | None, forum_ids: Collection[int]
) -> bool:
    """A post's first message (its id is the thread's): the post handler answers it, not on_message."""
    return message_id == channel_id and parent_id is not None and parent_id in forum_ids


def post_question(title: str, body: str, *, max_chars: int) -> str:
    """The question a post asks: its title, then its first message, within ``max_chars``."""
    title, body = title.strip(), body.strip()
    if body.casefold().startswith(title.casefold()):
        title = ""  # the body repeats the title
    text = f"{title}\n\n{body}".strip() if body else title
    if len(text) > max_chars:
        cut = text[:max_chars]
        space = cut.rfind(" ")
        text = cut[:space] if space > max_chars // 2 else cut
    return text.strip()


class PostReply(Enum):
    ANSWER = "answer"  # the cited answer, with sources and feedback buttons
    NOTICE = "notice"  # one short "no answer in the docs yet" line
    SILENT = "silent"


def post_reply(result: Answer | str, *, decline_notice: bool) -> PostReply:
    """What to post under a forum post for the answering result (an Answer or an error text)."""
    if isinstance(result, Answer) and not result.abstained and result.citations:
        return PostReply.ANSWER
    return PostReply.NOTICE if decline_notice else PostReply.SILENT


# --- messages (@mentions, replies, follow-ups in threads and DMs) ----------------------------


def channel_allowed(
    channel_id: int | None,
    parent_id: int | None,
    *,
    channel_ids: Collection[int],
    forum_ids: Collection[int],
) -> bool:
    """DISCORD_CHANNEL_IDS (empty = every channel): the channel, or the one its thread is in,
    is listed there or among the watched forums."""
    if not channel_ids:
        return True
    return bool({channel_id, parent_id} & {*channel_ids, *forum_ids})


class HistoryFrom(Enum):
    CHANNEL = "channel"  # the conversation stored for this DM or thread
    REPLY = "reply"  # the answer the message replies to
    NONE = "none"  # a new conversation


@dataclass(frozen=True)
class MessagePlan:
    history: HistoryFrom
    new_thread: bool = False  # answer in a new thread on the message


def message_plan(
    *,
    dm: bool,
    allow_dms: bool,
    allowed: bool,
    in_thread: bool,
    followup_thread: bool,
    replies_to_bot: bool,
    mentioned: bool,
    text_channel: bool,
    mentions_others: bool = False,
    acknowledgement: bool = False,
) -> MessagePlan | None:
    """Whether to answer a message, with which history and where; None = stay silent.

    A DM is one conversation (when DMs are allowed; thanks get no reply). Elsewhere only
    allowed channels: in a thread the bot opened or answered in (`followup_thread`) every
    message is a follow-up, except one addressed to other people (`mentions_others`) or one
    that only thanks or agrees (`acknowledgement`): people go on talking there; in another
    thread only a mention or a reply to the bot; outside threads, a reply to one of the
    bot's answers is answered in place, a mention in a new thread (threads need a text
    channel).
    """
    if dm:
        return MessagePlan(HistoryFrom.CHANNEL) if allow_dms and not acknowledgement else None
    if not allowed:
        return None
    if in_thread:
        if mentioned or replies_to_bot:
            return MessagePlan(HistoryFrom.CHANNEL)
        if followup_thread and not (mentions_others or acknowledgement):
            return MessagePlan(HistoryFrom.CHANNEL)
        return None
    if replies_to_bot:
        return MessagePlan(HistoryFrom.REPLY)
    if mentioned:
        return MessagePlan(HistoryFrom.NONE, new_thread=text_channel)
    return None
