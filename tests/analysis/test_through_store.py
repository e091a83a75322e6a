"""Pairs' similarities through the embedded store: the store's own figure, float16 vectors."""

from __future__ import annotations

import numpy as np
import pytest

from frugal.analysis.through_store import store_similarities
from frugal.cache.index import IndexOptions, as_held


def unit_rows(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_each_pair_is_compared_as_the_store_holds_its_first_text() -> None:
    rng = np.random.default_rng(3)
    a = unit_rows(rng, 300)
    b = unit_rows(rng, 300)
    b[:100] = a[:100] + 0.1 * b[:100]  # some near pairs, as paraphrases would be
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    got = store_similarities(a, b)
    beside = np.einsum("ij,ij->i", a, b)
    held = np.einsum("ij,ij->i", as_held(a), b)
    np.testing.assert_allclose(got, held, atol=1e-6)  # the stored vector is float16
    assert not np.array_equal(got, beside)
    assert np.abs(got - beside).max() < 1e-3
    full = store_similarities(a, b, options=IndexOptions(encoding="float32"))
    np.testing.assert_allclose(full, beside, atol=1e-6)


def test_pairs_of_unequal_shape_are_refused() -> None:
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="differ in shape"):
        store_similarities(unit_rows(rng, 3), unit_rows(rng, 4))
