"""Discord load: N questions from M users at once, through the loopback fake Discord.

The real CorpusBot (real AnswerService, offline extractive mode, the seed corpus indexed into a
temp dir) serves a fake Discord on 127.0.0.1 in the same process. Half the questions are /ask,
half @mentions; each must get exactly one reply (an answer, a cooldown or a busy message).
Reports p50/p95 time to the reply (to the answer itself, not the deferral), time to the first
response, the event loop's max lag (a 10 ms ticker) and the process RSS afterwards (the fake
server shares the process, so RSS is an upper bound for the bot).

Usage: python bench/bench_discord_load.py [--questions 200] [--users 50] [--cooldown 10]
       [--max-concurrent 4] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import resource
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import discord.gateway
import discord.http
import yarl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.discord.client import make_bot  # noqa: E402
from bot.discord.feedback import FeedbackStore  # noqa: E402
from bot.discord.limits import Limiter  # noqa: E402
from bot.service import build_service  # noqa: E402
from bot.settings import BotSettings as Settings  # noqa: E402
from index.settings import REPO_ROOT  # noqa: E402
from tests.fakes.discord_server import FakeDiscord  # noqa: E402
from tests.fixtures.discord import FAST_GUILD_READY, running_client  # noqa: E402

QUESTIONS = [
    "When did North Korea start mining bitcoin?",
    "What sanctions did the UN Security Council approve?",
    "Who reported the North Korean mining operation?",
    "How long did the bitcoin mining operation last?",
    "What is the capital of France?",
]


class TimedFakeDiscord(FakeDiscord):
    """Stamps each request's arrival time on its record (read back once, after the run)."""

    async def _route(self, rec):  # a private hook of the fake: cheap, unlike polling requests
        rec.at = time.perf_counter()
        return await super()._route(rec)


@dataclass
class Question:
    kind: str  # "slash" | "mention"
    user: str
    sent_at: float
    key: str  # interaction token, or the question message id
    replies: list[tuple[float, str]] = field(default_factory=list)  # (time, what)
    first_response: float | None = None


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else 0.0


def classify(text: str) -> str:
    if "try again in" in text and "asking quickly" in text:
        return "cooldown"
    if "busy" in text:
        return "busy"
    return "other"


def tally(fake: FakeDiscord, questions: list[Question]) -> None:
    """Attribute every message-creating request to its question."""
    by_token = {q.key: q for q in questions if q.kind == "slash"}
    by_message = {q.key: q for q in questions if q.kind == "mention"}
    for r in fake.requests:
        if r.status >= 300:
            continue  # failed attempts are not replies
        body = r.json or {}
        if m := re.fullmatch(r"/interactions/\d+/([^/]+)/callback", r.path):
            q = by_token.get(m.group(1))
            if q is None:
                continue
            q.first_response = q.first_response or r.at
            if body.get("type") == 4:
                q.replies.append((r.at, classify(body["data"].get("content", ""))))
        elif m := re.fullmatch(r"/webhooks/\d+/([^/]+)", r.path):
            q = by_token.get(m.group(1))
            if q is not None:
                q.replies.append((r.at, "answer" if body.get("components") else "other"))
        elif m := re.fullmatch(r"/channels/(\d+)/messages", r.path):
            if r.method != "POST":
                continue
            ref = (body.get("message_reference") or {}).get("message_id")
            q = by_message.get(str(ref)) if ref else by_message.get(m.group(1))
            if q is None:
                continue
            q.first_response = q.first_response or r.at
            what = "answer" if body.get("components") else classify(body.get("content", ""))
            q.replies.append((r.at, what))


async def run_load(args: argparse.Namespace, settings: Settings) -> dict:
    users = [f"user{i}" for i in range(args.users)]
    fake = TimedFakeDiscord(members=users, admins=(), channels=("general",)).start()
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    settings = settings.model_copy(update={"discord_guild_id": fake.guild_id})
    service = build_service(settings, build_if_missing=False)
    for q in QUESTIONS:  # warm caches like a bot that has been up a while
        service.answer(q)
    feedback = FeedbackStore(path=settings.index_dir / "feedback.sqlite3")
    limiter = Limiter.from_settings(settings)
    bot = make_bot(
        service=service,
        settings=settings,
        feedback=feedback,
        limiter=limiter,
        guild_ready_timeout=FAST_GUILD_READY,
    )
    general = fake.channel_ids["general"]
    max_lag = 0.0

    async def ticker() -> None:
        nonlocal max_lag
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            max_lag = max(max_lag, time.perf_counter() - started - 0.01)

    def fire() -> list[Question]:
        out = []
        for i in range(args.questions):
            user, text = users[i % len(users)], QUESTIONS[i % len(QUESTIONS)]
            at = time.perf_counter()
            if i % 2 == 0:
                payload = fake.send_slash("ask", {"question": text}, user=user, channel_id=general)
                out.append(Question("slash", user, at, payload["token"]))
            else:
                msg = fake.send_message(general, user, f"<@{fake.bot_id}> {text}")
                out.append(Question("mention", user, at, msg["id"]))
        return out

    try:
        async with running_client(bot, fake.token):
            tick = asyncio.create_task(ticker())
            started = time.perf_counter()
            questions = await asyncio.to_thread(fire)  # from another thread, as users would
            fired = time.perf_counter() - started
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                replied = sum(1 for m in fake.message_requests() if m.status < 300)
                if replied >= len(questions) and limiter.active == 0:
                    break
            await asyncio.sleep(0.5)  # let any stray duplicate show up before counting
            tick.cancel()
    finally:
        feedback.close()
        fake.stop()

    tally(fake, questions)
    counts = defaultdict(int)
    for q in questions:
        counts[len(q.replies)] += 1
    kinds = defaultdict(int)
    for q in questions:
        for _, what in q.replies:
            kinds[what] += 1
    to_reply = [q.replies[0][0] - q.sent_at for q in questions if q.replies]
    to_answer = [t - q.sent_at for q in questions for t, what in q.replies if what == "answer"]
    to_first = [(q.first_response or q.replies[0][0]) - q.sent_at for q in questions if q.replies]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_now = next(
        (int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")), 0
    )
    return {
        "questions": len(questions),
        "users": args.users,
        "fired_in_s": round(fired, 3),
        "exactly_one_reply": counts.get(1, 0),
        "reply_count_histogram": dict(sorted(counts.items())),
        "reply_kinds": dict(kinds),
        "p50_reply_s": round(percentile(to_reply, 50), 3),
        "p95_reply_s": round(percentile(to_reply, 95), 3),
        "max_reply_s": round(max(to_reply, default=0), 3),
        "p50_answer_s": round(percentile(to_answer, 50), 3),
        "p95_answer_s": round(percentile(to_answer, 95), 3),
        "p95_first_response_s": round(percentile(to_first, 95), 3),
        "max_loop_lag_ms": round(max_lag * 1000, 1),
        "rss_mb": round(rss_now / 1024, 1),
        "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cooldown_s": settings.user_cooldown_s,
        "max_concurrent": settings.max_concurrent_answers,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument(
        "--cooldown", type=float, default=Settings.model_fields["user_cooldown_s"].default
    )
    ap.add_argument(
        "--max-concurrent",
        type=int,
        default=Settings.model_fields["max_concurrent_answers"].default,
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        from index.pipeline import reindex

        settings = Settings(
            _env_file=None,
            corpus_dir=REPO_ROOT / "corpus",
            index_dir=Path(tmp) / "index",
            user_cooldown_s=args.cooldown,
            max_concurrent_answers=args.max_concurrent,
        )
        reindex(settings)
        result = asyncio.run(run_load(args, settings))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    ok = result["exactly_one_reply"] == result["questions"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
