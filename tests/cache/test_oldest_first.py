"""`OldestFirst` against a plain sort: rows come out smallest value first, rows whose value
changed since they were picked are skipped, and rows given a value below the horizon are not
missed."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from frugal.cache.oldest_first import OldestFirst

DEAD = math.inf


def test_rows_come_smallest_first_and_dead_rows_never() -> None:
    column = np.array([5.0, DEAD, 1.0, 3.0, DEAD, 2.0])
    order = OldestFirst(dead=DEAD)
    popped = []
    while (row := order.pop(column, limit=4.0)) is not None:
        popped.append(row)
        column[row] = DEAD  # the caller removes what it pops
    assert popped == [2, 5, 3]  # 5.0 is past the limit
    assert order.pop(column, limit=10.0) == 0


def test_a_changed_row_waits_for_its_new_value() -> None:
    column = np.array([1.0, 2.0, 3.0])
    order = OldestFirst(dead=DEAD)
    assert order.pop(column, limit=0.5) is None  # picks a batch: every row
    column[0] = 10.0  # used again (a use number grows) or replaced
    assert order.pop(column, limit=100.0) == 1
    column[1] = DEAD
    assert order.pop(column, limit=100.0) == 2
    column[2] = DEAD
    assert order.pop(column, limit=100.0) == 0


# Operations on a column of 40 rows: give a row a value (noted, as the store notes an expiry),
# free a row, or pop every row due by a limit; the popped rows are checked against a sort.
OPERATION = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 39), st.integers(0, 50)),
    st.tuples(st.just("free"), st.integers(0, 39)),
    st.tuples(st.just("pop"), st.integers(0, 60)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(OPERATION, max_size=80), st.integers(1, 8))
def test_it_agrees_with_a_sort(operations: list[tuple], batch: int) -> None:
    column = np.full(40, DEAD)
    order = OldestFirst(dead=DEAD, min_batch=batch)  # small: the horizon matters at 40 rows
    for operation in operations:
        if operation[0] == "set":
            _, row, value = operation
            column[row] = value
            order.noted(row, value)
        elif operation[0] == "free":
            column[operation[1]] = DEAD
        else:
            limit = operation[1]
            due = sorted(column[column <= limit].tolist())
            popped = []
            while (row := order.pop(column, limit=limit)) is not None:
                popped.append(float(column[row]))
                column[row] = DEAD
            assert popped == due
