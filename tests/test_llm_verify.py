"""Reply verification and sanitising as pure functions (bot/llm/verify.py, sanitize.py):
no model, no server."""

from __future__ import annotations

from langchain_core.documents import Document

from bot.errors import USER_TEXTS
from bot.llm.sanitize import allowed_urls, strip_foreign_urls, unmarked
from bot.llm.verify import complete_prefix, draft_text, verify_reply

TEXT = "North Korea has started mining Bitcoin on the 17th of May, a report says."
DOCS = [
    Document(
        id="a",
        page_content=TEXT + " See https://example.org/report for details.",
        metadata={"source": "nk.md", "title": "Mining", "start": 0},
    ),
    Document(
        id="b",
        page_content="Volcanoes erupt when magma rises.",
        metadata={"source": "v.md", "title": "Volcanoes", "start": 0},
    ),
]
NO_GRAMS: set[tuple[str, ...]] = set()


def test_supported_marker_kept_and_quoted_verbatim() -> None:
    answer = verify_reply(
        "When?", "It started on the 17th of May [1].", DOCS, prompt_grams=NO_GRAMS
    )
    assert not answer.abstained and answer.text == "It started on the 17th of May [1]."
    (c,) = answer.citations
    assert c.source == "nk.md" and c.quote in DOCS[0].page_content


def test_unsupported_marker_dropped_and_renumbered() -> None:
    raw = "It started on the 17th of May [2, 1]."
    answer = verify_reply("When?", raw, DOCS, prompt_grams=NO_GRAMS)
    assert [c.source for c in answer.citations] == ["nk.md"]
    assert answer.text == "It started on the 17th of May [1]."
    raw = "Magma rises [2]. It started on the 17th of May [1]."
    answer = verify_reply("When?", raw, DOCS, prompt_grams=NO_GRAMS)
    assert [c.source for c in answer.citations] == ["v.md", "nk.md"]
    assert answer.text == "Magma rises [1]. It started on the 17th of May [2]."


def test_refusal_and_nothing_cited_abstain() -> None:
    for raw in ("I couldn't find that in the sources.", "It started in May."):
        answer = verify_reply("When?", raw, DOCS, prompt_grams=NO_GRAMS)
        assert answer.abstained and answer.text == USER_TEXTS["not_found"]


def test_prompt_echo_is_dropped() -> None:
    grams = {("you", "must", "cite", "every", "claim")}
    raw = "It started on the 17th of May [1]. You must cite every claim [1]."
    answer = verify_reply("When?", raw, DOCS, prompt_grams=grams)
    assert "cite every claim" not in answer.text


def test_foreign_urls_stripped_cited_ones_kept() -> None:
    allowed = allowed_urls(DOCS[:1])
    text = "Read https://example.org/report and [this](https://evil.test/x) or <https://evil.test>."
    assert strip_foreign_urls(text, allowed) == "Read https://example.org/report and this or ."


def test_unmarked_and_drafts() -> None:
    assert unmarked("It began in May [1], then [2] ended .") == "It began in May, then ended."
    assert complete_prefix("One. Two is still bein") == "One."
    raw = "It started on the 17th of May [1]. And then"
    assert draft_text("When?", DOCS, raw, prompt_grams=NO_GRAMS) == "It started on the 17th of May."
