"""One reply to a message that asks several questions (`bot.followup.separate_questions`):
each question answered apart, shown under the question it answers, the citations numbered
through and a passage cited by two answers listed once.

    > how do i make an option required?
    “...” [1]

    > also, is there a changelog somewhere?
    I couldn't find that in the indexed sources.
"""

from __future__ import annotations

from dataclasses import replace

from bot.answer.extractive import quoted
from bot.models import Answer, Citation

# A question shown above its answer is cut here (a pasted paragraph is no heading).
SHOWN_QUESTION_CHARS = 200


def combine_answers(question: str, parts: list[tuple[str, Answer]]) -> Answer:
    """The extractive answers to (question asked, answer) pairs as one answer to the
    message `question`; abstained only when every part is."""
    citations: list[Citation] = []
    numbers: dict[tuple[str | None, str, int | None], int] = {}
    blocks = []
    for asked, answer in parts:
        own = []
        for c in answer.citations:
            key = (c.chunk_id or c.source, c.quote, c.start)
            if key not in numbers:
                numbers[key] = len(citations) + 1
                citations.append(replace(c, n=numbers[key]))
            own.append(replace(c, n=numbers[key]))
        text = answer.text if answer.abstained or not own else quoted(own)
        shown = " ".join(asked.split())
        if len(shown) > SHOWN_QUESTION_CHARS:
            shown = shown[: SHOWN_QUESTION_CHARS - 1].rstrip() + "…"
        blocks.append(f"> {shown}\n{text}")
    first = parts[0][1]
    return Answer(
        question=question,
        text="\n\n".join(blocks),
        citations=citations,
        abstained=all(a.abstained for _, a in parts),
        mode=first.mode,
        features=first.features,
        candidate=first.candidate,
    )
