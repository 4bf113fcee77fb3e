"""Defusing Discord mention syntax in any text the bot shows (answers, quotes, titles).

Belt and braces over `allowed_mentions=none`: the text itself must not ping if a message
is ever sent some other way, or quoted by a user.
"""

from __future__ import annotations

import re

ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e]")
MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
MENTION = re.compile(r"<(@[!&]?|#)(\d+)>")  # user, nickname, role and channel mentions


def neutralize_mentions(text: str) -> str:
    """Defuse @everyone/@here and <@id>/<@!id>/<@&id>/<#id>.

    Zero-width characters go first so "@\\u200beveryone"-style tricks cannot survive as a
    pre-escaped form that a later edit turns live; then a zero-width space breaks each form.
    """
    text = ZERO_WIDTH.sub("", text)
    text = MASS_MENTION.sub(lambda m: "@\u200b" + m.group(1), text)
    return MENTION.sub(lambda m: f"<{m.group(1)}\u200b{m.group(2)}>", text)
