"""A store still loading: the gateway serves while the embedded store reads its entries.

    store = LoadingStore(EmbeddedStore.load(file, max_entries=...))   # returns at once
    store.loaded          # False until the load is done: /readyz says 503 meanwhile
    await store.search(...)                                           # [] while loading

Opening a large embedded store takes seconds (its SQLite rows, its index files, graphs built
where a file is missing). Rather than not listening at all meanwhile, the gateway serves with
this stand-in, and reports itself not ready so that a load balancer sends it nothing it can
avoid. While loading, the request path sees a cache without entries: lookups miss and the
answers to those misses are not stored (they would race the rows being read; a miss costs a
call, never a wrong answer). What must not be lost waits for the load instead: invalidations
(`delete`, `delete_where`, `delete_similar`, `flush`), listings and re-embedding. Once loaded,
every call goes to the store itself. A load that fails leaves the cache empty for good (logged,
and `failed` says so): the gateway goes on serving misses, and reports itself not ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import numpy as np

from frugal.cache.store import BASE_MODEL_ID, Entry, Match, StoreStats, VectorStore
from frugal.errors import CacheStoreError

logger = logging.getLogger(__name__)


class LoadingStore:
    """A `VectorStore` standing in for the one ``opening`` returns, until it has; see the
    module docstring. Build it inside a running event loop."""

    def __init__(self, opening: Coroutine[Any, Any, VectorStore]) -> None:
        self._task = asyncio.get_running_loop().create_task(opening, name="frugal-cache-load")
        self._task.add_done_callback(self._done)
        self.skipped_writes = 0  # answers not stored (and hits not counted) while loading

    @property
    def loaded(self) -> bool:
        return self._store() is not None

    @property
    def failed(self) -> bool:
        return self._task.done() and (self._task.cancelled() or self._task.exception() is not None)

    async def wait(self) -> VectorStore:
        """The store, once loaded; `CacheStoreError` if its load failed."""
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if self._task.cancelled():
                raise CacheStoreError("the cache was closed while loading") from None
            raise
        except CacheStoreError:
            raise
        except Exception as exc:
            raise CacheStoreError(f"the cache failed to load: {exc}") from exc

    def _store(self) -> VectorStore | None:
        if self._task.done() and not self._task.cancelled() and self._task.exception() is None:
            return self._task.result()
        return None

    def _done(self, task: asyncio.Task[VectorStore]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("the cache failed to load; serving without it", exc_info=task.exception())

    # ---- the request path: misses while loading -------------------------------------------

    async def get_exact(
        self,
        *,
        scope: str,
        prompt_hash: str,
        now: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> Entry | None:
        store = self._store()
        if store is None:
            return None
        return await store.get_exact(
            scope=scope, prompt_hash=prompt_hash, now=now, partition=partition, model=model
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
        store = self._store()
        if store is None:
            return []
        return await store.search(
            scope=scope, vector=vector, k=k, min_similarity=min_similarity, now=now,
            partition=partition, model=model,
        )  # fmt: skip

    async def put(self, entry: Entry) -> None:
        store = self._store()
        if store is None:
            self.skipped_writes += 1
            return
        await store.put(entry)

    async def record_hit(self, entry_id: str, *, now: float) -> None:
        store = self._store()
        if store is None:  # no hit can come from a store not loaded: nothing to count
            return
        await store.record_hit(entry_id, now=now)

    async def stats(self) -> StoreStats:
        store = self._store()
        if store is None:
            return StoreStats(entries=0, evictions=0, expirations=0)
        return await store.stats()

    # ---- what must not be lost: after the load ----------------------------------------------

    async def delete(self, entry_ids: list[str]) -> int:
        return await (await self.wait()).delete(entry_ids)

    async def delete_where(self, *, partition: str | None = None, scope: str | None = None) -> int:
        return await (await self.wait()).delete_where(partition=partition, scope=scope)

    async def delete_similar(
        self,
        *,
        vector: np.ndarray,
        min_similarity: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> int:
        store = await self.wait()
        return await store.delete_similar(
            vector=vector, min_similarity=min_similarity, partition=partition, model=model
        )

    async def flush(self) -> int:
        return await (await self.wait()).flush()

    async def list_entries(
        self, *, offset: int, limit: int, partition: str | None = None, now: float
    ) -> list[Entry]:
        store = await self.wait()
        return await store.list_entries(offset=offset, limit=limit, partition=partition, now=now)

    async def other_models(self, *, model: str, limit: int, now: float) -> tuple[list[Entry], int]:
        return await (await self.wait()).other_models(model=model, limit=limit, now=now)

    async def reembed(self, changes: list[tuple[Entry, np.ndarray]], *, model: str) -> int:
        return await (await self.wait()).reembed(changes, model=model)

    async def aclose(self) -> None:
        """Stop a load in progress (its file is closed), or close the loaded store."""
        if not self._task.done():
            self._task.cancel()
        await asyncio.wait([self._task])  # never raises the load's own failure (logged)
        store = self._store()
        if store is not None:
            await store.aclose()
