"""Parsed documents cached by the bytes they came from, so a re-index parses only what changed.

Parsing is the one cost of an incremental re-index that grows with the whole corpus: on the
Python docs (530 pages, 21k chunks) a one-page change spent ~90 of its ~104 s parsing every
page again to learn that nothing else had changed. An entry is keyed by the raw bytes, the
file's extension and stem (both feed the parser) and a digest of the parsing code itself, so
a changed page or a changed parser is parsed afresh. Entries not used by a run are removed
after it, so the cache holds about one parse per corpus file. It is an optimisation only: an
unreadable or damaged entry is parsed again, and a cache that cannot be written costs nothing
but time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from functools import cache
from pathlib import Path

from index.documents import PageSpan, Section
from index.formats import Parsed

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent
# The modules that turn a file's bytes into a document (a module the loader starts to use
# for parsing belongs here); changes elsewhere in the package keep the cache.
_PARSING = ("loader.py", "html.py", "structure.py", "documents.py", "parsed.py", "formats/*.py")


@cache
def code_digest() -> str:
    """The parsing code's own fingerprint."""
    h = hashlib.sha256()
    for path in sorted(p for pattern in _PARSING for p in _PACKAGE.glob(pattern)):
        h.update(path.relative_to(_PACKAGE).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class NotContentEntry(str):
    """A cached verdict that the file is not content (an index page), with its reason."""


class ParseCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._used: set[str] = set()

    @staticmethod
    def key(raw: bytes, ext: str, stem: str) -> str:
        h = hashlib.sha256(code_digest().encode())
        h.update(f"\0{ext}\0{stem}\0".encode())
        h.update(raw)
        return h.hexdigest()

    @property
    def used(self) -> frozenset[str]:
        """Keys this object read or wrote (what `prune` keeps)."""
        return frozenset(self._used)

    def mark_used(self, keys: frozenset[str] | set[str]) -> None:
        """Keep entries another process used for this run (parallel loading)."""
        self._used |= keys

    def get(self, key: str) -> Parsed | NotContentEntry | None:
        self._used.add(key)
        try:
            data = json.loads((self.root / f"{key}.json").read_text(encoding="utf-8"))
            if "not_content" in data:
                return NotContentEntry(data["not_content"])
            return Parsed(
                text=data["text"],
                title=data["title"],
                metadata=dict(data["metadata"]),
                pages=tuple(PageSpan(*p) for p in data["pages"]),
                sections=tuple(
                    Section(start, body, end, tuple(path), anchor, level)
                    for start, body, end, path, anchor, level in data["sections"]
                ),
                code=tuple((a, b) for a, b in data["code"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:  # damaged: parse again
            log.debug("parse cache entry %s unusable: %s", key, err)
            return None

    def put(self, key: str, value: Parsed | NotContentEntry) -> None:
        self._used.add(key)
        if isinstance(value, NotContentEntry):
            data: dict = {"not_content": str(value)}
        else:
            data = {
                "text": value.text,
                "title": value.title,
                "metadata": value.metadata,
                "pages": [[p.page, p.start, p.end] for p in value.pages],
                "sections": [
                    [s.start, s.body_start, s.end, list(s.path), s.anchor, s.level]
                    for s in value.sections
                ],
                "code": [list(c) for c in value.code],
            }
        path = self.root / f"{key}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as err:
            log.debug("parse cache not written (%s): %s", path, err)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def prune(self) -> None:
        """Drop the entries this run did not use (changed, deleted or renamed files)."""
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.suffix == ".json" and entry.stem in self._used:
                continue
            try:
                entry.unlink()
            except OSError as err:
                log.debug("parse cache entry not removed (%s): %s", entry, err)
