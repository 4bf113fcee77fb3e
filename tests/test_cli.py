"""`python -m bot` as real subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from index.settings import REPO_ROOT
from tests.helpers import subprocess_env

TIMEOUT_S = 180


def run_bot(*args: str, env: dict[str, str], stdin: str | None = None, cwd: Path):
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=TIMEOUT_S,
    )


@pytest.mark.slow
def test_first_run_builds_the_index_then_answers(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(REPO_ROOT / "corpus", corpus)
    env = subprocess_env(CORPUS_DIR=str(corpus), INDEX_DIR=str(tmp_path / "index"))
    res = run_bot("ask", "When did North Korea start mining Bitcoin?", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"No index yet: building it from {corpus}..." in res.stderr
    assert "indexed 2 documents" in res.stderr
    assert "17th of May" in res.stdout
    assert "Sources:\n[1] North Korea Begins Mining Bitcoin" in res.stdout
    assert "north-korea-begins-mining-bitcoin.md, chars" in res.stdout
    assert "Traceback" not in res.stderr

    again = run_bot("ask", "Who is the CEO of FireEye?", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "No index yet" not in again.stderr
    assert again.stdout.startswith("I couldn't find that in the indexed sources.")


@pytest.mark.slow
def test_ask_json_single_and_batch(seed_index, tmp_path):
    env = subprocess_env(seed_index)
    res = run_bot(
        "ask",
        "--json",
        "Which exchange hack is North Korea the prime suspect for?",
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    obj = json.loads(res.stdout)
    assert obj["mode"] == "extractive" and obj["abstained"] is False
    assert "Youbit Exchange hack" in obj["citations"][0]["quote"]
    assert obj["citations"][0]["publisher"] == "CCN"

    questions = [
        "When did North Korea start mining Bitcoin?",
        "",
        "Did North Korea hack Coincheck?",
        "Why do most countries have sanctions on North Korea?",
    ]
    res = run_bot("ask", "--json", "-", env=env, stdin="\n".join(questions) + "\n", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["question"] for x in lines] == [q for q in questions if q]
    assert [x["abstained"] for x in lines] == [False, True, False]
    assert "nuclear missile program" in lines[2]["answer"]


@pytest.mark.slow
def test_chat_with_follow_up(seed_index, tmp_path):
    env = subprocess_env(seed_index)
    stdin = (
        "Which cybersecurity firm traced attacks on bitcoin exchanges?\nAnd how many?\n   \nexit\n"
    )
    res = run_bot(env=env, stdin=stdin, cwd=tmp_path)  # no DISCORD_TOKEN: chat mode
    assert res.returncode == 0, res.stderr
    assert "set DISCORD_TOKEN" in res.stdout.splitlines()[0]
    turns = res.stdout.split("bot> ")[1:]
    assert len(turns) == 2
    assert "FireEye" in turns[0]
    assert "(understood as: And how many? " in turns[1]
    assert "five different attacks" in turns[1]


def test_bad_setting_is_one_clear_line(tmp_path):
    res = run_bot("ask", "hi", env=subprocess_env(RETRIEVAL_K="999"), cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0
    assert "RETRIEVAL_K" in res.stderr and "Traceback" not in res.stderr


def test_rejected_question_exits_1(seed_index, tmp_path):
    res = run_bot("ask", "   ", env=subprocess_env(seed_index), cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip() == "error: Please ask a question about the indexed documents."
