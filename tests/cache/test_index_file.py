"""The embedded store's index files: a restart loads the graphs; a bad file is never trusted."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from frugal.cache import index_file
from frugal.cache.embedded import EmbeddedStore
from frugal.cache.index import IndexOptions
from frugal.cache.store import Entry
from tests.cache.entries import DIM, T0, make, unit

TINY_INDEX = IndexOptions(approximate_above=20, max_dead_share=0.25)


async def open_store(path: Path, **options: object) -> EmbeddedStore:
    settings: dict = {
        "max_entries": 1000,
        "dimensions": DIM,
        "now": T0,
        "write_delay_s": 0.01,
        "index_options": TINY_INDEX,
        "index_checkpoint_s": None,
    }
    settings.update(options)
    return await EmbeddedStore.open(path, **settings)


async def filled(path: Path, rng: np.random.Generator, n: int = 120) -> list[Entry]:
    """``n`` entries put into a store at ``path`` (one scope), closed cleanly."""
    store = await open_store(path)
    entries = [make(f"p{i}", unit(rng)) for i in range(n)]
    for entry in entries:
        await store.put(entry)
    await store.settle()
    assert (index := store.index_of("scope-a")) is not None and index.approximate
    await store.aclose()
    return entries


def index_path(path: Path) -> Path:
    (found,) = index_file.folder_of(path).glob(f"*{index_file.SUFFIX}")
    return found


async def top_hits(store: EmbeddedStore, entries: list[Entry]) -> list[tuple[str, float]]:
    hits = []
    for entry in entries:
        assert entry.vector is not None
        found = await store.search(
            scope="scope-a", vector=entry.vector, k=1, min_similarity=-1.0, now=T0
        )
        # Three decimals: a float16 vector's inner product with itself is 1 to about 2e-4.
        hits.append((found[0].entry.id, round(found[0].similarity, 3)))
    return hits


async def crash(store: EmbeddedStore) -> None:
    """End ``store`` as a killed process would, after its entries reached SQLite: no last index
    file, no `aclose`."""
    await store.settle()
    tasks = [t for t in (store._checkpointer, store._disk._writer) if t is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await store._disk.file.aclose()


async def test_a_clean_restart_loads_the_graph_and_serves_the_same_hits(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    entries = await filled(path, rng)
    store = await open_store(path)
    try:
        before = await top_hits(store, entries)
        assert before == [(entry.id, 1.0) for entry in entries]
    finally:
        await store.aclose()
    store = await open_store(path)
    try:
        assert (store.opening.graphs_loaded, store.opening.graphs_built) == (1, 0)
        assert store.opening.vectors_read == 0  # every vector came from the file
        index = store.index_of("scope-a")
        assert index is not None and index.approximate and index.tombstones == 0
        assert await top_hits(store, entries) == before
        got = await store.get_exact(scope="scope-a", prompt_hash=entries[5].prompt_hash, now=T0)
        assert got is not None and np.array_equal(got.vector, entries[5].vector)
        assert got.response == entries[5].response
    finally:
        await store.aclose()


async def test_a_truncated_index_file_is_rebuilt(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "cache.sqlite3"
    entries = await filled(path, rng)
    saved = index_path(path)
    saved.write_bytes(saved.read_bytes()[:-100])
    store = await open_store(path)
    try:
        assert (store.opening.graphs_loaded, store.opening.graphs_built) == (0, 1)
        assert store.opening.vectors_read == len(entries)
        assert await top_hits(store, entries) == [(entry.id, 1.0) for entry in entries]
    finally:
        await store.aclose()


async def test_a_damaged_index_file_is_rebuilt(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "cache.sqlite3"
    entries = await filled(path, rng)
    saved = index_path(path)
    data = bytearray(saved.read_bytes())
    data[-5000] ^= 0xFF  # inside the graph: the sizes still agree, the checksum does not
    saved.write_bytes(bytes(data))
    store = await open_store(path)
    try:
        assert (store.opening.graphs_loaded, store.opening.graphs_built) == (0, 1)
        assert await top_hits(store, entries) == [(entry.id, 1.0) for entry in entries]
    finally:
        await store.aclose()


async def test_a_stale_index_file_never_answers_with_old_vectors(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """An older file (its entries since given other vectors, or removed) is not trusted: the
    positions SQLite disagrees with are tombstones, and past the dead share the graph is built
    again from SQLite."""
    path = tmp_path / "cache.sqlite3"
    entries = await filled(path, rng)
    old = tmp_path / "old.index"
    shutil.copy(index_path(path), old)
    store = await open_store(path)
    moved = [make(e.prompt, unit(rng), entry_id=e.id) for e in entries[:60]]  # new vectors
    for entry in moved:
        await store.put(entry)
    await store.delete([e.id for e in entries[60:80]])
    await store.aclose()
    shutil.copy(old, index_path(path))  # the older file, as if the last write never happened
    store = await open_store(path)
    try:
        assert (store.opening.graphs_loaded, store.opening.graphs_built) == (1, 1)
        index = store.index_of("scope-a")
        assert index is not None and index.tombstones == 0
        live = moved + entries[80:]
        assert await top_hits(store, live) == [(entry.id, 1.0) for entry in live]
        for gone in entries[60:80]:  # removed: never found, not even by its old vector
            hits = await store.search(
                scope="scope-a", vector=gone.vector, k=5, min_similarity=-1.0, now=T0
            )
            assert gone.id not in {m.entry.id for m in hits}
    finally:
        await store.aclose()


async def test_an_index_file_of_another_cache_is_not_used(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    mine, other = tmp_path / "mine" / "cache.sqlite3", tmp_path / "other" / "cache.sqlite3"
    entries = await filled(mine, rng)
    await filled(other, rng)  # the same scope and model: its file has the same name
    shutil.copy(index_path(other), index_path(mine))
    store = await open_store(mine)
    try:
        assert (store.opening.graphs_loaded, store.opening.graphs_built) == (0, 1)
        assert await top_hits(store, entries) == [(entry.id, 1.0) for entry in entries]
    finally:
        await store.aclose()


async def test_a_crash_between_checkpoints_loses_nothing_sqlite_holds(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path)
    first = [make(f"first {i}", unit(rng)) for i in range(100)]
    for entry in first:
        await store.put(entry)
    await store.settle()
    assert await store.checkpoint() == 1
    later = [make(f"later {i}", unit(rng)) for i in range(15)]
    for entry in later:
        await store.put(entry)
    replaced = make(first[0].prompt, unit(rng), entry_id=first[0].id)
    await store.put(replaced)
    await store.delete([first[1].id])
    await crash(store)

    store = await open_store(path)
    try:
        assert store.opening.graphs_loaded == 1
        assert store.opening.vectors_read == len(later) + 1  # what came after the checkpoint
        live = [replaced, *first[2:], *later]
        assert (await store.stats()).entries == len(live)
        assert await top_hits(store, live) == [(entry.id, 1.0) for entry in live]
        hits = await store.search(
            scope="scope-a", vector=first[0].vector, k=3, min_similarity=0.99, now=T0
        )
        assert not hits  # the replaced vector is gone with its version
        assert (
            await store.get_exact(scope="scope-a", prompt_hash=first[1].prompt_hash, now=T0) is None
        )
    finally:
        await store.aclose()


async def test_the_graphs_are_checkpointed_on_a_schedule(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path, index_checkpoint_s=0.05)
    entries = [make(f"p{i}", unit(rng)) for i in range(60)]
    for entry in entries:
        await store.put(entry)
    await store.settle()
    folder = index_file.folder_of(path)
    for _ in range(400):  # the checkpoint runs on its own: wait for its file
        if folder.is_dir() and any(folder.glob(f"*{index_file.SUFFIX}")):
            break
        await asyncio.sleep(0.05)
    await crash(store)
    store = await open_store(path)
    try:
        assert store.opening.graphs_loaded == 1
        assert await top_hits(store, entries) == [(entry.id, 1.0) for entry in entries]
    finally:
        await store.aclose()


async def test_an_index_no_longer_held_loses_its_file(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    await filled(path, rng)
    store = await open_store(path)
    await store.flush()
    await store.aclose()
    assert not list(index_file.folder_of(path).glob(f"*{index_file.SUFFIX}"))


async def test_entries_put_while_a_graph_is_written_are_served_and_survive_a_restart(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    entries = await filled(path, rng)
    late = [make(f"late {i}", unit(rng)) for i in range(30)]
    store = await open_store(path)
    try:
        index = store.index_of("scope-a")
        assert index is not None
        graph, _ = index.graph() or (None, [])
        in_graph = graph.ntotal

        async def put_while_writing() -> int:
            await asyncio.sleep(0)  # the checkpoint has frozen the graph and handed it over
            for entry in late:
                await store.put(entry)
            return int(graph.ntotal)

        written, during = await asyncio.gather(store.checkpoint(), put_while_writing())
        assert written == 1 and during == in_graph  # the written graph did not change
        assert await top_hits(store, entries + late) == [(e.id, 1.0) for e in entries + late]
    finally:
        await store.aclose()
    store = await open_store(path)
    try:
        assert store.opening.graphs_loaded == 1
        assert await top_hits(store, entries + late) == [(e.id, 1.0) for e in entries + late]
    finally:
        await store.aclose()


async def test_a_cancelled_checkpoint_keeps_the_graph_frozen_until_its_writer_ends(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache.sqlite3"
    entries = await filled(path, rng)
    store = await open_store(path)
    try:
        index = store.index_of("scope-a")
        assert index is not None
        graph, _ = index.graph() or (None, [])
        before = graph.ntotal
        writing = threading.Event()
        seen: list[int] = []
        write = index_file.IndexSnapshot.write

        def slow_write(snapshot: index_file.IndexSnapshot, folder: Path) -> Path:
            writing.set()
            time.sleep(0.3)  # a large graph takes seconds to write
            seen.append(graph.ntotal)
            written = write(snapshot, folder)
            seen.append(graph.ntotal)
            return written

        monkeypatch.setattr(index_file.IndexSnapshot, "write", slow_write)
        checkpoint = asyncio.create_task(store.checkpoint())
        while not writing.is_set():
            await asyncio.sleep(0.01)
        late = make("put while the graph is written", unit(rng))
        await store.put(late)
        checkpoint.cancel()
        with pytest.raises(asyncio.CancelledError):
            await checkpoint
        assert seen == [before, before]  # unchanged until the writer was done
        assert graph.ntotal == before + 1  # then the waiting entry joined it
    finally:
        monkeypatch.undo()
        await store.aclose()
    store = await open_store(path)
    try:
        assert store.opening.graphs_loaded == 1
        assert await top_hits(store, [*entries, late]) == [(e.id, 1.0) for e in [*entries, late]]
    finally:
        await store.aclose()
