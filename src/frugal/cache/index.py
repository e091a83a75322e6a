"""A vector index for one scope: exact search while small, faiss HNSW once large.

Vectors are L2-normalised, so the inner product is the cosine similarity; the index holds them
as float16 by default (`IndexOptions.encoding`) and hands them back as float32. A
`ScopeIndex` maps entry ids to vectors and answers "the k most similar ids" for a query:

    index = ScopeIndex(dimensions=384)
    index.add("entry-1", vector)
    index.search(query, k=5)      # [("entry-1", 0.93), ...], best first

Below `IndexOptions.approximate_above` live vectors the index is a matrix searched
exhaustively (perfect recall, cheap to change). Past it, `needs_rebuild()` turns true and
`rebuild()` / `rebuild_async()` move the scope to a faiss HNSW graph (`IndexHNSWSQ`). HNSW
cannot delete, so a removed id becomes a tombstone that searches skip (asking faiss for more
candidates when
tombstones crowd the top); once tombstones pass `max_dead_share` of the graph, the index wants a
rebuild again. The index never decides when to rebuild on its own: its owner asks
`needs_rebuild()` after changes and runs a rebuild, which keeps this class free of tasks.

Ids given to the index are only ever returned while they are live in it, but the owner still
re-checks every result against its own entries: the index is an accelerator, not the truth.

Not thread-safe: use one index from one thread (the event loop). `rebuild_async` builds the new
graph in a worker thread on a private copy and swaps it in on the loop; taking that copy is the
one step that stays on the loop (a memory copy of the vectors, about 0.3 s per million).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Literal

import faiss
import numpy as np

from frugal.cache.index_keys import IdKeys, K, KeyMap

# faiss ships stubs that leave out its SWIG helpers and search parameters: those go through
# an untyped handle.
_swig: Any = faiss

# Catching up a background build with the changes made while it ran: up to this many vectors
# are added on the loop (a few ms); more go back to the worker thread for another round.
_INLINE_CATCH_UP = 64

Encoding = Literal["float16", "float32"]

_searching = threading.local()


def _search_on_one_thread() -> None:
    """Make faiss searches from this thread run without OpenMP workers. A single query gains
    nothing from them, and faiss opens a parallel region for each exhaustive search: on a busy
    2-core machine that waits for a core (p99 20-40 ms against 4 ms, measured at 5,000 rows).
    OpenMP's thread count is per thread, so graph builds on worker threads keep every core."""
    if not getattr(_searching, "single", False):
        faiss.omp_set_num_threads(1)
        _searching.single = True


@dataclass(frozen=True, kw_only=True)
class IndexOptions:
    """How a scope's index is built; the defaults are measured on real embeddings
    (``benchmarks/store_lookup.py``, results in ``benchmarks/results/store_lookup.md``).

    - ``approximate_above``: exhaustive search costs about 0.4 ms at 10,000 vectors and is
      exact; past that it grows linearly (1 ms at 20k, 3 ms at 50k) while HNSW stays under
      1 ms up to 1M, so a scope switches to HNSW when it outgrows 10,000.
    - ``hnsw_m``, ``ef_construction``: the graph's degree and build width. M=48, efC=120
      reached recall@1 0.996 at efSearch 64 on 100k vectors, where M=32, efC=80 reached 0.990,
      for about twice the build time (26 s per 100k vectors on 2 cores).
    - ``ef_search``: the search width; 256 keeps recall@1 at or above 0.99 up to 1M vectors
      (0.997 at 1M, where 64 gave 0.971 and 192 gave 0.992), at about 0.9 ms a query.
    - ``max_dead_share``: the share of tombstones at which an HNSW index is rebuilt.
    - ``encoding``: how each vector is held. float16 halves the memory (768 bytes at 384
      dimensions) and, on 100k QQP questions, kept recall@1 within 0.001 of float32 while
      searching faster (0.71 ms against 1.03 at efSearch 256: half the bytes to read); a
      similarity moves by about 1e-4 at most. The SQLite file keeps the float32 vector a `put`
      gave until the entry is next written.
    """

    approximate_above: int = 10_000
    hnsw_m: int = 48
    ef_construction: int = 120
    ef_search: int = 256
    max_dead_share: float = 0.25
    encoding: Encoding = "float16"

    @property
    def bytes_per_dimension(self) -> int:
        return 2 if self.encoding == "float16" else 4

    def __post_init__(self) -> None:
        if self.approximate_above < 1:
            raise ValueError(f"approximate_above must be at least 1, got {self.approximate_above}")
        if not 0.0 < self.max_dead_share < 1.0:
            raise ValueError(f"max_dead_share must be in (0, 1), got {self.max_dead_share}")


def as_held(vector: np.ndarray, encoding: Encoding = "float16") -> np.ndarray:
    """``vector`` as an index in ``encoding`` holds it and hands it back (float32 values)."""
    array = np.asarray(vector, dtype=np.float32)
    return array.astype(np.float16).astype(np.float32) if encoding == "float16" else array


def _flat(dimensions: int, encoding: Encoding) -> Any:
    """A faiss index of codes searched exhaustively, in ``encoding``."""
    if encoding == "float16":
        return faiss.IndexScalarQuantizer(
            dimensions, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
    return faiss.IndexFlatIP(dimensions)


def _graph(dimensions: int, options: IndexOptions) -> Any:
    """An empty faiss HNSW graph over vectors in ``options.encoding``."""
    index: Any  # faiss's stubs type IndexHNSWSQ's quantizer argument as an object, not its enum
    if options.encoding == "float16":
        index = _swig.IndexHNSWSQ(
            dimensions, faiss.ScalarQuantizer.QT_fp16, options.hnsw_m, faiss.METRIC_INNER_PRODUCT
        )
    else:
        index = faiss.IndexHNSWFlat(dimensions, options.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = options.ef_construction
    return index


class _Positions:
    """Each key's position in a backend: an array indexed by key, -1 where the key has none.
    Keys stay small (a removed entry's key is given to the next one added), so this costs 8
    bytes an entry where a dict of ints cost about 100."""

    def __init__(self) -> None:
        self._at = np.full(16, -1, dtype=np.int64)
        self.live = 0

    def set(self, keys: np.ndarray, positions: np.ndarray) -> None:
        """Place ``keys`` (none placed yet) at ``positions``."""
        if not len(keys):
            return
        top = int(keys.max()) + 1
        if top > len(self._at):  # grow by doubling: one add must stay O(1)
            grown = np.full(max(top, 2 * len(self._at)), -1, dtype=np.int64)
            grown[: len(self._at)] = self._at
            self._at = grown
        self._at[keys] = positions
        self.live += len(keys)

    def move(self, key: int, position: int) -> None:
        self._at[key] = position

    def pop(self, key: int) -> int:
        """The position of ``key``, which has none from now on; KeyError if it had none."""
        position = int(self._at[key]) if 0 <= key < len(self._at) else -1
        if position < 0:
            raise KeyError(key)
        self._at[key] = -1
        self.live -= 1
        return position

    def of(self, keys: list[int]) -> np.ndarray:
        """The positions of ``keys`` (each placed)."""
        positions = self._at[np.asarray(keys, dtype=np.int64)]
        if len(positions) and positions.min() < 0:
            raise KeyError(keys)
        return positions


class _Backend:
    """A faiss index of positions, the key at each position and each key's position: what
    both kinds of backend share (they set ``_index``, ``_keys`` and ``_pos``)."""

    _index: Any
    _keys: np.ndarray
    _pos: _Positions

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        start = self._index.ntotal
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        if start + len(keys) > len(self._keys):  # grow by doubling: one add must stay O(1)
            self._keys = np.resize(self._keys, max(start + len(keys), 2 * len(self._keys)))
        self._keys[start : start + len(keys)] = keys
        self._pos.set(keys, np.arange(start, start + len(keys)))

    def vectors(self, keys: list[int]) -> np.ndarray:
        vectors: np.ndarray = self._index.reconstruct_batch(self._pos.of(keys))
        return vectors


class _Exact(_Backend):
    """Vectors searched exhaustively (faiss's SIMD kernels, on this thread); removal moves the
    last row into the removed one's place."""

    dead = 0  # removal is immediate: never any tombstones

    def __init__(self, dimensions: int, options: IndexOptions) -> None:
        # Not a numpy `matrix @ query`: OpenBLAS runs a large matrix-vector product on several
        # threads, which on a busy 2-core machine waits for a free core (8 ms instead of
        # 0.1 ms at 5,000 rows, measured). faiss's kernel stays on this thread, and reads
        # float16 codes as fast as float32 ones (0.26 ms against 0.33 at 10,000 rows).
        self._index = _flat(dimensions, options.encoding)
        self._keys = np.empty(16, dtype=np.int64)
        self._pos = _Positions()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def remove(self, key: int) -> None:
        pos = self._pos.pop(key)
        last = self._index.ntotal - 1
        if pos != last:
            size = self._index.code_size
            codes = _swig.rev_swig_ptr(self._index.codes.data(), (last + 1) * size)
            codes[pos * size : (pos + 1) * size] = codes[last * size : (last + 1) * size]
            moved = int(self._keys[last])
            self._keys[pos] = moved
            self._pos.move(moved, pos)
        self._index.remove_ids(_swig.IDSelectorRange(last, last + 1))  # drops the last row

    def search(
        self, query: np.ndarray, k: int, ef_search: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        n = self._index.ntotal
        sims, positions = self._index.search(query[np.newaxis, :], min(k, n))
        order = np.lexsort((positions[0], -sims[0]))  # equal similarities: the earlier row first
        return self._keys[positions[0][order]], sims[0][order]

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        n = self._index.ntotal
        return self._keys[:n].copy(), self._index.reconstruct_n(0, n)


class _Hnsw(_Backend):
    """A faiss HNSW graph over positions; removed positions are tombstones (key -1)."""

    def __init__(self, dimensions: int, options: IndexOptions) -> None:
        self._index = _graph(dimensions, options)
        self._ef_search = options.ef_search
        self._keys = np.empty(0, dtype=np.int64)  # by position; -1 marks a tombstone
        self._pos = _Positions()
        self.dead = 0

    @classmethod
    def loaded(cls, index: Any, keys: np.ndarray, options: IndexOptions) -> _Hnsw:
        """The graph ``index`` (read from a file) with ``keys`` by position, -1 where a
        position is a tombstone."""
        hnsw = cls(index.d, options)
        hnsw._index = index
        hnsw._keys = keys
        placed = np.flatnonzero(keys >= 0)
        hnsw._pos.set(keys[placed], placed)
        hnsw.dead = len(keys) - len(placed)
        return hnsw

    def __len__(self) -> int:
        return self._pos.live

    def remove(self, key: int) -> None:
        pos = self._pos.pop(key)
        self._keys[pos] = -1
        self.dead += 1

    def search(
        self, query: np.ndarray, k: int, ef_search: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        total = self._index.ntotal
        # Tombstones take places in faiss's answer: ask for enough to expect k live ones.
        want = min(total, math.ceil(k * total / max(1, self._pos.live)) + (8 if self.dead else 0))
        while True:
            params = _swig.SearchParametersHNSW()
            params.efSearch = max(ef_search or self._ef_search, want)
            sims, positions = self._index.search(query[np.newaxis, :], want, params=params)
            found = positions[0] >= 0
            keys = self._keys[positions[0][found]]  # positions < ntotal, never the spare capacity
            live = keys >= 0
            if live.sum() >= k or want >= total:
                return keys[live][:k], sims[0][found][live][:k]
            want = min(total, want * 4)

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        keys = self._keys[: self._index.ntotal]
        vectors = self._index.reconstruct_n(0, self._index.ntotal)
        return keys[keys >= 0], vectors[keys >= 0]


class ScopeIndex(Generic[K]):
    """The vectors of one scope, searchable by inner product; see the module docstring.
    Entries are known by keys of the caller's (ids, or the store's row numbers)."""

    def __init__(
        self,
        *,
        dimensions: int,
        options: IndexOptions | None = None,
        keys: KeyMap[K] | None = None,
    ) -> None:
        self.dimensions = dimensions
        self.options = options or IndexOptions()
        self._backend: _Exact | _Hnsw = _Exact(dimensions, self.options)
        # Ids map to integer keys (``keys``: a dict unless the caller gives a `RowKeys`), which
        # the backends know entries by; a removed entry's key is given to the next add, which
        # keeps keys small (`_Positions`). Changes made during a background build are journaled
        # in order by key, so a key removed and given again meanwhile is replayed as exactly
        # that: the old vector out, the new one in.
        self._keys: KeyMap[K] = keys if keys is not None else IdKeys()
        self._journal: list[tuple[bool, int]] | None = None  # changes during a background build
        self.rebuilding = False
        # Adds held beside the graph while it is written to a file (`frozen`), by key.
        self._parked: dict[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._keys

    @property
    def approximate(self) -> bool:
        """Whether searches go through the HNSW graph (else: exhaustive, exact)."""
        return isinstance(self._backend, _Hnsw)

    @property
    def tombstones(self) -> int:
        return self._backend.dead

    def add(self, entry_id: K, vector: np.ndarray) -> None:
        """Add ``entry_id`` (replacing its earlier vector, if any). ``vector``: shape (d,)."""
        if entry_id in self._keys:
            self.remove(entry_id)
        key = self._keys.take(entry_id)
        if self._parked is not None:
            self._parked[key] = as_held(self._as_matrix(vector)[0], self.options.encoding)
        else:
            self._backend.add(np.array([key], dtype=np.int64), self._as_matrix(vector))
        if self._journal is not None:
            self._journal.append((True, key))

    def remove(self, entry_id: K) -> bool:
        """Forget ``entry_id``; return whether it was here."""
        key = self._keys.release(entry_id)
        if key is None:
            return False
        if self._parked is not None and key in self._parked:
            del self._parked[key]
        else:
            self._backend.remove(key)  # on a frozen graph: a tombstone, the graph untouched
        if self._journal is not None:
            self._journal.append((False, key))
        return True

    def search(
        self, query: np.ndarray, k: int, *, ef_search: int | None = None
    ) -> list[tuple[K, float]]:
        """Up to ``k`` (id, similarity) pairs of live ids, most similar first.

        ``ef_search`` overrides the HNSW search width for this query (benchmarks tune it).
        """
        if k < 1 or not len(self._keys):
            return []
        _search_on_one_thread()
        row = self._as_matrix(query)[0]
        keys, sims = self._backend.search(row, k, ef_search)
        if self._parked:  # the few added while the graph is being written: compared one by one
            parked = np.array(list(self._parked), dtype=np.int64)
            keys = np.concatenate([keys, parked])
            sims = np.concatenate([sims, np.stack(list(self._parked.values())) @ row])
            best = np.lexsort((keys, -sims))[:k]
            keys, sims = keys[best], sims[best]
        found = []
        for key, sim in zip(keys.tolist(), sims.tolist(), strict=True):
            entry_id = self._keys.id_at(key)
            if entry_id is not None:  # backends return only keys they hold: always so
                found.append((entry_id, sim))
        return found

    def vectors_of(self, entry_ids: list[K]) -> np.ndarray:
        """The vectors of ``entry_ids`` (all held here), one row each, as the index holds them."""
        keys = self._keys.keys(entry_ids).tolist()
        if not self._parked:
            return self._backend.vectors(keys)
        rows = np.empty((len(keys), self.dimensions), dtype=np.float32)
        in_graph = [i for i, key in enumerate(keys) if key not in self._parked]
        if in_graph:
            rows[in_graph] = self._backend.vectors([keys[i] for i in in_graph])
        for i, key in enumerate(keys):
            if key in self._parked:
                rows[i] = self._parked[key]
        return rows

    def ids(self) -> list[K]:
        """Every id held: the earliest added first with the default key map, in key order with
        a `RowKeys`."""
        return self._keys.ids()

    def iter_ids(self) -> Iterator[K]:
        """Every id held, as `ids` orders them, without a copy where the key map allows: do not
        change the index while iterating."""
        return self._keys.iter_ids()

    def graph(self) -> tuple[Any, list[K | None]] | None:
        """The faiss graph of an approximate index and the id at each of its positions (None
        for a tombstone); None for an exact index, which is rebuilt from its vectors instead.
        Do not change the graph; to read it on another thread, use `frozen`."""
        if not isinstance(self._backend, _Hnsw):
            return None
        backend = self._backend
        return backend._index, self._keys.ids_at(backend._keys[: backend._index.ntotal])

    @contextmanager
    def frozen(self) -> Iterator[tuple[Any, list[K | None]] | None]:
        """`graph`, left unchanged until the block ends, so that another thread may write it
        to a file while this one serves: meanwhile adds are held beside the graph (searched
        one by one, and added to it when the block ends), removals only mark tombstones,
        which live outside the graph, and no rebuild starts (`needs_rebuild` is False)."""
        found = self.graph()
        if found is None:
            yield None
            return
        self._parked = {}
        try:
            yield found
        finally:
            parked, self._parked = self._parked, None
            if parked:
                self._backend.add(
                    np.array(list(parked), dtype=np.int64), np.stack(list(parked.values()))
                )

    @classmethod
    def loaded(
        cls,
        graph: Any,
        ids: list[K | None] | np.ndarray,
        *,
        options: IndexOptions | None = None,
        keys: KeyMap[K] | None = None,
    ) -> ScopeIndex[K]:
        """An approximate index of the faiss ``graph`` read from a file, ``ids`` by position
        (None: the position's vector is not to be used, a tombstone; or an array of rows, -1
        for a tombstone, with `RowKeys`); ``keys`` as for a new index (empty)."""
        index = cls(dimensions=graph.d, options=options, keys=keys)
        taken = index._keys.take_many(ids)  # -1 for None and for an id seen before
        index._backend = _Hnsw.loaded(graph, taken, index.options)
        return index

    def add_many(self, entry_ids: list[K], vectors: np.ndarray) -> None:
        """Add entries not held yet, in one call to the backend (start-up)."""
        keys = self._keys.take_many(entry_ids)
        if len(entry_ids):
            self._backend.add(keys, np.ascontiguousarray(vectors, dtype=np.float32))

    def needs_rebuild(self) -> bool:
        """Whether the index should change kind, or shed its tombstones (never while
        `frozen`)."""
        if self._parked is not None:
            return False
        if isinstance(self._backend, _Exact):
            return len(self) > self.options.approximate_above
        total = len(self) + self._backend.dead
        return (
            self._backend.dead > self.options.max_dead_share * total
            or len(self) < self.options.approximate_above // 2
        )

    def rebuild(self) -> None:
        """Rebuild now, on this thread (start-up, tests): the kind follows the live count."""
        keys, vectors = self._backend.live()
        self._backend = self._build(keys, vectors)

    async def rebuild_async(self) -> None:
        """Rebuild with the graph construction in a worker thread; searches go on meanwhile.

        The old index keeps serving (and taking changes) while the new one is built from a
        snapshot; changes made meanwhile are journaled and replayed onto the new index before
        it replaces the old one, all on the loop, so nothing is lost or resurrected.
        """
        if self.rebuilding:
            return
        self.rebuilding = True
        try:
            while self.needs_rebuild():
                keys, vectors = self._backend.live()
                if not self._wants_approximate():
                    self._backend = self._build(keys, vectors)
                    continue
                self._journal = []
                new = _Hnsw(self.dimensions, self.options)
                while True:
                    await asyncio.to_thread(new.add, keys, vectors)
                    added = self._replay_removals(new)
                    keys = np.array(added, dtype=np.int64)
                    vectors = self._backend.vectors(added)
                    if len(added) <= _INLINE_CATCH_UP:
                        break
                new.add(keys, vectors)
                self._backend = new
                self._journal = None
        finally:
            self._journal = None
            self.rebuilding = False

    def _replay_removals(self, new: _Hnsw) -> list[int]:
        """Apply the journaled removals to ``new``; return the keys added since, still live."""
        assert self._journal is not None
        journal, self._journal = self._journal, []
        added: dict[int, None] = {}
        for is_add, key in journal:
            if is_add:
                added[key] = None
            elif key in added:
                del added[key]
            else:
                new.remove(key)
        return list(added)

    def _wants_approximate(self) -> bool:
        # Hysteresis: an HNSW scope stays HNSW until it shrinks to half the threshold, so a
        # scope hovering at the threshold is not rebuilt back and forth.
        limit = self.options.approximate_above
        return len(self) > limit or (self.approximate and len(self) >= limit // 2)

    def _build(self, keys: np.ndarray, vectors: np.ndarray) -> _Exact | _Hnsw:
        backend: _Exact | _Hnsw
        if self._wants_approximate():
            backend = _Hnsw(self.dimensions, self.options)
        else:
            backend = _Exact(self.dimensions, self.options)
        backend.add(keys, vectors)
        return backend

    def _as_matrix(self, vector: np.ndarray) -> np.ndarray:
        row = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)  # faiss reads raw
        if row.shape[1] != self.dimensions:
            raise ValueError(f"expected a vector of {self.dimensions} dimensions, got {row.shape}")
        return row
