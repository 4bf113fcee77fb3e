"""Issue 11: the index flow survives hostile corpora and damaged, full or read-only stores.

Everything is real: FIFOs, sockets, devices and symlinks in a tmp corpus, undecodable file
names, embedded Chroma, `python -m index` / `python -m bot` subprocesses (where a process
must hang, die or print a message), a read-only bind mount and a tiny tmpfs (both need root;
skipped with a reason otherwise).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from index import store
from index.errors import ConfigError, CorpusBotError, StoreUnavailable
from index.files import FileRejected, iter_corpus_files, read_capped
from index.loader import SUPPORTED_EXTS, load_corpus
from index.pipeline import fingerprint, reindex, reindex_lock
from index.settings import REPO_ROOT, Settings
from tests.fixtures.index import _settings
from tests.helpers import paused_reindex, subprocess_env, wait_until

SEED = REPO_ROOT / "corpus"
TIMEOUT_S = 180
QUESTION = "When did North Korea start mining Bitcoin?"


def run_cli(module: str, *args: str, env: dict[str, str], cwd: Path, timeout: float = TIMEOUT_S):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def doc(title: str, body: str) -> str:
    return f"# {title}\n\n{body}\n"


def chunk_sources(settings: Settings) -> dict[str, int]:
    """Chunks per source in the active generation (read straight from Chroma)."""
    client = store.make_client(settings)
    info = store.read_pointer(client, settings.collection_prefix)
    assert info is not None
    counts: dict[str, int] = {}
    col = client.get_collection(info.generation)
    for _, _, md in store.iter_rows(col, ["metadatas"]):
        counts[md["source"]] = counts.get(md["source"], 0) + 1
    return counts


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --- 1. only regular files inside the corpus are read ------------------------------------


@pytest.fixture
def hostile_corpus(tmp_path: Path) -> Iterator[Path]:
    """The seed corpus plus a FIFO, a socket, a device, and good, outside and looping links."""
    corpus = tmp_path / "corpus"
    shutil.copytree(SEED, corpus)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(doc("Secret", "The vault code is 4711."))
    os.mkfifo(corpus / "pipe.md")  # no writer: a blocking open() would hang for ever
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(corpus / "sock.md"))
    (corpus / "inside-link.md").symlink_to("north-korea-begins-mining-bitcoin.md")
    (corpus / "outside-link.md").symlink_to(outside / "secret.md")
    (corpus / "zero.md").symlink_to("/dev/zero")  # must be refused, never read
    (corpus / "loop-a.md").symlink_to("loop-b.md")
    (corpus / "loop-b.md").symlink_to("loop-a.md")
    (corpus / "dangling.md").symlink_to("nowhere.md")
    (corpus / "outside-dir").symlink_to(outside, target_is_directory=True)
    (corpus / "sub").mkdir()
    (corpus / "sub" / "up").symlink_to("..", target_is_directory=True)  # a directory loop
    try:
        yield corpus
    finally:
        sock.close()


def test_iter_corpus_files_skips_what_is_not_a_regular_file_inside(hostile_corpus: Path):
    started = time.monotonic()
    paths, skipped = iter_corpus_files(hostile_corpus, exts=SUPPORTED_EXTS)
    assert time.monotonic() - started < 5
    names = sorted(p.relative_to(hostile_corpus).as_posix() for p in paths)
    assert names == [
        "inside-link.md",
        "north-korea-begins-mining-bitcoin.md",
        "north-korea-short-lived-bitcoin-mining.md",
    ]
    reasons = {s.path: s.reason for s in skipped}
    assert reasons == {
        "dangling.md": "dangling symlink (its target does not exist)",
        "loop-a.md": "symlink loop",
        "loop-b.md": "symlink loop",
        "outside-dir": "symlink leaves the corpus",
        "outside-link.md": "symlink leaves the corpus",
        "pipe.md": "not a regular file: a FIFO (named pipe)",
        "sock.md": "not a regular file: a socket",
        "zero.md": "symlink leaves the corpus",
    }


def test_index_cli_with_fifo_socket_and_links_finishes_and_names_them(
    hostile_corpus: Path, tmp_path: Path
):
    """The whole `python -m index` run, in a subprocess so a hang fails instead of blocking."""
    env = subprocess_env(CORPUS_DIR=str(hostile_corpus), INDEX_DIR=str(tmp_path / "index"))
    res = run_cli("index", "--json", env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 3, res.stderr  # built, some files skipped
    summary = json.loads(res.stdout)
    assert summary["documents"] == 3
    skipped = {s["path"]: s["reason"] for s in summary["skipped_files"]}
    assert skipped["pipe.md"] == "not a regular file: a FIFO (named pipe)"
    assert skipped["outside-link.md"] == "symlink leaves the corpus"
    assert "Traceback" not in res.stderr
    settings = _settings(corpus_dir=hostile_corpus, index_dir=tmp_path / "index")
    assert set(chunk_sources(settings)) == {
        "inside-link.md",
        "north-korea-begins-mining-bitcoin.md",
        "north-korea-short-lived-bitcoin-mining.md",
    }


def test_device_inside_the_corpus_is_skipped(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ok.md").write_text(doc("Ok", "Fine text."))
    try:
        os.mknod(corpus / "zero.md", 0o600 | 0o020000, os.makedev(1, 5))  # char device = /dev/zero
    except (PermissionError, OSError) as err:
        pytest.skip(f"cannot create a device node here: {err}")
    docs, skipped = load_corpus(corpus, max_bytes=1000)
    assert [d.source for d in docs] == ["ok.md"]
    assert [(s.path, s.reason) for s in skipped] == [
        ("zero.md", "not a regular file: a character device")
    ]


def _in_thread(fn, timeout: float = 5.0):
    """Run fn in a daemon thread; fail (instead of hanging the suite) if it blocks."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


def test_read_capped_never_blocks_on_a_fifo_even_without_the_walk_check(tmp_path: Path):
    """A regular file swapped for a FIFO after the walk: the open itself must not block."""
    fifo = tmp_path / "swapped.md"
    os.mkfifo(fifo)
    with pytest.raises(FileRejected, match="FIFO"):
        _in_thread(lambda: read_capped(fifo, 100))  # no root: straight to open + fstat


def test_read_capped_limits_what_is_read_not_what_stat_says(tmp_path: Path):
    # /proc files say st_size 0 but are longer: only the read can enforce the limit.
    assert os.stat("/proc/self/maps").st_size == 0
    with pytest.raises(FileRejected, match="more than 10 bytes"):
        read_capped(Path("/proc/self/maps"), 10)
    # A character device is refused before a single byte is read (fast, no 50 MB of zeros).
    started = time.monotonic()
    with pytest.raises(FileRejected, match="character device"):
        _in_thread(lambda: read_capped(Path("/dev/zero"), 50_000_000))
    assert time.monotonic() - started < 2
    big = tmp_path / "big.md"
    big.write_bytes(b"x" * 101)
    with pytest.raises(FileRejected, match="too large"):
        read_capped(big, 100)
    assert read_capped(big, 101) == b"x" * 101


def test_undecodable_file_names_index_under_safe_unique_names(tmp_path: Path):
    corpus = tmp_path / "corpus"
    shutil.copytree(SEED, corpus)
    base = os.fsencode(corpus)
    for raw, body in (
        (b"bad\xffbyte.md", "Ferrets sleep eighteen hours."),
        (b"bad\xfebyte.md", ""),
    ):
        with open(base + b"/" + raw, "wb") as fh:  # bytes path: no UTF-8 round trip
            fh.write(doc("Odd name", body or "Otters hold hands while sleeping.").encode())
    (corpus / "sub\udcff").mkdir()  # an undecodable folder name too (surrogateescape)
    (corpus / "sub\udcff" / "inner.md").write_text(doc("Inner", "Inside an odd folder."))
    # A real file literally named like the safe name of another: skipped, never a clash.
    (corpus / "bad\\xffbyte.md").write_text(doc("Literal", "Backslash x f f."))

    docs, skipped = load_corpus(corpus, max_bytes=100_000)
    sources = {d.source for d in docs}
    assert {"bad\\xffbyte.md", "bad\\xfebyte.md", "sub\\xff/inner.md"} <= sources
    assert all(s.encode("utf-8") for s in sources)  # valid UTF-8 everywhere
    assert len(skipped) == 1 and "clashes" in skipped[0].reason

    # The rest of the pipeline: fingerprint, chunk ids, Chroma metadata, the JSON summary.
    index_dir = tmp_path / "index"
    env = subprocess_env(CORPUS_DIR=str(corpus), INDEX_DIR=str(index_dir))
    res = run_cli("index", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    summary = json.loads(res.stdout)
    assert summary["documents"] == len(docs)
    assert "Traceback" not in res.stderr
    got = chunk_sources(_settings(corpus_dir=corpus, index_dir=index_dir))
    assert {"bad\\xffbyte.md", "bad\\xfebyte.md", "sub\\xff/inner.md"} <= set(got)
    # The text summary line (printed, not --json) works too.
    res = run_cli("index", env=env, cwd=tmp_path)
    assert res.returncode == 3 and "index unchanged" in res.stdout, res.stderr


def test_fingerprint_survives_a_surrogate_source(make_settings):
    from index.documents import SourceDoc

    d = SourceDoc(source="bad\udcffname.md", title="t", text="x", sha256="0" * 64)
    assert len(fingerprint([d], make_settings(), "minilm")) == 64
