"""Per-user cooldown and a global bound on answers in flight.

A user on cooldown gets a short message at once. When all answer slots are taken, a question
waits up to `queue_wait_s` for one (answers take tens of milliseconds offline, so a burst is
absorbed instead of refused), then gets a short "busy" message: never silence, never an
unbounded queue. Used from the event loop only, so no locking is needed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.errors import user_text
from bot.settings import BotSettings


@dataclass(frozen=True)
class Refusal:
    reason: Literal["cooldown", "busy"]
    retry_after: float  # seconds

    @property
    def message(self) -> str:
        if self.reason == "cooldown":
            return user_text("cooldown", seconds=math.ceil(self.retry_after))
        return user_text("busy")


class Limiter:
    def __init__(
        self,
        *,
        cooldown_s: float,
        max_concurrent: int,
        queue_wait_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        self.cooldown_s = cooldown_s
        self.max_concurrent = max_concurrent
        self.queue_wait_s = queue_wait_s
        self._clock = clock
        self._last: dict[int, float] = {}
        self._freed = asyncio.Event()
        self.active = 0

    @classmethod
    def from_settings(cls, settings: BotSettings) -> Limiter:
        return cls(
            cooldown_s=settings.user_cooldown_s,
            max_concurrent=settings.max_concurrent_answers,
            queue_wait_s=settings.answer_queue_wait_s,
        )

    async def admit(self, user_id: int) -> Refusal | None:
        """None = go ahead (call `release()` when done); else why not.

        A waiting question holds the user's cooldown (one question at a time per user); a
        busy refusal gives it back, so they can retry soon.
        """
        now = self._clock()
        last = self._last.get(user_id)
        if last is not None and now - last < self.cooldown_s:
            return Refusal("cooldown", self.cooldown_s - (now - last))
        self._last[user_id] = now
        if not await self._slot():
            if last is None:
                del self._last[user_id]
            else:
                self._last[user_id] = last
            return Refusal("busy", 1.0)
        self.active += 1  # no await since _slot() saw a free slot: nobody else took it
        if len(self._last) > 10_000:  # forget users whose cooldown has long passed
            self._last = {u: t for u, t in self._last.items() if now - t < self.cooldown_s}
        return None

    async def _slot(self) -> bool:
        """Wait (up to queue_wait_s) until a slot is free; False if none came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.queue_wait_s
        while self.active >= self.max_concurrent:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._freed.clear()  # only after seeing "full", so no release is lost
            try:
                await asyncio.wait_for(self._freed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def acquire(self) -> None:
        """Wait, however long, for an answer slot (no per-user cooldown): for work nobody is
        waiting on interactively, such as forum posts. Call `release()` when done."""
        while self.active >= self.max_concurrent:
            self._freed.clear()
            await self._freed.wait()
        self.active += 1

    def release(self) -> None:
        if self.active <= 0:
            raise RuntimeError("release() without a matching admit()")
        self.active -= 1
        self._freed.set()
