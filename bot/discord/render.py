"""Answer -> Discord message payloads, within Discord's limits.

Pure functions over plain data: embeds are built as Discord's JSON dicts so limits can be
checked without a client; `Payload.discord_embeds()` turns them into `discord.Embed` at the edge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import discord

from bot.errors import fallback_note, user_text
from bot.mentions import (
    CUSTOM_EMOJI,
    MASS_MENTION,
    MENTION,
    ZERO_WIDTH,
    neutralize_mentions,
    strip_user_mention,
)
from bot.models import Answer, Citation

# Discord's documented limits.
CONTENT_MAX = 2000
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FIELDS_MAX = 25
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000  # per message, summed over all its embeds
EMBEDS_MAX = 10
THREAD_NAME_MAX = 100

QUOTE_MAX = 350  # a readable passage; the full text is one click away
EMBED_COLOUR = 0x5865F2

_ELLIPSIS = "…"
_FENCE = "```"
_FENCE_CLOSE = "\n```"
# Spans a message must never be cut inside: markdown links and [n] / [1, 2] citation markers.
_ATOM = re.compile(r"\[[^\[\]\n]{0,300}\]\(<?[^()\s]{1,600}>?\)|\[\d+(?:\s*,\s*\d+)*\]")
_SENTENCE_END = re.compile(r"[.!?][)\]\"']?\s+")
_BARE_URL = re.compile(r"(?<![<(])\bhttps?://[^\s<>()]*[^\s<>().,;:!?'\"]")
_MD_LINK_URL = re.compile(r"\]\((https?://[^\s()<>]+)\)")
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.DOTALL)
_HEADING_LINE = re.compile(r"^((?:#{1,3}|-#)[ \t])", re.MULTILINE)


@dataclass
class Payload:
    """One Discord message: text plus embeds as Discord JSON dicts."""

    content: str
    embeds: list[dict[str, Any]] = field(default_factory=list)

    def discord_embeds(self) -> list[discord.Embed]:
        return [discord.Embed.from_dict(e) for e in self.embeds]


# --- mentions ---------------------------------------------------------------------------


def _as_prose(part: str) -> str:
    """Text outside code as Discord should show it: URLs wrapped in <> so it shows no
    preview cards for them, and a quoted line that starts with "#" (a shell comment in a
    PDF's example, a config file's) as written, not as a Discord heading. Code shows no
    previews and no headings, and is left as written (`outside_code`)."""
    part = _MD_LINK_URL.sub(lambda m: f"](<{m.group(1)}>)", part)
    part = _BARE_URL.sub(lambda m: f"<{m.group(0)}>", part)
    return _HEADING_LINE.sub(r"\\\1", part)


def outside_code(text: str, change: Callable[[str], str]) -> str:
    """`text` with `change` applied to all but its code: ``` blocks (an unclosed one runs to
    the end) and `inline code`."""
    out, pos = [], 0
    for m in _CODE.finditer(text):
        out += [change(text[pos : m.start()]), m.group()]
        pos = m.end()
    out.append(change(text[pos:]))
    return "".join(out)


# --- truncation and splitting -----------------------------------------------------------


def truncate(text: str, limit: int) -> str:
    """Cut to at most `limit` chars at a word boundary, ending in an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return _ELLIPSIS[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if not text[limit - 1].isspace() and space > limit // 2:  # else already at a word end
        cut = cut[:space]
    return cut.rstrip() + _ELLIPSIS


def _code_blocks(text: str) -> list[tuple[int, int, str]]:
    """(start, end, language) of each ``` block; an unclosed block runs to the end."""
    blocks = []
    pos = 0
    while (start := text.find(_FENCE, pos)) != -1:
        line_end = text.find("\n", start)
        lang = text[start + 3 : line_end if line_end != -1 else len(text)].strip()
        if not re.fullmatch(r"[\w+#.-]{0,20}", lang):
            lang = ""
        close = text.find(_FENCE, start + 3)
        end = len(text) if close == -1 else close + 3
        blocks.append((start, end, lang))
        pos = end
    return blocks


def _inside(pos: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(start < pos < end for start, end in spans)


def _best_cut(text: str, window: int, forbidden: list[tuple[int, int]]) -> int | None:
    """The latest boundary <= window, preferring paragraph > line > sentence > word."""

    def candidates(pattern: str) -> Iterable[int]:
        return (m.end() for m in re.finditer(pattern, text[: window + 1]))

    for floor in (window // 2, 0):
        for pattern in (r"\n\s*\n", r"\n", _SENTENCE_END.pattern, r" "):
            cuts = [c for c in candidates(pattern) if floor < c <= window]
            cuts = [c for c in cuts if not _inside(c, forbidden)]
            if cuts:
                return cuts[-1]
    return None


def split_message(text: str, limit: int = CONTENT_MAX) -> list[str]:
    """Split text into messages of <= limit chars at paragraph/sentence/word boundaries.

    Never inside a markdown link or a [n] marker; never inside a ``` block unless the block
    alone is too long, in which case it is closed and reopened (same language) across messages.
    """
    chunks: list[str] = []
    rest = text.strip()
    while rest:
        if len(rest) <= limit:
            chunks.append(rest)
            break
        window = limit - len(_FENCE_CLOSE)  # room to close a code block if we must
        blocks = _code_blocks(rest)
        atoms = [m.span() for m in _ATOM.finditer(rest)]
        cut = _best_cut(rest, window, atoms + [(s, e) for s, e, _ in blocks])
        if cut is not None:
            piece, rest = rest[:cut], rest[cut:]
        else:
            block = next(((s, e, lang) for s, e, lang in blocks if s < window < e), None)
            if block is not None and block[0] > 0:
                piece, rest = rest[: block[0]], rest[block[0] :]  # move the whole block on
            elif block is not None:
                start, _, lang = block
                opening = rest.find("\n", start)
                nl = rest.rfind("\n", opening + 1, window)
                cut = nl if nl > max(opening, window // 4) else window
                # Never inside a [n] marker or a link: cut before it (or after, if it opens
                # the block and still fits).
                for s, e in atoms:
                    if s < cut < e:
                        cut = s if s > opening + 1 else (e if e <= window else cut)
                piece = rest[:cut].rstrip("\n") + _FENCE_CLOSE
                rest = f"```{lang}\n" + rest[cut:].lstrip("\n")
            else:  # a single unbreakable run longer than a message: hard cut
                cut = window
                while cut > 1 and _inside(cut, atoms):
                    cut -= 1
                piece, rest = rest[:cut], rest[cut:]
        piece = piece.rstrip()
        if piece:
            chunks.append(piece)
        rest = rest.lstrip(" \n")
    return chunks


# --- sources ------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def citation_field(c: Citation, *, quote_max: int = QUOTE_MAX) -> dict[str, Any]:
    """One embed field: [n] title / publisher, date, page / quoted passage / link or file."""
    name = truncate(
        neutralize_mentions(_one_line(f"[{c.n}] {c.title or c.source}")), FIELD_NAME_MAX
    )
    meta = " · ".join(
        x for x in (c.publisher, c.author, c.date, f"p. {c.page}" if c.page else None) if x
    )
    meta = truncate(neutralize_mentions(_one_line(meta)), 200) if meta else ""
    if c.url and re.match(r"https?://", c.url) and len(c.url) <= 400:
        where = f"[link](<{c.url}>)" if c.page is None else f"[link, page {c.page}](<{c.url}>)"
    else:
        where = "`" + truncate(c.source.replace("`", "'"), 200) + "`"
    lines = [meta] if meta else []
    if c.heading_path:  # where in the document: "FAQ › Functions › Why ...?"
        path = [p for p in c.heading_path.split(" › ") if p]
        if path and path[0] == c.title:
            path = path[1:]
        if path:
            lines.append(truncate(neutralize_mentions(_one_line(" › ".join(path))), 200))
    budget = FIELD_VALUE_MAX - sum(len(x) + 1 for x in lines) - len(where) - 3
    quote = _one_line(neutralize_mentions(c.quote))
    if quote and budget > 10:
        lines.append("> " + truncate(quote, min(quote_max, budget)))
    lines.append(where)
    return {"name": name, "value": "\n".join(lines)[:FIELD_VALUE_MAX], "inline": False}


def _embed_size(embed: dict[str, Any]) -> int:
    size = len(embed.get("title", "")) + len(embed.get("description", ""))
    size += len(embed.get("footer", {}).get("text", ""))
    return size + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))


def sources_embeds(
    citations: Sequence[Citation], *, title: str = "Sources"
) -> list[dict[str, Any]]:
    """Citations packed into embeds of <= 25 fields and <= 6000 chars each."""
    embeds: list[dict[str, Any]] = []
    for c in sorted(citations, key=lambda c: c.n):
        f = citation_field(c)
        last = embeds[-1] if embeds else None
        if (
            last is None
            or len(last["fields"]) >= FIELDS_MAX
            or _embed_size(last) + len(f["name"]) + len(f["value"]) > EMBED_TOTAL_MAX
        ):
            name = title if not embeds else f"{title} (cont.)"
            last = {"title": name, "color": EMBED_COLOUR, "fields": []}
            embeds.append(last)
        last["fields"].append(f)
    return embeds


def _attach(payloads: list[Payload], embeds: list[dict[str, Any]]) -> None:
    """Put embeds on the last message, spilling into new messages past 10 / 6000 chars."""
    for embed in embeds:
        last = payloads[-1]
        total = sum(_embed_size(e) for e in last.embeds)
        if len(last.embeds) >= EMBEDS_MAX or total + _embed_size(embed) > EMBED_TOTAL_MAX:
            last = Payload(content="")
            payloads.append(last)
        last.embeds.append(embed)


# --- answers --------------------------------------------------------------------------------


def render_answer(answer: Answer, *, limit: int = CONTENT_MAX) -> list[Payload]:
    """The answer as Discord messages: text with [n] markers, sources on the last message."""
    text = answer.text.strip() or (user_text("not_found") if answer.abstained else "")
    if answer.mode == "extractive-fallback":
        text = f"*{answer.note or fallback_note()}*\n\n{text}"
    text = outside_code(neutralize_mentions(text), _as_prose)
    payloads = [Payload(content=chunk) for chunk in split_message(text, limit)]
    if not payloads:
        payloads = [Payload(content=user_text("not_found"))]
    if answer.citations:
        title = "Nearest sources" if answer.abstained else "Sources"
        _attach(payloads, sources_embeds(answer.citations, title=title))
    return payloads


def render_error(message: str) -> str:
    """A user-facing error message, safe and within one message."""
    return truncate(neutralize_mentions(message.strip()) or user_text("error"), 1900)


def thread_name(question: str) -> str:
    """A thread title from the question: one line, no mentions or markdown, <= 100 chars."""
    name = CUSTOM_EMOJI.sub("", MENTION.sub("", question))
    name = ZERO_WIDTH.sub("", name)
    name = re.sub(r"[*_`~|>#\[\]]", "", name)
    name = MASS_MENTION.sub(r"\1", _one_line(name)).strip()
    return truncate(name, THREAD_NAME_MAX) or "Question"


def strip_bot_mention(content: str, bot_id: int) -> str:
    """The question without the bot's <@id>/<@!id> mention(s)."""
    return strip_user_mention(content, bot_id)


# --- admin replies --------------------------------------------------------------------------


def _when(value: Any) -> str:
    """A Discord timestamp (shown in the reader's time zone) for epoch seconds or ISO 8601."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value).timestamp()
        except ValueError:
            return value or "unknown"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"<t:{int(value)}:f> (<t:{int(value)}:R>)"
    return "unknown"


def _bounded_lines(lines: list[str], limit: int, more: str) -> str:
    """Join lines up to `limit` chars, ending with "… and N more" when some do not fit."""
    out: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        left = len(lines) - i
        reserve = 0 if left == 1 else len(more.format(n=left)) + 1  # room for the marker
        if size + len(line) + reserve > limit:
            out.append(more.format(n=left))
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def render_stats(stats: dict[str, Any]) -> str:
    ratio = stats.get("ratio")
    lines = [
        f"**Answered:** {stats['answered']}  **Declined:** {stats['declined']}",
        f"**Feedback:** 👍 {stats['upvotes']}  👎 {stats['downvotes']}"
        + (f"  ({ratio:.0%} positive)" if ratio is not None else ""),
    ]
    gaps = stats.get("recent_unanswered") or []
    if gaps:
        lines.append("**Recent unanswered questions** (gaps in the corpus):")
        lines += [f"- {truncate(_one_line(g['question']), 150)}" for g in gaps]
    return truncate(neutralize_mentions("\n".join(lines)), CONTENT_MAX)


def render_reindex(summary: dict[str, Any]) -> str:
    text = (
        f"Re-indexed in {summary.get('seconds', 0):.1f} s: {summary.get('documents', 0)} documents, "
        f"{summary.get('chunks', 0)} chunks (added {summary.get('added', 0)}, updated "
        f"{summary.get('updated', 0)}, unchanged {summary.get('unchanged', 0)}, deleted "
        f"{summary.get('deleted', 0)}; embedded {summary.get('embedded', 0)} chunks, skipped "
        f"{summary.get('skipped', 0)} files)."
    )
    if summary.get("changed") is False:
        text += " Nothing changed."
    if summary.get("note"):
        text += f" {summary['note']}"
    skipped = summary.get("skipped_files") or []
    if skipped:
        text += "\nSkipped:\n" + "\n".join(
            f"- `{s.get('path', '?')}`: {s.get('reason', '')}" for s in skipped[:10]
        )
    truncated = summary.get("truncated_files") or []
    if truncated:
        text += "\nTruncated (MAX_CHUNKS_PER_DOCUMENT):\n" + "\n".join(
            f"- `{t.get('path', '?')}`: kept {t.get('kept')} of {t.get('chunks')} chunks"
            for t in truncated[:10]
        )
    return truncate(neutralize_mentions(text), CONTENT_MAX)


def render_sources(sources: Sequence[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
    """One embed listing the indexed documents with chunk counts, and when the index was built."""
    header = (
        f"{info.get('documents', len(sources))} documents, {info.get('chunks', '?')} chunks; "
        f"built {_when(info.get('built_at'))}"
    )
    lines = []
    for s in sorted(sources, key=lambda s: str(s.get("title") or s.get("source"))):
        meta = " · ".join(str(s[k]) for k in ("publisher", "date") if s.get(k))
        title = truncate(_one_line(str(s.get("title") or s.get("source"))), 120)
        line = f"- **{title}** ({s.get('chunks', '?')} chunks)" + (f" · {meta}" if meta else "")
        lines.append(neutralize_mentions(line))
    body = _bounded_lines(lines, EMBED_DESCRIPTION_MAX - len(header) - 2, "… and {n} more")
    return {
        "title": "Indexed documents",
        "description": f"{header}\n\n{body}" if body else header,
        "color": EMBED_COLOUR,
    }
