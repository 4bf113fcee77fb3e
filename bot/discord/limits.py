"""Per-user cooldown and a global bound on answers in flight.

Both checks are non-blocking: a user over a limit gets a short message at once instead of
waiting in a queue. Used from the event loop only, so no locking is needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Refusal:
    reason: Literal["cooldown", "busy"]
    retry_after: float  # seconds

    @property
    def message(self) -> str:
        if self.reason == "cooldown":
            return f"You're asking quickly; try again in {math.ceil(self.retry_after)} s."
        return "I'm busy answering other questions; try again in a moment."


class Limiter:
    def __init__(
        self,
        *,
        cooldown_s: float,
        max_concurrent: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        self.cooldown_s = cooldown_s
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._last: dict[int, float] = {}
        self.active = 0

    def admit(self, user_id: int) -> Refusal | None:
        """None = go ahead (call `release()` when done); else why not.

        A busy refusal does not start the user's cooldown, so they can retry soon.
        """
        now = self._clock()
        last = self._last.get(user_id)
        if last is not None and now - last < self.cooldown_s:
            return Refusal("cooldown", self.cooldown_s - (now - last))
        if self.active >= self.max_concurrent:
            return Refusal("busy", 1.0)
        self.active += 1
        self._last[user_id] = now
        if len(self._last) > 10_000:  # forget users whose cooldown has long passed
            self._last = {u: t for u, t in self._last.items() if now - t < self.cooldown_s}
        return None

    def release(self) -> None:
        if self.active <= 0:
            raise RuntimeError("release() without a matching admit()")
        self.active -= 1
