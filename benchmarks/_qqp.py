"""The Quora question pairs and their embeddings, shared by the benchmarks.

Embedding the ~110k distinct questions takes minutes on 2 cores, so the vectors are cached
under ``.frugal/bench/`` keyed by a hash of the question list.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
from _data import PAIRS, ROOT, rows

from frugal.config import load_settings

CACHE_DIR = ROOT / ".frugal" / "bench"
MODEL_DIR = load_settings().models_path  # where `make install` exported the embedder


def load_questions() -> list[str]:
    """The distinct questions of the QQP pairs, in order of first appearance."""
    questions: dict[str, None] = {}
    for pair in rows(PAIRS):
        questions.setdefault(pair["a"])
        questions.setdefault(pair["b"])
    return list(questions)


def load_vectors(questions: list[str]) -> tuple[np.ndarray, str]:
    """Embeddings of ``questions``, from the cache or computed (and cached) with frugal's
    embedder; returns them and a sentence on where they came from."""
    from frugal.cache.embedder import OnnxEmbedder

    digest = hashlib.sha256("\n".join(questions).encode()).hexdigest()[:16]
    cached = CACHE_DIR / f"qqp-{digest}.npy"
    embedder = OnnxEmbedder(MODEL_DIR)
    if cached.exists():
        vectors = np.load(cached)
        sample = np.random.default_rng(0).choice(len(questions), 64, replace=False)
        fresh = embedder.embed([questions[i] for i in sample])
        diff = float(np.abs(fresh - vectors[sample]).max())
        return vectors, (
            f"kept in a local cache derived from the data file (`{cached.relative_to(ROOT)}`, "
            "ignored by git, rebuilt when missing); 64 random rows re-embedded with frugal's "
            f"`OnnxEmbedder` now differ from it by at most {diff:.1e}"
        )
    started = time.perf_counter()
    batches = [embedder.embed(questions[i : i + 256]) for i in range(0, len(questions), 256)]
    vectors = np.concatenate(batches).astype(np.float32)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors)
    took = time.perf_counter() - started
    return vectors, (
        f"embedded with frugal's `OnnxEmbedder` in {took:.0f} s and kept in a local cache "
        f"derived from the data file (`{cached.relative_to(ROOT)}`, ignored by git)"
    )
