"""The LLM answerer, by role.

`client.py` model factory, deadline arithmetic, the bounded call/stream with our retries and
error classification; `verify.py` citation verification of a reply against the chunks (pure);
`sanitize.py` URL stripping, marker removal, secret redaction (pure); `answerer.py`
`LLMAnswerer`, which composes them.
"""

from bot.llm.answerer import (
    CONDENSE_MAX_CHARS,
    CONDENSE_MAX_TOKENS,
    LLMAnswerer,
    format_history,
    format_sources,
)
from bot.llm.client import CONDENSE_DEADLINE_S, REPLY_WITHIN_S, llm_deadline_s, make_chat_model
from bot.llm.sanitize import unmarked

__all__ = [
    "CONDENSE_DEADLINE_S",
    "CONDENSE_MAX_CHARS",
    "CONDENSE_MAX_TOKENS",
    "REPLY_WITHIN_S",
    "LLMAnswerer",
    "format_history",
    "format_sources",
    "llm_deadline_s",
    "make_chat_model",
    "unmarked",
]
