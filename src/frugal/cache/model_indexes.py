"""The embedded store's vector indexes: one `ScopeIndex` per (embedding model, scope).

Vectors of two models are never compared, so each model has indexes of its own, which also
lets the store find what a re-embedding is to move without a scan of the entries. The indexes
changed since the owner last asked are kept (`take_touched`), for it to schedule their
rebuilds; like `ScopeIndex`, this is used from one thread (the event loop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice

import numpy as np

from frugal.cache.index import IndexOptions, ScopeIndex
from frugal.cache.index_keys import KeyMap


class ModelIndexes:
    """The indexes of entries of ``dimensions``-long vectors, built with ``options``; each
    new index keys its rows with a map from ``keys`` (`frugal.cache.index_keys.RowKeys`)."""

    def __init__(
        self, *, dimensions: int, options: IndexOptions, keys: Callable[[], KeyMap[int]]
    ) -> None:
        self.dimensions = dimensions
        self.options = options
        self.keys = keys
        self._indexes: dict[tuple[str, str], ScopeIndex[int]] = {}  # by (model, scope)
        self._touched: set[ScopeIndex[int]] = set()

    def __iter__(self) -> Iterator[ScopeIndex[int]]:
        return iter(self._indexes.values())

    def get(self, model: str, scope: str) -> ScopeIndex[int] | None:
        """The index of ``model``'s entries in ``scope``, if it has any."""
        return self._indexes.get((model, scope))

    def items(self) -> Iterator[tuple[tuple[str, str], ScopeIndex[int]]]:
        """Each index with its (model, scope)."""
        return iter(list(self._indexes.items()))

    def install(self, model: str, scope: str, index: ScopeIndex[int]) -> None:
        """Hold ``index`` (built or loaded at start-up) as the one of ``model`` in ``scope``."""
        self._indexes[(model, scope)] = index

    def add(self, model: str, scope: str, row: int, vector: np.ndarray) -> None:
        """Index the entry of ``row`` (not indexed already; not exact-only) under its model and
        scope."""
        key = (model, scope)
        index = self._indexes.get(key)
        if index is None:
            index = self._indexes[key] = ScopeIndex(
                dimensions=self.dimensions, options=self.options, keys=self.keys()
            )
        index.add(row, vector)
        self._touched.add(index)

    def remove(self, model: str, scope: str, row: int) -> None:
        """Forget the entry of ``row`` (indexed under ``model`` and ``scope``); an index left
        empty goes."""
        key = (model, scope)
        index = self._indexes[key]
        index.remove(row)
        self._touched.add(index)
        if not len(index):
            del self._indexes[key]

    def other_models(self, model: str, *, limit: int) -> tuple[list[int], int]:
        """Up to ``limit`` rows of entries of other models than ``model`` (index by index, in
        each as `ScopeIndex.ids` orders them), and how many there are in all."""
        found: list[int] = []
        total = 0
        for (other, _), index in self._indexes.items():
            if other != model:
                total += len(index)
                found.extend(islice(index.iter_ids(), max(0, limit - len(found))))
        return found, total

    def touched(self, index: ScopeIndex[int]) -> None:
        """Count ``index`` as changed: the owner looks at its rebuild on its next change."""
        self._touched.add(index)

    def take_touched(self) -> set[ScopeIndex[int]]:
        """The indexes changed since the last call."""
        touched, self._touched = self._touched, set()
        return touched

    def clear(self) -> None:
        self._indexes.clear()
        self._touched.clear()
