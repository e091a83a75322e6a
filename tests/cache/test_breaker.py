"""The circuit breaker and the guarded store: fail fast, probe, close, log once."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
import pytest

from frugal.cache.breaker import (
    BreakerState,
    CircuitBreaker,
    GuardedStore,
    StoreUnavailable,
)
from frugal.cache.store import StoreStats
from frugal.errors import CacheStoreError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FlakyStore:
    """Answers `stats` and `search`, or fails, or hangs, as told; counts the calls it got."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0

    async def _answer(self, value: Any) -> Any:
        self.calls += 1
        if self.mode == "down":
            raise CacheStoreError("connection refused")
        if self.mode == "slow":
            await asyncio.sleep(10)
        return value

    async def stats(self) -> StoreStats:
        return await self._answer(StoreStats(entries=1, evictions=0, expirations=0))

    async def search(self, **_: Any) -> list[Any]:
        return await self._answer([])

    async def aclose(self) -> None:
        pass


def guarded(store: FlakyStore, clock: Clock, *, failures: int = 3) -> GuardedStore:
    breaker = CircuitBreaker(failures=failures, reset_s=5.0, clock=clock, name="test store")
    return GuardedStore(store, timeout_s=0.05, breaker=breaker)  # type: ignore[arg-type]


async def search(store: GuardedStore) -> list[Any]:
    vector = np.zeros(4, dtype=np.float32)
    return await store.search(scope="s", vector=vector, k=1, min_similarity=0.9, now=0.0)


async def test_failures_in_a_row_open_it_and_then_nothing_is_called() -> None:
    clock, store = Clock(), FlakyStore()
    guard = guarded(store, clock)
    store.mode = "down"
    for _ in range(3):
        with pytest.raises(CacheStoreError):
            await search(guard)
    assert guard.breaker.state is BreakerState.OPEN
    for _ in range(10):
        with pytest.raises(StoreUnavailable):
            await search(guard)
    assert store.calls == 3


async def test_a_success_resets_the_count() -> None:
    clock, store = Clock(), FlakyStore()
    guard = guarded(store, clock)
    for mode in ["down", "down", "ok", "down", "down"]:
        store.mode = mode
        try:
            await search(guard)
        except CacheStoreError:
            pass
    assert guard.breaker.state is BreakerState.CLOSED


async def test_a_slow_store_counts_as_a_failure() -> None:
    clock, store = Clock(), FlakyStore()
    guard = guarded(store, clock, failures=1)
    store.mode = "slow"
    with pytest.raises(CacheStoreError, match="in time"):
        await search(guard)
    assert guard.breaker.state is BreakerState.OPEN


async def test_a_timeout_caused_by_our_own_busy_loop_does_not_count() -> None:
    """When the event loop itself is behind, the timer fires late and the store is not blamed:
    under load, opening the breaker would make every request dearer."""

    class BlockedLoopStore(FlakyStore):
        async def search(self, **_: Any) -> list[Any]:
            time.sleep(0.2)  # other work holding the loop, well past the 50 ms timeout
            await asyncio.sleep(1)
            return []

    clock, store = Clock(), BlockedLoopStore()
    guard = guarded(store, clock, failures=1)
    with pytest.raises(CacheStoreError, match="in time"):
        await search(guard)  # the request still takes its miss...
    assert guard.breaker.state is BreakerState.CLOSED  # ...but the breaker stays closed


async def test_one_probe_after_the_reset_time_closes_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="frugal.cache.breaker")
    clock, store = Clock(), FlakyStore()
    guard = guarded(store, clock, failures=1)
    store.mode = "down"
    with pytest.raises(CacheStoreError):
        await search(guard)
    clock.now += 5.0
    with pytest.raises(CacheStoreError):
        await search(guard)  # the probe, still down: open for another 5 s
    assert (guard.breaker.state, store.calls) == (BreakerState.OPEN, 2)
    clock.now += 4.9
    with pytest.raises(StoreUnavailable):
        await search(guard)
    store.mode = "ok"
    clock.now += 0.1
    assert await search(guard) == []  # the probe succeeds
    assert guard.breaker.state is BreakerState.CLOSED
    assert await search(guard) == []
    assert (guard.breaker.opened, guard.breaker.closed) == (1, 1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2
    assert "opened" in warnings[0] and "closed" in warnings[1]


async def test_while_half_open_only_the_probe_goes_through() -> None:
    clock, store = Clock(), FlakyStore()
    guard = guarded(store, clock, failures=1)
    guard.breaker.trip("unreachable at start-up")
    clock.now += 5.0
    store.mode = "slow"
    probe = asyncio.create_task(search(guard))
    await asyncio.sleep(0)
    with pytest.raises(StoreUnavailable):
        await search(guard)
    with pytest.raises(CacheStoreError):
        await probe
    assert store.calls == 1


async def test_a_cancelled_probe_lets_the_next_call_probe() -> None:
    clock, store = Clock(), FlakyStore()
    guard = guarded(store, clock, failures=1)
    guard.breaker.trip("test")
    clock.now += 5.0
    store.mode = "slow"
    probe = asyncio.create_task(search(guard))
    await asyncio.sleep(0.01)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    store.mode = "ok"
    assert await search(guard) == []
    assert guard.breaker.state is BreakerState.CLOSED


async def test_a_call_that_ends_late_neither_closes_nor_counts() -> None:
    """Calls overlap: one in flight when the breaker opens, answering after, is not the probe."""
    clock, store = Clock(), FlakyStore()
    guard = guarded(store, clock, failures=1)
    breaker = guard.breaker
    early = breaker.admit()  # let through while closed
    assert early is not None
    breaker.failed("timed out", breaker.admit() or 0)  # another call fails: open
    breaker.succeeded(early)  # the early call answers, late
    assert breaker.state is BreakerState.OPEN and breaker.closed == 0
    clock.now += 5.0
    probe = breaker.admit()
    assert probe is not None and breaker.state is BreakerState.HALF_OPEN
    breaker.failed("stale", early)  # a late failure does not fail the probe either
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.succeeded(probe)
    assert (breaker.state, breaker.opened, breaker.closed) == (BreakerState.CLOSED, 1, 1)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)
    with pytest.raises(ValueError):
        CircuitBreaker(reset_s=0)
