"""A store still loading: misses and skipped writes meanwhile, invalidations kept for after."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import numpy as np
import pytest

from frugal.cache.embedded import EmbeddedStore
from frugal.cache.loading import LoadingStore
from frugal.cache.store import VectorStore
from frugal.errors import CacheStoreError
from tests.cache.entries import DIM, T0, make, unit


async def filled(path: Path, rng: np.random.Generator, n: int = 5) -> list:
    store = await EmbeddedStore.open(path, max_entries=100, dimensions=DIM, now=T0)
    entries = [make(f"prompt {i}", unit(rng)) for i in range(n)]
    for entry in entries:
        await store.put(entry)
    await store.aclose()
    return entries


async def gated(path: Path, gate: asyncio.Event) -> VectorStore:
    await gate.wait()
    return await EmbeddedStore.open(path, max_entries=100, dimensions=DIM, now=T0)


async def test_while_loading_lookups_miss_and_writes_are_skipped(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    entries = await filled(path, rng)
    gate = asyncio.Event()
    store = LoadingStore(gated(path, gate))
    try:
        held = entries[0]
        lookup = {"scope": held.scope, "now": T0}
        assert not store.loaded and not store.failed
        assert await store.get_exact(prompt_hash=held.prompt_hash, **lookup) is None
        assert await store.search(vector=held.vector, k=1, min_similarity=0.5, **lookup) == []
        late = make("answered while loading", unit(rng))
        await store.put(late)
        assert store.skipped_writes == 1
        assert (await store.stats()).entries == 0
        gate.set()
        await store.wait()
        assert store.loaded
        got = await store.get_exact(prompt_hash=held.prompt_hash, **lookup)
        assert got is not None and got.id == held.id  # the stored entries, once loaded
        found = await store.search(vector=held.vector, k=1, min_similarity=0.5, **lookup)
        assert [match.entry.id for match in found] == [held.id]
        assert await store.get_exact(prompt_hash=late.prompt_hash, **lookup) is None
        assert (await store.stats()).entries == len(entries)
    finally:
        await store.aclose()


async def test_an_invalidation_asked_while_loading_waits_and_applies(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    entries = await filled(path, rng)
    gate = asyncio.Event()
    store = LoadingStore(gated(path, gate))
    try:
        flush = asyncio.create_task(store.flush())
        delete = asyncio.create_task(store.delete([entries[0].id]))
        await asyncio.sleep(0.05)
        assert not flush.done() and not delete.done()  # not dropped, not answered yet
        gate.set()
        assert await flush + await delete == len(entries)  # each entry removed once, by either
        for entry in entries:
            lookup = {"scope": entry.scope, "prompt_hash": entry.prompt_hash, "now": T0}
            assert await store.get_exact(**lookup) is None
    finally:
        await store.aclose()


async def test_a_failed_load_leaves_a_cache_that_misses(rng: np.random.Generator) -> None:
    async def broken() -> VectorStore:
        raise CacheStoreError("unreadable cache entry 'x'")

    store = LoadingStore(broken())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert store.failed and not store.loaded
    entry = make("p", unit(rng))
    assert (
        await store.search(scope=entry.scope, vector=entry.vector, k=1, min_similarity=0, now=T0)
        == []
    )
    with pytest.raises(CacheStoreError, match="unreadable"):
        await store.flush()
    await store.aclose()


async def test_closing_while_loading_stops_the_load_and_frees_the_file(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    entries = await filled(path, rng)
    store = LoadingStore(gated(path, asyncio.Event()))
    await asyncio.sleep(0)
    await store.aclose()
    assert store.failed and not store.loaded
    with pytest.raises(CacheStoreError, match="closed while loading"):
        await store.wait()
    again = await EmbeddedStore.open(path, max_entries=100, dimensions=DIM, now=T0)
    try:
        assert (await again.stats()).entries == len(entries)  # nothing lost by the stop
    finally:
        await again.aclose()


async def test_opening_leaves_cyclic_collection_as_it_found_it(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    await filled(path, rng)
    assert gc.isenabled()
    store = await EmbeddedStore.open(path, max_entries=100, dimensions=DIM, now=T0)
    await store.aclose()
    assert gc.isenabled()  # off only while loading
    gc.disable()
    try:
        store = await EmbeddedStore.open(path, max_entries=100, dimensions=DIM, now=T0)
        await store.aclose()
        assert not gc.isenabled()  # an application that turned it off keeps it off
    finally:
        gc.enable()
