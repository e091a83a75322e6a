"""Write-behind for the embedded store: its changes reach the `SqliteFile` in batches, later.

    disk = WriteBehind(file, delay_s=0.05)
    disk.start()                        # the background writer (needs a running loop)
    disk.changed("id-1", stored_row(table, row, v))  # an id's latest values get written
    disk.removed("id-1")
    disk.wiped()                        # every row goes, then what changes after
    await disk.aclose()                 # the last write; CacheStoreError if it fails

Each change is kept in memory at once and written within about ``delay_s`` by a background
writer, one transaction per batch. A crash (not a clean `aclose`) loses at most the changes of
the last ``delay_s`` and the batch being written; losing a cache entry only costs a miss.

The writer cannot stop silently. Whatever a write raises (not only `CacheStoreError`), the
changes it carried stay pending under anything newer, the failure is logged with its traceback
and counted in ``write_failures``, and a new writer starts after a backoff (``_RETRY_S``,
doubling up to ``_MAX_RETRY_S`` while writes keep failing); its first write carries them.
``unsaved`` counts the changes not on disk yet.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from frugal.cache.sqlite_file import Change, SqliteFile
from frugal.errors import CacheStoreError

logger = logging.getLogger(__name__)

# The first restart after a failed write waits this long (s); each failure in a row doubles it.
_RETRY_S = 1.0
_MAX_RETRY_S = 30.0


class WriteBehind:
    """The pending changes of one store and the writer that saves them to ``file``.

    Owns ``file``: `aclose` closes it.
    """

    def __init__(self, file: SqliteFile, *, delay_s: float) -> None:
        self.file = file
        self.delay_s = delay_s
        self.write_failures = 0  # writes that raised, the writer's and `flush_pending`'s
        self._pending: dict[str, Change] = {}  # the latest state of each changed id
        self._wipe = False  # the pending changes come after a wipe of every row
        self._in_flight = 0  # changes in the batch being written
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one batch at a time: a batch put back stays in order
        self._writer: asyncio.Task[None] | None = None
        self._failed_in_a_row = 0
        self._closed = False

    @property
    def unsaved(self) -> int:
        """Changes not on disk yet: one per changed id (pending or being written), one for a
        pending wipe."""
        return len(self._pending) + self._wipe + self._in_flight

    def start(self) -> None:
        """Start the background writer."""
        self._start(backoff_s=0.0)

    def changed(self, entry_id: str, values: tuple[Any, ...]) -> None:
        """The entry ``entry_id`` (new or changed) is to be written as ``values``
        (`frugal.cache.sqlite_file.stored_row`)."""
        self._pending[entry_id] = values
        self._wake.set()

    def removed(self, entry_id: str) -> None:
        self._pending[entry_id] = None
        self._wake.set()

    def wiped(self) -> None:
        """Every entry went: earlier changes are moot, every row is to go."""
        self._pending.clear()
        self._wipe = True
        self._wake.set()

    async def flush_pending(self) -> None:
        """Write what is pending now (after the batch in flight, if any). A failure is counted
        in ``write_failures`` and raised as it came; the changes stay pending."""
        try:
            await self._write()
        except Exception:
            self.write_failures += 1
            raise

    async def aclose(self) -> None:
        """Stop the writer, write what is pending and close the file. When that last write
        fails, the error is logged and raised as `CacheStoreError`, saying how many changes
        were not written."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        try:
            await self.flush_pending()
        except Exception as exc:
            lost = "1 change was" if self.unsaved == 1 else f"{self.unsaved} changes were"
            logger.error(
                "the last write of the cache file %s failed: %s not written",
                self.file.path,
                lost,
                exc_info=exc,
            )
            raise CacheStoreError(
                f"cache file {self.file.path}: {lost} not written: {exc}"
            ) from exc
        finally:
            await self.file.aclose()

    async def _write(self) -> None:
        async with self._lock:
            if not (self._pending or self._wipe):
                return
            wipe, batch = self._wipe, self._pending
            self._wipe, self._pending = False, {}
            self._in_flight = len(batch) + wipe
            try:
                await self.file.write(wipe=wipe, changes=batch)
            except BaseException:
                # Pending again, under anything newer; unless a wipe came since, which made the
                # whole batch moot (put back, it would resurrect entries).
                if not self._wipe:
                    self._wipe = wipe
                    self._pending = {**batch, **self._pending}
                raise
            finally:
                self._in_flight = 0

    def _start(self, *, backoff_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_loop(backoff_s), name="frugal-store-writer")
        self._writer.add_done_callback(self._writer_done)

    async def _write_loop(self, backoff_s: float) -> None:
        await asyncio.sleep(backoff_s)
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.delay_s)  # gather a batch of changes
            self._wake.clear()
            await self._write()
            self._failed_in_a_row = 0

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        """The writer only ends cancelled or failed: a failure is logged, counted, and a new
        writer takes over after the backoff (unless the store is closing, and `aclose` writes)."""
        if task.cancelled() or (exc := task.exception()) is None:
            return
        self.write_failures += 1
        self._failed_in_a_row += 1
        backoff_s = min(_MAX_RETRY_S, _RETRY_S * 2 ** min(self._failed_in_a_row - 1, 16))
        logger.error(
            "writing the cache file failed (%s); its %d changes stay pending, the writer "
            "starts again in %.1f s",
            self.file.path,
            self.unsaved,
            backoff_s,
            exc_info=exc,
        )
        if not self._closed:
            self._wake.set()  # what it held is pending again, whether or not more changes come
            self._start(backoff_s=backoff_s)
