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

Memory: an entry is a row of an `EntryTable` (its fields as columns, the answer
zlib-compressed, no vector); its vector is held once, by its scope index (as float16:
`IndexOptions.encoding`), keyed by the row, and read back from there when an entry is handed
out or written. See `EntryTable.size` for what counts toward ``max_bytes``.

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
table (its id and exact-tier maps) and the index in agreement, and `search` re-checks each
index answer against the table besides, recomputing the similarity from the vector the index
holds for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugal.cache import index_file
from frugal.cache.entry_table import UNUSED, EntryTable
from frugal.cache.index import IndexOptions, ScopeIndex
from frugal.cache.index_keys import RowKeys
from frugal.cache.model_indexes import ModelIndexes
from frugal.cache.sqlite_file import Loaded, SqliteFile, stored_row
from frugal.cache.store import (
    BASE_MODEL_ID,
    EXACT_ONLY,
    Entry,
    Match,
    StoreStats,
    checked_vector,
)
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
    they count (`EntryTable.size`); ``dimensions`` is the vector length every entry and query must
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
        self._table = EntryTable()
        self._use_seq = 0  # the last use number given (a put or a hit: the LRU's order)
        self._put_seq = 0  # the last put number given (list_entries ties break on it)
        self._generation = 0  # the last vector version given (EntryTable.vgen)
        self._bytes = 0
        self._flushes = 0  # a flush frees every row: work across awaits checks it
        self._indexes = ModelIndexes(
            dimensions=dimensions, options=self._options, keys=self._row_keys
        )
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
                loaded = await file.load(now=time.time() if now is None else now, into=store._table)
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
        table = self._table
        row = table.find_prompt(scope, prompt_hash)
        if row is None or table.model[row] != table.models.find(model):
            return None
        if partition is not None and table.partition[row] != table.partitions.find(partition):
            return None
        return table.entry(row, self._vector_of(row))

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
        table = self._table
        in_partition = None if partition is None else table.partitions.find(partition)
        found = []
        for row, _ in index.search(query, k):
            if not table.holds(row, scope=scope, model=model):
                logger.error("scope index returned a foreign or removed entry at row %d", row)
                continue
            if partition is not None and table.partition[row] != in_partition:
                continue
            found.append(row)
        if not found:
            return []
        matches = []
        for row, own in zip(found, index.vectors_of(found), strict=True):
            similarity = float(own @ query)
            if similarity >= min_similarity:
                matches.append(Match(entry=table.entry(row, own), similarity=similarity))
        matches.sort(key=lambda match: match.similarity, reverse=True)
        return matches

    async def put(self, entry: Entry) -> None:
        """Store ``entry`` as the most recently used, replacing an entry with its id and one
        with its scope and prompt_hash; evict past the bounds. ValueError for a bad vector."""
        vector = checked_vector(entry, self.dimensions)
        table = self._table
        if (same := table.find(entry.id)) is not None:
            self._remove(same)
        if (twin := table.find_prompt(entry.scope, entry.prompt_hash)) is not None:
            self._remove(twin)
        self._generation += 1
        self._use_seq += 1
        self._put_seq += 1
        row = table.add(entry, vgen=self._generation, used_seq=self._use_seq, put_seq=self._put_seq)
        self._bytes += self._size(row)
        if vector is not None:
            self._indexes.add(entry.model, entry.scope, row, vector)
        self._disk.changed(entry.id, stored_row(table, row, vector))
        # Sweeping after the insert: an entry born expired (ttl 0) goes as an expiry, without
        # evicting a live one for it.
        self._sweep(entry.created_at)
        while self._over_bound() and (victim := self._least_recent()) is not None:
            self._remove(victim)
            self._evictions += 1
        self._changed()

    async def record_hit(self, entry_id: str, *, now: float) -> None:
        self._sweep(now)
        table = self._table
        row = table.find(entry_id)
        if row is None:  # evicted or expired between the lookup and the hit: nothing to do
            return
        table.hits[row] += 1
        table.last_used_at[row] = now
        self._use_seq += 1
        table.used_seq[row] = self._use_seq
        self._disk.changed(entry_id, stored_row(table, row, self._vector_of(row)))
        self._changed()

    async def delete(self, entry_ids: list[str]) -> int:
        removed = 0
        for entry_id in entry_ids:  # one at a time: an id may be listed twice
            if (row := self._table.find(entry_id)) is not None:
                self._remove(row)
                removed += 1
        self._changed()
        return removed

    async def delete_where(self, *, partition: str | None = None, scope: str | None = None) -> int:
        if partition is None and scope is None:
            raise ValueError("delete_where needs a partition or a scope")
        table = self._table
        rows = table.live_rows()
        for codes, column, wanted in (
            (table.partitions, table.partition, partition),
            (table.scopes, table.scope, scope),
        ):
            if wanted is not None:
                code = codes.find(wanted)
                rows = rows[column[rows] == code] if code is not None else rows[:0]
        for row in rows.tolist():
            self._remove(row)
        self._changed()
        return len(rows)

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
        table = self._table
        doomed: list[tuple[int, int]] = []  # (row, vector version) of each match
        flushes = self._flushes
        for (of_model, _), index in self._indexes.items():
            if of_model != model:
                continue
            rows = index.ids()
            for start in range(0, len(rows), _SIMILAR_CHUNK):
                if self._flushes != flushes:
                    return 0  # what was compared went with the flush; rows are others' now
                in_partition = None if partition is None else table.partitions.find(partition)
                chunk = [
                    row
                    for row in rows[start : start + _SIMILAR_CHUNK]
                    if row in index  # not removed while the loop ran others
                    and (partition is None or table.partition[row] == in_partition)
                ]
                if chunk:
                    sims = index.vectors_of(chunk) @ query
                    hits = np.flatnonzero(sims >= min_similarity).tolist()
                    doomed.extend((chunk[i], int(table.vgen[chunk[i]])) for i in hits)
                await asyncio.sleep(0)  # a large store is swept in slices, letting lookups through
        # A row put again during the sweep holds another vector now: only the compared one goes.
        unchanged = [
            row for row, vgen in doomed if table.used_seq[row] != UNUSED and table.vgen[row] == vgen
        ]
        for row in unchanged:
            self._remove(row)
        self._changed()
        return len(unchanged)

    async def flush(self) -> int:
        self._flushes += 1
        count = len(self._table)
        self._table.clear()
        self._indexes.clear()
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
        table = self._table
        rows = table.live_rows()
        if partition is not None:
            code = table.partitions.find(partition)
            rows = rows[table.partition[rows] == code] if code is not None else rows[:0]
        newest = rows[np.lexsort((-table.put_seq[rows], -table.created_at[rows]))]
        return [table.entry(row, self._vector_of(row)) for row in newest[offset : offset + limit]]

    async def other_models(self, *, model: str, limit: int, now: float) -> tuple[list[Entry], int]:
        """Index by index (model and scope), each in its key order."""
        self._sweep(now)
        rows, total = self._indexes.other_models(model, limit=limit)
        return [self._table.entry(row, self._vector_of(row)) for row in rows], total

    async def reembed(self, changes: list[tuple[Entry, np.ndarray]], *, model: str) -> int:
        checked = [(listed, self._check_vector(vector)) for listed, vector in changes]
        table = self._table
        changed = 0
        for listed, vector in checked:
            row = table.find(listed.id)
            if row is None:
                continue
            held_model = table.models.value(table.model[row])
            if held_model != listed.model or held_model == model:
                continue  # removed, replaced or moved since it was listed
            if held_model == EXACT_ONLY:
                continue  # no vector of any model belongs to it
            scope = table.scopes.value(table.scope[row])
            self._indexes.remove(held_model, scope, row)
            self._generation += 1
            table.set_model(row, model, vgen=self._generation)
            self._indexes.add(model, scope, row, vector)
            self._disk.changed(listed.id, stored_row(table, row, vector))  # its use kept
            changed += 1
        self._changed()
        return changed

    async def stats(self) -> StoreStats:
        return StoreStats(
            entries=len(self._table),
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

    def index_of(self, scope: str, *, model: str = BASE_MODEL_ID) -> ScopeIndex[int] | None:
        """The index of ``model``'s entries in ``scope`` (keyed by row), for inspection (tests,
        benchmarks); do not change it."""
        return self._indexes.get(model, scope)

    def id_of_row(self, row: int) -> str:
        """The id of the entry that an index (`index_of`) names by ``row``, for inspection."""
        return self._table.id_of(row)

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
        table = self._table
        for (model, scope), index in self._indexes.items():
            if self._indexes.get(model, scope) is not index:
                continue  # flushed while an earlier graph was written: its rows are reused
            name = index_file.file_name(model, scope)
            if index.rebuilding:
                kept.add(name)
                continue
            with index.frozen() as frozen:
                if frozen is None:
                    continue
                graph, rows = frozen
                at = np.array([UNUSED if row is None else row for row in rows], dtype=np.int64)
                snapshot = index_file.IndexSnapshot.take(
                    index,
                    graph,
                    [None if row is None else table.id_of(row) for row in rows],
                    np.where(at != UNUSED, table.vgen[at], -1),
                    model=model,
                    scope=scope,
                    file_id=self._file_id,
                    generation=self._generation,
                )
                kept.add(name)
                await _finished(asyncio.to_thread(snapshot.write, folder))
            written += 1
            self._indexes.touched(index)  # a rebuild held back while frozen may be due
        await asyncio.to_thread(_remove_files_but, folder, kept)
        return written

    # ---- the in-memory state --------------------------------------------------------------

    def _remove(self, row: int) -> None:
        """Remove the entry of ``row`` from the table, its index and (soon) the file."""
        table = self._table
        entry_id = table.id_of(row)
        self._bytes -= self._size(row)
        if not table.vector_less(row):
            model, scope = table.model_and_scope(row)
            self._indexes.remove(model, scope, row)
        table.remove(row)
        self._disk.removed(entry_id)

    def _row_keys(self) -> RowKeys:
        """The key map of a new scope index: its rows' keys in the table's column."""
        return RowKeys(lambda: self._table.index_key)

    def _size(self, row: int) -> int:
        return self._table.size(row, 0 if self._table.vector_less(row) else self._vector_bytes)

    def _over_bound(self) -> bool:
        return len(self._table) > self.max_entries or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        )

    def _least_recent(self) -> int | None:
        table = self._table
        return table.by_use.pop(table.used_seq, sys.maxsize)

    def _vector_of(self, row: int) -> np.ndarray | None:
        """The vector the index holds for the entry of ``row`` (None: exact-only)."""
        table = self._table
        if table.vector_less(row):
            return None
        model, scope = table.model_and_scope(row)
        index = self._indexes.get(model, scope)
        assert index is not None  # every entry with a vector is indexed
        vector: np.ndarray = index.vectors_of([row])[0]
        return vector

    def _sweep(self, now: float) -> None:
        table = self._table
        if not len(table):
            return
        while (row := table.by_expiry.pop(table.expires_at, now)) is not None:
            self._remove(row)
            self._expirations += 1

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

    def _restore(self, loaded: Loaded) -> dict[tuple[str, str], list[int]]:
        """After the file filled the table, off the loop: apply the bounds (the least recently
        used go first), number the puts; return the rows of each (model, scope) to index, in
        put order."""
        table = self._table
        self._file_id = loaded.file_id
        self._expirations += loaded.expired
        live = table.live_rows()
        if len(live):
            self._use_seq = int(table.used_seq[live].max())
            self._generation = max(self._generation, int(table.vgen[live].max()))
        with_vector = np.ones(len(live), dtype=bool)
        if (exact := table.models.find(EXACT_ONLY)) is not None:
            with_vector = table.model[live] != exact
        self._bytes = int(table.own_bytes[live].sum()) + self._vector_bytes * int(with_vector.sum())
        while self._over_bound() and (victim := self._least_recent()) is not None:
            self._disk.removed(table.id_of(victim))
            self._bytes -= self._size(victim)
            table.remove(victim)  # in no index yet
            self._evictions += 1
        self._put_seq = table.number_puts()
        indexed = table.live_rows()
        if exact is not None:
            indexed = indexed[table.model[indexed] != exact]
        pairs = (table.model[indexed].astype(np.int64) << 32) | table.scope[indexed]
        order = np.lexsort((table.put_seq[indexed], pairs))
        indexed, pairs = indexed[order], pairs[order]
        bounds = [*np.flatnonzero(np.diff(pairs, prepend=-1)).tolist(), len(indexed)]
        groups = {}
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            row = int(indexed[start])
            model, scope = table.model_and_scope(row)
            groups[(model, scope)] = indexed[start:end].tolist()
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
        groups: dict[tuple[str, str], list[int]],
        files: dict[str, index_file.IndexFile],
    ) -> None:
        """Load or build the index of each group (module docstring), off the loop, with the
        graphs of ``files`` (`_read_graphs`)."""
        table = self._table
        for (model, scope), rows in groups.items():
            index: ScopeIndex[int] | None = None
            missing: list[int] | None = None  # None: every vector
            found = files.pop(index_file.file_name(model, scope), None)
            if found is not None and (found.model, found.scope) == (model, scope):
                index, missing = await asyncio.to_thread(self._adopt, found, rows)
                self.opening.graphs_loaded += 1
            if index is None:
                index = ScopeIndex(
                    dimensions=self.dimensions, options=self._options, keys=self._row_keys()
                )
            if missing is None or missing:
                ids = None if missing is None else [table.id_of(row) for row in missing]
                got, vectors = await file.vectors(model=model, scope=scope, ids=ids)
                # Only what is held (rows the bounds dropped may not be deleted yet).
                at = [table.find(entry_id) for entry_id in got]
                keep = [i for i, row in enumerate(at) if row is not None]
                held = [row for row in at if row is not None]
                self.opening.vectors_read += len(held)
                await asyncio.to_thread(index.add_many, held, vectors[keep])
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

    def _adopt(
        self, found: index_file.IndexFile, rows: list[int]
    ) -> tuple[ScopeIndex[int], list[int]]:
        """The index of a file's graph, keeping the positions SQLite agrees with, and the rows
        of ``rows`` it lacks."""
        table = self._table
        listed = [i for i, entry_id in enumerate(found.ids) if entry_id is not None]
        at = np.full(len(found.ids), UNUSED, dtype=np.int64)
        at[listed] = table.find_many([found.ids[i] for i in listed])  # type: ignore[misc]
        safe = np.where(at != UNUSED, at, 0)
        agrees = (
            (at != UNUSED)
            & (table.vgen[safe] == found.vgens)
            & (table.scope[safe] == table.scopes.find(found.scope))
            & (table.model[safe] == table.models.find(found.model))
        )
        kept = np.where(agrees, at, UNUSED)  # UNUSED (-1): a tombstone
        index = ScopeIndex.loaded(found.graph, kept, options=self._options, keys=self._row_keys())
        return index, [row for row in rows if row not in index]


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


def _remove_files_but(folder: Path, kept: set[str]) -> None:
    """Remove the index files (and leftover temporary files) in ``folder`` not named in ``kept``."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name not in kept and path.name.endswith((index_file.SUFFIX, ".tmp")):
            path.unlink(missing_ok=True)
