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

from bot.settings import BotSettings
from index import store
from index.errors import ConfigError, CorpusBotError, StoreUnavailable
from index.files import FileRejected, iter_corpus_files, read_capped
from index.lexical import LEXICAL_DIR
from index.loader import SUPPORTED_EXTS, load_corpus
from index.pipeline import fingerprint, reindex
from index.settings import REPO_ROOT
from tests.fixtures.bot import bot_settings, running_bot
from tests.fixtures.index import _settings
from tests.helpers import active_view, paused_reindex, subprocess_env

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


def chunk_sources(settings: BotSettings) -> dict[str, int]:
    """Chunks per source in the active generation (read straight from Chroma)."""
    counts: dict[str, int] = {}
    for _, _, md in store.iter_rows(active_view(settings), ["metadatas"]):
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


# --- 2. per-document chunk cap ------------------------------------------------------------


def test_document_over_the_chunk_cap_is_truncated_and_reported(tmp_path: Path, minilm):
    corpus = tmp_path / "corpus"
    shutil.copytree(SEED, corpus)
    paragraphs = "\n\n".join(
        f"Paragraph {i} tells how the harbour crane number {i} was repaired in spring. " * 3
        for i in range(40)
    )
    (corpus / "long.md").write_text(doc("Harbour cranes", paragraphs))
    # A cap above the seed articles' chunk counts, far below long.md's.
    settings = _settings(
        corpus_dir=corpus, index_dir=tmp_path / "index", max_chunks_per_document=12
    )
    summary = reindex(settings, embeddings=minilm)
    (cut,) = summary.truncated_files
    assert cut["path"] == "long.md" and cut["kept"] == 12 and cut["chunks"] > 12
    assert summary.to_dict()["truncated_files"] == [cut]  # what --json prints
    assert "truncated 1 over-long file(s): long.md (kept 12 of" in summary.line()
    counts = chunk_sources(settings)
    assert counts["long.md"] == 12
    assert summary.chunks == sum(counts.values())
    # The unchanged fast path still says so; raising the cap re-indexes the whole file.
    again = reindex(settings, embeddings=minilm)
    assert not again.changed and again.truncated_files == [cut]
    raised = reindex(
        settings.model_copy(update={"max_chunks_per_document": 2000}), embeddings=minilm
    )
    assert raised.changed and raised.truncated_files == []
    assert chunk_sources(settings)["long.md"] == cut["chunks"]


# --- 3. the reindex lock: bounded wait, released when the holder dies ------------------------


def test_lock_wait_is_bounded_names_the_holder_and_a_killed_holder_frees_it(
    index_settings: BotSettings, minilm, tmp_path: Path
):
    settings = index_settings.model_copy(update={"reindex_lock_wait_s": 1.0})
    (settings.corpus_dir / "new.md").write_text(doc("New", "A brand new document about kites."))
    before = store.read_pointer(store.make_client(settings), settings.collection_prefix)
    with paused_reindex(settings, "before_switch", cwd=tmp_path):  # a real `python -m index`
        holder = (settings.index_dir / "reindex.lock").read_text()
        assert holder.startswith("pid ") and "index" in holder
        started = time.monotonic()
        with pytest.raises(CorpusBotError) as err:
            reindex(settings, embeddings=minilm)
        assert 1.0 <= time.monotonic() - started < 10
        message = str(err.value)
        assert holder.split(",")[0] in message  # "pid N"
        assert "REINDEX_LOCK_WAIT_S" in message and "reindex.lock" in message
    # The holder was killed with SIGKILL on leaving the block: the kernel released its flock.
    summary = reindex(settings, embeddings=minilm)
    assert summary.changed and summary.documents == 3
    after = store.read_pointer(store.make_client(settings), settings.collection_prefix)
    assert after.generation != before.generation


def test_lock_wait_from_the_cli_exits_with_the_message(index_settings: BotSettings, tmp_path: Path):
    with lock_holder(index_settings.index_dir) as holder:
        env = subprocess_env(index_settings, REINDEX_LOCK_WAIT_S="0.5")
        res = run_cli("index", env=env, cwd=tmp_path, timeout=60)
    assert res.returncode == 1
    assert f"error: another re-index (pid {holder.pid}" in res.stderr
    assert "Traceback" not in res.stderr


# --- 4. a corpus that lost most of its documents is not applied silently -------------------


@pytest.fixture
def six_doc_index(tmp_path: Path, minilm) -> BotSettings:
    corpus = tmp_path / "corpus6"
    corpus.mkdir()
    for i in range(6):
        (corpus / f"d{i}.md").write_text(doc(f"Doc {i}", f"Document {i} is about topic {i}."))
    settings = _settings(corpus_dir=corpus, index_dir=tmp_path / "index6")
    reindex(settings, embeddings=minilm)
    return settings


def test_shrinking_corpus_is_refused_unless_allowed(six_doc_index: BotSettings, tmp_path: Path):
    settings = six_doc_index
    before = store.read_pointer(store.make_client(settings), settings.collection_prefix)
    for i in range(4):  # 2 of 6 left: less than half
        (settings.corpus_dir / f"d{i}.md").unlink()
    env = subprocess_env(settings)
    res = run_cli("index", env=env, cwd=tmp_path)
    assert res.returncode == 1, res.stdout
    assert "has 2 documents" in res.stderr and "active index has 6" in res.stderr
    assert "--allow-shrink" in res.stderr and "Traceback" not in res.stderr
    kept = store.read_pointer(store.make_client(settings), settings.collection_prefix)
    assert kept.generation == before.generation and kept.documents == 6

    res = run_cli("index", "--allow-shrink", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["documents"] == 2


def test_empty_corpus_is_refused_then_a_warning_with_allow_shrink(
    six_doc_index: BotSettings, tmp_path: Path
):
    settings = six_doc_index
    for f in settings.corpus_dir.iterdir():
        f.unlink()
    env = subprocess_env(settings)
    res = run_cli("index", env=env, cwd=tmp_path)
    assert res.returncode == 1 and "has no documents" in res.stderr, res.stderr
    assert (
        store.read_pointer(store.make_client(settings), settings.collection_prefix).documents == 6
    )

    res = run_cli("index", "--allow-shrink", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["documents"] == 0 and "no documents" in summary["note"]
    assert "warning: the corpus at" in res.stderr and "has no documents" in res.stderr


def test_empty_corpus_without_an_index_is_a_warning(tmp_path: Path):
    corpus = tmp_path / "empty"
    corpus.mkdir()
    env = subprocess_env(CORPUS_DIR=str(corpus), INDEX_DIR=str(tmp_path / "index"))
    res = run_cli("index", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "warning: the corpus at" in res.stderr and "no documents" in res.stdout


# --- 3b. Discord /reindex always replies ---------------------------------------------------


@contextlib.contextmanager
def lock_holder(index_dir: Path) -> Iterator[subprocess.Popen]:
    """Another process holding INDEX_DIR/reindex.lock until the block ends (then SIGKILL)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from index.pipeline import reindex_lock\n"
            "with reindex_lock(Path(sys.argv[1])):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(600)\n",
            str(index_dir),
        ],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


@pytest.mark.slow
async def test_discord_reindex_replies_on_lock_timeout_and_on_refusal(
    fake_discord, six_doc_index: BotSettings, tmp_path: Path
):
    from bot.service import build_service

    fake = fake_discord
    general = fake.channel_ids["general"]
    settings = bot_settings(six_doc_index, fake, reindex_lock_wait_s=0.5)
    service = build_service(settings, build_if_missing=False)

    def replies() -> list[dict]:
        return [r.json for r in fake.requests if r.path.startswith("/webhooks/")]

    async with running_bot(fake, settings, service, tmp_path / "fb.sqlite3"):
        with lock_holder(settings.index_dir) as holder:
            fake.send_slash("reindex", user="alice", channel_id=general)
            (first,) = await fake.wait_for(replies, timeout=60)
        assert f"another re-index (pid {holder.pid}" in first["content"]
        assert "REINDEX_LOCK_WAIT_S" in first["content"]

        for f in list(settings.corpus_dir.iterdir())[:5]:
            f.unlink()
        fake.send_slash("reindex", user="alice", channel_id=general)
        second = (await fake.wait_for(lambda: replies()[1:], timeout=60))[0]
        assert "--allow-shrink" in second["content"] and "has 1 documents" in second["content"]
        assert service.index_info()["documents"] == 6  # the old index still serves


# --- 5. damaged, read-only and full stores --------------------------------------------------


def _no_traceback(res: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in res.stderr, res.stderr


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_damaged_database_gives_a_message_and_rebuild_recovers(
    index_settings: BotSettings, tmp_path: Path, damage: str
):
    settings = index_settings
    db = settings.chroma_path / "chroma.sqlite3"
    old_dir = settings.chroma_path
    if damage == "truncated":
        os.truncate(db, db.stat().st_size // 3)
    else:
        with open(db, "r+b") as fh:
            fh.seek(4096 * 2)
            fh.write(b"\xde\xad\xbe\xef" * 10_000)
    env = subprocess_env(settings)

    res = run_cli("index", env=env, cwd=tmp_path)
    assert res.returncode == 1
    _no_traceback(res)
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert "is damaged" in line and str(settings.index_dir) in line and "INDEX_DIR" in line
    assert "python -m index --rebuild" in line

    ask = run_cli("bot", "ask", QUESTION, env=env, cwd=tmp_path)
    assert ask.returncode == 1 and "python -m index --rebuild" in ask.stderr
    _no_traceback(ask)

    res = run_cli("index", "--rebuild", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert (
        summary["documents"] == 2
        and summary["full"]
        and "rebuilt into a fresh store" in (summary["note"])
    )
    current = (settings.index_dir / "current").read_text().strip()
    assert current.startswith("chroma-") and settings.chroma_path.name == current
    assert not old_dir.exists()  # the damaged folder is gone
    assert not list(settings.index_dir.glob("current.tmp"))

    ask = run_cli("bot", "ask", QUESTION, env=env, cwd=tmp_path)
    assert ask.returncode == 0, ask.stderr
    assert "17th of May" in ask.stdout
    # A normal run afterwards uses the rebuilt store and finds nothing to do.
    res = run_cli("index", "--json", env=env, cwd=tmp_path)
    assert res.returncode == 0 and not json.loads(res.stdout)["changed"], res.stderr


def test_failed_rebuild_keeps_the_old_store(index_settings: BotSettings, minilm):
    settings = index_settings
    before = settings.chroma_path
    shutil.rmtree(settings.corpus_dir)  # the build fails before anything is switched
    with pytest.raises(ConfigError, match="CORPUS_DIR"):
        reindex(settings, embeddings=minilm, rebuild=True)
    assert settings.chroma_path == before and before.exists()
    assert [p.name for p in settings.index_dir.iterdir() if p.name.startswith("chroma")] == [
        before.name
    ]


@contextlib.contextmanager
def read_only_view(path: Path, mount_point: Path) -> Iterator[Path]:
    mount_point.mkdir()
    try:
        subprocess.run(
            ["mount", "--bind", str(path), str(mount_point)], check=True, capture_output=True
        )
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"cannot bind-mount here (needs root): {err}")
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(mount_point)], check=True, capture_output=True
        )
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_read_only_index_dir_still_answers_and_index_says_why(
    index_settings: BotSettings, tmp_path: Path
):
    with read_only_view(index_settings.index_dir, tmp_path / "ro-index") as ro:
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")
        env = subprocess_env(index_settings, INDEX_DIR=str(ro))
        ask = run_cli("bot", "ask", QUESTION, env=env, cwd=tmp_path)
        assert ask.returncode == 0, ask.stderr
        assert "17th of May" in ask.stdout
        _no_traceback(ask)

        res = run_cli("index", env=env, cwd=tmp_path)
        assert res.returncode == 1
        _no_traceback(res)
        assert "is not writable" in res.stderr and str(ro) in res.stderr


@contextlib.contextmanager
def small_tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    mount_point.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {err}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_drops_the_new_generation_and_the_old_one_keeps_serving(tmp_path: Path, minilm):
    from bot.service import build_service

    corpus = tmp_path / "corpus"
    shutil.copytree(SEED, corpus)
    # Room for the seed index (with its sentence vectors) and a little more, not for 40 reports.
    with small_tmpfs(tmp_path / "disk", "2000k") as disk:
        settings = _settings(corpus_dir=corpus, index_dir=disk / "index")
        reindex(settings, embeddings=minilm)
        service = build_service(settings, build_if_missing=False)
        before = service.answer(QUESTION)
        active = store.read_pointer(store.make_client(settings), settings.collection_prefix)
        segment_dirs = {p.name for p in settings.chroma_path.iterdir() if p.is_dir()}

        for i in range(40):  # far more than the 1.2 MB disk holds
            paragraphs = (
                f"Paragraph {j} of report {i} says the river {j} flooded in {1900 + i + j}. " * 4
                for j in range(8)
            )
            (corpus / f"report{i}.md").write_text(doc(f"Report {i}", "\n\n".join(paragraphs)))
        with pytest.raises(StoreUnavailable) as err:
            reindex(settings, embeddings=minilm)
        message = str(err.value)
        assert "not enough disk space" in message and "INDEX_DIR" in message
        assert "previous one is still active" in message

        client = store.make_client(settings)
        assert store.read_pointer(client, settings.collection_prefix) == active
        assert [c.name for c in store.list_generations(client, "corpus")] == [active.generation]
        # The dropped generation's folder is gone too (the space is needed back at once).
        assert {p.name for p in settings.chroma_path.iterdir() if p.is_dir()} == segment_dirs
        again = service.answer(QUESTION)
        assert again.text == before.text and not again.abstained

        for i in range(40):
            (corpus / f"report{i}.md").unlink()
        assert not reindex(settings, embeddings=minilm).changed


# --- 6. bounded disk ----------------------------------------------------------------------


def test_twenty_full_runs_keep_the_chroma_folder_bounded(tmp_path: Path, minilm):
    corpus = tmp_path / "corpus"
    shutil.copytree(SEED, corpus)
    settings = _settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    reindex(settings, full=True, embeddings=minilm)
    after_one = dir_bytes(settings.chroma_path)
    for _ in range(19):
        reindex(settings, full=True, embeddings=minilm)
    after_twenty = dir_bytes(settings.chroma_path)
    print(f"chroma folder: {after_one} bytes after 1 full run, {after_twenty} after 20")
    assert after_twenty <= 2.5 * after_one
    # Exactly the live segments' folders are left (KEEP_GENERATIONS=2 -> 2 HNSW folders),
    # beside the lexical caches of exactly those generations.
    live = store.live_segment_ids(settings.chroma_path)
    dirs = {p.name for p in settings.chroma_path.iterdir() if p.is_dir()} - {LEXICAL_DIR}
    assert dirs <= live and len(dirs) == settings.keep_generations
    client = store.make_client(settings)
    generations = {c.name for c in store.list_generations(client, settings.collection_prefix)}
    caches = {p.name for p in (settings.chroma_path / LEXICAL_DIR).iterdir()}
    assert caches == generations and len(caches) == settings.keep_generations


def test_orphan_segment_folders_are_removed_and_sparse_databases_vacuumed(tmp_path: Path):
    path = tmp_path / "chroma"
    client = store.open_embedded(path)
    vectors = [[float(i % 7), 1.0, float(i % 3)] for i in range(400)]
    for name in ("keep-this", "drop-this"):
        col = client.create_collection(name, embedding_function=None)
        col.add(ids=[str(i) for i in range(400)], embeddings=vectors, documents=["x" * 800] * 400)
    client.delete_collection("drop-this")
    stray = path / "not-a-segment"
    stray.mkdir()  # only UUID-named folders are ever touched
    before = {p.name for p in path.iterdir() if p.is_dir()}
    removed = store.remove_orphan_segments(path)
    assert len(removed) == 1 and removed[0] in before
    after = {p.name for p in path.iterdir() if p.is_dir()}
    assert after == before - set(removed) and "not-a-segment" in after
    assert after - {"not-a-segment"} <= store.live_segment_ids(path)

    db = sqlite3.connect(path / "chroma.sqlite3")
    free_before = db.execute("PRAGMA freelist_count").fetchone()[0]
    db.close()
    assert free_before > 0
    assert store.vacuum_if_sparse(path, free_share=0.0)
    db = sqlite3.connect(path / "chroma.sqlite3")
    assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    db.close()
    assert client.get_collection("keep-this").count() == 400  # the store still works


def test_discord_bot_starts_on_a_read_only_index_dir(
    fake_discord, index_settings: BotSettings, tmp_path: Path, capsys, caplog
):
    """No feedback DB, no lock needed: the service answers and feedback falls back to memory;
    a bad token is still reported as such (it is checked before the service is built)."""
    from pydantic import SecretStr

    from bot.discord.client import open_feedback, run
    from bot.service import build_service

    with read_only_view(index_settings.index_dir, tmp_path / "ro-index") as ro:
        settings = bot_settings(
            index_settings, fake_discord, index_dir=ro, discord_token=SecretStr("wrong-token")
        )
        assert run(settings) == 2
        service = build_service(settings, build_if_missing=False)
        assert not service.answer("When did North Korea start mining bitcoin?").abstained
        feedback = open_feedback(settings)
        feedback.close()
    err = capsys.readouterr().err
    assert "Discord rejected DISCORD_TOKEN" in err and "Traceback" not in err
    assert "feedback is kept in memory" in caplog.text
    assert "answering from a private copy" in caplog.text


# --- 7. damaged HNSW files of the active generation ------------------------------------------


@pytest.fixture
def persisted_hnsw_index(tmp_path: Path, minilm, monkeypatch: pytest.MonkeyPatch) -> BotSettings:
    """The seed corpus indexed with HNSW files really written (Chroma otherwise keeps small
    collections in its log until 1000 vectors: sync_threshold)."""
    monkeypatch.setattr(
        store, "COSINE", {"hnsw": {"space": "cosine", "sync_threshold": 2, "batch_size": 2}}
    )
    corpus = tmp_path / "corpus"
    shutil.copytree(SEED, corpus)
    settings = _settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    reindex(settings, embeddings=minilm)
    return settings


def _active_hnsw_dir(settings: BotSettings) -> Path:
    client = store.make_client(settings)
    info = store.read_pointer(client, settings.collection_prefix)
    folder = store.vector_segment_dir(
        settings.chroma_path, str(client.get_collection(info.generation).id)
    )
    assert folder is not None and (folder / "header.bin").exists()
    return folder


def _damage(folder: Path, how: str) -> None:
    if how == "truncated":
        os.truncate(folder / "data_level0.bin", 3000)
    elif how == "header":
        with open(folder / "header.bin", "r+b") as fh:
            fh.seek(4)
            fh.write(b"\x07" * 24)  # offsetLevel0, max_elements, cur_element_count
    elif how == "neighbours":
        with open(folder / "data_level0.bin", "r+b") as fh:
            fh.seek(4)  # element 0's first neighbour ids
            fh.write(b"\xff\xff\x00\x10" * 4)
    elif how == "missing":
        (folder / "link_lists.bin").unlink()


def test_fresh_and_reopened_generations_pass_the_hnsw_check(
    persisted_hnsw_index: BotSettings, tmp_path: Path
):
    from bot.service import build_service

    settings = persisted_hnsw_index
    folder = _active_hnsw_dir(settings)
    header = store._HNSW_HEADER.unpack((folder / "header.bin").read_bytes())
    assert header[3] > 0  # cur_element_count: the vectors really are in these files
    assert store.hnsw_problem(folder) is None
    env = subprocess_env(settings)
    for _ in range(2):  # readers in other processes (Chroma rewrites some files on load)
        ask = run_cli("bot", "ask", QUESTION, env=env, cwd=tmp_path)
        assert ask.returncode == 0 and "17th of May" in ask.stdout, ask.stderr
        assert store.hnsw_problem(folder) is None
    assert not build_service(settings, build_if_missing=False).answer(QUESTION).abstained


@pytest.mark.parametrize("how", ["truncated", "header", "neighbours", "missing"])
def test_damaged_hnsw_files_give_a_message_not_a_crash(
    persisted_hnsw_index: BotSettings, tmp_path: Path, how: str
):
    settings = persisted_hnsw_index
    folder = _active_hnsw_dir(settings)
    _damage(folder, how)
    assert store.hnsw_problem(folder)
    env = subprocess_env(settings)
    ask = run_cli("bot", "ask", QUESTION, env=env, cwd=tmp_path)
    assert ask.returncode == 1, (ask.returncode, ask.stderr)  # not -11 (SIGSEGV)
    _no_traceback(ask)
    assert "are damaged" in ask.stderr and "python -m index --rebuild" in ask.stderr

    res = run_cli("index", "--rebuild", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    ask = run_cli("bot", "ask", QUESTION, env=env, cwd=tmp_path)
    assert ask.returncode == 0 and "17th of May" in ask.stdout, ask.stderr


def test_a_running_bot_reports_damage_then_follows_the_rebuild_without_restart(
    index_settings: BotSettings, tmp_path: Path
):
    from bot.service import build_service

    settings = index_settings
    service = build_service(settings, build_if_missing=False)
    before = service.answer(QUESTION)
    db = settings.chroma_path / "chroma.sqlite3"
    os.truncate(db, db.stat().st_size // 3)
    with pytest.raises(StoreUnavailable, match="damaged.*python -m index --rebuild"):
        service.answer(QUESTION)

    res = run_cli("index", "--rebuild", env=subprocess_env(settings), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    after = service.answer(QUESTION)  # same process, same service: it reopened the new store
    assert after.text == before.text
    pointer = store.read_pointer(store.make_client(settings), settings.collection_prefix)
    assert service.index_info()["generation"] == pointer.generation


@pytest.mark.slow
async def test_discord_reindex_result_is_sent_by_dm_when_the_follow_up_fails(
    fake_discord, index_settings: BotSettings, tmp_path: Path
):
    """The interaction token lasts 15 minutes; a longer re-index still reports (by DM)."""
    from bot.service import build_service

    fake = fake_discord
    settings = bot_settings(index_settings, fake)
    service = build_service(settings, build_if_missing=False)
    async with running_bot(fake, settings, service, tmp_path / "fb.sqlite3"):
        fake.fail_next(
            "POST",
            r"/webhooks/",
            status=401,
            body={"message": "Invalid Webhook Token", "code": 50027},
        )
        fake.send_slash("reindex", user="alice", channel_id=fake.channel_ids["general"])
        dms = await fake.wait_for(
            lambda: [
                r.json
                for r in fake.requests
                if r.method == "POST"
                and r.path.startswith("/channels/")
                and "Re-indexed" in ((r.json or {}).get("content") or "")
            ],
            timeout=60,
        )
        assert "2 documents" in dms[0]["content"]
        assert any(r.path == "/users/@me/channels" for r in fake.requests)


def test_rebuild_is_refused_with_a_chroma_server(make_settings):
    settings = make_settings(chroma_host="127.0.0.1", chroma_port=9)
    with pytest.raises(ConfigError, match="CHROMA_HOST is set"):
        reindex(settings, rebuild=True)
