"""bot/mentions.py: the one home of Discord mention syntax."""

from __future__ import annotations

from bot.mentions import mentions_user, neutralize_mentions, strip_mentions, strip_user_mention
from bot.service import clean_question


def test_strip_mentions_every_kind() -> None:
    text = "hi <@1> <@!2> <@&3> <#4> @everyone @here ok"
    assert strip_mentions(text).split() == ["hi", "ok"]
    assert clean_question(text, max_chars=100) == "hi ok"
    # Line breaks stay, one per run; other whitespace is one space.
    assert clean_question(" hi\t<@1>\n\n\r\n ok  then \n", max_chars=100) == "hi\nok then"


def test_bot_mention_found_and_stripped() -> None:
    assert mentions_user("<@!42> when?", 42) and mentions_user("<@42> when?", 42)
    assert not mentions_user("<@421> when?", 42) and not mentions_user("", 42)
    assert strip_user_mention("<@42> when? <@!42>", 42) == "when?"
    assert strip_user_mention("<@7> when?", 42) == "<@7> when?"


def test_neutralized_text_has_no_live_mention() -> None:
    shown = neutralize_mentions("@everyone <@1>")
    assert strip_mentions(shown) == shown
