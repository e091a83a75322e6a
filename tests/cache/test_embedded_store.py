"""The embedded store: lookups, scopes, TTL, the LRU bound, invalidation, restarts."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from frugal.cache import write_behind
from frugal.cache.embedded import EmbeddedStore
from frugal.cache.index import IndexOptions
from frugal.cache.store import BASE_MODEL_ID, EXACT_ONLY, Entry
from frugal.errors import CacheStoreError
from tests.cache.entries import DIM, T0, TUNED, make, near, unit

TINY_INDEX = IndexOptions(approximate_above=20, max_dead_share=0.25)


async def open_store(path: Path, **options: object) -> EmbeddedStore:
    settings: dict = {"max_entries": 100, "dimensions": DIM, "now": T0, "write_delay_s": 0.01}
    settings.update(options)
    return await EmbeddedStore.open(path, **settings)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EmbeddedStore]:
    opened = await open_store(tmp_path / "cache.sqlite3")
    yield opened
    await opened.aclose()


@pytest.mark.parametrize("index", [None, TINY_INDEX], ids=["exact", "approximate"])
async def test_restart_keeps_live_entries_and_rebuilds_the_indexes(
    tmp_path: Path, rng: np.random.Generator, index: IndexOptions | None
) -> None:
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path, index_options=index)
    entries = [make(f"p{i}", unit(rng), ttl_s=1000) for i in range(60)]
    short = make("short", unit(rng), ttl_s=10)
    for entry in [*entries, short]:
        await store.put(entry)
    await store.record_hit(entries[0].id, now=T0 + 1)
    await store.delete([entries[1].id])
    await store.aclose()

    store = await open_store(path, index_options=index, now=T0 + 20)
    try:
        stats = await store.stats()
        assert (stats.entries, stats.expirations) == (59, 1)
        live = entries[2:] + [entries[0]]
        for entry in live:
            found = await store.search(
                scope="scope-a", vector=near(entry.vector, rng), k=1, min_similarity=0.9, now=T0
            )
            assert [m.entry.id for m in found] == [entry.id]
            assert found[0].entry.response == entry.response
        got = await store.get_exact(scope="scope-a", prompt_hash=entries[0].prompt_hash, now=T0)
        assert got is not None and (got.hits, got.last_used_at) == (1, T0 + 1)
        assert np.array_equal(got.vector, entries[0].vector) and got.labels == entries[0].labels
        for gone in (short, entries[1]):
            assert not await store.get_exact(scope="scope-a", prompt_hash=gone.prompt_hash, now=T0)
        scope_index = store.index_of("scope-a")
        assert scope_index is not None and scope_index.approximate == (index is not None)
    finally:
        await store.aclose()


async def test_restart_keeps_the_lru_order_and_applies_a_smaller_bound(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path)
    a, b, c = (make(p, unit(rng)) for p in "abc")
    for entry in (a, b, c):
        await store.put(entry)
    await store.record_hit(a.id, now=T0)  # order of use: b, c, a
    await store.aclose()
    store = await open_store(path, max_entries=2)
    try:
        assert (await store.stats()).evictions == 1
        assert {e.id for e in await store.list_entries(offset=0, limit=5, now=T0)} == {a.id, c.id}
        d = make("d", unit(rng))
        await store.put(d)  # c is the least recently used now
        assert {e.id for e in await store.list_entries(offset=0, limit=5, now=T0)} == {a.id, d.id}
    finally:
        await store.aclose()


async def test_flush_and_writes_survive_a_restart(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path, write_delay_s=60)  # only aclose will write
    await store.put(make("before flush", unit(rng)))
    await store.flush()
    after = make("after flush", unit(rng))
    await store.put(after)
    await store.aclose()
    store = await open_store(path)
    try:
        assert [e.id for e in await store.list_entries(offset=0, limit=5, now=T0)] == [after.id]
    finally:
        await store.aclose()


async def test_a_flush_during_a_write_in_flight_stays_flushed(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path, write_delay_s=0)
    release, started = threading.Event(), threading.Event()
    file = store._disk.file
    write_rows = file.write_rows

    def held_write(*args: object) -> None:
        started.set()
        release.wait(5)
        write_rows(*args)

    monkeypatch.setattr(file, "write_rows", held_write)
    await store.put(make("written, then flushed", unit(rng)))
    while not started.is_set():  # the writer took the batch and is blocked writing it
        await asyncio.sleep(0.001)
    await store.flush()
    kept = make("put after the flush", unit(rng))
    await store.put(kept)
    closing = asyncio.create_task(store.aclose())  # cancels the writer mid-write
    await asyncio.sleep(0.01)
    release.set()
    await closing
    store = await open_store(path)
    try:
        assert [e.id for e in await store.list_entries(offset=0, limit=5, now=T0)] == [kept.id]
    finally:
        await store.aclose()


async def test_a_failed_write_is_retried_and_a_failed_close_raises(
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path, write_delay_s=0)
    file = store._disk.file
    write_rows, failures = file.write_rows, []

    def flaky_write(*args: object) -> None:
        if len(failures) < 1:
            failures.append(args)
            raise sqlite3.OperationalError("disk I/O error")
        write_rows(*args)

    monkeypatch.setattr(file, "write_rows", flaky_write)
    first, second = make("first", unit(rng)), make("second", unit(rng))
    await store.put(first)
    while not failures:
        await asyncio.sleep(0.001)
    await store.put(second)  # the next write carries the failed batch too
    await store.settle()
    assert "writing the cache file failed" in caplog.text

    def broken_write(*args: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(file, "write_rows", broken_write)
    await store.delete([first.id])
    caplog.clear()
    with pytest.raises(CacheStoreError, match="1 change was not written: .*database is locked"):
        await store.aclose()
    assert "1 change was not written" in caplog.text
    store = await open_store(path)
    try:  # both puts were written; the delete was not
        held = {e.id for e in await store.list_entries(offset=0, limit=5, now=T0)}
        assert held == {first.id, second.id}
    finally:
        await store.aclose()


async def test_a_writer_that_raises_anything_is_logged_counted_and_restarted(
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not only `CacheStoreError`: a bug in the write must not end persistence in silence."""
    monkeypatch.setattr(write_behind, "_RETRY_S", 0.01)
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path, write_delay_s=0)
    file = store._disk.file
    write_rows, failures = file.write_rows, []

    def fails_once(*args: object) -> None:
        if not failures:
            failures.append(args)
            raise RuntimeError("a bug in the writer")
        write_rows(*args)

    monkeypatch.setattr(file, "write_rows", fails_once)
    entry = make("kept through the failure", unit(rng))
    try:
        await store.put(entry)
        while not failures:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)  # the writer's end is reported
        failed = [r for r in caplog.records if "writing the cache file failed" in r.getMessage()]
        assert failed and failed[0].exc_info is not None
        assert "RuntimeError: a bug in the writer" in caplog.text  # the traceback
        stats = await store.stats()
        assert (stats.write_failures, stats.unsaved) == (1, 1)
        for _ in range(500):  # the restarted writer writes it, with nothing else to wake it
            if _ids_in(path) == [entry.id]:
                break
            await asyncio.sleep(0.01)
        assert _ids_in(path) == [entry.id]
        assert (await store.stats()).unsaved == 0
    finally:
        await store.aclose()
    assert (await (reopened := await open_store(path)).stats()).entries == 1
    await reopened.aclose()


def _ids_in(path: Path) -> list[str]:
    """The ids on disk, read by a connection of its own (WAL: the writer's commits only)."""
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT id FROM entries ORDER BY id")]
    finally:
        db.close()


async def test_a_file_of_the_older_layout_is_migrated_on_open(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """frugal once named the partition column ``tenant``."""
    path = tmp_path / "cache.sqlite3"
    vector = unit(rng)
    write_older_file(path, vector, partition_column="tenant")
    store = await open_store(path)
    try:
        found = await store.get_exact(
            scope="scope-a", prompt_hash="hash-p", now=T0, partition="acme"
        )
        assert found is not None and (found.id, found.partition, found.hits) == ("old", "acme", 3)
        assert found.model == BASE_MODEL_ID
        newer = make("new", unit(rng), partition="globex")
        await store.put(newer)
    finally:
        await store.aclose()
    db = sqlite3.connect(path)
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(entries)")]
        held = set(db.execute("SELECT id, partition FROM entries"))
    finally:
        db.close()
    assert "partition" in columns and "tenant" not in columns
    assert held == {("old", "acme"), (newer.id, "globex")}


async def test_an_exact_only_entry_survives_a_restart_without_a_vector(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path)
    embedded = make("a text", None, model=EXACT_ONLY)
    other = make("a question", unit(rng))
    await store.put(embedded)
    await store.put(other)
    await store.aclose()
    with sqlite3.connect(path) as db:
        blobs = dict(db.execute("SELECT id, vector FROM entries").fetchall())
    assert blobs[embedded.id] == b"" and len(blobs[other.id]) == 4 * DIM
    reopened = await open_store(path)
    try:
        lookup = {"scope": "scope-a", "prompt_hash": embedded.prompt_hash, "now": T0}
        held = await reopened.get_exact(model=EXACT_ONLY, **lookup)
        assert held == embedded and held.vector is None
        assert reopened.index_of("scope-a", model=EXACT_ONLY) is None
        found = await reopened.search(
            scope="scope-a", vector=other.vector, k=5, min_similarity=-1, now=T0
        )
        assert [m.entry.id for m in found] == [other.id]
    finally:
        await reopened.aclose()


async def test_a_file_written_before_entries_named_their_model_is_the_base_models(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Every entry of such a file was embedded by the base model: an upgrade keeps them as its
    entries (hits for the base model, never for another), and the file gains the column."""
    path = tmp_path / "cache.sqlite3"
    vector = unit(rng)
    write_older_file(path, vector, partition_column="partition")
    store = await open_store(path)
    try:
        for model, found in ((BASE_MODEL_ID, ["old"]), (TUNED, [])):
            lookup = {"scope": "scope-a", "now": T0, "model": model}
            exact = await store.get_exact(prompt_hash="hash-p", **lookup)
            assert ([exact.id] if exact else []) == found
            similar = await store.search(vector=vector, k=1, min_similarity=0.99, **lookup)
            assert [match.entry.id for match in similar] == found
        tuned = make("new", unit(rng), model=TUNED)
        await store.put(tuned)
    finally:
        await store.aclose()
    reopened = await open_store(path)
    try:
        held = await reopened.list_entries(offset=0, limit=10, now=T0)
        assert {entry.id: entry.model for entry in held} == {"old": BASE_MODEL_ID, tuned.id: TUNED}
        (match,) = await reopened.search(
            scope="scope-a", vector=tuned.vector, k=1, min_similarity=0.99, now=T0, model=TUNED
        )
        assert match.entry.id == tuned.id
    finally:
        await reopened.aclose()


OLDER_SCHEMA = """
CREATE TABLE entries (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, scope TEXT NOT NULL, prompt TEXT NOT NULL,
    prompt_hash TEXT NOT NULL, response TEXT NOT NULL, vector BLOB NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, labels TEXT NOT NULL,
    hits INTEGER NOT NULL, last_used_at REAL, used_seq INTEGER NOT NULL
)
"""


async def test_the_approximate_index_after_deletions(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    store = await open_store(tmp_path / "c.sqlite3", max_entries=1000, index_options=TINY_INDEX)
    try:
        entries = [make(f"p{i}", unit(rng)) for i in range(200)]
        for entry in entries:
            await store.put(entry)
        await store.settle()
        index = store.index_of("scope-a")
        assert index is not None and index.approximate and index.tombstones == 0
        removed = entries[::3]
        assert await store.delete([e.id for e in removed[:40]]) == 40  # 20%: tombstones only
        assert index.tombstones == 40 and not index.rebuilding
        await store.delete([e.id for e in removed[40:]])  # 33%: past the share, a rebuild
        await store.settle()
        assert store.index_of("scope-a") is index and index.tombstones == 0
        removed_ids = {e.id for e in removed}
        for entry in entries:
            found = await store.search(
                scope="scope-a", vector=entry.vector, k=10, min_similarity=-1, now=T0
            )
            assert not removed_ids & {m.entry.id for m in found}
            if entry.id not in removed_ids:
                assert found[0].entry.id == entry.id
    finally:
        await store.aclose()


async def test_store_errors_become_cache_store_errors(tmp_path: Path) -> None:
    with pytest.raises(CacheStoreError):
        await open_store(tmp_path)  # a directory, not a file
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheStoreError):
        await open_store(garbage)


async def test_a_file_of_other_dimensions_is_refused(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path)
    await store.put(make("p", unit(rng)))
    await store.aclose()
    with pytest.raises(CacheStoreError, match="dimensions"):
        await open_store(path, dimensions=DIM * 2)


# ---- property: random interleavings against a reference model --------------------------------


class Reference:
    """What the store must hold, as plainly as can be: a dict, a list in use order, brute force."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.entries: dict[str, Entry] = {}
        self.used: list[str] = []  # least recently used first
        self.evictions = 0
        self.expirations = 0

    def remove(self, entry_id: str) -> bool:
        if self.entries.pop(entry_id, None) is None:
            return False
        self.used.remove(entry_id)
        return True

    def touch(self, entry_id: str) -> None:
        if entry_id in self.used:
            self.used.remove(entry_id)
        self.used.append(entry_id)

    def sweep(self, now: float) -> None:
        for entry_id, entry in list(self.entries.items()):
            if entry.expires_at <= now:
                self.remove(entry_id)
                self.expirations += 1

    def put(self, entry: Entry) -> None:
        self.remove(entry.id)
        for other in list(self.entries.values()):
            if (other.scope, other.prompt_hash) == (entry.scope, entry.prompt_hash):
                self.remove(other.id)
        self.entries[entry.id] = entry
        self.touch(entry.id)
        self.sweep(entry.created_at)
        while len(self.entries) > self.bound:
            self.remove(self.used[0])
            self.evictions += 1

    def hit(self, entry_id: str, now: float) -> None:
        self.sweep(now)
        if entry_id in self.entries:
            entry = self.entries[entry_id]
            self.entries[entry_id] = Entry(
                **{**entry.__dict__, "hits": entry.hits + 1, "last_used_at": now}
            )
            self.touch(entry_id)

    def reembed(self, entry_id: str, model: str) -> None:
        """The entry, in use order as it was, now of ``model`` (same vector: the test's)."""
        self.entries[entry_id] = Entry(**{**self.entries[entry_id].__dict__, "model": model})

    def similarities(
        self, scope: str, query: np.ndarray, min_similarity: float, model: str
    ) -> list[float]:
        sims = (
            float(e.vector @ query)
            for e in self.entries.values()
            if e.scope == scope and e.model == model
        )
        return sorted((s for s in sims if s >= min_similarity), reverse=True)


def _pool() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    bases = [unit(rng) for _ in range(5)]
    return bases + [near(base, rng, 0.03) for base in bases]


POOL = _pool()
SCOPES = ["scope-a", "scope-b"]
MODELS = [BASE_MODEL_ID, TUNED]
BOUND = 3

# Puts dominate so that the bound is reached; wholesale removals stay rare enough not to empty
# the store all the time.
KINDS = ["put"] * 8 + ["search", "hit"] * 2 + ["delete", "advance", "yield", "restart", "reembed"]
RARE = ["delete_scope", "delete_similar", "flush"]


@st.composite
def operations(draw: st.DrawFn) -> tuple:
    kind = draw(st.sampled_from(KINDS + [draw(st.sampled_from(RARE))]))
    pool_index = st.integers(0, len(POOL) - 1)
    model_index = st.integers(0, len(MODELS) - 1)
    if kind == "put":
        ttl = st.sampled_from([1000.0, 1000.0, 5.0, 0.0])
        scope, prompt, model = draw(st.integers(0, 1)), draw(st.integers(0, 4)), draw(model_index)
        return (kind, scope, prompt, draw(pool_index), draw(ttl), model)
    if kind == "search":
        k, minimum = st.sampled_from([1, 3]), st.sampled_from([-1.0, 0.5, 0.9])
        return (
            kind,
            draw(st.integers(0, 1)),
            draw(pool_index),
            draw(k),
            draw(minimum),
            draw(model_index),
        )
    if kind == "reembed":
        return (kind, draw(model_index), draw(st.integers(1, 3)))
    if kind in ("hit", "delete"):
        return (kind, draw(st.integers(0, 60)))
    if kind == "advance":
        return (kind, draw(st.sampled_from([1.0, 4.0])))
    if kind == "delete_scope":
        return (kind, draw(st.integers(0, 1)))
    if kind == "delete_similar":
        return (kind, draw(pool_index))
    return (kind,)


OPERATIONS = st.lists(operations(), min_size=10, max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=OPERATIONS, approximate=st.booleans())
# A re-embedded entry keeps its place in the order of use: the next eviction takes the oldest.
@example(
    operations=[
        ("put", 0, 0, 0, 1000.0, 0),
        ("put", 0, 1, 1, 1000.0, 0),
        ("put", 0, 2, 2, 1000.0, 1),
        ("reembed", 1, 1),
        ("put", 0, 3, 3, 1000.0, 1),
    ],
    approximate=False,
)
def test_the_store_agrees_with_a_reference_model(
    operations: list[tuple], approximate: bool
) -> None:
    asyncio.run(_play(operations, TINY_PROPERTY_INDEX if approximate else None))


TINY_PROPERTY_INDEX = IndexOptions(approximate_above=3, max_dead_share=0.25)


async def _play(operations: list[tuple], index: IndexOptions | None) -> None:
    # Memory-backed where there is one: each example creates a file, and fsyncs add up.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        path = Path(folder) / "cache.sqlite3"
        now = T0
        store = await open_store(path, max_entries=BOUND, index_options=index, now=now)
        reference = Reference(BOUND)
        ever: list[str] = []
        try:
            for operation in operations:
                name, args = operation[0], operation[1:]
                if name == "put":
                    scope, prompt, vector, ttl, model = args
                    entry = make(
                        f"prompt {prompt}",
                        POOL[vector],
                        scope=SCOPES[scope],
                        now=now,
                        ttl_s=ttl,
                        model=MODELS[model],
                    )
                    entry = Entry(**{**entry.__dict__, "response": {"answer": entry.id}})
                    ever.append(entry.id)
                    await store.put(entry)
                    reference.put(entry)
                elif name == "advance":
                    now += args[0]
                elif name == "delete" and ever:  # any id ever put: gone ones included
                    entry_id = ever[args[0] % len(ever)]
                    assert await store.delete([entry_id]) == reference.remove(entry_id)
                elif name == "hit" and reference.used:  # mostly a held one, as the cache does
                    candidates = reference.used + ever[-1:]
                    entry_id = candidates[args[0] % len(candidates)]
                    await store.record_hit(entry_id, now=now)
                    reference.hit(entry_id, now)
                elif name == "search":
                    scope, vector, k, min_similarity, model = args
                    reference.sweep(now)
                    await _check_search(
                        store, reference, SCOPES[scope], POOL[vector], k, min_similarity,
                        now, MODELS[model], exact=index is None,
                    )  # fmt: skip
                elif name == "reembed":
                    model, limit = MODELS[args[0]], args[1]
                    reference.sweep(now)
                    others = [e.id for e in reference.entries.values() if e.model != model]
                    listed, total = await store.other_models(model=model, limit=limit, now=now)
                    assert total == len(others) and len(listed) == min(limit, total)
                    assert {e.id for e in listed} <= set(others)
                    changes = [(e, e.vector) for e in listed]
                    assert await store.reembed(changes, model=model) == len(listed)
                    for entry in listed:
                        reference.reembed(entry.id, model)
                elif name == "delete_scope":
                    scope = SCOPES[args[0]]
                    doomed = [e.id for e in reference.entries.values() if e.scope == scope]
                    assert await store.delete_where(scope=scope) == len(doomed)
                    for entry_id in doomed:
                        reference.remove(entry_id)
                elif name == "delete_similar":
                    query = POOL[args[0]]
                    doomed = [
                        e.id
                        for e in reference.entries.values()
                        if e.vector @ query >= 0.9 and e.model == BASE_MODEL_ID
                    ]
                    assert await store.delete_similar(vector=query, min_similarity=0.9) == len(
                        doomed
                    )
                    for entry_id in doomed:
                        reference.remove(entry_id)
                elif name == "flush":
                    assert await store.flush() == len(reference.entries)
                    reference.entries.clear()
                    reference.used.clear()
                elif name == "restart":
                    await store.aclose()
                    store = await open_store(path, max_entries=BOUND, index_options=index, now=now)
                    reference.evictions = reference.expirations = 0  # counters are per process
                    reference.sweep(now)
                elif name == "yield":
                    for _ in range(3):
                        await asyncio.sleep(0.002)
                await _check_agreement(store, reference, now, exact=index is None)
        finally:
            await store.aclose()


async def _check_search(
    store: EmbeddedStore,
    reference: Reference,
    scope: str,
    query: np.ndarray,
    k: int,
    min_similarity: float,
    now: float,
    model: str,
    *,
    exact: bool,
) -> None:
    found = await store.search(
        scope=scope, vector=query, k=k, min_similarity=min_similarity, now=now, model=model
    )
    assert len(found) <= k
    for match in found:
        own = reference.entries.get(match.entry.id)
        assert own is not None and (own.scope, own.model) == (scope, model)
        assert match.entry.response == own.response
        assert match.similarity == pytest.approx(float(own.vector @ query), abs=1e-6)
        assert match.similarity >= min_similarity
    assert [m.similarity for m in found] == sorted((m.similarity for m in found), reverse=True)
    if exact:
        want = reference.similarities(scope, query, min_similarity, model)[:k]
        assert [m.similarity for m in found] == pytest.approx(want, abs=1e-6)


async def _check_agreement(
    store: EmbeddedStore, reference: Reference, now: float, *, exact: bool
) -> None:
    listed = await store.list_entries(offset=0, limit=100, now=now)
    reference.sweep(now)
    assert {e.id: e.response for e in listed} == {
        i: e.response for i, e in reference.entries.items()
    }
    assert [e.created_at for e in listed] == sorted((e.created_at for e in listed), reverse=True)
    stats = await store.stats()
    assert (stats.entries, stats.evictions, stats.expirations) == (
        len(reference.entries),
        reference.evictions,
        reference.expirations,
    )
    for scope, model in itertools.product(SCOPES, MODELS):  # exactly its entries, nothing stale
        index = store.index_of(scope, model=model)
        held = sum((e.scope, e.model) == (scope, model) for e in reference.entries.values())
        assert (0 if index is None else len(index)) == held
    for entry in reference.entries.values():
        lookup = {"scope": entry.scope, "prompt_hash": entry.prompt_hash, "now": now}
        got = await store.get_exact(model=entry.model, **lookup)
        assert got is not None and got.id == entry.id and got.hits == entry.hits
        (other,) = set(MODELS) - {entry.model}
        assert await store.get_exact(model=other, **lookup) is None
        await _check_search(
            store, reference, entry.scope, entry.vector, 2, -1.0, now, entry.model, exact=exact
        )


def write_older_file(path: Path, vector: np.ndarray, *, partition_column: str) -> None:
    """A cache file as an older frugal wrote it: no model column, the partition under
    ``partition_column``, one entry ``old`` of partition acme (3 hits)."""
    db = sqlite3.connect(path)
    with db:
        db.execute(OLDER_SCHEMA.replace("tenant TEXT", f"{partition_column} TEXT"))
        db.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("old", "acme", "scope-a", "p", "hash-p", '{"answer": 42}', vector.tobytes(),
             T0, T0 + 100, f'{{"{partition_column}": "acme"}}', 3, None, 1),
        )  # fmt: skip
    db.close()


# ---- rows are reused: work that spans awaits must not mistake new entries for old ones -------


async def test_a_flush_during_delete_similar_removes_none_of_what_came_after(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    store = await open_store(tmp_path / "cache.sqlite3")
    try:
        query = unit(rng)
        for i in range(10):  # two scopes: the sweep yields between their indexes
            await store.put(make(f"same {i}", query, scope=f"scope-{i % 2}"))
        sweep = asyncio.create_task(store.delete_similar(vector=query, min_similarity=0.99))
        await asyncio.sleep(0)
        await store.flush()
        theirs = [make(f"theirs {i}", unit(rng), partition="tenant-b") for i in range(10)]
        for entry in theirs:  # in the rows the flushed entries held
            await store.put(entry)
        assert await sweep == 0
        assert len(await store.list_entries(offset=0, limit=20, now=T0)) == 10
    finally:
        await store.aclose()


async def test_a_flush_during_a_checkpoint_writes_no_graph_of_flushed_vectors(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "cache.sqlite3"
    options = {"max_entries": 1000, "index_options": IndexOptions(approximate_above=20)}
    store = await open_store(path, **options)
    for i in range(30):
        await store.put(make(f"first {i}", unit(rng), scope="scope-a"))
    old = [make(f"old {i}", unit(rng), scope="scope-b") for i in range(30)]
    for entry in old:
        await store.put(entry)
    await store.settle()
    checkpoint = asyncio.create_task(store.checkpoint())
    await asyncio.sleep(0)  # writing scope-a's graph on a thread
    await store.flush()
    new = [make(f"new {i}", unit(rng), scope="scope-b") for i in range(60)]
    for entry in new:  # rows 0-59 again: scope-b's old graph named rows 30-59
        await store.put(entry)
    await checkpoint
    await store.settle()
    await store._disk.aclose()  # a crash: no last checkpoint, the rows written
    store = await open_store(path, **options)
    try:
        for entry in new:  # each found by its own vector, none by a flushed one
            (best,) = await store.search(
                scope="scope-b", vector=entry.vector, k=1, min_similarity=-1.0, now=T0
            )
            assert best.entry.id == entry.id and best.similarity == pytest.approx(1.0, abs=1e-3)
        for entry in old:
            found = await store.search(
                scope="scope-b", vector=entry.vector, k=1, min_similarity=0.99, now=T0
            )
            assert found == []
    finally:
        await store.aclose()


async def test_two_stored_rows_of_one_prompt_load_and_go_cleanly(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A file may hold two rows of one (scope, prompt_hash) (an older frugal, an edit): the
    later one is the exact tier's, and either can be removed."""
    path = tmp_path / "cache.sqlite3"
    store = await open_store(path)
    await store.put(make("same", unit(rng), entry_id="id-a"))
    await store.aclose()
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(entries)")]
        row = list(db.execute("SELECT * FROM entries").fetchone())
        row[columns.index("id")] = "id-b"
        db.execute(f"INSERT INTO entries VALUES ({', '.join('?' * len(row))})", row)
    db.close()
    store = await open_store(path)
    try:
        assert await store.delete(["id-b"]) == 1
        assert await store.delete(["id-a"]) == 1
        assert (await store.stats()).entries == 0 and (await store.stats()).bytes == 0
    finally:
        await store.aclose()
    store = await open_store(path)
    try:
        assert await store.list_entries(offset=0, limit=5, now=T0) == []
    finally:
        await store.aclose()
