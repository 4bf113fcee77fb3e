"""Corpus file discovery and safe reading: only regular files inside the corpus are read.

What the loader may read, decided here before any parser sees a byte:

* only **regular files**: FIFOs, sockets and devices are skipped with a reason. A FIFO is
  never opened in blocking mode (an `open()` on a FIFO with no writer blocks for ever): the
  file is opened with `O_NONBLOCK | O_NOFOLLOW` and checked with `fstat` on the open file, so
  a file swapped for a FIFO or a symlink between the walk and the read cannot hang the run.
* **symlinks** are followed only when they resolve inside the corpus folder ("symlink leaves
  the corpus" otherwise); symlink loops and dangling links are skipped with a reason.
  Symlinked *directories* are not descended into (what they point at inside the corpus is
  walked anyway; outside it is skipped with a reason).
* the size limit is enforced on **what is read** (at most `max_bytes + 1` bytes), not only on
  `stat`, so a file that grows, or lies about its size, cannot make the run read gigabytes.
* **file names that are not valid UTF-8** get a safe, unique name: the undecodable bytes are
  written as `\\xff` (`bad\\xffbyte.md`), so the source, chunk ids, Chroma metadata and the
  JSON summary only ever see valid text.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from index.documents import SkippedFile

log = logging.getLogger(__name__)

READ_BLOCK = 1 << 20


class FileRejected(ValueError):
    """The file is not something the loader reads (not regular, outside the corpus, too big)."""


def safe_text(name: str) -> str:
    """`name` with undecodable file-name bytes (surrogate escapes) as visible `\\xNN` text."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def source_name(path: Path, root: Path) -> str:
    """The corpus-relative POSIX path of `path`, always valid UTF-8 (see `safe_text`)."""
    return safe_text(Path(path).relative_to(root).as_posix())


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_path(path: Path, root: Path) -> Path:
    """The real path of `path` when it is a regular file inside `root` (itself resolved).

    Raises FileRejected with the reason otherwise. Never opens the file.
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise FileRejected(f"cannot read file: {exc.strerror or exc}") from exc
    real = Path(path)
    if stat.S_ISLNK(st.st_mode):
        try:
            real = Path(path).resolve(strict=True)
        except RuntimeError as exc:  # Python < 3.13 reports loops this way
            raise FileRejected("symlink loop") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise FileRejected("symlink loop") from exc
            raise FileRejected("dangling symlink (its target does not exist)") from exc
        if not _inside(real, root):
            raise FileRejected("symlink leaves the corpus")
        st = os.stat(real)
    if not stat.S_ISREG(st.st_mode):
        raise FileRejected(f"not a regular file: {_kind(st.st_mode)}")
    return real


def read_capped(path: Path, max_bytes: int, *, root: Path | None = None) -> bytes:
    """The bytes of the regular file `path`, reading at most `max_bytes + 1` of them.

    With `root`, `path` must resolve inside it (symlinks are followed only there). Raises
    FileRejected (not regular, outside the corpus, too large) or OSError (cannot read).
    """
    real = check_path(Path(path), Path(root).resolve()) if root is not None else Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    if root is not None:
        flags |= os.O_NOFOLLOW  # `real` is resolved: a symlink there now is a swap, refuse it
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRejected("changed into a symlink while being read") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRejected(f"not a regular file: {_kind(st.st_mode)}")
        if st.st_size > max_bytes:
            raise FileRejected(f"too large ({st.st_size} bytes, limit {max_bytes})")
        parts: list[bytes] = []
        got = 0
        while got <= max_bytes:
            block = os.read(fd, min(READ_BLOCK, max_bytes + 1 - got))
            if not block:
                break
            parts.append(block)
            got += len(block)
        if got > max_bytes:
            raise FileRejected(f"too large (more than {max_bytes} bytes, limit {max_bytes})")
        return b"".join(parts)
    finally:
        os.close(fd)


def iter_corpus_files(
    corpus_dir: Path, *, exts: frozenset[str] | set[str], unsupported: list[Path] | None = None
) -> tuple[list[Path], list[SkippedFile]]:
    """Candidate files under `corpus_dir` with one of `exts`, in path order, and the skipped.

    Hidden files and folders are ignored; files with other extensions are ignored silently.
    A candidate that is not a regular file inside the corpus becomes a SkippedFile. Safe
    names (see `safe_text`) that collide are skipped too: two files would share one source.
    """
    root = Path(corpus_dir).resolve()
    found: dict[str, Path] = {}
    skipped: list[SkippedFile] = []

    def skip(path: Path, reason: str) -> None:
        source = source_name(path, corpus_dir)
        log.warning("skipping %s: %s", source, reason)
        skipped.append(SkippedFile(path=source, reason=reason))

    def walk_error(err: OSError) -> None:
        if err.filename is not None:
            skip(Path(os.fsdecode(err.filename)), f"cannot read folder: {err.strerror or err}")

    for dirpath, dirnames, filenames in os.walk(corpus_dir, onerror=walk_error):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            sub = Path(dirpath, d)
            if sub.is_symlink():
                # Not followed (no loops, no double indexing); outside targets are reported.
                try:
                    target = sub.resolve(strict=True)
                except (OSError, RuntimeError):
                    skip(sub, "symlink loop or dangling symlink (folder)")
                    continue
                if not _inside(target, root):
                    skip(sub, "symlink leaves the corpus")
                else:
                    log.debug("not following %s: it links inside the corpus", sub)
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath, name)
            if path.suffix.lower() not in exts:
                log.debug("ignoring %s: unsupported file type", safe_text(str(path)))
                if unsupported is not None:
                    unsupported.append(path)
                continue
            try:
                check_path(path, root)
            except FileRejected as exc:
                skip(path, str(exc))
                continue
            source = source_name(path, corpus_dir)
            if source in found:
                skip(path, f"its name (shown safely) clashes with {source}; rename the file")
                continue
            found[source] = path
    paths = [found[s] for s in sorted(found)]
    skipped.sort(key=lambda s: s.path)
    return paths, skipped
