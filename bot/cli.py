"""`python -m bot`: Discord when DISCORD_TOKEN is set, else an interactive chat; plus `ask`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from bot.errors import QuestionRejected, user_text
from bot.render_text import render_text
from bot.settings import BotSettings, load_bot_settings
from index.errors import CorpusBotError
from index.logs import configure_logging, package_version

log = logging.getLogger(__name__)

HISTORY_TURNS = 5  # follow-ups look this many exchanges back
DISCORD_HINT = (
    "Offline chat mode. To run the Discord bot, set DISCORD_TOKEN (see README); "
    "type 'exit' or Ctrl-D to quit."
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bot", description="Answer questions from the indexed corpus."
    )
    p.add_argument("--version", action="version", version=f"corpusbot {package_version()}")
    sub = p.add_subparsers(dest="command")
    ask = sub.add_parser("ask", help="answer one question ('-' reads one per line from stdin)")
    ask.add_argument("question", help="the question, or '-' for one question per stdin line")
    ask.add_argument("--json", action="store_true", help="print one JSON object per question")
    sub.add_parser("chat", help="interactive questions with follow-ups")
    sub.add_parser("discord", help="run the Discord bot (needs DISCORD_TOKEN)")
    return p


def _configure_logging(settings: BotSettings, *, terminal: bool) -> None:
    # In the terminal, INFO chatter would bury the answer unless LOG_LEVEL was asked for.
    level = settings.log_level
    if terminal and "log_level" not in settings.model_fields_set:
        level = "WARNING"
    configure_logging(level)


def has_token(settings: BotSettings) -> bool:
    token = settings.discord_token
    return token is not None and bool(token.get_secret_value().strip())


def _announce(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _service(settings: BotSettings):
    from bot.service import build_service  # heavy imports (onnxruntime, chromadb)

    return build_service(settings, announce=_announce)


def _ask(settings: BotSettings, question: str, as_json: bool) -> int:
    service = _service(settings)
    if question != "-":
        answer = service.answer(question)
        print(json.dumps(answer.to_dict(), ensure_ascii=False) if as_json else render_text(answer))
        return 0
    failed = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = service.answer(line)
        except CorpusBotError as err:
            failed += 1
            out = {"question": line.strip(), "error": str(err)}
            print(json.dumps(out, ensure_ascii=False) if as_json else f"error: {err}", flush=True)
            continue
        text = json.dumps(answer.to_dict(), ensure_ascii=False) if as_json else render_text(answer)
        print(text + ("" if as_json else "\n"), flush=True)
    return 1 if failed else 0


def _chat(settings: BotSettings, *, hint: bool) -> int:
    if hint:
        print(DISCORD_HINT, flush=True)
    service = _service(settings)
    interactive = sys.stdin.isatty()
    history: list[tuple[str, str]] = []
    while True:
        try:
            question = input("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if question.strip().lower() in {"exit", "quit", ":q"}:
            return 0
        if not question.strip():
            continue
        try:
            answer = service.answer(question, history[-HISTORY_TURNS:])
        except QuestionRejected as err:
            print(str(err), flush=True)
            continue
        print(f"bot> {render_text(answer)}\n", flush=True)
        history.append((answer.standalone_question or question.strip(), answer.text))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_bot_settings()
        command = args.command
        if command is None:
            command = "discord" if has_token(settings) else "chat"
        _configure_logging(settings, terminal=command != "discord")
        if command == "discord":
            if not has_token(settings):  # before the heavy imports of discord mode
                print(user_text("no_token"), file=sys.stderr)
                return 2
            from bot.discord.client import run

            return run(settings)
        if command == "ask":
            return _ask(settings, args.question, args.json)
        return _chat(settings, hint=args.command is None)
    except CorpusBotError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; exit quietly like other CLIs
        sys.stderr.close()
        return 0
