"""Failing open, fast: a timeout on every store call and a circuit breaker around a shared store.

A cache is an optimisation. When its server is slow or gone, each request should lose at most
a short timeout once, and then none at all: after ``failures`` failures in a row (a timeout
counts only when this process's event loop was keeping up) the breaker
opens and calls fail at once with `StoreUnavailable` (a miss) without touching the server.
After ``reset_s`` one call is let through as a probe; its success closes the breaker, its
failure keeps it open for another ``reset_s``. The breaker logs "opened" and "closed" once each
per outage, never once per request.

Calls overlap, so each one carries the breaker's epoch from when it was let through: an epoch
ends whenever the breaker opens. An outcome from an earlier epoch (a call that was already in
flight when the breaker opened, ending late) changes nothing: only the probe closes the breaker.

    closed ── failures in a row ──▶ open ── reset_s later ──▶ half-open (one probe)
      ▲                               ▲                          │
      └──────── probe succeeds ───────┼──────────────────────────┤
                                      └──── probe fails ─────────┘
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np

from frugal.cache.store import BASE_MODEL_ID, Entry, Match, StoreStats, VectorStore
from frugal.errors import CacheStoreError, StoreUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Admin calls (sweeps, flush, listings) may take longer than a lookup; they still end.
ADMIN_TIMEOUT_S = 30.0


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Counts failures in a row; see the module's diagram. ``clock`` is monotonic seconds."""

    def __init__(
        self,
        *,
        failures: int = 5,
        reset_s: float = 5.0,
        name: str = "cache store",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("failures must be >= 1 and reset_s > 0")
        self.failures = failures
        self.reset_s = reset_s
        self.name = name
        self.opened = 0  # times it opened (a failed probe does not count again)
        self.closed = 0  # times it closed again
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._in_a_row = 0
        self._opened_at = 0.0
        self._epoch = 0

    @property
    def state(self) -> BreakerState:
        return self._state

    def admit(self) -> int | None:
        """A ticket for a call that may go to the store now (in half-open: only the one probe),
        to be handed back with its outcome; ``None`` when the call must fail fast."""
        if self._state is BreakerState.CLOSED:
            return self._epoch
        if self._state is BreakerState.OPEN and self._clock() >= self._opened_at + self.reset_s:
            self._state = BreakerState.HALF_OPEN
            return self._epoch
        return None

    def succeeded(self, ticket: int) -> None:
        if ticket != self._epoch:
            return  # in flight since before the breaker opened: not the probe
        self._in_a_row = 0
        if self._state is BreakerState.HALF_OPEN:
            self._state = BreakerState.CLOSED
            self.closed += 1
            logger.warning("%s circuit breaker closed: the store answers again", self.name)

    def failed(self, reason: str, ticket: int) -> None:
        if ticket != self._epoch:
            return  # the breaker has opened since: this failure is already accounted for
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            logger.debug("%s probe failed (%s); the breaker stays open", self.name, reason)
            return
        self._in_a_row += 1
        if self._state is BreakerState.CLOSED and self._in_a_row >= self.failures:
            self.trip(reason)

    def undecided(self, ticket: int) -> None:
        """A call ended neither way (cancelled, bad input): a probe is let through again."""
        if ticket == self._epoch and self._state is BreakerState.HALF_OPEN:
            self._state = BreakerState.OPEN  # opened_at unchanged: the next call probes

    def _open(self) -> None:
        self._state, self._opened_at = BreakerState.OPEN, self._clock()
        self._epoch += 1

    def trip(self, reason: str) -> None:
        """Open now (e.g. the store was unreachable at start-up)."""
        if self._state is BreakerState.CLOSED:
            self.opened += 1
            logger.warning(
                "%s circuit breaker opened (%s): the cache is skipped, requests go upstream; "
                "probing every %.1f s",
                self.name,
                reason,
                self.reset_s,
            )
        self._open()


class GuardedStore:
    """A `VectorStore` that bounds every call of ``store`` by ``timeout_s`` (lookups, puts,
    hits) or `ADMIN_TIMEOUT_S` (the rest), behind ``breaker``. Failures, timeouts included,
    raise `CacheStoreError`; an open breaker raises `StoreUnavailable` without calling."""

    def __init__(self, store: VectorStore, *, timeout_s: float, breaker: CircuitBreaker) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.breaker = breaker

    async def get_exact(
        self,
        *,
        scope: str,
        prompt_hash: str,
        now: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> Entry | None:
        return await self._call(
            self.store.get_exact(
                scope=scope, prompt_hash=prompt_hash, now=now, partition=partition, model=model
            )
        )

    async def search(
        self,
        *,
        scope: str,
        vector: np.ndarray,
        k: int,
        min_similarity: float,
        now: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> list[Match]:
        return await self._call(
            self.store.search(
                scope=scope,
                vector=vector,
                k=k,
                min_similarity=min_similarity,
                now=now,
                partition=partition,
                model=model,
            )
        )

    async def put(self, entry: Entry) -> None:
        await self._call(self.store.put(entry))

    async def record_hit(self, entry_id: str, *, now: float) -> None:
        await self._call(self.store.record_hit(entry_id, now=now))

    async def delete(self, entry_ids: list[str]) -> int:
        return await self._call(self.store.delete(entry_ids), admin=True)

    async def delete_where(self, *, partition: str | None = None, scope: str | None = None) -> int:
        return await self._call(
            self.store.delete_where(partition=partition, scope=scope), admin=True
        )

    async def delete_similar(
        self,
        *,
        vector: np.ndarray,
        min_similarity: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> int:
        return await self._call(
            self.store.delete_similar(
                vector=vector, min_similarity=min_similarity, partition=partition, model=model
            ),
            admin=True,
        )

    async def flush(self) -> int:
        return await self._call(self.store.flush(), admin=True)

    async def list_entries(
        self, *, offset: int, limit: int, partition: str | None = None, now: float
    ) -> list[Entry]:
        return await self._call(
            self.store.list_entries(offset=offset, limit=limit, partition=partition, now=now),
            admin=True,
        )

    async def other_models(self, *, model: str, limit: int, now: float) -> tuple[list[Entry], int]:
        return await self._call(
            self.store.other_models(model=model, limit=limit, now=now), admin=True
        )

    async def reembed(self, changes: list[tuple[Entry, np.ndarray]], *, model: str) -> int:
        return await self._call(self.store.reembed(changes, model=model), admin=True)

    async def stats(self) -> StoreStats:
        return await self._call(self.store.stats(), admin=True)

    async def aclose(self) -> None:
        await self.store.aclose()

    async def _call(self, call: Coroutine[Any, Any, T], *, admin: bool = False) -> T:
        """Await ``call`` (a store method's coroutine, not started) under the timeout and the
        breaker; when the breaker refuses, ``call`` is closed unstarted."""
        ticket = self.breaker.admit()
        if ticket is None:
            call.close()
            raise StoreUnavailable(f"the {self.breaker.name} circuit breaker is open")
        timeout_s = ADMIN_TIMEOUT_S if admin else self.timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                result = await call
        except TimeoutError as exc:
            # A timer that fires long after its deadline means this process's own event loop
            # was behind (saturated by other work), and the store's answer may be sitting
            # unread. Blaming the store would open the breaker under load, and a cache skipped
            # makes every request dearer: the request takes its miss, the breaker no verdict.
            if loop.time() - deadline > timeout_s / 2:
                self.breaker.undecided(ticket)
            else:
                self.breaker.failed("timed out", ticket)
            raise CacheStoreError(f"the {self.breaker.name} did not answer in time") from exc
        except CacheStoreError as exc:
            self.breaker.failed(str(exc), ticket)
            raise
        except BaseException:
            self.breaker.undecided(ticket)
            raise
        self.breaker.succeeded(ticket)
        return result
