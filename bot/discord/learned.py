"""Moderator answers saved as Markdown documents ("Add to knowledge base"), and re-indexing them.

Pure helpers build the document (YAML front matter: title = the question, url = the Discord
message link, date, author only if LEARNED_INCLUDE_AUTHOR) and the file name, and resolve a
`/forget` path safely inside LEARNED_DIR. `BackgroundReindex` runs `index.pipeline.reindex` in a
worker thread, coalescing requests that arrive while one runs into one more run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
import unicodedata
from pathlib import Path

import yaml

from bot.mentions import neutralize_mentions
from bot.settings import BotSettings
from index import pipeline

log = logging.getLogger(__name__)

QUESTION_MAX = 300  # the title
ANSWER_MAX = 4000  # a Discord message is at most 4000 characters
SLUG_MAX = 60


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


def learned_document(
    *, question: str, answer: str, url: str, date: str, author: str | None = None
) -> str:
    """The Markdown file: front matter, then the moderator's answer (mentions defused)."""
    title = " ".join(neutralize_mentions(question).split())
    front: dict[str, str] = {"title": _clip(title, QUESTION_MAX), "url": url, "date": date}
    if author:
        front["author"] = _clip(" ".join(neutralize_mentions(author).split()), 100)
    header = yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=10_000)
    body = _clip(neutralize_mentions(answer).replace("\r\n", "\n"), ANSWER_MAX)
    return f"---\n{header}---\n\n{body}\n"


def learned_filename(question: str, message_id: int) -> str:
    """`<slug of the question>-<message id>.md`: unique per message, so saving again overwrites."""
    ascii_text = unicodedata.normalize("NFKD", question).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:SLUG_MAX].strip("-")
    return f"{slug or 'answer'}-{message_id}.md"


def write_atomically(path: Path, text: str) -> None:
    """Write via a hidden temp file (the loader skips dot files) and rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".md")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def display_path(path: Path, settings: BotSettings) -> str:
    """The path as users see it: relative to CORPUS_DIR when inside it."""
    try:
        return path.resolve().relative_to(settings.corpus_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def resolve_learned(given: str, settings: BotSettings) -> Path | None:
    """The saved file `given` names (relative to CORPUS_DIR or LEARNED_DIR); None unless it is
    an existing .md file inside LEARNED_DIR (no traversal out of it)."""
    given = given.strip()
    if not given:
        return None
    root = settings.learned_path.resolve()
    for base in (settings.corpus_dir, settings.learned_path):
        candidate = (base / given).resolve()
        if candidate.is_relative_to(root) and candidate.suffix == ".md" and candidate.is_file():
            return candidate
    return None


def learned_files(settings: BotSettings) -> list[Path]:
    root = settings.learned_path
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*.md") if not p.name.startswith("."))


class BackgroundReindex:
    """`request()` starts a re-index in a worker thread; requests during a run add one more run."""

    def __init__(self, settings: BotSettings) -> None:
        self.settings = settings
        self.runs = 0
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                summary = await asyncio.to_thread(pipeline.reindex, self.settings)
                log.info("background re-index done: %s", summary.to_dict())
            except Exception:
                log.exception("background re-index failed")
            self.runs += 1

    async def wait(self) -> None:
        """Until no re-index is running or requested (for shutdown and tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
