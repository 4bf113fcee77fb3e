"""Answer -> plain text for the terminal."""

from __future__ import annotations

from bot.models import Answer, Citation


def _heading(c: Citation) -> str:
    details = ", ".join(x for x in (c.publisher, c.date) if x)
    return f"[{c.n}] {c.title}" + (f" — {details}" if details else "")


def _location(c: Citation) -> str:
    if c.heading_path:
        where = c.heading_path.split(" › ")
        if where and where[0] == c.title:
            where = where[1:]
        if where:
            return f"{c.source} › {' › '.join(where)}"
    if c.page is not None:
        return f"{c.source}, page {c.page}"
    if c.start is not None and c.end is not None:
        return f"{c.source}, chars {c.start}–{c.end}"
    return c.source


def render_text(answer: Answer) -> str:
    lines = []
    if answer.note:
        lines.append(f"({answer.note})")
    if answer.standalone_question:
        lines.append(f"(understood as: {answer.standalone_question})")
    lines.append(answer.text)
    if answer.citations:
        lines += ["", "Sources:"]
        for c in answer.citations:
            lines.append(_heading(c))
            if c.quote in answer.text:  # extractive answers already show the quote in full
                lines.append(f"    {_location(c)}")
            else:
                lines.append(f"    “{c.quote}” ({_location(c)})")
            if c.url:
                lines.append(f"    {c.url}")
    return "\n".join(lines)
