"""Limiter: per-user cooldown on an injected clock, global concurrency bound."""

from __future__ import annotations

import pytest

from bot.discord.limits import Limiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cooldown_per_user():
    clock = Clock()
    lim = Limiter(cooldown_s=10, max_concurrent=5, clock=clock)
    assert lim.admit(1) is None
    lim.release()
    refusal = lim.admit(1)
    assert refusal is not None and refusal.reason == "cooldown"
    assert refusal.retry_after == pytest.approx(10)
    assert "10 s" in refusal.message
    assert lim.admit(2) is None  # other users are unaffected
    lim.release()
    clock.now += 9.5
    assert lim.admit(1).retry_after == pytest.approx(0.5)
    clock.now += 0.5
    assert lim.admit(1) is None


def test_concurrency_bound_is_non_blocking():
    lim = Limiter(cooldown_s=0, max_concurrent=2, clock=Clock())
    assert lim.admit(1) is None and lim.admit(2) is None
    busy = lim.admit(3)
    assert busy is not None and busy.reason == "busy" and "busy" in busy.message
    lim.release()
    assert lim.admit(3) is None
    assert lim.active == 2


def test_busy_refusal_does_not_start_cooldown():
    clock = Clock()
    lim = Limiter(cooldown_s=30, max_concurrent=1, clock=clock)
    assert lim.admit(1) is None
    assert lim.admit(2).reason == "busy"
    lim.release()
    assert lim.admit(2) is None  # user 2 was not put on cooldown by the busy refusal


def test_zero_cooldown_and_bad_release():
    lim = Limiter(cooldown_s=0, max_concurrent=1, clock=Clock())
    assert lim.admit(1) is None
    lim.release()
    assert lim.admit(1) is None
    lim.release()
    with pytest.raises(RuntimeError):
        lim.release()
    with pytest.raises(ValueError):
        Limiter(cooldown_s=0, max_concurrent=0)


def test_old_users_are_forgotten():
    clock = Clock()
    lim = Limiter(cooldown_s=1, max_concurrent=1, clock=clock)
    for user in range(10_001):
        assert lim.admit(user) is None
        lim.release()
        clock.now += 0.0001
    clock.now += 5
    assert lim.admit(99_999) is None
    assert len(lim._last) == 1
