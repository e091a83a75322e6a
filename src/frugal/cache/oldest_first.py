"""Rows in increasing order of a column, found a batch at a time: the embedded store's LRU
(by use number) and expiry (by expiry time), without a Python object per entry.

    by_expiry = OldestFirst(dead=np.inf)
    by_expiry.noted(row, value)                     # a row whose value is now ``value``
    while (row := by_expiry.pop(expires_at, now)) is not None:
        ...                                         # each row due by ``now``, earliest first

A heap or an ordered dict holds an object per entry (about 90 bytes each at a million). This
picks the next batch of smallest values out of the column itself (``np.argpartition``: linear,
once per batch of about a 64th of the rows) and remembers the value each row had when picked. A
row whose value changed since is skipped when its turn comes (it was used again, or removed and
its row given to another entry), so the column stays the truth and a change costs nothing here,
unless it moves a row below the batch's horizon (an entry that expires sooner than those
picked): `noted` keeps those few in a small heap beside the batch.

Every row whose value is below ``horizon`` is in the batch or the heap; so when both are spent,
nothing below the horizon is left, and a new batch is picked only once a caller asks past it.
"""

from __future__ import annotations

import heapq

import numpy as np

_MIN_BATCH = 1024


class OldestFirst:
    """The rows of one column, smallest value first. Rows hold ``dead`` when not in use."""

    def __init__(self, *, dead: float, min_batch: int = _MIN_BATCH) -> None:
        self.dead = dead
        self._min_batch = min_batch
        self._rows: list[int] = []  # the batch, smallest value first
        self._values: list[float] = []  # each one's value when picked
        self._next = 0  # the batch's next place
        self._early: list[tuple[float, int]] = []  # rows noted below the horizon since
        self._horizon = -np.inf  # nothing picked yet
        self._none_live = False  # the last pick found no live row, and no row is new since

    def noted(self, row: int, value: float) -> None:
        """``row`` holds ``value`` now: a new row (and a changed one whose value may be below
        the horizon, which a use number, always the largest yet, never is)."""
        self._none_live = False
        if value < self._horizon:
            heapq.heappush(self._early, (value, row))

    def pop(self, column: np.ndarray, limit: float) -> int | None:
        """The row of the smallest value at most ``limit`` in ``column`` (dead rows hold
        ``dead``), taken out of the order: the caller removes the row or gives it a new value.
        None when no row's value is at most ``limit``."""
        while True:
            batch = self._values[self._next] if self._next < len(self._rows) else np.inf
            early = self._early[0][0] if self._early else np.inf
            if batch == early == np.inf:  # both spent: what is left is at the horizon or past
                if self._horizon > limit or self._none_live or not self._pick(column):
                    return None
                continue
            if min(batch, early) > limit:  # and so is everything past them
                return None
            if early <= batch:
                value, row = heapq.heappop(self._early)
            else:
                row, value = self._rows[self._next], batch
                self._next += 1
            if column[row] == value and value != self.dead:  # else changed since: skipped
                return row

    def _pick(self, column: np.ndarray) -> bool:
        """The next batch of smallest live values; False when no row is live."""
        alive = np.flatnonzero(column != self.dead)
        self._early, self._next = [], 0
        if not len(alive):  # none: the next ask picks again once a row is noted
            self._rows, self._values, self._horizon = [], [], -np.inf
            self._none_live = True
            return False
        size = max(self._min_batch, len(column) // 64)
        values = column[alive]
        if size < len(alive):
            picked = np.argpartition(values, size - 1)[:size]
        else:
            picked = np.arange(len(alive))
        # Rows at exactly the largest value picked may be left out, and rows given values
        # past it later are not noted: only rows below it are all in the batch.
        self._horizon = float(values[picked].max())
        order = picked[np.argsort(values[picked], kind="stable")]
        self._rows = alive[order].tolist()
        self._values = values[order].tolist()
        return True
