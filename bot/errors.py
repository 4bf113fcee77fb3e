"""The answering flow's errors and the one table of texts a user is shown.

`CorpusBotError` (in `index.errors`, shared with indexing) is the base: `str(err)` is fit to
show a user. Every fixed user-facing text of the bot — the CLI, the chain's fallback note,
Discord replies — comes from `USER_TEXTS`, keyed by kind; edit wording here only.
"""

from __future__ import annotations

from index.errors import CorpusBotError

# LLMError.kind values (how a call to the language model failed).
LLM_KINDS = (
    "timeout",
    "rate_limit",
    "quota",
    "server",
    "connection",
    "malformed",
    "auth",
    "bad_request",
    "budget",
)

USER_TEXTS: dict[str, str] = {
    # --- the language model failed (LLMError.kind); the answer falls back to quotes -------
    "timeout": "The language model took too long to answer.",
    "rate_limit": "The language model is rate-limited right now.",
    "quota": "The language model's API quota is used up.",
    "server": "The language model service had an error.",
    "connection": "Could not reach the language model service.",
    "malformed": "The language model returned an unusable reply.",
    "auth": "The language model API key was rejected.",
    "bad_request": "The language model service rejected the request.",
    "budget": "Today's language-model budget is used up.",
    # shown above an extractive answer given because the LLM failed ({kind}: " (timeout)")
    "llm_fallback": "LLM unavailable{kind}; showing quoted passages instead.",
    # --- answers ------------------------------------------------------------------------
    "not_found": "I couldn't find that in the indexed sources.",
    "forum_no_answer": "I found no answer to this in the docs yet.",
    # --- the question (QuestionRejected) ------------------------------------------------
    "empty_question": "Please ask a question about the indexed documents.",
    "question_too_long": (
        "That question is {length} characters long; the limit is {limit}. Please shorten it."
    ),
    # --- something failed; the details are in the log ----------------------------------
    "internal": "Sorry, something went wrong while answering. Please try again later.",
    "error": "Sorry, something went wrong.",
    "admin_failed": "Sorry, something went wrong. The details are in the bot's log.",
    "save_failed": "Sorry, saving failed; the details are in the bot's log.",
    "handoff_failed": "Sorry, I couldn't post in the help channel. Please ask there directly.",
    # --- Discord ------------------------------------------------------------------------
    "hint": "Ask me a question about the indexed documents, e.g. `@me what is ...?`",
    # --- Discord refusals ---------------------------------------------------------------
    "needs_manage": "You need the Manage Server permission to use this command.",
    "not_here": "I don't answer questions in this channel.",
    "no_question": "That message has no question I could look up.",
    "no_text_to_save": "That message has no text to save.",
    "own_message": "That is my own message; save a person's answer instead.",
    "which_question": (
        "I couldn't tell which question this answers: use it on a reply to the question, "
        "or on a message in the question's thread."
    ),
    "cooldown": "You're asking quickly; try again in {seconds} s.",
    "busy": "I'm busy answering other questions; try again in a moment.",
    "handoff_not_set_up": "Handing questions to people isn't set up here.",
    "answer_gone": "That answer is no longer on record.",
    # --- Discord `/python -m bot` set-up ------------------------------------------------
    "no_token": "DISCORD_TOKEN is not set; put the bot token in .env or the environment.",
}


def user_text(kind: str, **values: object) -> str:
    """The text shown to a user for `kind` (placeholders filled from `values`)."""
    return USER_TEXTS[kind].format(**values) if values else USER_TEXTS[kind]


def fallback_note(kind: str | None = None) -> str:
    """The note above quoted passages given because the LLM failed with `kind`."""
    return USER_TEXTS["llm_fallback"].format(kind=f" ({kind})" if kind else "")


class QuestionRejected(CorpusBotError):
    """The question is empty, too long, or otherwise unusable."""


class LLMError(CorpusBotError):
    """The LLM failed (timeout, rate limit, quota, bad reply); callers fall back.

    The message is the user text of its kind unless one is given.
    """

    def __init__(self, message: str | None = None, *, kind: str = "error") -> None:
        super().__init__(message if message is not None else USER_TEXTS[kind])
        self.kind = kind  # one of LLM_KINDS (or "error")
