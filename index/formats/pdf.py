"""PDF via pypdf: the text of each page, read the way a person reads a printed manual.

- **Running headers and footers go.** A page's first or last line that recurs (numbers
  aside) as the first or last line of at least `MIN_RUNNING_PAGES` pages ("Chapter 3: Basic
  Shell Features 15"), or that is only a page number ("17", "iv", "Page 3 of 40"), is the
  page's furniture, not its text: left in, it cuts a sentence that runs on over the page
  break in two.
- **Table-of-contents and index lines go**: a line ending in dot leaders and a page number
  ("3.1.2 Quoting . . . . . . 6").
- **A word hyphenated at a line's end is whole again** ("accord-" + "ingly"): typeset PDFs
  break words this way all the time, and the halves match nothing a reader searches for. (A
  compound whose own hyphen falls at the line's end loses it: "non-" + "zero" reads
  "nonzero", which searches as well.) A line shorter than half the page's full line width
  had room for more, so its final hyphen is the text's own: a definition list's term
  "[n]<&digit-" above its description stays as it is.
- **Paragraphs.** pypdf gives lines, not paragraphs. A line that ends a sentence and falls
  well short of the page's full line width (`PARAGRAPH_END` of its 80th-percentile length)
  is a paragraph's last line in justified or ragged text alike, so a blank line follows it.
- **A sentence runs on over a page break**: pages are joined by a line break when the page
  ends mid-sentence, by a blank line (a paragraph break) when it ends a sentence.
- **Sections come from the outline** (the bookmarks most generated PDFs carry): each entry
  is looked for on its destination page as a line that reads as its title, with or without
  its number ("3.1.2.1 Escape Character"); found, it becomes a heading (chapters at level 2,
  below the document's title), so chunks know their section as in HTML and Markdown. An
  entry not found as a line is left out: a section never starts mid-paragraph.
- Each page's span in the text is kept for citations ("p. 17").
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from index.documents import PageSpan, Section
from index.formats import Parsed, first_line, one_line
from index.structure import normalize_text

# A first/last line recurring on this many pages is a running header/footer: two could be
# chance (a repeated table heading), three pages of a chapter or a manual already repeat.
MIN_RUNNING_PAGES = 3
MAX_RUNNING_CHARS = 120  # a running header is a short line, never a paragraph
MAX_OUTLINE_ENTRIES = 5000
PARAGRAPH_END = 0.85  # a line this much shorter than a full one ends its paragraph
MIN_LINES_FOR_PARAGRAPHS = 6  # fewer lines say too little about the page's line width
# A line ending in a hyphen this much shorter than a full one was not broken by the
# typesetter (the next word's first part would have fit). In the Bash manual (196 pages)
# the breaks measured 0.72-1.0 of a full line, its terms like "[n]<&digit-" 0.12-0.32.
HYPHEN_BREAK_MIN = 0.5

_PAGE_NUMBER = re.compile(r"(?i)^(?:page\s+)?(?:\d+|[ivxlcdm]+)(?:\s*(?:of|/)\s*\d+)?$")
_LEADERS = re.compile(r"(?:\.\s?){4,}\s*[\dIVXLCDMivxlcdm]+\s*$")  # ". . . . 12" / "....12"
# What may precede a heading's title on its line: "Chapter 3", "Appendix B", "3.1.2", "A.4".
_NUMBERING = re.compile(
    r"(?i)^(?:(?:chapter|appendix|part|section)\s+)?(?:[0-9]+|[A-Z])(?:\.[0-9]+)*\.?:?\s+"
)
_ENTRY_NAME = re.compile(r"[\w.:-]{1,30}")  # a command's or option's name, alone on its line
_HYPHENATED = re.compile(r"(?<=[a-z])-$")
_LOWER_START = re.compile(r"[a-z]")
_SENTENCE_END = re.compile(r"[.!?:;)\]\"'”’]\s*$")


@dataclass(frozen=True)
class _Entry:
    title: str
    page: int  # 0-based page index
    depth: int  # 0 for a top-level bookmark (a chapter)


@contextlib.contextmanager
def quiet_pypdf() -> Iterator[None]:
    # pypdf logs a warning per repaired object of a broken file; our one warning is enough.
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _key(line: str) -> str:
    """A line as it recurs from page to page: numbers aside, case and spacing aside."""
    return re.sub(r"\d+", "#", " ".join(line.split()).casefold())


def _edge(lines: list[str], last: bool) -> int | None:
    """Index of the first (or last) non-blank line."""
    order = range(len(lines) - 1, -1, -1) if last else range(len(lines))
    return next((i for i in order if lines[i].strip()), None)


def strip_furniture(pages: list[str]) -> list[str]:
    """Pages without their running headers/footers, page numbers and dot-leader lines, and
    with the words hyphenated at a line's end joined."""
    split = [page.split("\n") for page in pages]
    counts: dict[bool, Counter[str]] = {False: Counter(), True: Counter()}
    for lines in split:
        for last in (False, True):
            i = _edge(lines, last)
            if i is not None:
                counts[last][_key(lines[i])] += 1
    out = []
    for lines in split:
        lines = [ln for ln in lines if not _LEADERS.search(ln)]
        for last in (False, True):
            i = _edge(lines, last)
            if i is None:
                continue
            line = lines[i].strip()
            running = len(line) <= MAX_RUNNING_CHARS and counts[last][_key(line)] >= (
                MIN_RUNNING_PAGES
            )
            if running or _PAGE_NUMBER.match(line):
                del lines[i]
        out.append(_paragraphs(_dehyphenated(lines)).strip("\n"))
    return out


def _full_width(lines: list[str]) -> int | None:
    """A full line's length on the page (its 80th-percentile line), if it has enough lines."""
    widths = sorted(len(ln.rstrip()) for ln in lines if ln.strip())
    if len(widths) < MIN_LINES_FOR_PARAGRAPHS:
        return None
    return widths[int(0.8 * (len(widths) - 1))]


def _dehyphenated(lines: list[str]) -> str:
    """The page's text with each word the typesetter hyphenated at a line's end joined."""
    full = _full_width(lines)
    shortest = 0 if full is None else HYPHEN_BREAK_MIN * full
    parts: list[str] = []
    for i, line in enumerate(lines):
        broken = (
            i + 1 < len(lines)
            and _HYPHENATED.search(line)
            and _LOWER_START.match(lines[i + 1])
            and len(line.rstrip()) >= shortest
        )
        parts.append(line[:-1] if broken else line + "\n")
    return "".join(parts)[:-1] if parts else ""


def _paragraphs(page: str) -> str:
    """A blank line after each line that ends a paragraph (see the module's docstring)."""
    lines = page.split("\n")
    full = _full_width(lines)
    if full is None:
        return page
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        ends = (
            i + 1 < len(lines)
            and lines[i + 1].strip()
            and _SENTENCE_END.search(line)
            and len(line.rstrip()) < PARAGRAPH_END * full
        )
        if ends:
            out.append("")
    return "\n".join(out)


def _outline(reader) -> list[_Entry]:  # noqa: ANN001 - pypdf's PdfReader
    """The bookmarks in document order, with their destination pages; [] when there are
    none or they cannot be read (a damaged outline costs the sections, not the document)."""
    entries: list[_Entry] = []

    def walk(items: list, depth: int) -> None:
        for item in items:
            if len(entries) >= MAX_OUTLINE_ENTRIES:
                return
            if isinstance(item, list):
                walk(item, depth + 1)
                continue
            page = reader.get_destination_page_number(item)
            title = one_line(normalize_text(str(getattr(item, "title", "") or "")))
            if page is not None and page >= 0 and title:
                entries.append(_Entry(title, page, depth))

    try:
        walk(reader.outline, 0)
    except Exception:  # noqa: BLE001 - pypdf raises many types for damaged outlines
        return []
    return entries


def _title_key(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


def _heading_lines(text: str, start: int, end: int) -> dict[str, list[tuple[int, int]]]:
    """Where each line of text[start:end] (and each pair of lines, for a wrapped title)
    could be a heading: its title key, with and without its number -> [(start, end)]."""
    lines = []
    pos = start
    for line in text[start:end].split("\n"):
        lines.append((pos, pos + len(line), line.strip()))
        pos += len(line) + 1
    found: dict[str, list[tuple[int, int]]] = {}
    for i, (a, b, line) in enumerate(lines):
        if not line:
            continue
        wrapped = [(b, line)]
        if i + 1 < len(lines) and lines[i + 1][2]:
            wrapped.append((lines[i + 1][1], line + " " + lines[i + 1][2]))
        for stop, candidate in wrapped:
            for key in {_title_key(candidate), _title_key(_NUMBERING.sub("", candidate, 1))}:
                if key:
                    found.setdefault(key, []).append((a, stop))
    return found


def _with_entries(
    text: str, found: list[tuple[int, int, int, str]]
) -> list[tuple[int, int, int, str]]:
    """The outline's headings and, one level below the heading they fall under, the entries
    of a reference list: a line holding one name, followed by its usage line that starts with
    the name ("kill" / "kill [-s sigspec] [-n signum] jobspec"), the way manuals list their
    commands. Each entry is then a section of its own, so its chunks say what they describe."""
    out = list(found)
    pos = 0
    lines = text.split("\n")
    starts = []
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    heads = sorted(found)
    h = 0
    for i, line in enumerate(lines[:-1]):
        name = line.strip()
        if not _ENTRY_NAME.fullmatch(name) or not lines[i + 1].strip().startswith(
            (name + " ", name + "[")
        ):
            continue
        at = starts[i]
        while h + 1 < len(heads) and heads[h + 1][0] <= at:
            h += 1
        if heads[h][0] > at or heads[h][1] > at:
            continue  # before the first heading, or inside a heading's own line
        level = heads[h][2]
        if level >= 6:
            continue
        out.append((at, at + len(line), level + 1, name))
    return sorted(out)


def _sections(text: str, spans: list[PageSpan], entries: list[_Entry]) -> tuple[Section, ...]:
    """Each outline entry found as a line on its page, in order; the lines of a page are
    keyed once, so a long outline costs one pass over each page it points at."""
    by_page = {span.page - 1: span for span in spans}
    keyed: dict[int, dict[str, list[tuple[int, int]]]] = {}
    found: list[tuple[int, int, int, str]] = []  # heading start, body start, level, title
    cursor = 0
    for entry in entries:
        span = by_page.get(entry.page)
        want = _title_key(entry.title)
        if span is None or not want or span.end <= cursor:
            continue
        if entry.page not in keyed:
            keyed[entry.page] = _heading_lines(text, span.start, span.end)
        where = next((w for w in keyed[entry.page].get(want, ()) if w[0] >= cursor), None)
        if where is None:
            continue
        found.append((where[0], where[1], min(entry.depth + 2, 6), entry.title))
        cursor = where[1]
    if not found:
        return ()
    found = _with_entries(text, found)
    sections: list[Section] = []
    if text[: found[0][0]].strip():
        sections.append(Section(start=0, body_start=0, end=found[0][0]))
    stack: list[tuple[int, str]] = []
    for i, (start, body, level, title) in enumerate(found):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        end = found[i + 1][0] if i + 1 < len(found) else len(text)
        sections.append(
            Section(
                start=start,
                body_start=body,
                end=end,
                path=tuple(t for _, t in stack),
                level=level,
            )
        )
    return tuple(sections)


def parse_pdf(raw: bytes, stem: str) -> Parsed:
    from pypdf import PdfReader  # imported lazily: only corpora with PDFs pay for it

    page_texts: list[str] = []
    info_title = None
    entries: list[_Entry] = []
    try:
        with quiet_pypdf():
            reader = PdfReader(io.BytesIO(raw), strict=False)
            locked = reader.is_encrypted and not reader.decrypt("")
            if not locked:
                page_texts = [normalize_text(page.extract_text() or "") for page in reader.pages]
                info_title = reader.metadata.title if reader.metadata else None
                entries = _outline(reader)
    except Exception as exc:  # pypdf raises many types for damaged files
        raise ValueError(f"unparsable PDF: {exc or type(exc).__name__}") from exc
    if locked:
        raise ValueError("unparsable PDF: encrypted (remove the password)")

    spans: list[PageSpan] = []
    pieces: list[str] = []
    offset = 0
    for number, page_text in enumerate(strip_furniture(page_texts), start=1):
        if not page_text.strip():  # blank/scanned pages get no span: nothing can cite them
            continue
        if pieces:
            gap = "\n\n" if _SENTENCE_END.search(pieces[-1]) else "\n"
            pieces.append(gap)
            offset += len(gap)
        pieces.append(page_text)
        spans.append(PageSpan(page=number, start=offset, end=offset + len(page_text)))
        offset += len(page_text)
    text = "".join(pieces)
    title = one_line(str(info_title)) if info_title else ""
    return Parsed(
        text,
        title or first_line(text) or stem,
        pages=tuple(spans),
        sections=_sections(text, spans, entries),
    )
