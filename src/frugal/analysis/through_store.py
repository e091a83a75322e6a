"""Labelled pairs' similarities as the embedded store reports them, not computed beside it.

    sims = store_similarities(a, b)     # row i: b[i] searched in a scope holding a[i] alone

`frugal tune --through-store` uses it: each pair's first text is put in an `EmbeddedStore`
(in a scope of its own, in a temporary folder) and the second searched there, so the figure is
what a lookup would see: the vector as the store holds it (float16 by default), the store's
own similarity. The difference from `thresholds.similarities` is the store's rounding.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from frugal.cache.embedded import EmbeddedStore
from frugal.cache.index import IndexOptions
from frugal.cache.store import Entry


def store_similarities(
    a: np.ndarray, b: np.ndarray, *, options: IndexOptions | None = None
) -> np.ndarray:
    """The similarity the embedded store (built with ``options``) reports between ``a[i]``,
    stored, and ``b[i]``, searched, for each row ``i``."""
    if a.shape != b.shape:
        raise ValueError(f"a and b differ in shape: {a.shape} and {b.shape}")
    return asyncio.run(_through_store(a, b, options))


async def _through_store(a: np.ndarray, b: np.ndarray, options: IndexOptions | None) -> np.ndarray:
    sims = np.empty(len(a), dtype=np.float32)
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="frugal-tune-") as folder:
        store = await EmbeddedStore.open(
            Path(folder) / "pairs.sqlite3",
            max_entries=max(1, len(a)),
            dimensions=a.shape[1],
            index_options=options,
            index_checkpoint_s=None,
        )
        try:
            for i, vector in enumerate(a):
                await store.put(
                    Entry(
                        id=f"pair-{i}", partition="tune", scope=f"pair-{i}", prompt="",
                        prompt_hash=str(i), response={}, vector=vector, created_at=now,
                        expires_at=now + 86_400,
                    )
                )  # fmt: skip
            for i, query in enumerate(b):
                (match,) = await store.search(
                    scope=f"pair-{i}", vector=query, k=1, min_similarity=-1.0, now=now
                )
                sims[i] = match.similarity
        finally:
            await store.aclose()
    return sims
