"""A long-lived reader process keeps answering while re-indexes run, finish and get killed.

Embedded Chroma, real MiniLM, real processes: the reader holds ONE IndexReader for its whole
life, like the bot does, and logs every search as a JSON line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from index import store
from index.pipeline import reindex
from tests.helpers import PhaseLog, expected_ids, paused_reindex, subprocess_env, wait_until

READER = """
import json, sys, time
from pathlib import Path
from index.embedder import MiniLMEmbeddings
from index.settings import Settings
from tests.helpers import index_reader

out, mark, stop = (Path(a) for a in sys.argv[1:4])
settings = Settings()
reader = index_reader(settings, MiniLMEmbeddings(threads=1))
questions = [
    "When did North Korea start mining bitcoin?",
    "Which firm reported the mining operation?",
    "How were the exchanges attacked?",
]
with out.open("w") as fh:
    n = 0
    while not stop.exists():
        seen = int(mark.read_text()) if mark.exists() else 0
        rec = {"mark": seen}
        try:
            snap, hits = reader.search(questions[n % len(questions)], 4)
            rec.update(
                generation=snap.generation,
                chunks=snap.info.chunks,
                ids=[d.id for d, _ in hits],
                docs_ok=all(d.page_content and d.metadata.get("source") for d, _ in hits),
            )
        except Exception as err:
            rec["error"] = f"{type(err).__name__}: {err}"
        fh.write(json.dumps(rec) + "\\n")
        fh.flush()
        n += 1
        time.sleep(0.02)
"""

EXTRA = [
    (
        "exchange-hacks.md",
        "# Exchange hacks\n\nSeveral South Korean exchanges reported intrusions in 2017. "
        "The attackers sent job applications carrying malicious documents to exchange staff.\n",
    ),
    (
        "sanctions.md",
        "# Sanctions\n\nThe UN Security Council capped oil imports and banned textile exports. "
        "Analysts expected the regime to look for other sources of hard currency.\n",
    ),
    (
        "monero.md",
        "# Monero\n\nLater reports described mining of Monero, a privacy coin, by machines "
        "inside the country. The mining software reported to a university server.\n",
    ),
]


@pytest.mark.slow
def test_reader_process_survives_reindexes_and_killed_runs(
    tmp_path: Path, corpus_dir: Path, make_settings, minilm
):
    settings = make_settings(corpus_dir=corpus_dir)
    client = store.make_client(settings)
    gen_ids: dict[str, set[str]] = {}  # every generation that ever became active -> its ids
    order: list[str] = []
    expected_at: dict[int, str] = {0: ""}  # reader mark -> generation it must (at least) see

    def record(generation: str) -> None:
        gen_ids[generation] = store.all_ids(store.open_view(client, generation))
        order.append(generation)

    record(reindex(settings, embeddings=minilm).generation)
    expected_at[0] = order[-1]

    script = tmp_path / "reader.py"
    script.write_text(READER)
    log = PhaseLog(tmp_path / "reader.jsonl", tmp_path / "mark")
    stop = tmp_path / "stop"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(log.path), str(log.mark), str(stop)],
        env=subprocess_env(settings),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: bool(log.lines()), "the reader's first answer")

        # (b) Completed re-indexes (add, edit, delete) are visible on the next question.
        changes = [
            lambda: (corpus_dir / EXTRA[0][0]).write_text(EXTRA[0][1]),
            lambda: (corpus_dir / EXTRA[0][0]).write_text(EXTRA[0][1] + "\nAn edit.\n"),
            lambda: (corpus_dir / "north-korea-short-lived-bitcoin-mining.md").unlink(),
        ]
        for change in changes:
            change()
            summary = reindex(settings, embeddings=minilm)
            assert summary.changed
            record(summary.generation)
            expected_at[log.advance()] = summary.generation

        # (c) Re-indexes killed at known points leave the reader on the previous generation.
        for (name, text), point in zip(EXTRA[1:], ["embed:2", "before_switch"], strict=True):
            (corpus_dir / name).write_text(text)
            with paused_reindex(settings, point, cwd=tmp_path):
                expected_at[log.advance()] = order[-1]  # paused: still the old generation
            assert store.read_pointer(client, "corpus").generation == order[-1]
            expected_at[log.advance()] = order[-1]  # killed: still the old generation

        # A rerun completes with exactly the corpus' chunk ids and cleans up the debris.
        killed = {c.name for c in store.list_generations(client, "corpus")} - set(order)
        assert len(killed) == 2
        summary = reindex(settings, embeddings=minilm)
        assert summary.added == 2 and summary.changed
        record(summary.generation)
        assert gen_ids[summary.generation] == expected_ids(settings)
        assert not killed & {c.name for c in store.list_generations(client, "corpus")}
        expected_at[log.advance()] = summary.generation
    finally:
        stop.touch()
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""

    lines = log.lines()
    assert len(lines) > len(expected_at)
    for rec in lines:
        # (a) Never an error, never an empty or ghost result, never a half-built generation.
        assert "error" not in rec, rec
        assert rec["generation"] in gen_ids, rec
        assert rec["docs_ok"] and len(rec["ids"]) == min(4, rec["chunks"]), rec
        assert set(rec["ids"]) <= gen_ids[rec["generation"]], rec
        # (b) A question asked after a switch uses that generation (or a later one).
        assert order.index(rec["generation"]) >= order.index(expected_at[rec["mark"]]), rec
