"""Discord mention syntax, its one home: defusing it in any text the bot shows (answers,
quotes, titles), stripping it from questions and thread names, finding the bot's own.

Belt and braces over `allowed_mentions=none`: the text itself must not ping if a message
is ever sent some other way, or quoted by a user.
"""

from __future__ import annotations

import re

ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e]")
MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
MENTION = re.compile(r"<(@[!&]?|#)(\d+)>")  # user, nickname, role and channel mentions
CUSTOM_EMOJI = re.compile(r"<:\w+:\d+>")


def neutralize_mentions(text: str) -> str:
    """Defuse @everyone/@here and <@id>/<@!id>/<@&id>/<#id>.

    Zero-width characters go first so "@\\u200beveryone"-style tricks cannot survive as a
    pre-escaped form that a later edit turns live; then a zero-width space breaks each form.
    """
    text = ZERO_WIDTH.sub("", text)
    text = MASS_MENTION.sub(lambda m: "@\u200b" + m.group(1), text)
    return MENTION.sub(lambda m: f"<{m.group(1)}\u200b{m.group(2)}>", text)


def strip_mentions(text: str, repl: str = " ") -> str:
    """`text` with every mention (user, role, channel, @everyone/@here) replaced by `repl`."""
    return MASS_MENTION.sub(repl, MENTION.sub(repl, text))


def _user_mention(user_id: int) -> re.Pattern[str]:
    return re.compile(rf"<@!?{user_id}>")


def mentions_user(text: str, user_id: int) -> bool:
    """Whether `text` mentions the user `user_id` (<@id> or the nickname form <@!id>)."""
    return _user_mention(user_id).search(text or "") is not None


def strip_user_mention(text: str, user_id: int) -> str:
    """`text` without the user's <@id>/<@!id> mention(s)."""
    return _user_mention(user_id).sub(" ", text or "").strip()
