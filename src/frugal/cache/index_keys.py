"""Which key each entry has in a `ScopeIndex`: the small integer its backends know it by.

    keys = IdKeys()                       # any hashable ids: a dict
    keys = RowKeys(lambda: table.index_key)   # ids that are rows of the caller's table
    key = keys.take("id-1")               # a free key (a removed entry's first), now the id's
    keys.key("id-1"), keys.id_at(key)     # both ways
    keys.release("id-1")                  # its key, free again; None if it had none

Keys stay small: a removed entry's key goes to the next entry added, so a backend finds a
key's position in an array (`frugal.cache.index`). `IdKeys` holds a dict of ids to keys and a
list back: about 90 bytes an entry. The embedded store knows entries by their row in its
`EntryTable`, and a row is in one index at most, so `RowKeys` keeps each row's key in one int32
column of the table (4 bytes an entry, shared by every index) and each key's row in a numpy
array (8 bytes): no Python object an entry.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)
_NONE = -1


class KeyMap(Protocol[K]):
    """What `ScopeIndex` asks of a key map (`IdKeys`, `RowKeys`)."""

    def __len__(self) -> int: ...
    def __contains__(self, entry_id: object) -> bool: ...
    def key(self, entry_id: K) -> int: ...
    def keys(self, entry_ids: Sequence[K]) -> np.ndarray: ...
    def take(self, entry_id: K) -> int: ...
    def take_many(self, entry_ids: Sequence[K | None] | np.ndarray) -> np.ndarray: ...
    def release(self, entry_id: K) -> int | None: ...
    def id_at(self, key: int) -> K | None: ...
    def ids_at(self, keys: np.ndarray) -> list[K | None]: ...
    def ids(self) -> list[K]: ...
    def iter_ids(self) -> Iterator[K]: ...


class IdKeys(Generic[K]):
    """Keys of any hashable ids, in a dict; ids come back in the order they were added."""

    def __init__(self) -> None:
        self._key_of: dict[K, int] = {}
        self._id_of: list[K | None] = []  # by key; None: a free key
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self._key_of)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._key_of

    def key(self, entry_id: K) -> int:
        return self._key_of[entry_id]

    def keys(self, entry_ids: Sequence[K]) -> np.ndarray:
        return np.array([self._key_of[i] for i in entry_ids], dtype=np.int64)

    def take(self, entry_id: K) -> int:
        """A key for ``entry_id`` (not held): a free one if any, else the next."""
        if self._free:
            key = self._free.pop()
            self._id_of[key] = entry_id
        else:
            key = len(self._id_of)
            self._id_of.append(entry_id)
        self._key_of[entry_id] = key
        return key

    def take_many(self, entry_ids: Sequence[K | None] | np.ndarray) -> np.ndarray:
        """Keys for ``entry_ids`` (not held); -1 for None and for an id listed before."""
        if isinstance(entry_ids, np.ndarray):  # rows, -1 for a tombstone
            entry_ids = [None if i < 0 else i for i in entry_ids.tolist()]
        return np.array(
            [_NONE if i is None or i in self._key_of else self.take(i) for i in entry_ids],
            dtype=np.int64,
        )

    def release(self, entry_id: K) -> int | None:
        key = self._key_of.pop(entry_id, None)
        if key is not None:
            self._id_of[key] = None
            self._free.append(key)
        return key

    def id_at(self, key: int) -> K | None:
        return self._id_of[key]

    def ids_at(self, keys: np.ndarray) -> list[K | None]:
        """The id of each key of ``keys`` (None for -1, a tombstone, and for a free key)."""
        id_of = self._id_of
        return [None if key < 0 else id_of[key] for key in keys.tolist()]

    def ids(self) -> list[K]:
        return list(self._key_of)

    def iter_ids(self) -> Iterator[K]:
        return iter(self._key_of)


class RowKeys:
    """Keys of rows of the caller's table: ``column()`` is the table's int32 column of each
    row's key (-1: none; the current array, which the table may replace as it grows). Ids come
    back in key order (a removed row's key goes to a later one), not in the order added."""

    def __init__(self, column: Callable[[], np.ndarray]) -> None:
        self._column = column
        self._row_of = np.full(16, _NONE, dtype=np.int64)  # by key; -1: a free key
        self._next = 0  # keys ever given
        self._free: list[int] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, row: object) -> bool:
        if not isinstance(row, (int, np.integer)):
            return False
        column = self._column()
        key = int(column[row]) if 0 <= row < len(column) else _NONE
        return 0 <= key < self._next and int(self._row_of[key]) == int(row)

    def key(self, row: int) -> int:
        if row not in self:
            raise KeyError(row)
        return int(self._column()[row])

    def keys(self, rows: Sequence[int]) -> np.ndarray:
        if len(rows) == 1:  # a hit's vector: without the array operations' overhead
            return np.array([self.key(rows[0])], dtype=np.int64)
        at = np.asarray(rows, dtype=np.int64)
        keys = self._column()[at].astype(np.int64)
        if len(keys) and (
            keys.min() < 0
            or keys.max() >= self._next  # another index's key
            or not np.array_equal(self._row_of[keys], at)
        ):
            raise KeyError(rows)
        return keys

    def take(self, row: int) -> int:
        assert self._column()[row] < 0, f"row {row} is in an index already"
        key = self._free.pop() if self._free else self._grow(1)
        self._row_of[key] = row
        self._column()[row] = key
        self._count += 1
        return key

    def take_many(self, rows: Sequence[int | None] | np.ndarray) -> np.ndarray:
        """Keys for ``rows`` (not held), new ones in a block; -1 for None (or -1, in an array)
        and for a row listed before."""
        if isinstance(rows, np.ndarray):
            at = rows.astype(np.int64)
        else:
            at = np.array([_NONE if row is None else row for row in rows], dtype=np.int64)
        wanted = at >= 0
        _, first = np.unique(at, return_index=True)
        once = np.zeros(len(at), dtype=bool)
        once[first] = True
        wanted &= once
        keys = np.full(len(at), _NONE, dtype=np.int64)
        assert (self._column()[at[wanted]] < 0).all(), "a row is in an index already"
        count = int(wanted.sum())
        start = self._grow(count)
        keys[wanted] = np.arange(start, start + count)
        self._row_of[keys[wanted]] = at[wanted]
        self._column()[at[wanted]] = keys[wanted]
        self._count += count
        return keys

    def release(self, row: int) -> int | None:
        if row not in self:
            return None
        column = self._column()
        key = int(column[row])
        column[row] = _NONE
        self._row_of[key] = _NONE
        self._free.append(key)
        self._count -= 1
        return key

    def id_at(self, key: int) -> int | None:
        row = int(self._row_of[key])
        return None if row < 0 else row

    def ids_at(self, keys: np.ndarray) -> list[int | None]:
        """The row of each key of ``keys`` (None for -1, a tombstone, and for a free key)."""
        rows = np.where(keys >= 0, self._row_of[np.maximum(keys, 0)], _NONE)
        return [None if row < 0 else row for row in rows.tolist()]

    def ids(self) -> list[int]:
        rows = self._row_of[: self._next]
        listed: list[int] = rows[rows >= 0].tolist()
        return listed

    def iter_ids(self) -> Iterator[int]:
        return iter(self.ids())

    def _grow(self, count: int) -> int:
        """``count`` new keys in a block; the first."""
        start = self._next
        self._next += count
        if self._next > len(self._row_of):  # by doubling: one take must stay O(1)
            grown = np.full(max(self._next, 2 * len(self._row_of)), _NONE, dtype=np.int64)
            grown[: len(self._row_of)] = self._row_of
            self._row_of = grown
        return start
