"""Crash safety: `kill -9` a re-index at ~10 %, 50 %, 99 % of embedding and at the switch.

A serving process holds ONE AnswerService for its whole life (like the bot) and answers a
fixed question set in a loop. While re-indexes are paused at a kill point and after they are
killed, its answers stay identical to the ones it gave before. A rerun then completes with
chunk ids matching the corpus exactly (loader + chunker vs the collection), the killed runs'
half-built generations are gone (at most one non-active generation is left: the previous
one, kept for rollback), and the serving process sees the new generation.

The kill points use the pipeline's test hook (index.pipeline.PAUSE_ENV): the run writes
`paused.<point>` in INDEX_DIR and sleeps until killed.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from index import store
from index.pipeline import reindex
from tests.helpers import PhaseLog, expected_ids, paused_reindex, subprocess_env, wait_until

pytestmark = pytest.mark.slow

QUESTIONS = [
    "When did North Korea start mining bitcoin?",
    "Which firm traced five attacks on bitcoin exchanges?",
    "Who disclosed the report about North Korea mining cryptocurrency?",
    "Who runs the Pyongyang Hash Cooperative?",  # only the document added later answers it
]
NEW_DOC = (
    "pyongyang-hash-cooperative.md",
    "# The Pyongyang Hash Cooperative\n\nThe Pyongyang Hash Cooperative is run by the "
    "Ministry of Posts and Telecommunications, according to a 2019 defector interview.\n",
)

SERVER = """
import json, sys, time
from pathlib import Path
from bot.service import build_service
from index.errors import CorpusBotError
from bot.settings import load_bot_settings

out, mark, stop = (Path(a) for a in sys.argv[1:4])
questions = json.loads(sys.argv[4])
service = build_service(load_bot_settings(), build_if_missing=False)
with out.open("w") as fh:
    while not stop.exists():
        seen = int(mark.read_text()) if mark.exists() else 0
        rec = {"mark": seen, "answers": []}
        try:
            rec["generation"] = service.index_info()["generation"]
            for q in questions:
                a = service.answer(q)
                rec["answers"].append(
                    {"text": a.text, "abstained": a.abstained,
                     "chunks": [c.chunk_id for c in a.citations]}
                )
        except CorpusBotError as err:
            rec["error"] = f"{type(err).__name__}: {err}"
        fh.write(json.dumps(rec) + "\\n")
        fh.flush()
        time.sleep(0.05)
"""

_WORDS = {
    "org": ["the central bank", "a customs office", "the port authority", "a state mining bureau",
            "the trade ministry", "a provincial council", "the energy board", "a shipping firm"],
    "subject": ["coal exports", "grid capacity", "rail freight", "fishing quotas", "rice harvests",
                "textile output", "server farms", "copper prices", "tourist visas", "steel mills"],
    "verb": ["rose", "fell", "stalled", "doubled", "recovered", "collapsed", "shifted", "grew"],
    "place": ["Sinuiju", "Rason", "Hamhung", "Chongjin", "Wonsan", "Nampo", "Kaesong", "Haeju"],
}  # fmt: skip


def generated_docs(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """n deterministic filler articles of ~3.5 kB (about 4-5 chunks each)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        paras = []
        for _ in range(6):
            sentences = [
                f"In {rng.randint(1995, 2023)}, {rng.choice(_WORDS['org'])} reported that "
                f"{rng.choice(_WORDS['subject'])} {rng.choice(_WORDS['verb'])} near "
                f"{rng.choice(_WORDS['place'])} by {rng.randint(2, 95)} percent."
                for _ in range(5)
            ]
            paras.append(" ".join(sentences))
        docs.append((f"gen/report-{i:03d}.md", f"# Regional report {i}\n\n" + "\n\n".join(paras)))
    return docs


def test_kill_9_during_reindex_never_changes_answers(tmp_path, corpus_dir, make_settings, minilm):
    for name, text in generated_docs(40):
        (corpus_dir / name).parent.mkdir(exist_ok=True)
        (corpus_dir / name).write_text(text)
    settings = make_settings(corpus_dir=corpus_dir)
    first = reindex(settings, embeddings=minilm)
    assert first.chunks >= 180, first.chunks  # enough that 10 % / 50 % / 99 % differ
    client = store.make_client(settings)

    script = tmp_path / "server.py"
    script.write_text(SERVER)
    log = PhaseLog(tmp_path / "server.jsonl", tmp_path / "mark", timeout=180)
    stop = tmp_path / "stop"
    server = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(log.path),
            str(log.mark),
            str(stop),
            json.dumps(QUESTIONS),
        ],
        env=subprocess_env(settings),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    crash_points: list[str] = []
    try:
        wait_until(lambda: bool(log.lines()), "the server's first answers")
        baseline = log.lines()[0]["answers"]
        assert baseline[-1]["abstained"]  # the new document's question: not answerable yet

        # The change every killed run was about to publish.
        (corpus_dir / NEW_DOC[0]).write_text(NEW_DOC[1])
        todo = len(expected_ids(settings))  # --full re-embeds every chunk
        points = [f"embed:{max(1, int(todo * f))}" for f in (0.10, 0.50, 0.99)] + ["before_switch"]
        for point in points:
            with paused_reindex(settings, point, cwd=tmp_path):
                log.advance()  # answered while the run is paused mid-way
            crash_points.append(point)
            assert store.read_pointer(client, "corpus").generation == first.generation
            log.advance()  # answered after the kill

        debris = {c.name for c in store.list_generations(client, "corpus")} - {first.generation}
        assert len(debris) == len(points)  # each killed run left a half-built generation

        # A rerun completes: exactly the corpus' chunk ids, debris removed.
        answered_before_rerun = len(log.lines())  # all of these were computed before it
        final = reindex(settings, embeddings=minilm)
        assert final.changed and final.added == 1
        active = store.open_view(client, final.generation)
        ids = store.all_ids(active)
        expected = expected_ids(settings)
        assert ids == expected, (len(expected - ids), len(ids - expected))
        left = {c.name for c in store.list_generations(client, "corpus")}
        assert not left & debris
        assert left - {final.generation} <= {first.generation}  # at most one: for rollback
        after_mark = log.advance()
    finally:
        stop.touch()
        try:
            server.wait(timeout=60)
        finally:
            server.kill()
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""

    lines = log.lines()
    before = lines[:answered_before_rerun]
    assert len(before) > 2 * len(crash_points)
    for rec in before:
        assert "error" not in rec, rec
        assert rec["generation"] == first.generation, rec
        assert rec["answers"] == baseline, rec  # identical, question by question
    # The same long-lived service now answers from the new generation.
    last = [r for r in lines if r["mark"] >= after_mark][-1]
    assert last["generation"] == final.generation
    new_answer = last["answers"][-1]
    assert not new_answer["abstained"] and "Ministry of Posts" in new_answer["text"]
    print(
        f"crash safety: {len(crash_points)} kill points ({', '.join(crash_points)}) over "
        f"{todo} chunks; {len(before)} answer rounds unchanged; 0 chunks lost"
    )
