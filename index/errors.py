"""User-facing errors: a few classes, each with a message a user can act on.

Both flows raise these (the bot's own, `QuestionRejected` and `LLMError`, are in
`bot/errors.py`); `bot` catches them and shows the message, never a traceback.
"""

from __future__ import annotations


class CorpusBotError(Exception):
    """Base class: `str(err)` is a message fit to show a user."""


class ConfigError(CorpusBotError):
    """A setting is missing or invalid (the message names it)."""


class DocumentError(CorpusBotError):
    """A file could not be loaded (empty, binary, undecodable, unparsable, too large)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class NotContent(DocumentError):
    """A file that is not a document to index (a generated index or contents page)."""


class IndexNotReady(CorpusBotError):
    """There is no index yet, or it was built with a different embedder."""


class StoreUnavailable(CorpusBotError):
    """The vector store (e.g. a Chroma server) cannot be reached right now."""
