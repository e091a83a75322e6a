"""The key maps of a scope index: `IdKeys` (a dict) and `RowKeys` (rows' keys in a column the
indexes share), which must agree on what they hold and give back."""

from __future__ import annotations

import numpy as np
import pytest

from frugal.cache.index import ScopeIndex
from frugal.cache.index_keys import IdKeys, RowKeys
from tests.cache.entries import DIM, unit


def test_row_keys_of_two_indexes_share_a_column_and_never_mix() -> None:
    column = np.full(10, -1, dtype=np.int32)
    first, second = RowKeys(lambda: column), RowKeys(lambda: column)
    assert first.take(3) == 0 and second.take(7) == 0  # each index counts keys from 0
    assert 3 in first and 3 not in second and 7 in second and 7 not in first
    assert first.id_at(0) == 3 and second.id_at(0) == 7
    assert first.release(7) is None  # not its row
    assert first.release(3) == 0 and 3 not in first and column[3] == -1
    assert first.take(5) == 0  # the freed key, given again
    with pytest.raises(KeyError):
        first.keys([7])
    assert first.keys([5]).tolist() == [0] and len(first) == 1 and first.ids() == [5]


@pytest.mark.parametrize("kind", ["ids", "rows"])
def test_take_many_skips_tombstones_and_repeats(kind: str) -> None:
    column = np.full(10, -1, dtype=np.int32)
    keys = IdKeys[int]() if kind == "ids" else RowKeys(lambda: column)
    taken = keys.take_many([4, None, 2, 4, 9])
    assert taken.tolist() == [0, -1, 1, -1, 2]
    assert sorted(keys.ids()) == [2, 4, 9] and len(keys) == 3
    assert [keys.id_at(int(key)) for key in taken if key >= 0] == [4, 2, 9]
    keys.release(2)  # a free key reads as None, like a tombstone
    assert keys.ids_at(taken) == [4, None, None, None, 9]


def test_a_scope_index_keyed_by_rows_answers_with_rows(rng: np.random.Generator) -> None:
    column = np.full(100, -1, dtype=np.int32)
    index: ScopeIndex[int] = ScopeIndex(dimensions=DIM, keys=RowKeys(lambda: column))
    vectors = {row: unit(rng) for row in (10, 20, 30)}
    for row, vector in vectors.items():
        index.add(row, vector)
    index.remove(20)
    assert index.search(vectors[30], 1)[0][0] == 30
    assert {row for row, _ in index.search(vectors[20], 3)} == {10, 30}
    assert np.allclose(index.vectors_of([10])[0], vectors[10], atol=1e-3)
