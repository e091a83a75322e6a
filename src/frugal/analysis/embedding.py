"""Embedding many texts at once with the gateway's embedder, with a progress bar."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.progress import Progress

from frugal.cache.embedder import Embedder

BATCH = 128


def embed_all(embedder: Embedder, texts: Sequence[str], *, label: str = "embedding") -> np.ndarray:
    """float32 ``(len(texts), dimensions)``, unit rows, in order; shows progress on stderr."""
    if not texts:
        return np.empty((0, embedder.dimensions), dtype=np.float32)
    # Similar lengths share a call, so padding costs little; the order is restored after.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = np.empty((len(texts), embedder.dimensions), dtype=np.float32)
    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=len(texts))
        for start in range(0, len(order), BATCH):
            chosen = order[start : start + BATCH]
            vectors[chosen] = embedder.embed([texts[i] for i in chosen])
            progress.advance(task, len(chosen))
    return vectors
