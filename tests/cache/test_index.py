"""The per-scope vector index: exact while small, HNSW with tombstones once large."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from frugal.cache.index import IndexOptions, ScopeIndex, as_held

DIM = 32


def unit_vectors(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    """Random unit vectors (to float16's precision, as the index holds them)."""
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return as_held(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def near(vector: np.ndarray, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """A near-duplicate: the vector plus a little noise, renormalised."""
    moved = vector + noise * rng.standard_normal(vector.shape).astype(np.float32)
    return as_held(moved / np.linalg.norm(moved))


def filled(index: ScopeIndex, vectors: np.ndarray, prefix: str = "e") -> dict[str, np.ndarray]:
    ids = {f"{prefix}{i}": vector for i, vector in enumerate(vectors)}
    for entry_id, vector in ids.items():
        index.add(entry_id, vector)
    return ids


def brute_force(live: dict[str, np.ndarray], query: np.ndarray, k: int) -> list[tuple[str, float]]:
    scored = sorted(((float(v @ query), i) for i, v in live.items()), reverse=True)
    return [(i, s) for s, i in scored[:k]]


TINY = IndexOptions(approximate_above=50, max_dead_share=0.25)


def test_exact_search_is_brute_force() -> None:
    rng = np.random.default_rng(1)
    index = ScopeIndex(dimensions=DIM)
    live = filled(index, unit_vectors(rng, 300))
    for query in unit_vectors(rng, 20):
        got = index.search(query, 5)
        want = brute_force(live, query, 5)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
    assert not index.approximate and not index.needs_rebuild()


def test_search_with_k_beyond_size_returns_everything_sorted() -> None:
    rng = np.random.default_rng(2)
    index = ScopeIndex(dimensions=DIM)
    filled(index, unit_vectors(rng, 3))
    got = index.search(unit_vectors(rng, 1)[0], 10)
    assert len(got) == 3
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    assert index.search(unit_vectors(rng, 1)[0], 0) == []
    assert ScopeIndex(dimensions=DIM).search(unit_vectors(rng, 1)[0], 3) == []


def test_add_replaces_and_remove_forgets() -> None:
    rng = np.random.default_rng(3)
    a, b = unit_vectors(rng, 2)
    index = ScopeIndex(dimensions=DIM)
    index.add("x", a)
    index.add("x", b)
    assert len(index) == 1
    assert index.search(b, 1)[0] == ("x", pytest.approx(1.0, abs=1e-3))
    assert index.remove("x") and not index.remove("x")
    assert "x" not in index and index.search(b, 1) == []


def test_exact_removal_keeps_the_other_rows_right() -> None:
    rng = np.random.default_rng(4)
    index = ScopeIndex(dimensions=DIM)
    live = filled(index, unit_vectors(rng, 40))
    for entry_id in ["e0", "e39", "e17", "e5"]:
        index.remove(entry_id)
        del live[entry_id]
    for entry_id, vector in live.items():  # every survivor still finds itself
        assert index.search(vector, 1)[0][0] == entry_id


def test_switches_to_hnsw_past_the_threshold_and_back_below_half() -> None:
    rng = np.random.default_rng(5)
    index = ScopeIndex(dimensions=DIM, options=TINY)
    live = filled(index, unit_vectors(rng, 50))
    assert not index.needs_rebuild()
    index.add("one-more", unit_vectors(rng, 1)[0])
    assert index.needs_rebuild()
    index.rebuild()
    assert index.approximate and not index.needs_rebuild()
    for entry_id, vector in live.items():
        assert index.search(vector, 1)[0][0] == entry_id
    for entry_id in list(live)[:40]:
        index.remove(entry_id)
    assert index.needs_rebuild()  # 11 live of 51: below half the threshold
    index.rebuild()
    assert not index.approximate and len(index) == 11 and index.tombstones == 0


def test_hnsw_tombstones_are_never_returned_and_trigger_a_rebuild() -> None:
    rng = np.random.default_rng(6)
    index = ScopeIndex(dimensions=DIM, options=TINY)
    live = filled(index, unit_vectors(rng, 200))
    every = dict(live)
    index.rebuild()
    assert index.approximate
    removed = {f"e{i}" for i in range(0, 200, 5)}  # 40 of 200: a 20% share, under 25%
    for entry_id in removed:
        index.remove(entry_id)
        del live[entry_id]
    assert index.tombstones == 40 and not index.needs_rebuild()
    for entry_id in removed:  # a removed vector as the query: its own id must not come back
        got = index.search(near(every[entry_id], rng), 20)
        assert len(got) == 20 and not removed & {i for i, _ in got}
    for entry_id, vector in live.items():
        got = index.search(vector, 50)
        assert got[0][0] == entry_id
        assert len(got) == 50 and not removed & {i for i, _ in got}
    for entry_id in [f"e{i}" for i in range(1, 200, 5)][:15]:  # past the share
        index.remove(entry_id)
    assert index.needs_rebuild()
    index.rebuild()
    assert index.approximate and index.tombstones == 0 and len(index) == 145


def test_hnsw_search_asks_for_more_when_tombstones_crowd_the_top() -> None:
    rng = np.random.default_rng(7)
    base = unit_vectors(rng, 1)[0]
    index = ScopeIndex(dimensions=DIM, options=IndexOptions(approximate_above=10))
    cluster = {f"c{i}": near(base, rng, 0.02) for i in range(20)}
    for entry_id, vector in cluster.items():
        index.add(entry_id, vector)
    filled(index, unit_vectors(rng, 60), prefix="far")
    index.rebuild()
    for i in range(18):  # the query's 18 nearest are now tombstones
        index.remove(f"c{i}")
    got = index.search(base, 2)
    assert [i for i, _ in got] == sorted(["c18", "c19"], key=lambda i: -cluster[i] @ base)


def test_hnsw_finds_near_duplicates() -> None:
    rng = np.random.default_rng(8)
    index = ScopeIndex(dimensions=DIM, options=IndexOptions(approximate_above=100))
    live = filled(index, unit_vectors(rng, 2000))
    index.rebuild()
    assert index.approximate
    found = sum(index.search(near(v, rng), 1)[0][0] == i for i, v in live.items())
    assert found >= 0.99 * len(live)


async def test_rebuild_async_replays_changes_made_while_it_built() -> None:
    rng = np.random.default_rng(9)
    index = ScopeIndex(dimensions=DIM, options=TINY)
    live = filled(index, unit_vectors(rng, 300))
    assert index.needs_rebuild()
    task = asyncio.create_task(index.rebuild_async())
    await asyncio.sleep(0)  # the task snapshots and hands the build to a thread
    assert index.rebuilding
    for i in range(0, 300, 3):  # remove snapshot entries while it builds
        index.remove(f"e{i}")
        del live[f"e{i}"]
    live.update(filled(index, unit_vectors(rng, 200), prefix="late"))  # beyond the inline limit
    live["e0"] = unit_vectors(rng, 1)[0]  # an id removed, then added again with a new vector
    index.add("e0", live["e0"])
    index.remove("late0")
    del live["late0"]
    await task
    assert index.approximate and not index.rebuilding and len(index) == len(live)
    assert index.tombstones == 100  # the replayed removals
    for entry_id, vector in live.items():
        assert index.search(vector, 1)[0] == (entry_id, pytest.approx(1.0, abs=1e-3))
    assert {i for i, _ in index.search(live["e2"], len(live) + 50)} == set(live)


async def test_rebuild_async_of_a_shrunken_scope_goes_back_to_exact() -> None:
    rng = np.random.default_rng(10)
    index = ScopeIndex(dimensions=DIM, options=TINY)
    live = filled(index, unit_vectors(rng, 60))
    await index.rebuild_async()
    assert index.approximate
    for entry_id in list(live)[:50]:
        index.remove(entry_id)
    await index.rebuild_async()
    assert not index.approximate and len(index) == 10


def test_wrong_dimensions_and_bad_options_raise() -> None:
    index = ScopeIndex(dimensions=DIM)
    with pytest.raises(ValueError, match="dimensions"):
        index.add("x", np.ones(DIM + 1, dtype=np.float32))
    with pytest.raises(ValueError, match="approximate_above"):
        IndexOptions(approximate_above=0)
    with pytest.raises(ValueError, match="max_dead_share"):
        IndexOptions(max_dead_share=1.0)


@pytest.mark.parametrize("approximate_above", [10_000, 50], ids=["exact", "approximate"])
def test_vectors_are_held_as_float16_and_float32_on_request(approximate_above: int) -> None:
    rng = np.random.default_rng(7)
    raw = rng.standard_normal((200, DIM)).astype(np.float32)
    vectors = raw / np.linalg.norm(raw, axis=1, keepdims=True)  # not float16 values
    compact = ScopeIndex(dimensions=DIM, options=IndexOptions(approximate_above=approximate_above))
    full = ScopeIndex(
        dimensions=DIM,
        options=IndexOptions(approximate_above=approximate_above, encoding="float32"),
    )
    for index in (compact, full):
        filled(index, vectors)
        if index.needs_rebuild():
            index.rebuild()
        assert index.approximate == (approximate_above < 200)
    ids = [f"e{i}" for i in range(200)]
    held = compact.vectors_of(ids)
    assert np.array_equal(held, as_held(vectors))  # float16 values, handed back as float32
    assert not np.array_equal(held, vectors)
    assert np.abs(held - vectors).max() < 1e-3
    assert np.array_equal(full.vectors_of(ids), vectors)
    query = near(vectors[3], rng)
    assert compact.search(query, 1)[0][0] == full.search(query, 1)[0][0] == "e3"
    assert compact.search(query, 1)[0][1] == pytest.approx(float(held[3] @ query), abs=1e-6)


def test_a_frozen_graph_stays_unchanged_while_the_index_serves_every_change() -> None:
    rng = np.random.default_rng(11)
    index = ScopeIndex(dimensions=DIM, options=TINY)
    live = filled(index, unit_vectors(rng, 120))
    index.rebuild()
    assert index.approximate
    with ScopeIndex(dimensions=DIM).frozen() as nothing:
        assert nothing is None  # an exact index has no graph to write
    with index.frozen() as found:
        assert found is not None
        graph, ids = found
        before = graph.ntotal
        late = filled(index, unit_vectors(rng, 30), prefix="late")  # held beside the graph
        live.update(late)
        index.remove("late3")  # a held one
        del live["late3"]
        index.remove("e5")  # one in the graph: a tombstone
        del live["e5"]
        index.add("e6", live["e6"] + 0)  # replaced: the graph's copy becomes a tombstone
        for _ in range(40):  # enough tombstones for a rebuild, which must wait
            victim = next(i for i in live if i.startswith("e") and i != "e6")
            index.remove(victim)
            del live[victim]
        assert graph.ntotal == before and not index.needs_rebuild()
        assert len(ids) == before
        for entry_id, vector in live.items():  # every change is seen by searches already
            assert index.search(vector, 1)[0][0] == entry_id
        assert np.array_equal(
            index.vectors_of(["late0", "e6"]), np.stack([live["late0"], live["e6"]])
        )
        assert {i for i, _ in index.search(live["late0"], len(live) + 10)} == set(live)
    assert graph.ntotal > before  # what waited joined the graph
    assert index.needs_rebuild()  # the removals' rebuild is due now
    for entry_id, vector in live.items():
        assert index.search(vector, 1)[0][0] == entry_id
