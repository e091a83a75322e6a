"""The gateway's labels: where they are kept, and the model their similarities are from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from frugal.cache import ShadowPair
from frugal.labels.recent import ServedHit
from frugal.labels.record import compared, reported
from frugal.labels.store import LabelStore


class Labels:
    """Records labelled pairs in ``store``, stamped with ``model``, the id of the embedding
    model in use (a pair's similarity means something only for the model that measured it)."""

    def __init__(self, store: LabelStore, *, model: str) -> None:
        self.store = store
        self.model = model

    async def reported(self, served: ServedHit) -> None:
        """A hit reported wrong: a negative. Raises `CacheStoreError`."""
        await self.store.append(reported(served, model=self.model))

    async def compared(self, pair: ShadowPair) -> None:
        """A shadow comparison's pair (`frugal.cache.ShadowLog`'s ``on_pair``). Raises
        `CacheStoreError`."""
        await self.store.append(compared(pair, model=self.model))

    def rows(self) -> AsyncIterator[dict[str, Any]]:
        """Every pair kept, oldest first. Raises `CacheStoreError`."""
        return self.store.rows()

    async def aclose(self) -> None:
        await self.store.aclose()
