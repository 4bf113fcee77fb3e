"""Bad input: hostile or broken questions, documents and settings.

Questions get a clear QuestionRejected message or a normal answer/abstention, never another
exception. Broken documents are skipped with a reason while the rest is indexed with stable
ids. Invalid settings are a ConfigError naming the setting; the CLIs exit non-zero with that
message, no traceback, and never echo a secret.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.errors import QuestionRejected
from bot.models import Answer
from bot.service import AnswerService, build_service
from bot.settings import load_bot_settings
from index import store
from index.chunker import chunk_document
from index.errors import ConfigError
from index.formats import MAX_TITLE_CHARS
from index.loader import load_file
from index.pipeline import reindex
from index.settings import REPO_ROOT, Settings
from tests.data.make_pdf import pdf_bytes
from tests.fakes import openai_server as fake_openai
from tests.helpers import active_view, expected_ids, subprocess_env

SEED_CORPUS = REPO_ROOT / "corpus"
TOKEN_CANARY = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GcAnRy.canary-discord-token-5e7a9c"
KEY_CANARY = "sk-canary-9b2d4e6f8a0c1e3b5d7f"

# --- questions -------------------------------------------------------------------------------

REJECT, ANSWER, EITHER = "reject", "answer", "either"

QUESTIONS = [
    ("empty", "", REJECT),
    ("whitespace", "   \n\t \r\n ", REJECT),
    ("10k-chars", "When did North Korea start mining bitcoin? " * 233, REJECT),
    ("zero-width-only", "\u200b\u200c\u200d\ufeff\u2060", REJECT),
    ("control-only", "\x00\x01\x07\x1b\x7f", REJECT),
    ("only-mentions", "<@123456789012345678> <@!2> <@&3> <#4> @everyone @here", REJECT),
    ("control-chars", "\x00\x07When did North Korea\x1b start mining bitcoin?\x7f", EITHER),
    ("zero-width-inside", "When\u200b did North\u200d Korea start mi\u200bning bitcoin?", EITHER),
    ("mentions-and-question", "<@1> @everyone When did North Korea start mining bitcoin?", ANSWER),
    ("korean", "북한은 언제 비트코인 채굴을 시작했나요?", EITHER),
    ("arabic", "متى بدأت كوريا الشمالية تعدين البيتكوين؟", EITHER),
    ("rtl-override", "\u202eWhen did North Korea start mining bitcoin?\u202c", EITHER),
    ("emoji-only", "🤔🤔🤔 🚀", EITHER),
    ("emoji-and-question", "🚀 When did North Korea start mining ₿itcoin? 🤔", EITHER),
    ("zalgo", "Wh̷̢̛e̶n̷ did North Korea start mining bitcoin?", EITHER),
    ("lone-surrogate", "\ud800 When did North Korea start mining bitcoin?", EITHER),
    ("noncharacters", "\ufffe\uffff\U0010ffff\U000e0001", EITHER),
    ("max-length", "bitcoin " * 124 + "mining?", EITHER),  # 999 chars: at the limit
    ("one-long-word", "a" * 999, EITHER),
    ("sql", "'; DROP TABLE answers; -- when did mining start?", EITHER),
    ("template-braces", "{question} {sources} {{history}} ${OPENAI_API_KEY} %s %(x)s", EITHER),
    ("regex-meta", "((((((([[[[*+?^$|\\", EITHER),
    ("citation-markers", "[1] [2] [99] [1](https://evil.example)", EITHER),
    ("many-lines", "When\n\n\ndid\r\nNorth Korea\nstart mining bitcoin?", EITHER),
]


@pytest.fixture(scope="module")
def service(seed_index: Settings) -> AnswerService:
    return build_service(seed_index, build_if_missing=False)


@pytest.mark.parametrize(
    "question,expect", [q[1:] for q in QUESTIONS], ids=[q[0] for q in QUESTIONS]
)
def test_bad_questions(service, question, expect):
    try:
        result = service.answer(question)
    except QuestionRejected as err:
        assert expect in (REJECT, EITHER), f"rejected: {err}"
        message = str(err)
        assert message and len(message) < 300 and "Traceback" not in message
        if len(question) > 1000:
            assert "limit is 1000" in message  # says what to do about it
        return
    assert expect in (ANSWER, EITHER), f"answered: {result.text[:100]!r}"
    assert isinstance(result, Answer) and result.text.strip()
    assert result.abstained or result.citations  # an answer always cites


@pytest.fixture(scope="module")
def llm_fake():
    server = fake_openai.FakeOpenAIServer().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def llm_service(seed_index: Settings, llm_fake) -> AnswerService:
    settings = seed_index.model_copy(
        update={
            "openai_base_url": llm_fake.base_url,
            "openai_api_key": SecretStr(KEY_CANARY),
            "llm_max_retries": 0,
        }
    )
    return build_service(settings, build_if_missing=False)


@pytest.mark.parametrize(
    "question",
    [q[1] for q in QUESTIONS if q[2] != REJECT],
    ids=[q[0] for q in QUESTIONS if q[2] != REJECT],
)
def test_bad_questions_on_the_llm_path(llm_service, llm_fake, question):
    """The question reaches the prompt template intact (braces are data, not variables)."""
    llm_fake.script(fake_openai.chat("North Korea started mining bitcoin on the 17th of May [1]."))
    before = len(llm_fake.chat_requests)
    try:
        result = llm_service.answer(question)
    except QuestionRejected:
        return
    assert result.mode in ("llm", "extractive-fallback") and result.text.strip()
    if len(llm_fake.chat_requests) > before:
        sent = "\n".join(m["content"] for m in llm_fake.chat_requests[-1].json["messages"])
        if "{question}" in question:
            assert "{question} {sources} {{history}}" in sent


# --- documents -------------------------------------------------------------------------------


def _alias_bomb(depth: int) -> str:
    """YAML front matter whose `title` expands to 9**depth strings (a few hundred bytes)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth)]
    return "---\n" + "\n".join(lines) + f"\ntitle: *a{depth - 1}\npublisher: *a{depth - 1}\n---\n"


def bad_files(corpus: Path) -> dict[str, str]:
    """Write the bad files; returns {path: word the skip reason must contain}."""
    truncated_pdf = pdf_bytes([["Mining report", "", "The operation ran in May."]])
    files: dict[str, tuple[bytes, str | None]] = {
        "empty.md": (b"", "empty"),
        "whitespace.txt": (b"   \n\n\t  \n", "no text"),
        "zero-width.md": ("\u200b\u200d\ufeff\n".encode(), "no text"),
        "binary.md": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "binary"),
        "control.txt": (bytes(range(1, 32)) * 20, "binary"),
        "latin1.txt": (
            "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 about bitcoin".encode("latin-1"),
            "UTF-8",
        ),
        "huge.txt": (b"bitcoin mining. " * 20_000, "too large"),
        "garbage.pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pag", "PDF"),
        "not-a-pdf.pdf": (b"<html>this is not a pdf</html>", "PDF"),
        "truncated.pdf": (truncated_pdf[: len(truncated_pdf) // 3], "PDF"),
        "script-only.html": (
            b"<html><script>alert(1)</script><style>p{}</style></html>",
            "no text",
        ),
        "bad-front-matter.md": (
            b"---\ntitle: [unclosed\n---\n\nText about bitcoin.\n",
            "front matter",
        ),
        "no-closing-front-matter.md": (b"---\ntitle: x\n\nText about bitcoin.\n", "front matter"),
        # These load fine:
        "malformed.html": (
            b"<html><head><title>Broken <b>page</title><body><p>North Korea mined bitcoin"
            b"<div><p>in May <table><tr><td>2017</div></b></i><!-- unclosed comment",
            None,
        ),
        "utf16.txt": ("\ufeffUTF-16 text about bitcoin mining.".encode("utf-16"), None),
        "Ünïcödé name with spaces.md": ("# Ünïcödé\n\nBitcoin mining in Korea.\n".encode(), None),
        "repeated.md": (
            ("# Repeated\n\n" + "The same paragraph about mining.\n\n" * 30).encode(),
            None,
        ),
        "ignored.exe": (b"MZ\x90\x00", None),  # unsupported: not even listed
        ".hidden.md": (b"# Hidden\n\nNot indexed.\n", None),
    }
    want = {}
    for name, (data, reason) in files.items():
        (corpus / name).write_bytes(data)
        if reason:
            want[name] = reason
    # Duplicates: the same bytes under three paths.
    dup = (SEED_CORPUS / "north-korea-begins-mining-bitcoin.md").read_bytes()
    (corpus / "dup").mkdir()
    (corpus / "dup" / "north-korea-begins-mining-bitcoin.md").write_bytes(dup)
    (corpus / "copy-of-article.md").write_bytes(dup)
    return want


@pytest.mark.slow
def test_bad_documents_are_skipped_and_the_rest_indexed(
    tmp_path, corpus_dir, make_settings, minilm
):
    want = bad_files(corpus_dir)
    settings = make_settings(corpus_dir=corpus_dir, max_document_bytes=200_000)
    summary = reindex(settings, embeddings=minilm)

    skipped = {s["path"]: s["reason"] for s in summary.skipped_files}
    assert set(skipped) == set(want), skipped
    for path, word in want.items():
        assert word.lower() in skipped[path].lower(), (path, skipped[path])
    collection = active_view(settings)
    ids = store.all_ids(collection)
    assert ids == expected_ids(settings)
    sources = {md["source"] for _, _, md in store.iter_rows(collection, ["metadatas"])}
    assert {"malformed.html", "utf16.txt", "Ünïcödé name with spaces.md", "repeated.md"} <= sources
    assert not sources & {"ignored.exe", ".hidden.md"}

    # Duplicated files: each path is its own document with its own (distinct) chunk ids.
    dups = [
        "north-korea-begins-mining-bitcoin.md",
        "dup/north-korea-begins-mining-bitcoin.md",
        "copy-of-article.md",
    ]
    rows = [md for _, _, md in store.iter_rows(collection, ["metadatas"]) if md["source"] in dups]
    by_source = {s: [r for r in rows if r["source"] == s] for s in dups}
    assert len({len(v) for v in by_source.values()}) == 1 and by_source[dups[0]]
    assert len({r["doc_sha256"] for r in rows}) == 1

    # Stable ids: a rerun changes nothing; a from-scratch build elsewhere gives the same ids.
    again = reindex(settings, embeddings=minilm)
    assert not again.changed and again.skipped == len(want)
    other = make_settings(
        corpus_dir=corpus_dir, max_document_bytes=200_000, index_dir=tmp_path / "other"
    )
    fresh = reindex(other, embeddings=minilm)
    other_client = store.make_client(other)
    assert store.all_ids(store.open_view(other_client, fresh.generation)) == ids

    # The CLI reports the same files and exits 3 (built, with skips), without a traceback.
    proc = _run(["-m", "index"], subprocess_env(settings, MAX_DOCUMENT_BYTES="200000"), tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    for path in want:
        assert path in proc.stdout + proc.stderr


def test_repeated_text_gets_distinct_stable_ids(tmp_path):
    (tmp_path / "r.md").write_text("# R\n\n" + "Same words about mining here.\n\n" * 200)
    doc = load_file(tmp_path / "r.md", root=tmp_path, max_bytes=10**6)
    first = chunk_document(doc, chunk_size=100, chunk_overlap=0)
    again = chunk_document(doc, chunk_size=100, chunk_overlap=0)
    assert len(first) > 30
    assert len({c.id for c in first}) == len(first)
    assert [c.id for c in first] == [c.id for c in again]


def test_yaml_alias_bomb_in_front_matter_is_bounded(tmp_path):
    """A 600-byte document must not become a multi-megabyte title copied into every chunk.

    At depth 6 the title expands to ~3.5 MB; depth 9 would be ~2.5 GB (the indexer dies).
    """
    path = tmp_path / "bomb.md"
    path.write_text(_alias_bomb(6) + "\n# Bomb\n\nA sentence about bitcoin mining.\n")
    assert path.stat().st_size < 1000
    try:
        doc = load_file(path, root=tmp_path, max_bytes=10**6)
    except Exception as err:  # skipping it is fine too
        assert type(err).__name__ == "DocumentError"
        return
    assert len(doc.title) <= MAX_TITLE_CHARS
    assert all(len(v) <= 1000 for v in doc.metadata.values()), {
        k: len(v) for k, v in doc.metadata.items()
    }


# --- settings --------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("CHUNK_SIZE", "abc"),
    ("CHUNK_SIZE", "50"),
    ("CHUNK_OVERLAP", "-1"),
    ("RETRIEVAL_MODE", "foo"),
    ("RETRIEVAL_K", "0"),
    ("DISCORD_CHANNEL_IDS", "x"),
    ("DISCORD_CHANNEL_IDS", "[1,"),
    ("DISCORD_CHANNEL_IDS", "1,two,3"),
    ("DISCORD_GUILD_ID", "my-server"),
    ("DISCORD_ALLOW_DMS", "maybe"),
    ("EMBEDDER", "bert"),
    ("LLM_TIMEOUT_S", "0"),
    ("LLM_MAX_TOKENS", "1"),
    ("LLM_DAILY_TOKEN_BUDGET", "-5"),
    ("CHROMA_PORT", "70000"),
    ("MAX_QUESTION_CHARS", "lots"),
    ("COLLECTION_PREFIX", "has space!"),
    ("KEEP_GENERATIONS", "0"),
    ("USER_COOLDOWN_S", "-1"),
    ("MAX_CONCURRENT_ANSWERS", "0"),
]


@pytest.mark.parametrize("name,value", BAD_SETTINGS, ids=[f"{n}={v}" for n, v in BAD_SETTINGS])
def test_load_settings_names_the_bad_setting(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_API_KEY", KEY_CANARY)
    with pytest.raises(ConfigError) as info:
        load_bot_settings()
    assert name in str(info.value)
    assert KEY_CANARY not in str(info.value)


def test_invalid_dotenv_file_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("CHUNK_SIZE=abc\nDISCORD_TOKEN=" + TOKEN_CANARY + "\n")
    with pytest.raises(ConfigError, match="CHUNK_SIZE") as info:
        load_bot_settings()
    assert TOKEN_CANARY not in str(info.value)


def test_missing_corpus_dir_is_a_clear_error(make_settings, tmp_path):
    with pytest.raises(ConfigError, match="CORPUS_DIR"):
        reindex(make_settings(corpus_dir=tmp_path / "nope"))


def test_overlap_not_smaller_than_chunk_size_is_a_clear_error(make_settings):
    with pytest.raises(ConfigError, match="CHUNK_OVERLAP"):
        reindex(make_settings(chunk_size=200, chunk_overlap=500))


def _run(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


# Each CLI refuses its own flow's bad settings: `python -m index` reads the shared
# Settings (bot-only ones such as DISCORD_CHANNEL_IDS are not its business), `python -m bot`
# reads BotSettings, which include the shared ones.
CLI_BAD_SETTINGS = [
    ("index", "CHUNK_SIZE", "abc"),
    ("index", "EMBEDDER", "bert"),
    ("index", "CHROMA_PORT", "70000"),
    ("bot", "CHUNK_SIZE", "abc"),
    ("bot", "RETRIEVAL_MODE", "foo"),
    ("bot", "DISCORD_CHANNEL_IDS", "x"),
]


@pytest.mark.parametrize(
    "module,name,value", CLI_BAD_SETTINGS, ids=[f"{m}-{n}" for m, n, _ in CLI_BAD_SETTINGS]
)
def test_cli_with_invalid_setting_exits_with_a_message(tmp_path, module, name, value):
    args = ["-m", "index"] if module == "index" else ["-m", "bot", "ask", "When?"]
    proc = _run(args, subprocess_env(**{name: value, "INDEX_DIR": str(tmp_path / "i")}), tmp_path)
    assert proc.returncode != 0
    assert name.lower() in proc.stderr.lower(), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "i").exists()  # refused before touching anything


@pytest.mark.parametrize(
    "module,name", [("index", "CHROMA_PORT"), ("bot", "DISCORD_GUILD_ID"), ("bot", "CHROMA_PORT")]
)
def test_cli_config_error_never_echoes_a_secret(tmp_path, module, name):
    """The token pasted into the wrong line (an integer setting) must not be printed back."""
    args = ["-m", "index"] if module == "index" else ["-m", "bot", "ask", "When?"]
    env = subprocess_env(**{name: TOKEN_CANARY, "INDEX_DIR": str(tmp_path / "i")})
    proc = _run(args, env, tmp_path)
    assert proc.returncode != 0 and name in proc.stderr.upper()
    assert TOKEN_CANARY not in proc.stdout + proc.stderr, proc.stderr


@pytest.mark.slow
def test_cli_bad_questions_and_missing_prompts(tmp_path, seed_index):
    # An empty question: a clear message, non-zero exit, no traceback.
    proc = _run(["-m", "bot", "ask", "   "], subprocess_env(seed_index), tmp_path)
    assert proc.returncode == 1 and "Please ask a question" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Hostile lines on stdin: each gets an answer or an error line; the run goes on.
    lines = ["", "\u200b", "x" * 5000, "When did North Korea start mining bitcoin?", "🤔"]
    proc = _run(
        ["-m", "bot", "ask", "--json", "-"],
        subprocess_env(seed_index),
        tmp_path,
        "\n".join(lines) + "\n",
    )
    assert "Traceback" not in proc.stderr
    out = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(out) == 4  # blank lines are skipped
    assert '"error"' in out[0] and '"error"' in out[1] and '"answer"' in out[2]
    # LLM configured but PROMPTS_DIR missing: the error names the prompt file.
    env = subprocess_env(
        seed_index, OPENAI_BASE_URL="http://127.0.0.1:9/v1", PROMPTS_DIR=str(tmp_path / "nope")
    )
    proc = _run(["-m", "bot", "ask", "When?"], env, tmp_path)
    assert proc.returncode == 1 and "prompt file" in proc.stderr
    assert "Traceback" not in proc.stderr
