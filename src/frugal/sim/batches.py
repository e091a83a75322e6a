"""The batches a simulator holds, and the background task that runs each one.

A batch's task reads and checks its input file at once (`frugal.sim.batch_input`): ``failed``
with ``errors``, or ``in_progress``. Then it waits until ``batch_delay_s`` after the batch's
creation, answers its lines in input order (`frugal.sim.batch_lines`), and writes the output
file (the lines answered 200) and the error file (the others), each a file of purpose
``batch_output`` in the simulator's `FileStore`, or none when it would be empty. A batch still
running ``batch_expire_after_s`` after its creation (24 h when not set) ends ``expired``; a
cancelled one ends ``cancelled``: the lines they never answered go to the error file with the
code ``batch_expired`` or ``batch_cancelled``.

Only the newest `Batches.capacity` batches are kept; a forgotten batch's task is cancelled.
The tasks belong to the app: `Batches.aclose` cancels and awaits them on shutdown.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections import OrderedDict
from typing import Any

from frugal.sim.batch import Batch
from frugal.sim.batch_input import batch_error, read_input
from frugal.sim.batch_lines import answer_line, output_line, unanswered_line
from frugal.sim.config import SimConfig
from frugal.sim.files import FileStore, StoredFile
from frugal.sim.rejected import Rejected
from frugal.sim.response_store import ResponseStore
from frugal.sim.stats import Stats

logger = logging.getLogger(__name__)

COMPLETION_WINDOW_S = 24 * 3600.0
# How a batch that stops early ends: its status, and the error of each line it never ran.
EXPIRED = (
    "expired",
    "batch_expired",
    "This request could not be executed before the completion window expired.",
)
CANCELLED = (
    "cancelled",
    "batch_cancelled",
    "This request could not be executed before the batch was cancelled.",
)
_YIELD_EVERY = 64  # lines answered between returns to the event loop


class Batches:
    """Batches by id, oldest first, and the tasks running them."""

    def __init__(
        self,
        *,
        config: SimConfig,
        files: FileStore,
        responses: ResponseStore,
        stats: Stats,
        capacity: int = 1000,
    ) -> None:
        self.capacity = capacity
        self._config, self._files, self._responses, self._stats = config, files, responses, stats
        self._batches: OrderedDict[str, Batch] = OrderedDict()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def get(self, batch_id: str) -> Batch | None:
        return self._batches.get(batch_id)

    def listed(self) -> list[Batch]:
        """The batches held, oldest first."""
        return list(self._batches.values())

    @property
    def running(self) -> int:
        """How many batches' tasks have not ended."""
        return len(self._tasks)

    def expires_after_s(self) -> float:
        expire_s = self._config.batch_expire_after_s
        return COMPLETION_WINDOW_S if expire_s is None else expire_s

    def start(self, batch: Batch, source: StoredFile) -> None:
        """Hold ``batch`` and start running it on ``source``, its input file; forget the
        oldest batches beyond `capacity`."""
        self._batches[batch.id] = batch
        self._stats.batches += 1
        task = asyncio.create_task(self._run(batch, source), name=f"sim {batch.id}")
        self._tasks[batch.id] = task
        task.add_done_callback(lambda done: self._finished(batch.id, done))
        while len(self._batches) > self.capacity:
            oldest, _ = self._batches.popitem(last=False)
            if (running := self._tasks.get(oldest)) is not None:
                running.cancel()

    def cancel(self, batch: Batch) -> None:
        """Ask a batch to stop: ``cancelling`` now, ``cancelled`` once its task has written its
        files. Raises `Rejected` (409, as OpenAI answers) when it can no longer be cancelled."""
        if batch.status in ("validating", "in_progress"):
            batch.move("cancelling")
            batch.cancel_requested.set()
        elif batch.status != "cancelling":  # cancelling twice is harmless
            message = f"Cannot cancel a batch with status '{batch.status}'."
            raise Rejected("bad_request", 409, message)

    async def aclose(self) -> None:
        """Cancel the batches still running and wait for their tasks to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _finished(self, batch_id: str, task: asyncio.Task[None]) -> None:
        self._tasks.pop(batch_id, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("batch %s failed unexpectedly", batch_id, exc_info=exc)

    async def _run(self, batch: Batch, source: StoredFile) -> None:
        try:
            await self._lifecycle(batch, source)
        except Exception:
            # A client polling the batch sees it end rather than wait forever.
            message = "The simulator failed while running the batch."
            batch.errors = [batch_error("server_error", message, param=None, line=None)]
            batch.move("failed")
            raise

    async def _lifecycle(self, batch: Batch, source: StoredFile) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = began + self.expires_after_s()
        try:
            data = await asyncio.to_thread(source.path.read_bytes)
        except OSError:  # the file was deleted, or evicted, since the batch was created
            message = f"The input file {source.id} is no longer held."
            gone = batch_error("file_not_found", message, param="input_file_id", line=None)
            batch.errors = [gone]
            batch.move("failed")
            return
        checked = read_input(data, endpoint=batch.endpoint)
        if checked.errors:
            batch.errors = checked.errors
            batch.move("failed")
            return
        batch.model, batch.total = checked.model, len(checked.lines)
        if not batch.cancel_requested.is_set():
            batch.move("in_progress")

        # The delay is waited out unless the batch is cancelled or expires first; when the
        # deadline comes no later than the delay, it expires before answering anything.
        expires_first = self._config.batch_delay_s >= deadline - began
        wake_at = min(began + self._config.batch_delay_s, deadline)
        try:
            await asyncio.wait_for(batch.cancel_requested.wait(), max(0.0, wake_at - loop.time()))
        except TimeoutError:
            pass

        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        stop: tuple[str, str, str] | None = EXPIRED if expires_first else None
        answered = 0
        for line in checked.lines:
            if stop is None and batch.cancel_requested.is_set():
                stop = CANCELLED
            elif stop is None and loop.time() >= deadline:
                stop = EXPIRED
            if stop is not None:
                break
            answer = await answer_line(
                batch.endpoint,
                line.body,
                reject_containing=self._config.reject_containing,
                responses=self._responses,
            )
            answered += 1
            (outputs if answer.ok else errors).append(output_line(line.custom_id, answer))
            batch.completed += answer.ok
            batch.failed += not answer.ok
            batch.input_tokens += answer.input_tokens
            batch.output_tokens += answer.output_tokens
            counts = self._stats.batch_endpoints[batch.endpoint]
            counts["lines"] += 1
            counts["tokens"] += answer.tokens  # 0 for a refused line
            if answered % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        if stop is None and batch.cancel_requested.is_set():
            stop = CANCELLED  # asked while its last lines were answered
        if stop is not None:
            _, code, message = stop
            unanswered = checked.lines[answered:]
            errors.extend(unanswered_line(line.custom_id, code, message) for line in unanswered)
            batch.failed += len(unanswered)
        else:
            batch.move("finalizing")
        batch.output_file_id = await self._write(batch, "output", outputs)
        batch.error_file_id = await self._write(batch, "error", errors)
        batch.move("completed" if stop is None else stop[0])

    async def _write(self, batch: Batch, kind: str, lines: list[dict[str, Any]]) -> str | None:
        """A ``batch_output`` file of JSON lines; none when there are no lines."""
        if not lines:
            return None
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        stored = await self._files.add(
            io.BytesIO(data), filename=f"{batch.id}_{kind}.jsonl", purpose="batch_output"
        )
        return stored.id
