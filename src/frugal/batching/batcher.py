"""A generic async batcher: items wait up to a window, then go to a handler together.

    submit(item) ──▶ queue ──(window after the first item, or max_size)──▶ handler(batch)
                                                                              │
    caller ◀──────────────────── its own result, by position ◀───────────────┘

Contract:
- the window starts when the first item of a batch arrives (`time.monotonic`); a batch leaves
  as soon as it holds ``max_size`` units (an item may count several units: a request carrying a
  list of prompts); a window of 0 sends every item alone (batching off);
- at most ``max_in_flight`` batches are out at once; meanwhile items wait, so batches grow
  with the load instead of queueing for a connection;
- more than ``max_queue`` waiting units: `submit` raises `OverloadedError` at once (429);
- an item that waited past its deadline is never sent and raises `QueueTimeoutError` (504);
- a caller that goes away (its task is cancelled) before its batch leaves is dropped from it;
- the handler returns one result per item, in order; an exception in a result's place fails
  only that item, an exception raised by the handler fails the whole batch, and a wrong number
  of results fails the whole batch loudly;
- every future is settled exactly once; `aclose` sends what is queued (or fails it, with
  ``drain=False``) and refuses new items.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from frugal.errors import OverloadedError, QueueTimeoutError, ShuttingDownError
from frugal.futures import settle_error, settle_result

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Item(Generic[T, R]):
    value: T
    units: int
    future: asyncio.Future[R]
    enqueued_at: float
    deadline: float | None


@dataclass
class BatchStats:
    """What the batcher did, for metrics: ``items`` submitted (a gateway request each) and
    ``units`` they carried (its prompts or inputs: what a batch's size counts)."""

    batches: int = 0
    items: int = 0
    units: int = 0
    dropped_cancelled: int = 0
    expired: int = 0
    rejected_full: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)  # size (units) -> batches, ever
    queue_wait_s: list[float] = field(default_factory=list)  # waits of the last 1,000 items


class Batcher(Generic[T, R]):
    """Batches items for one ``handler``; see the module docstring for the contract."""

    def __init__(
        self,
        handler: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        window_s: float,
        max_size: int,
        max_queue: int,
        timeout_s: float | None = None,
        max_in_flight: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "batcher",
        on_batch: Callable[[int, list[float]], None] | None = None,
        stats: BatchStats | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        if max_size < 1 or max_queue < 1 or window_s < 0:
            raise ValueError("max_size and max_queue must be >= 1 and window_s >= 0")
        self._handler = handler
        self._on_batch = on_batch  # (units, each item's queue wait in s), as a batch leaves
        self._window_s = window_s
        self._max_size = max_size
        self._max_queue = max_queue
        self._timeout_s = timeout_s
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._clock = clock
        self._name = name
        self._queue: deque[_Item[T, R]] = deque()
        self._queued_units = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._on_idle = on_idle  # nothing queued or in flight any more: the owner may forget it
        self.stats = stats if stats is not None else BatchStats()  # shareable among batchers

    @property
    def idle(self) -> bool:
        return not self._queue and not self._tasks and self._timer is None

    async def submit(self, value: T, *, units: int = 1) -> R:
        """Queue ``value`` and wait for its own result."""
        if self._closed:
            raise ShuttingDownError("The gateway is shutting down.")
        if self._queued_units + units > self._max_queue and self._queue:
            self.stats.rejected_full += 1
            raise OverloadedError(
                f"Too many requests are waiting upstream ({self._queued_units} queued).",
                retry_after_s=max(1.0, self._window_s * 2),
            )
        loop = asyncio.get_running_loop()
        now = self._clock()
        deadline = None if self._timeout_s is None else now + self._timeout_s
        item: _Item[T, R] = _Item(value, units, loop.create_future(), now, deadline)
        self._queue.append(item)
        self._queued_units += units
        self._send_ready()
        return await item.future

    def _send_ready(self) -> None:
        """Send every batch that is due and has a slot: a full one, or the head batch whose
        window is over. Without a free slot items stay queued, so batches grow with the load."""
        while self._queue and self._has_slot():
            head_due = self._clock() >= self._queue[0].enqueued_at + self._window_s
            if not (head_due or self._queued_units >= self._max_size):
                break
            batch = self._take()
            if batch:
                self._in_flight += 1
                self._spawn(self._send(batch))
        if self._queue and self._timer is None and self._has_slot():
            # The window runs from the arrival of the batch's first item, not from now.
            delay = max(0.0, self._queue[0].enqueued_at + self._window_s - self._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._window_over)

    def _has_slot(self) -> bool:
        return self._max_in_flight is None or self._in_flight < self._max_in_flight

    def _window_over(self) -> None:
        self._timer = None
        self._send_ready()
        self._tell_if_idle()

    def _tell_if_idle(self) -> None:
        if self.idle and self._on_idle is not None:
            self._on_idle()

    def _take(self) -> list[_Item[T, R]]:
        """Take items from the head up to ``max_size`` units, skipping the gone and expired."""
        batch: list[_Item[T, R]] = []
        waits: list[float] = []
        units = 0
        now = self._clock()
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # the caller went away: no upstream cost
                self._pop()
                self.stats.dropped_cancelled += 1
                continue
            if head.deadline is not None and now > head.deadline:
                self._pop()
                self.stats.expired += 1
                settle_error(
                    head.future,
                    QueueTimeoutError("The request waited too long to be sent upstream."),
                )
                continue
            if batch and (units + head.units > self._max_size or self._window_s == 0):
                break
            batch.append(self._pop())
            units += head.units
            waits.append(now - head.enqueued_at)
        self.stats.queue_wait_s.extend(waits)
        del self.stats.queue_wait_s[:-1000]
        if batch and self._on_batch is not None:
            self._on_batch(units, waits)
        return batch

    def _pop(self) -> _Item[T, R]:
        item = self._queue.popleft()
        self._queued_units -= item.units
        return item

    async def _send(self, batch: list[_Item[T, R]]) -> None:
        try:
            await self._deliver(batch)
        finally:
            self._in_flight -= 1
            if not self._closed:
                self._send_ready()

    async def _deliver(self, batch: list[_Item[T, R]]) -> None:
        self.stats.batches += 1
        self.stats.items += len(batch)
        units = sum(item.units for item in batch)
        self.stats.units += units
        self.stats.batch_sizes[units] += 1
        try:
            results = await self._handler([item.value for item in batch])
        except BaseException as exc:  # the handler failed: every caller of this batch learns why
            for item in batch:
                settle_error(item.future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if len(results) != len(batch):
            error = RuntimeError(
                f"{self._name}: handler returned {len(results)} results for {len(batch)} items"
            )
            logger.error("%s", error)
            for item in batch:
                settle_error(item.future, error)
            return
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                settle_error(item.future, result)
            else:
                settle_result(item.future, result)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s: a batch task failed", self._name, exc_info=task.exception())
        self._tell_if_idle()

    async def aclose(self, *, drain: bool = True) -> None:
        """Refuse new items; send (``drain``) or fail what is queued; wait for batches in flight."""
        self._closed = True
        if drain:
            while self._queue:
                batch = self._take()
                if batch:
                    self._in_flight += 1
                    self._spawn(self._send(batch))
        else:
            while self._queue:
                settle_error(self._pop().future, ShuttingDownError("The gateway is shutting down."))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
