"""What not to index: gitignore-style patterns from `.corpusignore`, plus defaults.

The defaults skip pages that documentation generators make from the content itself (the
general index, search page, module index, 404 page, Sphinx's highlighted source listings
under `_modules/`) and their asset folders: indexing them
only adds chunks that compete with the real pages. A `!pattern` line re-includes.

Pattern rules (a subset of gitignore): blank lines and `#` comments are ignored; a pattern
without `/` matches a file or folder name at any depth; a pattern with `/` matches the path
from the corpus root; a trailing `/` matches a folder and everything below it; `*`, `?` and
`[...]` are wildcards. The last matching line wins.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".corpusignore"
DEFAULT_PATTERNS = (
    "genindex.html",
    "genindex-*.html",
    "search.html",
    "py-modindex.html",
    "modindex.html",
    "404.html",
    "_sources/",
    "_static/",
    "_images/",
    "_downloads/",
    "_modules/",
    "node_modules/",
    "search/",
)


@dataclass(frozen=True)
class _Rule:
    pattern: str
    negate: bool
    folder: bool
    anchored: bool

    def matches(self, path: str) -> bool:
        parts = path.split("/")
        if self.anchored:
            candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        else:
            candidates = parts
        # A folder rule matches the folders above a file, never the file's own name.
        if self.folder:
            candidates = candidates[:-1]
        return any(fnmatch.fnmatchcase(c, self.pattern) for c in candidates)


def _parse(line: str) -> _Rule | None:
    line = line.rstrip("\n").rstrip()
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    folder = line.endswith("/")
    line = line.strip("/") if folder else line
    anchored = "/" in line or line.startswith("/")
    return _Rule(line.lstrip("/"), negate, folder, anchored) if line else None


class IgnoreRules:
    """`ignored(path)` for corpus-relative POSIX paths."""

    def __init__(self, lines: list[str] | tuple[str, ...] = ()) -> None:
        rules = [_parse(x) for x in (*DEFAULT_PATTERNS, *lines)]
        self._rules = [r for r in rules if r is not None]

    @classmethod
    def from_corpus(cls, corpus_dir: Path) -> IgnoreRules:
        path = Path(corpus_dir) / IGNORE_FILE
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        return cls(text.splitlines())

    def _last(self, path: str) -> _Rule | None:
        """The last rule matching `path` (the last matching line wins)."""
        last: _Rule | None = None
        for rule in self._rules:
            if rule.matches(path):
                last = rule
        return last

    def reincluded(self, path: str) -> bool:
        """Whether a `!pattern` line is the last rule matching `path` (index it regardless)."""
        last = self._last(path)
        return last is not None and last.negate

    def match(self, path: str) -> str | None:
        """The pattern that ignores `path`, or None when it is indexed."""
        hit = self._last(path)
        if hit is None or hit.negate:
            return None
        return ("/" if hit.anchored else "") + hit.pattern + ("/" if hit.folder else "")
