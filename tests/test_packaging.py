"""A non-editable install works outside the checkout: prompts, the default corpus and a user
index dir come with the wheel, not from the repo.

Offline and quick (~10 s): the wheel is built with pip (build isolation uses the configured
package index for setuptools), installed with --no-deps into a fresh venv without pip, whose
dependencies come from this venv's site-packages through a `.pth` path line (a path line only
adds the directory: the `.pth` files inside it, e.g. this checkout's editable-install hook,
are not run, so `bot` and `index` really come from the wheel).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

from bot.settings import BotSettings
from index.settings import REPO_ROOT

pytestmark = pytest.mark.slow

SOURCES = ("pyproject.toml", "setup.py", "README.md", "bot", "index", "prompts", "corpus")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the corpusbot wheel installed; returns its bin dir."""
    root = tmp_path_factory.mktemp("pkg")
    src = root / "src"
    for name in SOURCES:  # build from a copy: the build never writes into the checkout
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(src)])
    [wheel] = (root / "dist").glob("corpusbot-*.whl")

    venv = root / "venv"
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "--no-deps", "-q", str(wheel)])
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    parent = sysconfig.get_path("purelib")  # this venv's dependencies
    (Path(purelib.stdout.strip()) / "_corpusbot_test_deps.pth").write_text(parent + "\n")
    return venv / "bin"


def _env(tmp: Path) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp / "home"), "XDG_DATA_HOME": str(tmp / "xdg")}
    return env  # no PYTHONPATH, no settings: only the installed defaults


def test_wheel_ships_prompts_and_corpus_and_answers_from_elsewhere(installed, tmp_path):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    where = _run(
        [
            str(installed / "python"),
            "-c",
            "import bot, bot.settings as s; x = s.BotSettings(); "
            "print(bot.__file__, x.prompts_dir, x.corpus_dir, x.index_dir, sep='\\n')",
        ],
        env=_env(tmp_path),
        cwd=cwd,
    ).stdout.split("\n")
    assert "site-packages" in where[0] and str(REPO_ROOT) not in where[0]
    assert where[1].endswith("site-packages/corpusbot_data/prompts")
    assert sorted(p.name for p in Path(where[1]).iterdir()) == ["answer.md", "condense.md"]
    assert where[2].endswith("site-packages/corpusbot_data/corpus")
    assert where[3] == str(tmp_path / "xdg" / "corpusbot" / "index")

    question = "when did north korea start mining bitcoin"
    proc = _run(
        [str(installed / "corpusbot"), "ask", "--json", question], env=_env(tmp_path), cwd=cwd
    )
    answer = json.loads(proc.stdout)
    assert answer["abstained"] is False and "17th of May" in answer["answer"]
    assert "No index yet: building it from" in proc.stderr
    assert (tmp_path / "xdg" / "corpusbot" / "index").is_dir()

    version = _run([str(installed / "corpusbot-index"), "--version"], env=_env(tmp_path), cwd=cwd)
    assert version.stdout.strip() == f"corpusbot {metadata.version('corpusbot')}"


def test_wheel_has_every_data_file_of_the_code_packages(installed):
    site = next((installed.parent / "lib").glob("python3*/site-packages"))
    for package in ("bot", "index"):
        for path in (REPO_ROOT / package).rglob("*"):
            if path.is_file() and path.suffix not in {".py", ".pyc"}:
                rel = path.relative_to(REPO_ROOT)
                assert (site / rel).is_file(), f"{rel} is missing from the wheel"


def test_checkout_defaults_are_the_repo_folders():
    s = BotSettings(_env_file=None)
    assert (s.prompts_dir, s.corpus_dir, s.index_dir) == (
        REPO_ROOT / "prompts",
        REPO_ROOT / "corpus",
        REPO_ROOT / ".index",
    )
