"""The embedded store: entries in memory, one vector index per scope, a SQLite file for restarts.

    store = await EmbeddedStore.open(data_dir / "cache.sqlite3", max_entries=100_000)
    try:
        await store.put(entry)
        await store.search(scope=..., vector=..., k=3, min_similarity=0.9, now=time.time())
    finally:
        await store.aclose()            # writes what is still pending

Memory is the truth for every lookup. The SQLite file (WAL mode) only lets entries survive a
restart: `open` loads the live ones and rebuilds the indexes from them.

Durability: writes are behind. Every change is applied in memory at once and written to the
file within about ``write_delay_s`` (default 0.05 s), in one transaction per batch, by a single
worker thread that does all SQLite work, so the event loop never waits on the disk. `aclose`
writes whatever is still pending. A crash (not a clean shutdown) loses at most the changes of
the last ``write_delay_s`` and the batch being written; losing a cache entry only costs a miss.

Expiry and eviction: an entry is live while ``now < expires_at``. Each call that carries
``now`` (and `put`, with the new entry's ``created_at``) first purges what has expired, counted
in ``StoreStats.expirations``; `stats` counts entries held, which may include expired ones no
call has swept yet. Past ``max_entries`` the least recently used entries go (a `put` and a
`record_hit` are uses), counted in ``evictions``. Every removal leaves the entry map, the
exact-tier map and the scope's index in agreement, and `search` re-checks each index answer
against the entry map besides, recomputing the similarity from the entry's own vector.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from frugal.cache.index import IndexOptions, ScopeIndex
from frugal.cache.store import CacheStoreError, Entry, Match, StoreStats

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    scope TEXT NOT NULL,
    prompt TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    vector BLOB NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    labels TEXT NOT NULL,
    hits INTEGER NOT NULL,
    last_used_at REAL,
    used_seq INTEGER NOT NULL
)
"""
_COLUMNS = (
    "id, tenant, scope, prompt, prompt_hash, response, vector, created_at, expires_at, labels,"
    " hits, last_used_at, used_seq"
)

# A failed background write is retried after this long (s), with whatever changed meanwhile.
_RETRY_S = 1.0
# `delete_similar` compares every entry, in slices of this many, yielding to the loop between.
_SIMILAR_CHUNK = 8192


class EmbeddedStore:
    """A `VectorStore` in this process, persisted to one SQLite file. Build it with `open`.

    ``max_entries`` bounds the entries held (at least 1); ``dimensions`` is the vector length
    every entry and query must have. ``index_options`` tunes the per-scope indexes (tests use
    it to force the approximate index on tiny scopes).
    """

    def __init__(
        self,
        path: Path,
        *,
        max_entries: int,
        dimensions: int = 384,
        index_options: IndexOptions | None = None,
        write_delay_s: float = 0.05,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.path = Path(path)
        self.max_entries = max_entries
        self.dimensions = dimensions
        self._index_options = index_options or IndexOptions()
        self._write_delay_s = write_delay_s
        self._entries: dict[str, Entry] = {}  # in put order: list_entries ties break on it
        self._by_prompt: dict[tuple[str, str], str] = {}
        self._lru: OrderedDict[str, int] = OrderedDict()  # id -> use number, least recent first
        self._use_seq = 0
        self._expiry: list[tuple[float, str]] = []  # heap; stale pairs are skipped when popped
        self._indexes: dict[str, ScopeIndex] = {}
        self._touched: set[ScopeIndex] = set()  # indexes changed since the last `_changed`
        self._evictions = 0
        self._expirations = 0
        # Write-behind: the latest state of each changed id (None: deleted), after a wipe.
        self._dirty: dict[str, Entry | None] = {}
        self._wipe = False
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()  # one batch in flight: a retried batch stays in order
        self._tasks: set[asyncio.Task[None]] = set()
        self._writer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frugal-sqlite")
        self._db: sqlite3.Connection | None = None
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
        store = cls(
            path,
            max_entries=max_entries,
            dimensions=dimensions,
            index_options=index_options,
            write_delay_s=write_delay_s,
        )
        try:
            rows = await store._sql(store._load_rows, time.time() if now is None else now)
            await asyncio.to_thread(store._restore, rows)
        except BaseException:
            await store._shutdown_executor()
            raise
        store._writer = asyncio.create_task(store._write_loop(), name="frugal-store-writer")
        return store

    # ---- the VectorStore protocol -------------------------------------------------------

    async def get_exact(
        self, *, scope: str, prompt_hash: str, now: float, tenant: str | None = None
    ) -> Entry | None:
        self._sweep(now)
        entry_id = self._by_prompt.get((scope, prompt_hash))
        entry = None if entry_id is None else self._entries[entry_id]
        return entry if entry is not None and tenant in (None, entry.tenant) else None

    async def search(
        self,
        *,
        scope: str,
        vector: np.ndarray,
        k: int,
        min_similarity: float,
        now: float,
        tenant: str | None = None,
    ) -> list[Match]:
        """Best first. Each index answer is re-checked against the entries (live, this scope)
        and its similarity recomputed from the entry's own vector; ValueError for a bad shape."""
        query = self._check_vector(vector)
        self._sweep(now)
        index = self._indexes.get(scope)
        if index is None or k < 1:
            return []
        matches = []
        for entry_id, _ in index.search(query, k):
            entry = self._entries.get(entry_id)
            if entry is None or entry.scope != scope:
                logger.error("scope index returned a foreign or removed entry %s", entry_id)
                continue
            if tenant is not None and entry.tenant != tenant:
                continue
            similarity = float(entry.vector @ query)
            if similarity >= min_similarity:
                matches.append(Match(entry=entry, similarity=similarity))
        matches.sort(key=lambda match: match.similarity, reverse=True)
        return matches

    async def put(self, entry: Entry) -> None:
        """Store ``entry`` as the most recently used, replacing an entry with its id and one
        with its scope and prompt_hash; evict past the bound. ValueError for a bad vector."""
        vector = self._check_vector(entry.vector)
        if vector is not entry.vector:
            entry = replace(entry, vector=vector)
        self._remove(entry.id)
        twin = self._by_prompt.get((entry.scope, entry.prompt_hash))
        if twin is not None:
            self._remove(twin)
        self._insert(entry)
        self._touch(entry.id)
        self._dirty[entry.id] = entry
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
        self._touch(entry_id)
        self._dirty[entry_id] = entry
        self._changed()

    async def delete(self, entry_ids: list[str]) -> int:
        removed = sum(self._remove(entry_id) for entry_id in entry_ids)
        self._changed()
        return removed

    async def delete_where(self, *, tenant: str | None = None, scope: str | None = None) -> int:
        if tenant is None and scope is None:
            raise ValueError("delete_where needs a tenant or a scope")
        doomed = [
            entry.id
            for entry in self._entries.values()
            if tenant in (None, entry.tenant) and scope in (None, entry.scope)
        ]
        return await self.delete(doomed)

    async def delete_similar(
        self, *, vector: np.ndarray, min_similarity: float, tenant: str | None = None
    ) -> int:
        """Exhaustive on purpose: an invalidation must not miss what an approximate index would."""
        query = self._check_vector(vector)
        candidates = [e for e in self._entries.values() if tenant is None or e.tenant == tenant]
        doomed: list[Entry] = []
        for start in range(0, len(candidates), _SIMILAR_CHUNK):
            chunk = candidates[start : start + _SIMILAR_CHUNK]
            sims = np.stack([entry.vector for entry in chunk]) @ query
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
        for collection in (self._entries, self._by_prompt, self._lru, self._indexes, self._dirty):
            collection.clear()
        self._expiry.clear()
        self._wipe = True
        self._changed()
        return count

    async def list_entries(
        self, *, offset: int, limit: int, tenant: str | None = None, now: float
    ) -> list[Entry]:
        """Live entries by ``created_at``, newest first (ties: the later `put` first)."""
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must not be negative, got {offset}, {limit}")
        self._sweep(now)
        if limit == 0:
            return []
        selected = (
            e for e in reversed(self._entries.values()) if tenant is None or e.tenant == tenant
        )
        newest = heapq.nlargest(offset + limit, selected, key=lambda entry: entry.created_at)
        return newest[offset:]

    async def stats(self) -> StoreStats:
        return StoreStats(
            entries=len(self._entries), evictions=self._evictions, expirations=self._expirations
        )

    async def aclose(self) -> None:
        """Stop background work and write what is pending; `CacheStoreError` if that fails."""
        if self._closed:
            return
        self._closed = True
        tasks = [*self._tasks, *([self._writer] if self._writer else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self._write_pending()
        finally:
            await self._shutdown_executor()

    # ---- beyond the protocol --------------------------------------------------------------

    async def settle(self) -> None:
        """Wait until background index rebuilds and pending writes are done (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._write_pending()

    def index_of(self, scope: str) -> ScopeIndex | None:
        """The scope's index, for inspection (tests, benchmarks); do not change it."""
        return self._indexes.get(scope)

    # ---- the in-memory state --------------------------------------------------------------

    def _insert(self, entry: Entry) -> None:
        self._entries[entry.id] = entry
        self._by_prompt[(entry.scope, entry.prompt_hash)] = entry.id
        heapq.heappush(self._expiry, (entry.expires_at, entry.id))
        index = self._indexes.get(entry.scope)
        if index is None:
            index = self._indexes[entry.scope] = ScopeIndex(
                dimensions=self.dimensions, options=self._index_options
            )
        index.add(entry.id, entry.vector)
        self._touched.add(index)

    def _remove(self, entry_id: str) -> bool:
        entry = self._entries.pop(entry_id, None)
        if entry is None:
            return False
        key = (entry.scope, entry.prompt_hash)
        if self._by_prompt.get(key) == entry_id:
            del self._by_prompt[key]
        self._lru.pop(entry_id, None)
        index = self._indexes[entry.scope]
        index.remove(entry_id)
        self._touched.add(index)
        if not len(index):
            del self._indexes[entry.scope]
        self._dirty[entry_id] = None
        return True

    def _touch(self, entry_id: str) -> None:
        self._use_seq += 1
        self._lru[entry_id] = self._use_seq
        self._lru.move_to_end(entry_id)

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
        """After any change: schedule index rebuilds that are due, and the write-behind."""
        for index in self._touched:
            if len(index) and not index.rebuilding and index.needs_rebuild():
                self._spawn(index.rebuild_async())
        self._touched.clear()
        if self._dirty or self._wipe:
            self._wake.set()

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

    def _restore(self, rows: list[tuple[Any, ...]]) -> None:
        """Rebuild the in-memory state from loaded rows (oldest use first), off the loop."""
        by_use = sorted(rows, key=lambda row: row[12])
        for row in sorted(by_use, key=lambda row: row[7]):  # put order: by created_at
            self._insert(_entry_from_row(row, self.dimensions))
        for row in by_use:
            self._lru[row[0]] = row[12]
        self._use_seq = by_use[-1][12] if by_use else 0
        for index in self._indexes.values():
            if index.needs_rebuild():
                index.rebuild()
        self._touched.clear()

    # ---- SQLite, on its one worker thread -------------------------------------------------

    async def _sql(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(*args)`` on the SQLite thread; the one place sqlite3 errors are mapped."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        except sqlite3.Error as exc:
            raise CacheStoreError(f"cache file {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses, never corrupts
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    def _load_rows(self, now: float) -> list[tuple[Any, ...]]:
        db = self._connect()
        with db:
            self._expirations += db.execute(
                "DELETE FROM entries WHERE expires_at <= ?", (now,)
            ).rowcount
            rows = db.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY used_seq").fetchall()
            surplus = len(rows) - self.max_entries  # the bound may have shrunk since last run
            if surplus > 0:
                doomed = [(row[0],) for row in rows[:surplus]]
                db.executemany("DELETE FROM entries WHERE id = ?", doomed)
                self._evictions += surplus
                rows = rows[surplus:]
        return rows

    def _write_rows(self, wipe: bool, batch: list[tuple[str, Entry | None, int]]) -> None:
        db = self._connect()
        with db:
            if wipe:
                db.execute("DELETE FROM entries")
            db.executemany(
                "DELETE FROM entries WHERE id = ?", [(i,) for i, e, _ in batch if e is None]
            )
            db.executemany(
                f"INSERT OR REPLACE INTO entries ({_COLUMNS}) VALUES ({', '.join('?' * 13)})",
                _rows(batch),
            )

    async def _write_pending(self) -> None:
        async with self._write_lock:
            await self._write_batch()

    async def _write_batch(self) -> None:
        if not (self._dirty or self._wipe):
            return
        wipe, dirty = self._wipe, self._dirty
        self._wipe, self._dirty = False, {}
        batch = [(i, e, self._lru.get(i, 0)) for i, e in dirty.items()]
        try:
            await self._sql(self._write_rows, wipe, batch)
        except BaseException:
            # Retry the batch with the next one, under anything newer; unless a flush came
            # since, which made the whole batch moot (put back, it would resurrect entries).
            if not self._wipe:
                self._wipe = wipe
                self._dirty = {**dirty, **self._dirty}
            raise

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._write_delay_s)  # gather a batch of changes
            self._wake.clear()
            try:
                await self._write_pending()
            except CacheStoreError:
                logger.exception("writing the cache file failed; retrying in %.0f s", _RETRY_S)
                self._wake.set()  # the batch is pending again, whether or not more changes come
                await asyncio.sleep(_RETRY_S)

    async def _shutdown_executor(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        try:
            await self._sql(close)
        finally:
            self._executor.shutdown(wait=False)


def _rows(batch: Iterable[tuple[str, Entry | None, int]]) -> Iterator[tuple[Any, ...]]:
    for _, e, used_seq in batch:
        if e is not None:
            yield (
                e.id, e.tenant, e.scope, e.prompt, e.prompt_hash, json.dumps(e.response),
                e.vector.tobytes(), e.created_at, e.expires_at, json.dumps(e.labels), e.hits,
                e.last_used_at, used_seq,
            )  # fmt: skip


def _entry_from_row(row: tuple[Any, ...], dimensions: int) -> Entry:
    """Decode a stored row; a row this store cannot read raises `CacheStoreError`."""
    try:
        vector = np.frombuffer(row[6], dtype=np.float32)
        if vector.shape != (dimensions,):
            raise ValueError(f"a vector of {vector.shape[0]} dimensions, not {dimensions}")
        return Entry(
            id=row[0], tenant=row[1], scope=row[2], prompt=row[3], prompt_hash=row[4],
            response=json.loads(row[5]), vector=vector, created_at=row[7], expires_at=row[8],
            labels=json.loads(row[9]), hits=row[10], last_used_at=row[11],
        )  # fmt: skip
    except (ValueError, TypeError) as exc:
        raise CacheStoreError(f"unreadable cache entry {row[0]!r}: {exc}") from exc
