"""The embedded store: entries in memory, a vector index per model and scope, a SQLite file.

    store = await EmbeddedStore.open(data_dir / "cache.sqlite3", max_entries=100_000)
    try:
        await store.put(entry)
        await store.search(scope=..., vector=..., k=3, min_similarity=0.9, now=time.time())
    finally:
        await store.aclose()            # writes what is still pending

Memory is the truth for every lookup. The SQLite file (`SqliteFile`) only lets entries survive
a restart: `open` loads the live ones and rebuilds the indexes from them.

Models: each (embedding model, scope) pair has an index of its own (`ModelIndexes`), so a
semantic lookup only ever compares vectors of its model, and the exact tier checks the entry's
model (one dict lookup and one comparison); `other_models` finds what a `reembed` is to move
without a scan. An exact-only entry (no vector) is in no index: only the exact tier finds it.

Durability: writes are behind (`WriteBehind`). Every change is applied in memory at once and
written to the file within about ``write_delay_s`` (default 0.05 s), off the event loop; a
write that fails is logged and retried, never dropped, and `stats` counts failed writes
(``write_failures``) and changes not on disk yet (``unsaved``). `aclose` writes whatever is
still pending. A crash (not a clean shutdown) loses at most the last ``write_delay_s`` of changes
and the batch being written; losing a cache entry only costs a miss.

Expiry and eviction: an entry is live while ``now < expires_at``. Each call that carries
``now`` (and `put`, with the new entry's ``created_at``) first purges what has expired, counted
in ``StoreStats.expirations``; `stats` counts entries held, which may include expired ones no
call has swept yet. Past ``max_entries`` the least recently used entries go (a `put` and a
`record_hit` are uses), counted in ``evictions``. Every removal leaves the entry map, the
exact-tier map, the by-model map and the index in agreement, and `search` re-checks each index
answer against the entry map besides, recomputing the similarity from the entry's own vector.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from frugal.cache.index import IndexOptions, ScopeIndex
from frugal.cache.model_indexes import ModelIndexes
from frugal.cache.sqlite_file import Loaded, SqliteFile
from frugal.cache.store import BASE_MODEL_ID, Entry, Match, StoreStats, checked_vector
from frugal.cache.write_behind import WriteBehind

logger = logging.getLogger(__name__)

# `delete_similar` compares every entry, in slices of this many, yielding to the loop between.
_SIMILAR_CHUNK = 8192


class EmbeddedStore:
    """A `VectorStore` in this process, persisted to one SQLite file. Build it with `open`.

    ``max_entries`` bounds the entries held (at least 1); ``dimensions`` is the vector length
    every entry and query must have. ``index_options`` tunes the per-scope indexes (tests use
    it to force the approximate index on tiny scopes). The store owns ``file``.
    """

    def __init__(
        self,
        file: SqliteFile,
        *,
        max_entries: int,
        dimensions: int = 384,
        index_options: IndexOptions | None = None,
        write_delay_s: float = 0.05,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.path = file.path
        self.max_entries = max_entries
        self.dimensions = dimensions
        self._entries: dict[str, Entry] = {}  # in put order: list_entries ties break on it
        self._by_prompt: dict[tuple[str, str], str] = {}
        self._lru: OrderedDict[str, int] = OrderedDict()  # id -> use number, least recent first
        self._use_seq = 0
        self._expiry: list[tuple[float, str]] = []  # heap; stale pairs are skipped when popped
        self._indexes = ModelIndexes(dimensions=dimensions, options=index_options or IndexOptions())
        self._evictions = 0
        self._expirations = 0
        self._tasks: set[asyncio.Task[None]] = set()  # index rebuilds
        self._disk = WriteBehind(file, delay_s=write_delay_s)
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        max_entries: int,
        dimensions: int = 384,
        now: float | None = None,
        index_options: IndexOptions | None = None,
        write_delay_s: float = 0.05,
    ) -> EmbeddedStore:
        """Open (creating if needed) the file at ``path`` and load its live entries.

        ``now`` (unix seconds, default: the clock) decides which stored entries have expired.
        Raises `CacheStoreError` when the file cannot be opened or read.
        """
        file = await SqliteFile.open(path, dimensions=dimensions)
        try:
            store = cls(
                file,
                max_entries=max_entries,
                dimensions=dimensions,
                index_options=index_options,
                write_delay_s=write_delay_s,
            )
            loaded = await file.load(
                now=time.time() if now is None else now, max_entries=max_entries
            )
            await asyncio.to_thread(store._restore, loaded)
        except BaseException:
            await file.aclose()
            raise
        store._disk.start()
        return store

    # ---- the VectorStore protocol -------------------------------------------------------

    async def get_exact(
        self,
        *,
        scope: str,
        prompt_hash: str,
        now: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> Entry | None:
        self._sweep(now)
        entry_id = self._by_prompt.get((scope, prompt_hash))
        entry = None if entry_id is None else self._entries[entry_id]
        if entry is None or entry.model != model or partition not in (None, entry.partition):
            return None
        return entry

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
        """Best first. Each index answer is re-checked against the entries (live, this scope
        and model) and its similarity recomputed from the entry's own vector; ValueError for a
        bad shape."""
        query = self._check_vector(vector)
        self._sweep(now)
        index = self._indexes.get(model, scope)
        if index is None or k < 1:
            return []
        matches = []
        for entry_id, _ in index.search(query, k):
            entry = self._entries.get(entry_id)
            if entry is None or entry.scope != scope or entry.model != model:
                logger.error("scope index returned a foreign or removed entry %s", entry_id)
                continue
            if partition is not None and entry.partition != partition:
                continue
            assert entry.vector is not None  # indexed: never exact-only
            similarity = float(entry.vector @ query)
            if similarity >= min_similarity:
                matches.append(Match(entry=entry, similarity=similarity))
        matches.sort(key=lambda match: match.similarity, reverse=True)
        return matches

    async def put(self, entry: Entry) -> None:
        """Store ``entry`` as the most recently used, replacing an entry with its id and one
        with its scope and prompt_hash; evict past the bound. ValueError for a bad vector."""
        vector = checked_vector(entry, self.dimensions)
        if vector is not entry.vector:
            entry = replace(entry, vector=vector)
        self._remove(entry.id)
        twin = self._by_prompt.get((entry.scope, entry.prompt_hash))
        if twin is not None:
            self._remove(twin)
        self._insert(entry)
        self._disk.changed(entry, used_seq=self._touch(entry.id))
        # Sweeping after the insert: an entry born expired (ttl 0) goes as an expiry, without
        # evicting a live one for it.
        self._sweep(entry.created_at)
        while len(self._entries) > self.max_entries:
            self._remove(next(iter(self._lru)))
            self._evictions += 1
        self._changed()

    async def record_hit(self, entry_id: str, *, now: float) -> None:
        self._sweep(now)
        entry = self._entries.get(entry_id)
        if entry is None:  # evicted or expired between the lookup and the hit: nothing to do
            return
        entry = replace(entry, hits=entry.hits + 1, last_used_at=now)
        self._entries[entry_id] = entry
        self._disk.changed(entry, used_seq=self._touch(entry_id))
        self._changed()

    async def delete(self, entry_ids: list[str]) -> int:
        removed = sum(self._remove(entry_id) for entry_id in entry_ids)
        self._changed()
        return removed

    async def delete_where(self, *, partition: str | None = None, scope: str | None = None) -> int:
        if partition is None and scope is None:
            raise ValueError("delete_where needs a partition or a scope")
        doomed = [
            entry.id
            for entry in self._entries.values()
            if partition in (None, entry.partition) and scope in (None, entry.scope)
        ]
        return await self.delete(doomed)

    async def delete_similar(
        self,
        *,
        vector: np.ndarray,
        min_similarity: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> int:
        """Exhaustive on purpose: an invalidation must not miss what an approximate index would."""
        query = self._check_vector(vector)
        candidates = [
            (e, e.vector)
            for e in self._entries.values()
            if e.model == model and partition in (None, e.partition) and e.vector is not None
        ]
        doomed: list[Entry] = []
        for start in range(0, len(candidates), _SIMILAR_CHUNK):
            chunk = [entry for entry, _ in candidates[start : start + _SIMILAR_CHUNK]]
            sims = np.stack([vector for _, vector in candidates[start : start + _SIMILAR_CHUNK]])
            sims = sims @ query
            doomed.extend(chunk[i] for i in np.flatnonzero(sims >= min_similarity).tolist())
            await asyncio.sleep(0)  # a large store is swept in slices, letting lookups through
        # An id put again during the sweep holds another vector now: only the compared one goes.
        unchanged = []
        for entry in doomed:
            held = self._entries.get(entry.id)
            if held is not None and held.vector is entry.vector:
                unchanged.append(entry.id)
        return await self.delete(unchanged)

    async def flush(self) -> int:
        count = len(self._entries)
        for collection in (self._entries, self._by_prompt, self._lru, self._indexes):
            collection.clear()
        self._expiry.clear()
        self._disk.wiped()
        self._changed()
        return count

    async def list_entries(
        self, *, offset: int, limit: int, partition: str | None = None, now: float
    ) -> list[Entry]:
        """Live entries by ``created_at``, newest first (ties: the later `put` first)."""
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must not be negative, got {offset}, {limit}")
        self._sweep(now)
        if limit == 0:
            return []
        selected = (e for e in reversed(self._entries.values()) if partition in (None, e.partition))
        newest = heapq.nlargest(offset + limit, selected, key=lambda entry: entry.created_at)
        return newest[offset:]

    async def other_models(self, *, model: str, limit: int, now: float) -> tuple[list[Entry], int]:
        """The earliest indexed first, model by model."""
        self._sweep(now)
        ids, total = self._indexes.other_models(model, limit=limit)
        return [self._entries[entry_id] for entry_id in ids], total

    async def reembed(self, changes: list[tuple[Entry, np.ndarray]], *, model: str) -> int:
        checked = [(listed, self._check_vector(vector)) for listed, vector in changes]
        changed = 0
        for listed, vector in checked:
            held = self._entries.get(listed.id)
            if held is None or held.model != listed.model or held.model == model:
                continue  # removed, replaced or moved since it was listed
            if held.exact_only:
                continue  # no vector of any model belongs to it
            self._indexes.remove(held)
            moved = replace(held, vector=vector, model=model)
            self._entries[moved.id] = moved  # the same key: its place in put order stays
            self._indexes.add(moved)
            self._disk.changed(moved, used_seq=self._lru[moved.id])  # its use stays as it was
            changed += 1
        self._changed()
        return changed

    async def stats(self) -> StoreStats:
        return StoreStats(
            entries=len(self._entries),
            evictions=self._evictions,
            expirations=self._expirations,
            write_failures=self._disk.write_failures,
            unsaved=self._disk.unsaved,
        )

    async def aclose(self) -> None:
        """Stop background work and write what is pending; `CacheStoreError` (saying how many
        changes were not written) if that fails. The file is closed either way."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._disk.aclose()

    # ---- beyond the protocol --------------------------------------------------------------

    async def settle(self) -> None:
        """Wait until background index rebuilds and pending writes are done (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._disk.flush_pending()

    def index_of(self, scope: str, *, model: str = BASE_MODEL_ID) -> ScopeIndex | None:
        """The index of ``model``'s entries in ``scope``, for inspection (tests, benchmarks);
        do not change it."""
        return self._indexes.get(model, scope)

    # ---- the in-memory state --------------------------------------------------------------

    def _insert(self, entry: Entry) -> None:
        self._entries[entry.id] = entry
        self._by_prompt[(entry.scope, entry.prompt_hash)] = entry.id
        heapq.heappush(self._expiry, (entry.expires_at, entry.id))
        if not entry.exact_only:
            self._indexes.add(entry)

    def _remove(self, entry_id: str) -> bool:
        entry = self._entries.pop(entry_id, None)
        if entry is None:
            return False
        key = (entry.scope, entry.prompt_hash)
        if self._by_prompt.get(key) == entry_id:
            del self._by_prompt[key]
        self._lru.pop(entry_id, None)
        if not entry.exact_only:
            self._indexes.remove(entry)
        self._disk.removed(entry_id)
        return True

    def _touch(self, entry_id: str) -> int:
        """Make the entry the most recently used; its new use number."""
        self._use_seq += 1
        self._lru[entry_id] = self._use_seq
        self._lru.move_to_end(entry_id)
        return self._use_seq

    def _sweep(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            expires_at, entry_id = heapq.heappop(expiry)
            entry = self._entries.get(entry_id)
            if entry is not None and entry.expires_at == expires_at and self._remove(entry_id):
                self._expirations += 1
        if len(expiry) > 2 * len(self._entries) + 1024:  # drop the pairs of replaced entries
            self._expiry = [(e.expires_at, e.id) for e in self._entries.values()]
            heapq.heapify(self._expiry)

    def _changed(self) -> None:
        """After any change: schedule the index rebuilds that are due."""
        for index in self._indexes.take_touched():
            if len(index) and not index.rebuilding and index.needs_rebuild():
                self._spawn(index.rebuild_async())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("index rebuild failed", exc_info=task.exception())

    def _check_vector(self, vector: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(vector, dtype=np.float32)
        if array.shape != (self.dimensions,):
            raise ValueError(f"expected a vector of shape ({self.dimensions},), got {array.shape}")
        return array

    def _restore(self, loaded: Loaded) -> None:
        """Rebuild the in-memory state from what the file held, off the loop."""
        self._expirations += loaded.expired
        self._evictions += loaded.evicted
        by_use = sorted(loaded.entries, key=lambda pair: pair[1])
        for entry, _ in sorted(by_use, key=lambda pair: pair[0].created_at):  # put order
            self._insert(entry)
        for entry, used_seq in by_use:
            self._lru[entry.id] = used_seq
        self._use_seq = by_use[-1][1] if by_use else 0
        for index in self._indexes:
            if index.needs_rebuild():
                index.rebuild()
        self._indexes.take_touched()
