"""The embedded store: entries in memory, a vector index per model and scope, a SQLite file.

    store = await EmbeddedStore.open(data_dir / "cache.sqlite3", max_entries=100_000)
    try:
        await store.put(entry)
        await store.search(scope=..., vector=..., k=3, min_similarity=0.9, now=time.time())
    finally:
        await store.aclose()            # writes what is pending, and the index files

Memory is the truth for every lookup. The SQLite file (`SqliteFile`) lets entries survive a
restart; the index files beside it (`frugal.cache.index_file`) let the approximate indexes
survive one without building their graphs again.

Memory: an entry is held as a `Held` (its fields, the answer zlib-compressed, no vector); its
vector is held once, by its scope index (as float16: `IndexOptions.encoding`), and read back
from there when an entry is handed out or written. See `Held.size` for what counts toward
``max_bytes``.

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

Restart: `open` loads the entries (not their vectors) from SQLite, then, per index, the graph
its file holds, when the file checks (`read_index_file`). A graph position is used only when
SQLite holds its id in that model and scope at the same vector version (``vgen``, a generation
the store counts up at each `put` and `reembed`); every other position becomes a tombstone, and
the entries SQLite holds that the graph lacks (written after the file) are read with their
vectors and added. An index without a usable file is built from SQLite's vectors. The graphs
are written on `aclose` and every ``index_checkpoint_s`` (`checkpoint`); ``opening`` says what
the last `open` loaded and built. SQLite stays the truth: a stale, foreign, torn or missing
index file costs time, never an answer.

Expiry and eviction: an entry is live while ``now < expires_at``. Each call that carries
``now`` (and `put`, with the new entry's ``created_at``) first purges what has expired, counted
in ``StoreStats.expirations``; `stats` counts entries held, which may include expired ones no
call has swept yet. Past ``max_entries``, or past ``max_bytes``, the least recently used entries
go (a `put` and a `record_hit` are uses), counted in ``evictions``. Every removal leaves the
entry map, the exact-tier map, the by-model map and the index in agreement, and `search`
re-checks each index answer against the entry map besides, recomputing the similarity from the
vector the index holds for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugal.cache import index_file
from frugal.cache.held import Held, LabelsTable
from frugal.cache.index import IndexOptions, ScopeIndex
from frugal.cache.model_indexes import ModelIndexes
from frugal.cache.sqlite_file import Loaded, SqliteFile
from frugal.cache.store import BASE_MODEL_ID, Entry, Match, StoreStats, checked_vector
from frugal.cache.write_behind import WriteBehind

logger = logging.getLogger(__name__)

# `delete_similar` compares every entry, in slices of this many, yielding to the loop between.
_SIMILAR_CHUNK = 8192


@dataclass
class Opening:
    """What the last `EmbeddedStore.open` did for the approximate indexes: graphs loaded from
    their files, graphs built from SQLite's vectors, and vectors read from SQLite."""

    graphs_loaded: int = 0
    graphs_built: int = 0
    vectors_read: int = 0


class EmbeddedStore:
    """A `VectorStore` in this process, persisted to one SQLite file. Build it with `open`.

    ``max_entries`` bounds the entries held (at least 1), ``max_bytes`` (None: no bound) what
    they count (`Held.size`); ``dimensions`` is the vector length every entry and query must
    have. ``index_options`` tunes the per-scope indexes (tests use it to force the approximate
    index on tiny scopes). ``index_checkpoint_s`` (None: only on `aclose`) is how often the
    graphs changed since are written to their files. The store owns ``file``.
    """

    def __init__(
        self,
        file: SqliteFile,
        *,
        max_entries: int,
        max_bytes: int | None = None,
        dimensions: int = 384,
        index_options: IndexOptions | None = None,
        write_delay_s: float = 0.05,
        index_checkpoint_s: float | None = 300.0,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.path = file.path
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.dimensions = dimensions
        self.index_checkpoint_s = index_checkpoint_s
        self.opening = Opening()
        self._options = index_options or IndexOptions()
        self._vector_bytes = self._options.bytes_per_dimension * dimensions  # as indexes hold them
        self._held: dict[str, Held] = {}  # in put order: list_entries ties break on it
        # scope -> prompt_hash -> id: nested, so no (scope, hash) tuple is held per entry.
        self._by_prompt: dict[str, dict[str, str]] = {}
        self._lru: OrderedDict[str, int] = OrderedDict()  # id -> use number, least recent first
        self._use_seq = 0
        self._generation = 0  # the last vector version given (Held.vgen)
        self._bytes = 0
        self._labels = LabelsTable()
        self._expiry: list[tuple[float, str]] = []  # heap; stale pairs are skipped when popped
        self._indexes = ModelIndexes(dimensions=dimensions, options=self._options)
        self._evictions = 0
        self._expirations = 0
        self._tasks: set[asyncio.Task[None]] = set()  # index rebuilds
        self._disk = WriteBehind(file, delay_s=write_delay_s)
        self._file_id = ""
        self._checkpointer: asyncio.Task[None] | None = None
        self._dirty = False  # changed since the last checkpoint
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        max_entries: int,
        max_bytes: int | None = None,
        dimensions: int = 384,
        now: float | None = None,
        index_options: IndexOptions | None = None,
        write_delay_s: float = 0.05,
        index_checkpoint_s: float | None = 300.0,
    ) -> EmbeddedStore:
        """Open (creating if needed) the file at ``path``, load its live entries and their
        indexes (module docstring); return once every index is ready to search.

        ``now`` (unix seconds, default: the clock) decides which stored entries have expired.
        Raises `CacheStoreError` when the file cannot be opened or read.
        """
        file = await SqliteFile.open(path, dimensions=dimensions)
        return await cls.load(
            file,
            max_entries=max_entries,
            max_bytes=max_bytes,
            now=now,
            index_options=index_options,
            write_delay_s=write_delay_s,
            index_checkpoint_s=index_checkpoint_s,
        )

    @classmethod
    async def load(
        cls,
        file: SqliteFile,
        *,
        max_entries: int,
        max_bytes: int | None = None,
        now: float | None = None,
        index_options: IndexOptions | None = None,
        write_delay_s: float = 0.05,
        index_checkpoint_s: float | None = 300.0,
    ) -> EmbeddedStore:
        """The store of an opened ``file``: `open`'s second half, the long one (entries and
        indexes), apart so that a caller can check the file first and load in the background
        (`frugal.cache.loading`). The store owns ``file`` (closed here if loading fails or is
        cancelled)."""
        dimensions = file.dimensions
        try:
            store = await cls._loaded(
                file,
                max_entries=max_entries,
                max_bytes=max_bytes,
                dimensions=dimensions,
                now=now,
                index_options=index_options,
                write_delay_s=write_delay_s,
                index_checkpoint_s=index_checkpoint_s,
            )
        except BaseException:
            await file.aclose()
            raise
        store._disk.start()
        if index_checkpoint_s is not None:
            store._checkpointer = asyncio.get_running_loop().create_task(
                store._checkpoint_loop(index_checkpoint_s), name="frugal-index-checkpoint"
            )
        return store

    @classmethod
    async def _loaded(
        cls,
        file: SqliteFile,
        *,
        max_entries: int,
        max_bytes: int | None,
        dimensions: int,
        now: float | None,
        index_options: IndexOptions | None,
        write_delay_s: float,
        index_checkpoint_s: float | None,
    ) -> EmbeddedStore:
        """`load`'s work: the entries and their indexes."""
        store = cls(
            file,
            max_entries=max_entries,
            max_bytes=max_bytes,
            dimensions=dimensions,
            index_options=index_options,
            write_delay_s=write_delay_s,
            index_checkpoint_s=index_checkpoint_s,
        )
        # The index files are read (and checked) on a thread of their own while the rows
        # load: mostly I/O and faiss, which leave the other core to SQLite and Python.
        graphs = asyncio.ensure_future(asyncio.to_thread(store._read_graphs, await file.file_id()))
        try:
            with _bulk_objects():
                loaded = await file.load(
                    now=time.time() if now is None else now,
                    max_entries=max_entries,
                    labels=store._labels,
                )
                groups = await asyncio.to_thread(store._restore, loaded)
        finally:
            files, generation = await graphs  # never left running once open has ended
        store._generation = max(store._generation, generation)
        await store._restore_indexes(file, groups, files)
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
        entry_id = self._by_prompt.get(scope, {}).get(prompt_hash)
        held = None if entry_id is None else self._held[entry_id]
        if held is None or held.model != model or partition not in (None, held.partition):
            return None
        return held.entry(self._vector_of(held))

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
        and model) and its similarity recomputed from the vector the index holds for it;
        ValueError for a bad shape."""
        query = self._check_vector(vector)
        self._sweep(now)
        index = self._indexes.get(model, scope)
        if index is None or k < 1:
            return []
        found = []
        for entry_id, _ in index.search(query, k):
            held = self._held.get(entry_id)
            if held is None or held.scope != scope or held.model != model:
                logger.error("scope index returned a foreign or removed entry %s", entry_id)
                continue
            if partition is not None and held.partition != partition:
                continue
            found.append(held)
        if not found:
            return []
        vectors = index.vectors_of([held.id for held in found])
        matches = []
        for held, own in zip(found, vectors, strict=True):
            similarity = float(own @ query)
            if similarity >= min_similarity:
                matches.append(Match(entry=held.entry(own), similarity=similarity))
        matches.sort(key=lambda match: match.similarity, reverse=True)
        return matches

    async def put(self, entry: Entry) -> None:
        """Store ``entry`` as the most recently used, replacing an entry with its id and one
        with its scope and prompt_hash; evict past the bounds. ValueError for a bad vector."""
        vector = checked_vector(entry, self.dimensions)
        self._remove(entry.id)
        twin = self._by_prompt.get(entry.scope, {}).get(entry.prompt_hash)
        if twin is not None:
            self._remove(twin)
        self._generation += 1
        held = Held.of(entry, vgen=self._generation, labels=self._labels)
        self._insert(held, vector)
        self._disk.changed(held, used_seq=self._touch(held.id), vector=vector)
        # Sweeping after the insert: an entry born expired (ttl 0) goes as an expiry, without
        # evicting a live one for it.
        self._sweep(entry.created_at)
        while self._lru and self._over_bound():
            self._remove(next(iter(self._lru)))
            self._evictions += 1
        self._changed()

    async def record_hit(self, entry_id: str, *, now: float) -> None:
        self._sweep(now)
        held = self._held.get(entry_id)
        if held is None:  # evicted or expired between the lookup and the hit: nothing to do
            return
        held.hits += 1
        held.last_used_at = now
        vector = self._vector_of(held)
        self._disk.changed(held, used_seq=self._touch(entry_id), vector=vector)
        self._changed()

    async def delete(self, entry_ids: list[str]) -> int:
        removed = sum(self._remove(entry_id) for entry_id in entry_ids)
        self._changed()
        return removed

    async def delete_where(self, *, partition: str | None = None, scope: str | None = None) -> int:
        if partition is None and scope is None:
            raise ValueError("delete_where needs a partition or a scope")
        doomed = [
            held.id
            for held in self._held.values()
            if partition in (None, held.partition) and scope in (None, held.scope)
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
        doomed: list[tuple[str, int]] = []  # (id, vector version) of each match
        for (of_model, _), index in self._indexes.items():
            if of_model != model:
                continue
            ids = index.ids()
            for start in range(0, len(ids), _SIMILAR_CHUNK):
                chunk = [
                    held
                    for entry_id in ids[start : start + _SIMILAR_CHUNK]
                    if (held := self._held.get(entry_id)) is not None
                    and partition in (None, held.partition)
                    and entry_id in index  # not removed while the loop ran others
                ]
                if chunk:
                    sims = index.vectors_of([held.id for held in chunk]) @ query
                    hits = np.flatnonzero(sims >= min_similarity).tolist()
                    doomed.extend((chunk[i].id, chunk[i].vgen) for i in hits)
                await asyncio.sleep(0)  # a large store is swept in slices, letting lookups through
        # An id put again during the sweep holds another vector now: only the compared one goes.
        unchanged = [
            entry_id
            for entry_id, vgen in doomed
            if (held := self._held.get(entry_id)) is not None and held.vgen == vgen
        ]
        return await self.delete(unchanged)

    async def flush(self) -> int:
        count = len(self._held)
        for collection in (self._held, self._by_prompt, self._lru, self._indexes):
            collection.clear()
        self._expiry.clear()
        self._bytes = 0
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
        selected = (h for h in reversed(self._held.values()) if partition in (None, h.partition))
        newest = heapq.nlargest(offset + limit, selected, key=lambda held: held.created_at)
        return [held.entry(self._vector_of(held)) for held in newest[offset:]]

    async def other_models(self, *, model: str, limit: int, now: float) -> tuple[list[Entry], int]:
        """The earliest indexed first, model by model."""
        self._sweep(now)
        ids, total = self._indexes.other_models(model, limit=limit)
        return [(h := self._held[entry_id]).entry(self._vector_of(h)) for entry_id in ids], total

    async def reembed(self, changes: list[tuple[Entry, np.ndarray]], *, model: str) -> int:
        checked = [(listed, self._check_vector(vector)) for listed, vector in changes]
        changed = 0
        for listed, vector in checked:
            held = self._held.get(listed.id)
            if held is None or held.model != listed.model or held.model == model:
                continue  # removed, replaced or moved since it was listed
            if held.vector_less:
                continue  # no vector of any model belongs to it
            self._indexes.remove(held)
            self._generation += 1
            # A new object, not a change in place: a write in flight holds the old one.
            moved = held.moved(model=model, vgen=self._generation)
            self._held[moved.id] = moved  # the same key: its place in put order stays
            self._indexes.add(moved, vector)
            self._disk.changed(moved, used_seq=self._lru[moved.id], vector=vector)  # use kept
            changed += 1
        self._changed()
        return changed

    async def stats(self) -> StoreStats:
        return StoreStats(
            entries=len(self._held),
            evictions=self._evictions,
            expirations=self._expirations,
            write_failures=self._disk.write_failures,
            unsaved=self._disk.unsaved,
            bytes=self._bytes,
        )

    async def aclose(self) -> None:
        """Stop background work, write what is pending and the index files; `CacheStoreError`
        (saying how many changes were not written) if the entries' last write fails. The file
        is closed either way; an index file that cannot be written is logged (the next start
        builds that index from SQLite)."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        if self._checkpointer is not None:
            tasks.append(self._checkpointer)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.checkpoint()
        except Exception:
            logger.exception("writing the index files of %s failed", self.path)
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

    async def checkpoint(self) -> int:
        """Write the graph of each approximate index to its file (an index being rebuilt keeps
        its older file) and remove the files of indexes no longer held; how many were written.
        Each graph is written by a worker thread while the loop serves on (`ScopeIndex.frozen`:
        entries added meanwhile wait beside it); the loop only lists its ids and versions.
        OSError when a file cannot be written."""
        self._dirty = False
        folder = index_file.folder_of(self.path)
        kept: set[str] = set()
        written = 0
        for (model, scope), index in self._indexes.items():
            name = index_file.file_name(model, scope)
            if index.rebuilding:
                kept.add(name)
                continue
            with index.frozen() as graph:
                if graph is None:
                    continue
                snapshot = index_file.IndexSnapshot.take(
                    index,
                    graph,
                    model=model,
                    scope=scope,
                    file_id=self._file_id,
                    generation=self._generation,
                    vgen_of=lambda entry_id: self._held[entry_id].vgen,
                )
                kept.add(name)
                await _finished(asyncio.to_thread(snapshot.write, folder))
            written += 1
            self._indexes.touched(index)  # a rebuild held back while frozen may be due
        await asyncio.to_thread(_remove_files_but, folder, kept)
        return written

    # ---- the in-memory state --------------------------------------------------------------

    def _insert(self, held: Held, vector: np.ndarray | None) -> None:
        self._held[held.id] = held
        self._by_prompt.setdefault(held.scope, {})[held.prompt_hash] = held.id
        heapq.heappush(self._expiry, (held.expires_at, held.id))
        self._bytes += self._size(held)
        if vector is not None:
            self._indexes.add(held, vector)

    def _remove(self, entry_id: str) -> bool:
        held = self._held.pop(entry_id, None)
        if held is None:
            return False
        in_scope = self._by_prompt.get(held.scope, {})
        if in_scope.get(held.prompt_hash) == entry_id:
            del in_scope[held.prompt_hash]
            if not in_scope:
                del self._by_prompt[held.scope]
        self._lru.pop(entry_id, None)
        self._bytes -= self._size(held)
        if not held.vector_less:
            self._indexes.remove(held)
        self._disk.removed(entry_id)
        return True

    def _size(self, held: Held) -> int:
        return held.size(0 if held.vector_less else self._vector_bytes)

    def _over_bound(self) -> bool:
        return len(self._held) > self.max_entries or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        )

    def _vector_of(self, held: Held) -> np.ndarray | None:
        """The vector the index holds for ``held`` (None: exact-only)."""
        if held.vector_less:
            return None
        index = self._indexes.get(held.model, held.scope)
        assert index is not None  # every entry with a vector is indexed
        vector: np.ndarray = index.vectors_of([held.id])[0]
        return vector

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
            held = self._held.get(entry_id)
            if held is not None and held.expires_at == expires_at and self._remove(entry_id):
                self._expirations += 1
        if len(expiry) > 2 * len(self._held) + 1024:  # drop the pairs of replaced entries
            self._expiry = [(h.expires_at, h.id) for h in self._held.values()]
            heapq.heapify(self._expiry)

    def _changed(self) -> None:
        """After any change: schedule the index rebuilds that are due."""
        self._dirty = True
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

    async def _checkpoint_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            if not self._dirty:
                continue
            try:
                await self.checkpoint()
            except Exception:  # the files are a shortcut for restarts: log, try again later
                logger.exception("writing the index files of %s failed", self.path)

    def _check_vector(self, vector: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(vector, dtype=np.float32)
        if array.shape != (self.dimensions,):
            raise ValueError(f"expected a vector of shape ({self.dimensions},), got {array.shape}")
        return array

    # ---- start-up -------------------------------------------------------------------------

    def _restore(self, loaded: Loaded) -> dict[tuple[str, str], list[str]]:
        """Rebuild the entries from what the file held, off the loop, applying ``max_bytes``;
        return the ids of each (model, scope) to index."""
        self._file_id = loaded.file_id
        self._expirations += loaded.expired
        self._evictions += loaded.evicted
        by_use = loaded.entries  # least recently used first
        sizes = [self._size(held) for held, _ in by_use]
        total = sum(sizes)
        dropped = 0
        while self.max_bytes is not None and total > self.max_bytes and dropped < len(by_use):
            total -= sizes[dropped]
            self._disk.removed(by_use[dropped][0].id)
            dropped += 1
        self._evictions += dropped
        by_use = by_use[dropped:]
        self._bytes = total
        groups: dict[tuple[str, str], list[str]] = {}
        for held, _ in sorted(by_use, key=_created_at):  # put order
            self._held[held.id] = held
            self._by_prompt.setdefault(held.scope, {})[held.prompt_hash] = held.id
            if not held.vector_less:
                groups.setdefault((held.model, held.scope), []).append(held.id)
        self._expiry = [(held.expires_at, held.id) for held, _ in by_use]
        heapq.heapify(self._expiry)
        self._lru.update((held.id, used_seq) for held, used_seq in by_use)
        self._generation = max([self._generation, *(held.vgen for held, _ in by_use)])
        self._use_seq = by_use[-1][1] if by_use else 0
        return groups

    def _read_graphs(self, file_id: str) -> tuple[dict[str, index_file.IndexFile], int]:
        """Every index file beside the SQLite file that checks (`read_index_file`), by name,
        and the highest generation any file names, used or not (the versions a file holds
        are never given again); blocking, and touching nothing of the store's."""
        folder = index_file.folder_of(self.path)
        found = {}
        generation = 0
        for path in folder.glob(f"*{index_file.SUFFIX}") if folder.is_dir() else []:
            header = index_file.read_header(path)
            if header is not None:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    generation = max(generation, int(header[0]["generation"]))
            read = index_file.read_index_file(
                path, file_id=file_id, dimensions=self.dimensions, options=self._options
            )
            if read is not None:
                found[path.name] = read
        return found, generation

    async def _restore_indexes(
        self,
        file: SqliteFile,
        groups: dict[tuple[str, str], list[str]],
        files: dict[str, index_file.IndexFile],
    ) -> None:
        """Load or build the index of each group (module docstring), off the loop, with the
        graphs of ``files`` (`_read_graphs`)."""
        for (model, scope), ids in groups.items():
            index: ScopeIndex | None = None
            missing: list[str] | None = None  # None: every vector
            found = files.pop(index_file.file_name(model, scope), None)
            if found is not None and (found.model, found.scope) == (model, scope):
                index, missing = await asyncio.to_thread(self._adopt, found, ids)
                self.opening.graphs_loaded += 1
            if index is None:
                index = ScopeIndex(dimensions=self.dimensions, options=self._options)
            if missing is None or missing:
                got, vectors = await file.vectors(model=model, scope=scope, ids=missing)
                # Only what is held (rows the byte bound dropped may not be deleted yet), and
                # the entries' own id strings: one string per id, not two.
                keep = [i for i, entry_id in enumerate(got) if entry_id in self._held]
                got, vectors = [self._held[got[i]].id for i in keep], vectors[keep]
                self.opening.vectors_read += len(got)
                await asyncio.to_thread(index.add_many, got, vectors)
            if index.needs_rebuild():
                built = not index.approximate or index.tombstones > 0
                await asyncio.to_thread(index.rebuild)
                self.opening.graphs_built += built and index.approximate
            self._indexes.install(model, scope, index)
        self._indexes.take_touched()
        logger.info(
            "cache indexes of %s: %d graphs loaded from their files, %d built, %d vectors read",
            self.path,
            self.opening.graphs_loaded,
            self.opening.graphs_built,
            self.opening.vectors_read,
        )

    def _adopt(self, found: index_file.IndexFile, ids: list[str]) -> tuple[ScopeIndex, list[str]]:
        """The index of a file's graph, keeping the positions SQLite agrees with, and the ids of
        ``ids`` it lacks."""
        model, scope, held_of = found.model, found.scope, self._held.get
        kept: list[str | None] = []
        for entry_id, vgen in zip(found.ids, found.vgens.tolist(), strict=True):
            held = None if entry_id is None else held_of(entry_id)
            agrees = (
                held is not None
                and held.vgen == vgen
                and held.scope == scope
                and held.model == model
            )
            kept.append(held.id if agrees and held is not None else None)  # the entry's string
        index = ScopeIndex.loaded(found.graph, kept, options=self._options)
        return index, [entry_id for entry_id in ids if entry_id not in index]


async def _finished(work: Coroutine[Any, Any, Any]) -> None:
    """Await ``work`` (a worker thread's), to its end even when cancelled: a thread cannot be
    stopped, and a graph it is writing must stay frozen until it has (a cancelled checkpoint
    would otherwise add to the graph under the writer, and the next write race it)."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        raise


@contextlib.contextmanager
def _bulk_objects() -> Iterator[None]:
    """No cyclic garbage collection while a store reads its rows: it would scan the millions of
    objects being made, again and again, and none of them form cycles (a fifth to a half of the
    load time at 200k entries, measured). Back on before any graph is built, which may take
    minutes. Reference counting still frees what goes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _created_at(pair: tuple[Held, int]) -> float:
    return pair[0].created_at


def _remove_files_but(folder: Path, kept: set[str]) -> None:
    """Remove the index files (and leftover temporary files) in ``folder`` not named in ``kept``."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name not in kept and path.name.endswith((index_file.SUFFIX, ".tmp")):
            path.unlink(missing_ok=True)
