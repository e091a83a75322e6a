"""The embedded store's vector indexes: one `ScopeIndex` per (embedding model, scope).

Vectors of two models are never compared, so each model has indexes of its own, which also
lets the store find what a re-embedding is to move without a scan of the entries. The indexes
changed since the owner last asked are kept (`take_touched`), for it to schedule their
rebuilds; like `ScopeIndex`, this is used from one thread (the event loop).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import numpy as np

from frugal.cache.held import Held
from frugal.cache.index import IndexOptions, ScopeIndex


class ModelIndexes:
    """The indexes of entries of ``dimensions``-long vectors, built with ``options``."""

    def __init__(self, *, dimensions: int, options: IndexOptions) -> None:
        self.dimensions = dimensions
        self.options = options
        self._indexes: dict[tuple[str, str], ScopeIndex] = {}  # by (model, scope)
        self._touched: set[ScopeIndex] = set()

    def __iter__(self) -> Iterator[ScopeIndex]:
        return iter(self._indexes.values())

    def get(self, model: str, scope: str) -> ScopeIndex | None:
        """The index of ``model``'s entries in ``scope``, if it has any."""
        return self._indexes.get((model, scope))

    def items(self) -> Iterator[tuple[tuple[str, str], ScopeIndex]]:
        """Each index with its (model, scope)."""
        return iter(list(self._indexes.items()))

    def install(self, model: str, scope: str, index: ScopeIndex) -> None:
        """Hold ``index`` (built or loaded at start-up) as the one of ``model`` in ``scope``."""
        self._indexes[(model, scope)] = index

    def add(self, entry: Held, vector: np.ndarray) -> None:
        """Index ``entry`` (not indexed already; not exact-only) under its model and scope."""
        key = (entry.model, entry.scope)
        index = self._indexes.get(key)
        if index is None:
            index = self._indexes[key] = ScopeIndex(
                dimensions=self.dimensions, options=self.options
            )
        index.add(entry.id, vector)
        self._touched.add(index)

    def remove(self, entry: Held) -> None:
        """Forget ``entry`` (indexed under its model and scope); an index left empty goes."""
        key = (entry.model, entry.scope)
        index = self._indexes[key]
        index.remove(entry.id)
        self._touched.add(index)
        if not len(index):
            del self._indexes[key]

    def other_models(self, model: str, *, limit: int) -> tuple[list[str], int]:
        """Up to ``limit`` ids of entries of other models than ``model`` (index by index, the
        earliest added first in each), and how many there are in all."""
        found: list[str] = []
        total = 0
        for (other, _), index in self._indexes.items():
            if other != model:
                total += len(index)
                found.extend(islice(index.iter_ids(), max(0, limit - len(found))))
        return found, total

    def touched(self, index: ScopeIndex) -> None:
        """Count ``index`` as changed: the owner looks at its rebuild on its next change."""
        self._touched.add(index)

    def take_touched(self) -> set[ScopeIndex]:
        """The indexes changed since the last call."""
        touched, self._touched = self._touched, set()
        return touched

    def clear(self) -> None:
        self._indexes.clear()
        self._touched.clear()
