"""A new maintainer's first hour (issue 12): clear messages, one log format, fail-fast start,
--version, unsupported files reported, exit codes a cron job can use."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import discord
import pytest
from pydantic import SecretStr

from index.logs import LOG_FORMAT, configure_logging
from index.pipeline import reindex
from index.settings import LOG_LEVELS, ConfigError, load_settings
from tests.helpers import subprocess_env

CLIS = {"index": ["-m", "index"], "bot": ["-m", "bot", "ask", "When?"]}


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300):
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


# --- 1. LOG_LEVEL is validated like every other setting ---------------------------------


@pytest.mark.parametrize("value", ["debug", "Warning", " error ", "CRITICAL", "info"])
def test_log_level_accepts_standard_names_case_insensitively(monkeypatch, value):
    monkeypatch.setenv("LOG_LEVEL", value)
    assert load_settings().log_level == value.strip().upper()


@pytest.mark.parametrize("value", ["chatty", "verbose", "10", "WARN "])
def test_log_level_invalid_names_the_setting(monkeypatch, value):
    monkeypatch.setenv("LOG_LEVEL", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "Invalid setting LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )


@pytest.mark.parametrize("cli", sorted(CLIS))
def test_cli_with_bad_log_level_is_one_line(tmp_path, cli):
    env = subprocess_env(LOG_LEVEL="chatty", INDEX_DIR=str(tmp_path / "i"))
    proc = _run(CLIS[cli], env, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: Invalid setting LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
    assert not (tmp_path / "i").exists()


# --- 2. one logging set-up; the progress bar and log lines don't interleave --------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_both_clis_use_configure_logging():
    import bot.cli
    import index.__main__

    for module in (bot.cli, index.__main__):
        assert module.configure_logging is configure_logging
        assert "basicConfig" not in Path(module.__file__).read_text()
    assert LOG_LEVELS == ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@pytest.mark.slow
def test_progress_bar_has_an_eta_and_log_lines_never_cut_into_it(
    make_settings, corpus_dir, minilm, monkeypatch, restore_root_logger
):
    import index.pipeline as pipeline

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    configure_logging("INFO")
    real_embed = pipeline._embed

    def embed(*args, **kwargs):  # a log line while the bar is on screen
        logging.getLogger("test").warning("a log line mid-bar")
        return real_embed(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_embed", embed)
    settings = make_settings(
        corpus_dir=corpus_dir, chunk_size=150, chunk_overlap=10, embed_batch_size=1
    )
    reindex(settings, progress=True, embeddings=minilm)

    frames = terminal.getvalue().replace("\r", "\n").split("\n")
    bars = [f for f in frames if f.startswith("embedding:")]
    logs = [f for f in frames if "a log line mid-bar" in f]
    assert bars and all("ETA" in b for b in bars), bars[:3]
    assert len(logs) >= 2
    # Every log line is a whole line of its own, in the shared format, never glued to a bar.
    for line in logs:
        assert line.split(" WARNING test: ")[1] == "a log line mid-bar", line
        assert "embedding" not in line and "%|" not in line


def test_log_format_is_shared(restore_root_logger, capsys):
    configure_logging("info")
    logging.getLogger("x").info("hello")
    err = capsys.readouterr().err
    assert err.rstrip().endswith(" INFO x: hello")
    assert LOG_FORMAT.startswith("%(asctime)s")


# --- 3. no voice-library warnings ------------------------------------------------------


def test_no_voice_library_warnings_at_start(tmp_path):
    code = (
        "import logging; logging.basicConfig(level='DEBUG')\n"
        "import bot.discord.client, discord\n"
        "discord.Client(intents=discord.Intents.none())\n"
    )
    proc = _run(["-c", code], subprocess_env(), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "is not installed" not in proc.stderr, proc.stderr
    assert "PyNaCl" not in proc.stderr and "davey" not in proc.stderr


# --- 4. fail fast: token checks before the model warm-up --------------------------------

HEAVY = ("onnxruntime", "chromadb", "discord", "langchain_core", "bm25s")


def test_no_token_is_immediate_and_imports_nothing_heavy(tmp_path):
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        "rc = main(['discord'])\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(rc, heavy)\n"
    )
    started = time.monotonic()
    proc = _run(["-c", code], subprocess_env(INDEX_DIR=str(tmp_path / "i")), tmp_path)
    assert time.monotonic() - started < 10  # typically ~0.2 s; the warm-up takes ~10 s
    assert proc.stdout.strip() == "2 []", proc.stdout + proc.stderr
    assert "DISCORD_TOKEN is not set" in proc.stderr
    assert not (tmp_path / "i").exists()


def test_bad_token_exits_2_before_loading_the_model(
    fake_discord, make_settings, tmp_path, capsys, monkeypatch
):
    import index.embedder
    from bot.discord.client import run

    def no_model(*args, **kwargs):
        raise AssertionError("the embedder was loaded before the token was checked")

    monkeypatch.setattr(index.embedder, "make_embeddings", no_model)
    monkeypatch.setattr(index.embedder.MiniLMEmbeddings, "__init__", no_model)
    settings = make_settings(
        index_dir=tmp_path / "never", discord_token=SecretStr("not-the-right-token-xyz")
    )
    started = time.monotonic()
    assert run(settings) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "Discord rejected DISCORD_TOKEN" in err and "Traceback" not in err
    assert "not-the-right-token-xyz" not in err
    assert [r.path for r in fake_discord.requests] == ["/users/@me"]
    assert not (tmp_path / "never").exists()  # no index built, no store opened


def test_bad_prompts_dir_is_reported_before_loading_the_model(
    fake_discord, make_settings, tmp_path, capsys, monkeypatch
):
    import index.embedder
    from bot.discord.client import run

    def no_model(*args, **kwargs):
        raise AssertionError("the embedder was loaded before the configuration was checked")

    monkeypatch.setattr(index.embedder, "make_embeddings", no_model)
    settings = make_settings(
        index_dir=tmp_path / "never",
        discord_token=SecretStr(fake_discord.token),
        openai_base_url="http://127.0.0.1:9/v1",
        prompts_dir=tmp_path / "no-prompts",
    )
    assert run(settings) == 1
    err = capsys.readouterr().err
    assert "cannot read prompt file" in err and "Traceback" not in err
    assert not (tmp_path / "never").exists()


# --- 5. --version -----------------------------------------------------------------------


@pytest.mark.parametrize("module", ["bot", "index"])
def test_version_flag(tmp_path, module):
    from importlib.metadata import version

    proc = _run(["-m", module, "--version"], subprocess_env(), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"corpusbot {version('corpusbot')}"


def _options(parser) -> set[str]:
    found = set()
    for action in parser._actions:
        found.update(o for o in action.option_strings if o not in {"-h", "--help"})
        for name, sub in (getattr(action, "choices", None) or {}).items():
            if hasattr(sub, "_actions"):
                found.add(name)
                found.update(_options(sub))
    return found


def test_readme_commands_table_lists_every_flag():
    import bot.cli
    import index.__main__
    from index.settings import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Commands", 1)[1].strip().split("\n\n", 1)[0]
    for module, parser in (("bot", bot.cli._parser()), ("index", index.__main__._parser())):
        rows = [line for line in table.splitlines() if f"`python -m {module}" in line]
        for option in _options(parser):
            assert any(option in row for row in rows), f"python -m {module} {option}"
    assert "## Troubleshooting" in readme


# --- 6. unsupported and empty files; exit codes ----------------------------------------


@pytest.mark.slow
def test_unsupported_and_empty_files_are_reported_but_exit_0(tmp_path, corpus_dir):
    for i in range(55):
        (corpus_dir / f"scan{i:02d}.png").write_bytes(b"\x89PNG")
    (corpus_dir / "notes.odt").write_bytes(b"PK")
    (corpus_dir / ".DS_Store").write_bytes(b"x")  # hidden: silently ignored
    (corpus_dir / "_images").mkdir()
    (corpus_dir / "_images" / "logo.png").write_bytes(b"\x89PNG")  # a site's assets: too
    (corpus_dir / "empty.md").write_bytes(b"")
    env = subprocess_env(CORPUS_DIR=str(corpus_dir), INDEX_DIR=str(tmp_path / "i"))
    proc = _run(["-m", "index", "--json"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["unsupported"] == 56
    assert len(summary["unsupported_files"]) == 50
    assert summary["unsupported_files"][0] == "notes.odt"
    assert ".DS_Store" not in summary["unsupported_files"]
    assert summary["skipped_files"] == [{"path": "empty.md", "reason": "empty file"}]

    (corpus_dir / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf\n")
    proc = _run(["-m", "index"], env, tmp_path)
    assert proc.returncode == 3, proc.stderr  # a real failure: a supported file was lost
    [line] = proc.stdout.strip().splitlines()
    assert "broken.pdf" in line and "empty.md (empty file)" in line
    assert "ignored 56 unsupported files: notes.odt, scan00.png" in line
    assert line.endswith("and 46 more")


def test_summary_without_unsupported_files_says_nothing_about_them(make_settings, minilm):
    summary = reindex(make_settings(), embeddings=minilm)
    assert summary.unsupported == 0 and summary.unsupported_files == []
    assert "unsupported" not in summary.line()


def test_discord_flags_are_module_level():
    import bot.discord.client  # noqa: F401

    assert discord.VoiceClient.warn_nacl is False and discord.VoiceClient.warn_dave is False
