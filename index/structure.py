"""Document structure: blocks (headings, prose, code) -> one text with sections and code spans.

Every format's parser emits blocks into a `TextBuilder`, which lays them out as Markdown-like
text ("## Heading" lines, prose paragraphs, ``` fenced code) and records where each section
and each code block lies. Prose is normalised; code keeps its exact text and indentation.
The chunker keeps sections apart and carries their heading path; the answerer tells code from
prose by the recorded spans.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from index.documents import Section

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\ufeff"))
# Control characters and lone surrogates (broken PDF text maps) break tokenizers and JSON.
JUNK = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ud800-\udfff]")
_INNER_SPACES = re.compile(r"(?<=\S)[ \t]{2,}")
_TRAILING_SPACES = re.compile(r"[ \t]+$", re.M)
_MANY_NEWLINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """The prose normalisation every format gets; chunk offsets index into its output."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = JUNK.sub("", text.replace("\u00a0", " ").translate(_ZERO_WIDTH))
    text = _INNER_SPACES.sub(" ", text)  # leading indentation is kept
    text = _TRAILING_SPACES.sub("", text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def normalize_code(text: str) -> str:
    """Code keeps its characters and indentation; only line ends, junk and blank edges go."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = JUNK.sub("", text.replace("\u00a0", " ").translate(_ZERO_WIDTH))
    text = _TRAILING_SPACES.sub("", text)
    return text.strip("\n")


def slugify(heading: str) -> str:
    """GitHub/MkDocs-style anchor of a heading: lowercase words joined by '-'."""
    text = unicodedata.normalize("NFKD", heading).lower()
    text = re.sub(r"[^\w\- ]", "", text).strip()
    return re.sub(r"[\s]+", "-", text)


@dataclass(frozen=True)
class _Heading:
    start: int
    body_start: int
    level: int
    title: str
    anchor: str | None


class TextBuilder:
    """Lays out blocks as text, separated by blank lines, recording headings and code spans."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._headings: list[_Heading] = []
        self._code: list[tuple[int, int]] = []
        self._slugs: dict[str, int] = {}

    def _append(self, block: str) -> int:
        if self._parts:
            self._parts.append("\n\n")
            self._length += 2
        start = self._length
        self._parts.append(block)
        self._length += len(block)
        return start

    def heading(
        self, level: int, text: str, anchor: str | None = None, *, slug: bool = True
    ) -> None:
        """A heading line; without an `anchor`, its slug is the anchor when `slug` (Markdown
        renderers make one), else none (an HTML heading without an id has no fragment)."""
        title = " ".join(normalize_text(text).split())
        if not title:
            return
        level = min(max(level, 1), 6)
        line = "#" * level + " " + title
        start = self._append(line)
        if not anchor and slug:
            anchor = slugify(title) or None
            if anchor:  # duplicate headings get -1, -2 ... as GitHub and MkDocs do
                seen = self._slugs.get(anchor, 0)
                self._slugs[anchor] = seen + 1
                anchor = f"{anchor}-{seen}" if seen else anchor
        self._headings.append(_Heading(start, start + len(line), level, title, anchor))

    def paragraph(self, text: str) -> None:
        text = normalize_text(text)
        if text:
            self._append(text)

    def code(self, text: str, language: str = "") -> None:
        body = normalize_code(text)
        if not body.strip():
            return
        lang = language if re.fullmatch(r"[\w+#.-]{1,20}", language or "") else ""
        fence = "````" if "```" in body else "```"
        block = f"{fence}{lang}\n{body}\n{fence}"
        start = self._append(block)
        self._code.append((start, start + len(block)))

    @property
    def empty(self) -> bool:
        return not self._parts

    def build(self) -> tuple[str, tuple[Section, ...], tuple[tuple[int, int], ...]]:
        """(text, sections covering it in order, code block spans)."""
        text = "".join(self._parts)
        sections: list[Section] = []
        first = self._headings[0].start if self._headings else len(text)
        if text[:first].strip():
            sections.append(Section(start=0, body_start=0, end=first))
        stack: list[_Heading] = []
        for i, h in enumerate(self._headings):
            while stack and stack[-1].level >= h.level:
                stack.pop()
            stack.append(h)
            end = self._headings[i + 1].start if i + 1 < len(self._headings) else len(text)
            sections.append(
                Section(
                    start=h.start,
                    body_start=h.body_start,
                    end=end,
                    path=tuple(x.title for x in stack),
                    anchor=h.anchor,
                    level=h.level,
                )
            )
        return text, tuple(sections), tuple(self._code)


# --- Markdown ---------------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*$")
_ATX = re.compile(r"^[ \t]{0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^[ \t]{0,3}(=+|-+)[ \t]*$")
_ATTR_ID = re.compile(r"[ \t]*\{[^}]*#([\w-]+)[^}]*\}[ \t]*$")  # "## Title {#anchor}"
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)


@dataclass(frozen=True)
class Run:
    """Consecutive Markdown lines: prose (`fence` None) or one fenced code block, its
    opening line, body and closing line (none when unclosed: it runs to the end)."""

    lines: list[str]
    fence: re.Match[str] | None = None  # the opening line's match: mark, info string
    closed: bool = False

    @property
    def body(self) -> list[str]:
        """A fenced block's code lines (without its fence lines)."""
        return self.lines[1:-1] if self.closed else self.lines[1:]


def fenced_runs(lines: list[str]) -> list[Run]:
    """Split Markdown lines into prose runs and fenced code blocks (``` or ~~~, closed by the
    same character at least as long, as in CommonMark): the one fence scanner."""
    runs: list[Run] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            prose.append(lines[i])
            i += 1
            continue
        if prose:
            runs.append(Run(prose))
            prose = []
        mark = fence.group(1)
        close = re.compile(rf"^[ \t]{{0,3}}{mark[0]}{{{len(mark)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        closed = j < len(lines)
        runs.append(Run(lines[i : j + 1] if closed else lines[i:], fence, closed))
        i = j + 1
    if prose:
        runs.append(Run(prose))
    return runs


def _strip_comments(lines: list[str]) -> list[str]:
    """Drop HTML comments outside fenced code (they may span blank lines)."""
    out: list[str] = []
    for run in fenced_runs(lines):
        if run.fence is None:
            out.extend(_HTML_COMMENT.sub("", "\n".join(run.lines)).split("\n"))
        else:
            out.extend(run.lines)
    return out


# A link reference definition ("[Event Loop]: https://..."): a URL for the links above, not
# text (a footnote, "[^1]: ...", is text and stays).
_LINK_DEF = re.compile(r"^[ \t]{0,3}\[(?!\^)[^\]]+\]:[ \t]*\S+[^\n]*$")
# An inline code span (kept as it is), an HTML tag (dropped, its text stays: "<a id=x></a>",
# "<kbd>Ctrl</kbd>"; not an autolink "<https://...>") or a link/image: [text](url "title"),
# [text][ref], [text][], ![alt](src). Link text may hold code spans ("[`setTimeout()`][]").
_LINK_OR_CODE = re.compile(
    r"(?P<code>(`+).*?(?<!`)\2(?!`))"
    r"|(?P<tag></?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>)"
    r"|!?\[(?P<text>(?:[^\[\]`\\]|\\.|`[^`]*`)*)\]"
    r"(?:\((?:[^()\s]|\([^()\s]*\))*(?:\s+(?:\"[^\"]*\"|'[^']*'))?\)|\[[^\[\]]*\])",
    re.S,
)


def unlink(text: str) -> str:
    """Markdown links and images as their text ("see [the loop](#loop)" -> "see the loop")
    and inline HTML tags dropped (as a renderer shows them): a quote reads as prose and a
    URL or an anchor is no word anyone asks with. Code spans are kept."""
    return _LINK_OR_CODE.sub(lambda m: m.group("code") or m.group("text") or "", text).strip()


def markdown_blocks(text: str, builder: TextBuilder) -> None:
    """Feed a Markdown text's headings, paragraphs and fenced code into `builder`; links
    read as their text and link reference definitions go."""
    lines = _strip_comments(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    para: list[str] = []

    def flush() -> None:
        if para:
            builder.paragraph(unlink("\n".join(para)))
            para.clear()

    for run in fenced_runs(lines):
        if run.fence is not None:
            flush()
            builder.code("\n".join(run.body), run.fence.group(2))
            continue
        for line in run.lines:
            atx = _ATX.match(line)
            if atx:
                flush()
                title, anchor = atx.group(2), None
                attr = _ATTR_ID.search(title)
                if attr:
                    title, anchor = title[: attr.start()], attr.group(1)
                builder.heading(len(atx.group(1)), unlink(title), anchor)
                continue
            if _LINK_DEF.match(line):
                flush()
                continue
            setext = _SETEXT.match(line)
            if setext and len(para) == 1 and para[0].strip():
                title = para.pop()
                flush()
                builder.heading(1 if setext.group(1)[0] == "=" else 2, unlink(title))
                continue
            if not line.strip():
                flush()
            else:
                para.append(line)
    flush()
