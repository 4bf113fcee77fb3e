"""MDX (Docusaurus and friends): Markdown with ESM and JSX, reduced to plain Markdown.

`import`/`export` blocks (from such a line to the next blank line, as MDX parses them) and
`{/* comments */}` go; JSX and HTML tags go but their inner text stays (`<TabItem ...>text
</TabItem>` -> `text`); Docusaurus admonition fences (`:::note Title` ... `:::`) keep their
content and title (`:::tip[My tip]`); a heading's `{/* #id */}` is its anchor. Fenced code
and inline code spans are left exactly as written, less Docusaurus' `// highlight-start`
style comments (the built page does not show them either). The front matter is left in
place for the Markdown parser.
"""

from __future__ import annotations

import re

_FENCE_OPEN = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_ESM = re.compile(r"^(?:import|export)\b")
_ADMONITION = re.compile(r"^[ \t]*:::+[ \t]*([\w-]*)[ \t]*(?:\[(.*)\]|(.*?))[ \t]*$")
# Docusaurus 3 heading ids: "## Title {/* #my-id */}" (MDX comment) or "## Title {#my-id}".
_HEADING_ID_COMMENT = re.compile(r"\{/\*[ \t]*#([\w-]+)[ \t]*\*/\}[ \t]*$")
_EXPR_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.S)
# A JSX / HTML tag: props may hold quoted strings and {expressions} (nested one level).
_BRACED = r"\{(?:[^{}]|\{[^{}]*\})*\}"
_TAG = re.compile(
    r"</?[A-Za-z][\w.:-]*(?:\s(?:\"[^\"]*\"|'[^']*'|" + _BRACED + r"|[^<>{}\"'])*)?/?>"
    r"|<>|</>",  # fragments
    re.S,
)
# Docusaurus' line-highlighting comments in code blocks: not shown, so not indexed.
_MAGIC_COMMENT = re.compile(
    r"^[ \t]*(?://|#|<!--|\{/\*|/\*)[ \t]*highlight-(?:next-line|start|end)[ \t]*"
    r"(?:-->|\*/\}|\*/)?[ \t]*$"
)
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
_FRONT = re.compile(r"\A\s*---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)


def _clean_prose(text: str) -> str:
    """Drop comments and tags from prose, leaving inline code spans untouched."""
    spans: list[str] = []

    def keep(m: re.Match[str]) -> str:
        spans.append(m.group(0))
        return f"\ue000{len(spans) - 1}\ue001"

    text = _INLINE_CODE.sub(keep, text)
    text = _EXPR_COMMENT.sub("", text)
    text = _TAG.sub("", text)
    return re.sub("\ue000(\\d+)\ue001", lambda m: spans[int(m.group(1))], text)


def mdx_to_markdown(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    front = _FRONT.match(text)
    head, body = (text[: front.end()], text[front.end() :]) if front else ("", text)
    out: list[str] = []
    prose: list[str] = []
    lines = body.split("\n")
    i = 0

    def flush() -> None:
        if prose:
            cleaned = _clean_prose("\n".join(prose)).split("\n")
            # A line that held only a tag is now blank or indentation: make it blank.
            out.extend(line if line.strip() else "" for line in cleaned)
            prose.clear()

    while i < len(lines):
        line = lines[i]
        fence = _FENCE_OPEN.match(line)
        if fence:
            flush()
            mark = fence.group(1)
            out.append(line)
            i += 1
            close = re.compile(rf"^[ \t]{{0,3}}{mark[0]}{{{len(mark)},}}[ \t]*$")
            while i < len(lines):
                line = lines[i]
                i += 1
                if not _MAGIC_COMMENT.match(line):
                    out.append(line)
                if close.match(line):
                    break
            continue
        if _ESM.match(line):
            flush()
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        admonition = _ADMONITION.match(line)
        if admonition:
            flush()
            title = admonition.group(2) or admonition.group(3)
            out.extend(["", title, ""] if title else [""])
            i += 1
            continue
        if line.lstrip().startswith("#"):
            line = _HEADING_ID_COMMENT.sub(r"{#\1}", line)
        prose.append(line)
        i += 1
    flush()
    return head + "\n".join(out)
