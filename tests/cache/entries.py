"""Cache entries for store tests: unit vectors, near neighbours, entries at a fixed time."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np

from frugal.cache.index import as_held
from frugal.cache.models import ModelSpec
from frugal.cache.store import BASE_MODEL_ID, Entry

DIM = 32
T0 = 1_000_000.0
TUNED = "tuned@0123456789ab"  # another embedding model's id
# The models of those ids, for a `SemanticCache` (nothing is loaded from their directories).
BASE_SPEC = ModelSpec(choice="base", id=BASE_MODEL_ID, origin="exported", directory=Path("base"))
TUNED_SPEC = ModelSpec(choice="./tuned", id=TUNED, origin="directory", directory=Path("tuned"))
_ids = itertools.count()


def unit(rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    """A random unit vector (to float16's precision), as the embedded store holds it: what a
    test puts, it gets back unchanged, and similarities agree to float32's precision."""
    vector = rng.standard_normal(dim).astype(np.float32)
    return as_held(vector / np.linalg.norm(vector))


def near(vector: np.ndarray, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    moved = vector + noise * rng.standard_normal(vector.shape).astype(np.float32)
    return as_held(moved / np.linalg.norm(moved))


def make(
    prompt: str,
    vector: np.ndarray | None,
    *,
    scope: str = "scope-a",
    partition: str = "partition-1",
    now: float = T0,
    ttl_s: float = 3600.0,
    entry_id: str | None = None,
    model: str = BASE_MODEL_ID,
) -> Entry:
    return Entry(
        id=entry_id or f"id-{next(_ids)}",
        partition=partition,
        scope=scope,
        prompt=prompt,
        prompt_hash=hashlib.sha256(prompt.encode()).hexdigest(),
        response={"answer": f"answer to {prompt}"},
        vector=vector,
        created_at=now,
        expires_at=now + ttl_s,
        labels={"partition": partition, "model": "sim-small"},
        model=model,
    )


def phash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()
