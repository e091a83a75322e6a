"""The embedded store's byte bound (FRUGAL_CACHE_MAX_BYTES): what an entry counts, and that the
bound holds under any sequence of puts, hits and expiries, every answer still its prompt's."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frugal.cache.embedded import EmbeddedStore
from frugal.cache.entry_table import pack_answer
from frugal.cache.index import IndexOptions
from frugal.cache.store import EXACT_ONLY, Entry
from tests.cache.entries import DIM, T0, make, unit

MAX_BYTES = 2500  # two or three entries: the bound, not the count, decides


def counted(entry: Entry) -> int:
    """What the README says an entry counts: its compressed answer, prompt and id, vector."""
    vector = 0 if entry.model == EXACT_ONLY else 2 * DIM  # float16, as the index holds it
    return len(pack_answer(entry.response)) + len(entry.prompt.encode()) + len(entry.id) + vector


def answered(prompt: str, size: int, rng: np.random.Generator, now: float, ttl: float) -> Entry:
    """An entry whose answer names its prompt, padded with ``size`` random (incompressible)
    letters."""
    entry = make(prompt, unit(rng), now=now, ttl_s=ttl, entry_id=f"{prompt}@{now}")
    padding = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=size))
    return Entry(**{**entry.__dict__, "response": {"prompt": prompt, "padding": padding}})


async def test_an_entry_counts_its_compressed_answer_prompt_id_and_vector(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    store = await EmbeddedStore.open(
        tmp_path / "c.sqlite3", max_entries=100, dimensions=DIM, now=T0, write_delay_s=0.01
    )
    try:
        entries = [answered(f"p{i}", 300, rng, T0, 100.0) for i in range(3)]
        entries.append(make("text", None, model=EXACT_ONLY))
        for entry in entries:
            await store.put(entry)
        assert (await store.stats()).bytes == sum(counted(e) for e in entries)
        await store.delete([entries[0].id])
        assert (await store.stats()).bytes == sum(counted(e) for e in entries[1:])
    finally:
        await store.aclose()


async def test_the_byte_bound_applies_on_open(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "c.sqlite3"
    options = {"max_entries": 100, "dimensions": DIM, "now": T0, "write_delay_s": 0.01}
    store = await EmbeddedStore.open(path, **options)
    entries = [answered(f"p{i}", 500, rng, T0, 100.0) for i in range(6)]
    for entry in entries:
        await store.put(entry)
    await store.record_hit(entries[0].id, now=T0)  # now the most recently used
    await store.aclose()
    bound = counted(entries[0]) + counted(entries[5]) + 10
    store = await EmbeddedStore.open(path, max_bytes=bound, **options)
    try:
        held = await store.list_entries(offset=0, limit=10, now=T0)
        assert {e.id for e in held} == {entries[0].id, entries[5].id}
        index = store.index_of(entries[0].scope)
        assert index is not None
        assert {store.id_of_row(row) for row in index.ids()} == {entries[0].id, entries[5].id}
        stats = await store.stats()
        assert stats.bytes <= bound and stats.evictions == 4
    finally:
        await store.aclose()


async def test_a_bound_below_one_byte_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        await EmbeddedStore.open(
            tmp_path / "c.sqlite3", max_entries=10, max_bytes=0, dimensions=DIM
        )


OPERATION = st.one_of(
    st.tuples(
        st.just("put"),
        st.integers(0, 7),  # the prompt
        st.integers(0, 1500),  # the answer's padding
        st.sampled_from([1000.0, 1000.0, 3.0, 0.0]),  # ttl
    ),
    st.tuples(st.just("hit"), st.integers(0, 7)),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 2.0])),
    st.tuples(st.just("restart")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(OPERATION, min_size=5, max_size=40), approximate=st.booleans())
def test_the_byte_bound_holds_and_every_answer_is_its_prompts(
    operations: list[tuple], approximate: bool
) -> None:
    asyncio.run(_play(operations, IndexOptions(approximate_above=2) if approximate else None))


async def _play(operations: list[tuple], index: IndexOptions | None) -> None:
    rng = np.random.default_rng(len(operations))
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        path = Path(folder) / "c.sqlite3"
        now = T0
        options = {
            "max_entries": 50,
            "max_bytes": MAX_BYTES,
            "dimensions": DIM,
            "write_delay_s": 0.005,
            "index_options": index,
        }
        store = await EmbeddedStore.open(path, now=now, **options)
        vectors: dict[str, np.ndarray] = {}  # each prompt's latest vector
        try:
            for operation in operations:
                if operation[0] == "put":
                    _, prompt, padding, ttl = operation
                    entry = answered(f"prompt {prompt}", padding, rng, now, ttl)
                    assert entry.vector is not None
                    vectors[entry.prompt] = entry.vector
                    await store.put(entry)
                elif operation[0] == "hit":
                    held = await store.get_exact(
                        scope="scope-a", prompt_hash=_hash(operation[1]), now=now
                    )
                    if held is not None:
                        await store.record_hit(held.id, now=now)
                elif operation[0] == "advance":
                    now += operation[1]
                else:
                    await store.aclose()
                    store = await EmbeddedStore.open(path, now=now, **options)
                await _check(store, now, vectors)
        finally:
            await store.aclose()


def _hash(prompt: int) -> str:
    return make(f"prompt {prompt}", None).prompt_hash


async def _check(store: EmbeddedStore, now: float, vectors: dict[str, np.ndarray]) -> None:
    held = await store.list_entries(offset=0, limit=100, now=now)
    stats = await store.stats()
    assert stats.bytes <= MAX_BYTES
    assert stats.bytes == sum(counted(entry) for entry in held)
    for entry in held:
        assert entry.response["prompt"] == entry.prompt  # its own answer
        assert entry.expires_at > now
        assert entry.vector is not None and np.array_equal(entry.vector, vectors[entry.prompt])
        found = await store.search(
            scope="scope-a", vector=entry.vector, k=1, min_similarity=0.999, now=now
        )
        assert [m.entry.response["prompt"] for m in found] == [entry.prompt]
