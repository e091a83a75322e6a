"""The batches of a gateway: made, read, listed, cancelled, and resumed at start-up.

Every batch and file belongs to the tenant that made it: another tenant's id is not found, as
is an unknown one (`NotFoundError`: 404s). Each running batch is a task of its
own (`frugal.deferred.runner`); `resume` starts one for every batch a previous process left
unfinished, and `aclose` stops them all where they are (they resume at the next start). A batch
runs in one process at a time (`BatchStore.claim`): the workers of `frugal serve --workers`
share the data dir, and the first to claim a batch runs it. Only that process can cancel it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from frugal.deferred.lines import BATCH_URLS
from frugal.deferred.runner import BatchRunner, RunnerParts
from frugal.deferred.store import BATCH_PREFIX, FILE_PREFIX, BatchRecord, Claim, FileRecord
from frugal.errors import InvalidRequestError, NotFoundError
from frugal.ids import random_hex
from frugal.observability.batch_metrics import BatchMetrics

logger = logging.getLogger(__name__)

WINDOW_S = {"24h": 24 * 3600}


class BatchService:
    def __init__(
        self, parts: RunnerParts, *, mode: str = "provider", metrics: BatchMetrics | None = None
    ) -> None:
        """``mode``: how new batches send their misses, ``provider`` or ``live``; ``metrics``
        counts every batch that ends."""
        self.parts = parts
        self.mode = mode
        self.metrics = metrics
        self.cost_usd = 0.0  # ended batches with known prices, since start
        self.live_cost_usd = 0.0
        self.store = parts.store
        self._runners: dict[str, BatchRunner] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.lines = Counter[str]()  # by result, since start: hit, folded, sent, failed
        self.finished = Counter[str]()  # batches by final status, since start

    # ---- files ------------------------------------------------------------------------------

    def file(self, tenant: str, file_id: str) -> FileRecord:
        found = self.store.file(file_id) if file_id.startswith(FILE_PREFIX) else None
        if found is None or found.tenant != tenant:
            raise NotFoundError(f"No such File object: {file_id}", param="id")
        return found

    # ---- batches ----------------------------------------------------------------------------

    def create(
        self,
        *,
        tenant: str,
        partition: str,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
    ) -> BatchRecord:
        if endpoint not in BATCH_URLS:
            raise InvalidRequestError(
                f"endpoint must be one of {', '.join(BATCH_URLS)}, not {endpoint!r}",
                param="endpoint",
            )
        if completion_window not in WINDOW_S:
            raise InvalidRequestError(
                f"completion_window must be '24h', not {completion_window!r}",
                param="completion_window",
            )
        file = self.file(tenant, input_file_id)
        if file.purpose != "batch":
            raise InvalidRequestError(
                f"File {input_file_id} has purpose {file.purpose!r}, not 'batch'.",
                param="input_file_id",
            )
        now = int(time.time())
        record = BatchRecord(
            id=f"{BATCH_PREFIX}{random_hex()}",
            tenant=tenant,
            partition=partition,
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=completion_window,
            created_at=now,
            created_ns=time.time_ns(),
            expires_at=now + WINDOW_S[completion_window],
            metadata=metadata,
            mode=self.mode,
        )
        self.store.save(record)
        self._start(record)
        return record

    def get(self, tenant: str, batch_id: str) -> BatchRecord:
        runner = self._runners.get(batch_id)
        found = runner.record if runner is not None else None
        if found is None and batch_id.startswith(BATCH_PREFIX):
            found = self.store.batch(batch_id)
        if found is None or found.tenant != tenant:
            raise NotFoundError(f"No such Batch object: {batch_id}", param="id")
        return found

    def listed(
        self, tenant: str, *, after: str | None, limit: int
    ) -> tuple[list[BatchRecord], bool]:
        """The tenant's batches, newest first, from the one after ``after``; and whether more
        follow."""
        mine = [record for record in self.store.batches() if record.tenant == tenant]
        if after is not None:
            ids = [record.id for record in mine]
            mine = mine[ids.index(after) + 1 :] if after in ids else []
        return mine[:limit], len(mine) > limit

    def cancel(self, tenant: str, batch_id: str) -> BatchRecord:
        record = self.get(tenant, batch_id)
        runner = self._runners.get(batch_id)
        if record.finished:
            raise InvalidRequestError(
                f"Batch {batch_id} is {record.status}: it cannot be cancelled.", param="id"
            )
        if runner is not None:
            runner.request_cancel()
            return runner.record
        return record

    # ---- running ----------------------------------------------------------------------------

    def resume(self) -> int:
        """Start every unfinished batch; how many there were."""
        unfinished = [record for record in self.store.batches() if not record.finished]
        for record in unfinished:
            logger.info("resuming batch %s (%s)", record.id, record.status)
            self._start(record)
        return len(unfinished)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def settled(self) -> None:
        """Wait for every running batch to end (tests, shutdown drains)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        by_status = Counter(record.status for record in self.store.batches())
        return {
            "mode": self.mode,
            "running": len(self._runners),
            "by_status": dict(by_status),
            "finished_since_start": dict(self.finished),
            "lines_since_start": dict(self.lines),
            "cost_usd_since_start": round(self.cost_usd, 8),
            "live_cost_usd_since_start": round(self.live_cost_usd, 8),
        }

    def _start(self, record: BatchRecord) -> None:
        claim = self.store.claim(record.id)
        if claim is None:
            logger.info("batch %s is run by another process of this gateway", record.id)
            return
        runner = BatchRunner(self.parts, record, on_end=self._count)
        self._runners[record.id] = runner
        task = asyncio.create_task(self._run(runner, claim), name=f"batch {record.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, runner: BatchRunner, claim: Claim) -> None:
        try:
            await runner.run()
        finally:
            self._runners.pop(runner.record.id, None)
            claim.release()

    def _count(self, record: BatchRecord) -> None:
        """Add an ended batch to the figures since start (`BatchRunner`'s ``on_end``)."""
        self.finished[record.status] += 1
        figures = record.figures
        lines: dict[str, int] = {}
        for result, name in (
            ("hit", "frugal_cache_hits"),
            ("folded", "frugal_duplicates_folded"),
            ("sent", "frugal_lines_sent"),
        ):
            if figures.get(name, "").isdigit():
                lines[result] = int(figures[name])
        lines["failed"] = record.request_counts.get("failed", 0)
        self.lines.update(lines)
        cost, live = (
            _money(figures.get("frugal_cost_usd")),
            _money(figures.get("frugal_live_cost_usd")),
        )
        if cost is not None and live is not None:
            self.cost_usd += cost
            self.live_cost_usd += live
        if self.metrics is not None:
            self.metrics.ended(record.status, lines, cost_usd=cost, live_cost_usd=live)


def _money(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # "unknown": a model without a price
