"""Faults in the outside world: the user still gets a reply, or a clear message.

LLM faults go through the real AnswerService with OPENAI_BASE_URL pointing at the scripted
OpenAI server: every one ends in an Answer with mode "extractive-fallback" and a note saying
why (a labelled fallback), never an exception. A Chroma server that goes down makes
AnswerService.answer raise StoreUnavailable; once it is back on the same path and port, the
SAME service answers again.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.discord.render import render_answer
from bot.service import AnswerService, build_service
from bot.settings import BotSettings
from index import store
from index.errors import IndexNotReady, StoreUnavailable
from index.pipeline import reindex
from tests.fakes import openai_server as fake
from tests.fakes.openai_server import FakeOpenAIServer

QUESTION = "When did North Korea start mining bitcoin?"
GOOD_REPLY = "North Korea started mining bitcoin on the 17th of May [1]."
CHROMA = Path(sys.executable).parent / "chroma"

# name -> (scripted replies, LLMError kind named in the note, chat requests expected)
# With LLM_MAX_RETRIES=1: transient faults are retried once, quota/auth/malformed are not.
FAULTS = {
    "timeout": (
        [fake.chat(GOOD_REPLY, delay_s=30), fake.chat(GOOD_REPLY, delay_s=30)],
        "timeout",
        2,
    ),
    "rate-limit-429": ([fake.rate_limited(), fake.rate_limited()], "rate_limit", 2),
    "insufficient-quota-429": ([fake.insufficient_quota()], "quota", 1),
    "server-500": ([fake.server_error(500), fake.server_error(500)], "server", 2),
    "server-503": ([fake.server_error(503), fake.server_error(503)], "server", 2),
    "connection-reset": ([fake.reset(), fake.reset()], "connection", 2),
    "malformed-json": ([fake.malformed()], "malformed", 1),
    "empty-choices": ([fake.empty_choices()], "malformed", 1),
    "empty-content": ([fake.chat("")], "malformed", 1),
    "drip-feed": ([fake.drip(GOOD_REPLY, interval_s=0.5)] * 2, "timeout", 2),
    "unauthorized-401": ([fake.unauthorized()], "auth", 1),
}


@pytest.fixture
def llm_service(seed_index: BotSettings, openai_fake: FakeOpenAIServer) -> AnswerService:
    settings = seed_index.model_copy(
        update={
            "openai_base_url": openai_fake.base_url,
            "openai_api_key": SecretStr("sk-test-faults"),
            "llm_timeout_s": 1.5,  # small, so the timeout faults stay quick
            "llm_max_retries": 1,
        }
    )
    return build_service(settings, build_if_missing=False)


@pytest.mark.parametrize("name", list(FAULTS))
def test_llm_fault_falls_back_to_a_labelled_extractive_answer(name, llm_service, openai_fake):
    replies, kind, requests = FAULTS[name]
    openai_fake.script(*replies)
    answer = llm_service.answer(QUESTION)

    assert answer.mode == "extractive-fallback"
    assert answer.note and kind.replace("_", " ") in answer.note.replace("_", " ")
    # The fallback is a real answer from the corpus, with its quote.
    assert not answer.abstained and answer.citations
    assert "17th of May" in answer.text
    assert len(openai_fake.chat_requests) == requests
    # The user sees the label in Discord.
    first = render_answer(answer)[0].content
    assert first.startswith(f"*{answer.note}*")


def test_transient_fault_then_success_is_an_llm_answer(llm_service, openai_fake):
    openai_fake.script(fake.rate_limited(retry_after="0"), fake.chat(GOOD_REPLY))
    answer = llm_service.answer(QUESTION)
    assert answer.mode == "llm" and answer.note is None
    assert len(openai_fake.chat_requests) == 2


def test_llm_down_entirely_is_a_fallback(seed_index: BotSettings):
    """Nothing listens at OPENAI_BASE_URL (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = seed_index.model_copy(
        update={"openai_base_url": f"http://127.0.0.1:{port}/v1", "llm_max_retries": 0}
    )
    answer = build_service(settings, build_if_missing=False).answer(QUESTION)
    assert answer.mode == "extractive-fallback" and "connection" in (answer.note or "")


# --- the vector store --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChromaServer:
    """A real `chroma run` on a fixed path and port that can be stopped and started again."""

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [str(CHROMA), "run", "--path", str(self.path), "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        url = f"http://127.0.0.1:{self.port}/api/v2/heartbeat"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("chroma server did not come up") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-server", _free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_chroma_server_down_then_back(chroma, make_settings, corpus_dir, minilm):
    settings = make_settings(
        corpus_dir=corpus_dir, chroma_host="127.0.0.1", chroma_port=chroma.port
    )
    reindex(settings, embeddings=minilm)
    service = build_service(settings, build_if_missing=False)
    before = service.answer(QUESTION)
    assert not before.abstained and "17th of May" in before.text

    chroma.stop()
    for _ in range(2):  # and it stays a clear error while the server is down
        with pytest.raises(StoreUnavailable) as info:
            service.answer(QUESTION)
        message = str(info.value)
        assert "Chroma" in message and "Traceback" not in message and len(message) < 400

    chroma.start()  # same path, same port
    after = service.answer(QUESTION)  # the SAME service, not re-created
    assert after.text == before.text
    assert [c.chunk_id for c in after.citations] == [c.chunk_id for c in before.citations]


def test_active_generation_deleted_under_the_service(index_settings: BotSettings):
    """Someone deletes the collection behind the bot's back: a clear IndexNotReady."""
    service = build_service(index_settings, build_if_missing=False)
    assert not service.answer(QUESTION).abstained
    client = store.make_client(index_settings)
    info = store.read_pointer(client, index_settings.collection_prefix)
    client.delete_collection(info.generation)
    with pytest.raises(IndexNotReady, match="python -m index"):
        service.answer("Which firm traced attacks on bitcoin exchanges?")
    reindex(index_settings)  # the fix the message names
    assert not service.answer("Which firm traced attacks on bitcoin exchanges?").abstained
