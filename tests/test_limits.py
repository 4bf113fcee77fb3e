"""Limiter: per-user cooldown on an injected clock, global concurrency bound."""

from __future__ import annotations

import asyncio

import pytest

from bot.discord.limits import Limiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cooldown_per_user():
    clock = Clock()
    lim = Limiter(cooldown_s=10, max_concurrent=5, clock=clock)
    assert await lim.admit(1) is None
    lim.release()
    refusal = await lim.admit(1)
    assert refusal is not None and refusal.reason == "cooldown"
    assert refusal.retry_after == pytest.approx(10)
    assert "10 s" in refusal.message
    assert await lim.admit(2) is None  # other users are unaffected
    lim.release()
    clock.now += 9.5
    assert (await lim.admit(1)).retry_after == pytest.approx(0.5)
    clock.now += 0.5
    assert await lim.admit(1) is None


async def test_concurrency_bound_is_non_blocking():
    lim = Limiter(cooldown_s=0, max_concurrent=2, clock=Clock())
    assert await lim.admit(1) is None and await lim.admit(2) is None
    busy = await lim.admit(3)
    assert busy is not None and busy.reason == "busy" and "busy" in busy.message
    lim.release()
    assert await lim.admit(3) is None
    assert lim.active == 2


async def test_busy_refusal_does_not_start_cooldown():
    clock = Clock()
    lim = Limiter(cooldown_s=30, max_concurrent=1, clock=clock)
    assert await lim.admit(1) is None
    assert (await lim.admit(2)).reason == "busy"
    lim.release()
    assert await lim.admit(2) is None  # user 2 was not put on cooldown by the busy refusal


async def test_zero_cooldown_and_bad_release():
    lim = Limiter(cooldown_s=0, max_concurrent=1, clock=Clock())
    assert await lim.admit(1) is None
    lim.release()
    assert await lim.admit(1) is None
    lim.release()
    with pytest.raises(RuntimeError):
        lim.release()
    with pytest.raises(ValueError):
        Limiter(cooldown_s=0, max_concurrent=0)


async def test_old_users_are_forgotten():
    clock = Clock()
    lim = Limiter(cooldown_s=1, max_concurrent=1, clock=clock)
    for user in range(10_001):
        assert await lim.admit(user) is None
        lim.release()
        clock.now += 0.0001
    clock.now += 5
    assert await lim.admit(99_999) is None
    assert len(lim._last) == 1


async def test_a_burst_waits_briefly_for_a_slot_instead_of_being_refused():
    lim = Limiter(cooldown_s=0, max_concurrent=1, queue_wait_s=5, clock=Clock())
    assert await lim.admit(1) is None
    waiting = asyncio.create_task(lim.admit(2))
    await asyncio.sleep(0)
    assert not waiting.done()  # queued, not refused
    lim.release()
    assert await waiting is None
    assert lim.active == 1


async def test_waiting_longer_than_queue_wait_is_busy_and_frees_the_cooldown():
    clock = Clock()
    lim = Limiter(cooldown_s=30, max_concurrent=1, queue_wait_s=0.01, clock=clock)
    assert await lim.admit(1) is None
    busy = await lim.admit(2)
    assert busy is not None and busy.reason == "busy"
    lim.release()
    assert await lim.admit(2) is None  # the busy refusal gave user 2's cooldown back


async def test_a_waiting_user_cannot_queue_a_second_question():
    lim = Limiter(cooldown_s=30, max_concurrent=1, queue_wait_s=5, clock=Clock())
    assert await lim.admit(1) is None
    waiting = asyncio.create_task(lim.admit(2))
    await asyncio.sleep(0)
    second = await lim.admit(2)
    assert second is not None and second.reason == "cooldown"
    lim.release()
    assert await waiting is None


async def test_acquire_waits_for_a_slot_without_cooldown_or_refusal():
    lim = Limiter(cooldown_s=3600, max_concurrent=1, queue_wait_s=0.0, clock=Clock())
    assert await lim.admit(1) is None  # user 1's slot; their cooldown starts
    waiter = asyncio.create_task(lim.acquire())  # a forum post: waits, however long
    await asyncio.sleep(0.05)
    assert not waiter.done() and lim.active == 1
    busy = await lim.admit(2)  # interactive questions are still refused at once
    assert busy is not None and busy.reason == "busy"
    lim.release()
    await asyncio.wait_for(waiter, 1)
    assert lim.active == 1
    lim.release()
    await lim.acquire()  # no per-user cooldown applies
    lim.release()
    assert lim.active == 0
