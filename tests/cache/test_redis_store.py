"""What only the Redis store has to prove: its schema, isolation in the query, real TTLs,
a flush that leaves other keys alone, and a server that restarts empty."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frugal.cache.redis_layout import to_hash
from frugal.cache.redis_store import RedisStore, similarity_from_distance
from frugal.cache.store import BASE_MODEL_ID
from frugal.errors import CacheStoreError, RedisStoreConfigError
from frugal.local.redis_server import RedisServer
from tests.cache.entries import DIM, T0, TUNED, make, unit


def names() -> tuple[str, str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    return f"{name}:", name


async def indexed(client: redis.Redis, index: str) -> None:
    """Wait until ``index`` has read the hashes that were there before it (Redis does that in
    the background after ``FT.CREATE``)."""
    while float(client.ft(index).info()["percent_indexed"]) < 1.0:
        await asyncio.sleep(0.01)


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    prefix, index = names()
    opened = await RedisStore.open(
        redis_server.url, prefix=prefix, index=index, max_entries=100, dimensions=DIM
    )
    yield opened
    await opened.flush()
    await opened.drop_index()
    await opened.aclose()


def test_distance_is_one_minus_similarity() -> None:
    assert similarity_from_distance(0.0) == 1.0
    assert similarity_from_distance(0.25) == 0.75
    assert similarity_from_distance(2.0) == -1.0


async def test_similarity_is_the_cosine_of_the_two_vectors(store: RedisStore) -> None:
    stored = np.zeros(DIM, dtype=np.float32)
    stored[0] = 1.0
    query = np.zeros(DIM, dtype=np.float32)
    query[0], query[1] = 0.6, 0.8  # cosine with `stored`: 0.6; Redis's distance: 0.4
    await store.put(make("p", stored))
    (match,) = await store.search(scope="scope-a", vector=query, k=1, min_similarity=0, now=T0)
    assert match.similarity == pytest.approx(0.6, abs=1e-6)
    assert not await store.search(scope="scope-a", vector=query, k=1, min_similarity=0.61, now=T0)


async def test_an_index_of_other_dimensions_is_a_start_up_error(
    redis_server: RedisServer,
) -> None:
    prefix, index = names()
    first = await RedisStore.open(
        redis_server.url, prefix=prefix, index=index, max_entries=10, dimensions=DIM
    )
    try:
        with pytest.raises(RedisStoreConfigError, match=r"dimensions .*expected 64"):
            await RedisStore.open(
                redis_server.url, prefix=prefix, index=index, max_entries=10, dimensions=DIM * 2
            )
        with pytest.raises(RedisStoreConfigError, match="prefixes"):
            await RedisStore.open(
                redis_server.url, prefix="elsewhere:", index=index, max_entries=10, dimensions=DIM
            )
    finally:
        await first.drop_index()
        await first.aclose()


async def test_an_older_frugals_index_is_left_beside_this_layouts(
    redis_server: RedisServer, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    """An older frugal named the partition ``tenant``, in an index under the bare name. This
    layout's index is another (``:v3``): the old entry is never found by a lookup (a miss, not
    another partition's answer), listings still read it, and the old index is named to drop."""
    prefix, name = names()
    client = redis.Redis.from_url(redis_server.url)
    older = make("asked before the upgrade", unit(rng), partition="acme")
    fields = to_hash(older, older.vector)
    fields["tenant"], fields["tenant_tag"] = fields.pop("partition"), fields.pop("partition_tag")
    create_older_index(client, name, prefix=prefix, partition_field="tenant_tag")
    client.hset(f"{prefix}entry:{older.id}", mapping=fields)
    store = await RedisStore.open(
        redis_server.url, prefix=prefix, index=name, max_entries=10, dimensions=DIM
    )
    try:
        assert store.reachable and store.index == f"{name}:v3"
        await indexed(client, store.index)
        assert f"{name!r} of an older frugal" in caplog.text
        assert f"FT.DROPINDEX {name}" in caplog.text
        for partition in ("acme", "globex"):
            lookup = {"scope": older.scope, "now": T0, "partition": partition}
            assert await store.get_exact(prompt_hash=older.prompt_hash, **lookup) is None
            assert not await store.search(vector=older.vector, k=5, min_similarity=-1, **lookup)
        (listed,) = await store.list_entries(offset=0, limit=10, now=T0)
        assert (listed.id, listed.partition, listed.model) == (older.id, "acme", BASE_MODEL_ID)
        newer = make("asked after it", unit(rng), partition="acme")
        await store.put(newer)
        found = await store.get_exact(
            scope=newer.scope, prompt_hash=newer.prompt_hash, now=T0, partition="acme"
        )
        assert found is not None and found.id == newer.id
        assert name.encode() in client.execute_command("FT._LIST")  # left to its operator
    finally:
        await store.flush()
        await store.drop_index()
        await store.aclose()
        client.execute_command("FT.DROPINDEX", name)
        client.close()


async def test_a_hash_written_before_entries_named_their_model_is_the_base_models(
    redis_server: RedisServer, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    """Layout 2 had no model: every hash of it was embedded by the base model. This layout's
    index takes those hashes as the base model's (hits for it, never for another), reembeds
    them, and names layout 2's index to drop."""
    prefix, name = names()
    client = redis.Redis.from_url(redis_server.url)
    older = make("asked before the upgrade", unit(rng), partition="acme")
    fields = to_hash(older, older.vector)
    del fields["model"], fields["model_tag"]
    create_older_index(client, f"{name}:v2", prefix=prefix, partition_field="partition_tag")
    client.hset(f"{prefix}entry:{older.id}", mapping=fields)
    store = await RedisStore.open(
        redis_server.url, prefix=prefix, index=name, max_entries=10, dimensions=DIM
    )
    try:
        assert f"FT.DROPINDEX {name}:v2" in caplog.text
        await indexed(client, store.index)
        for model, found in ((BASE_MODEL_ID, [older.id]), (TUNED, [])):
            lookup = {"scope": older.scope, "now": T0, "partition": "acme", "model": model}
            exact = await store.get_exact(prompt_hash=older.prompt_hash, **lookup)
            assert ([exact.id] if exact else []) == found
            similar = await store.search(vector=older.vector, k=5, min_similarity=0.99, **lookup)
            assert [match.entry.id for match in similar] == found
        (listed,), total = await store.other_models(model=TUNED, limit=10, now=T0)
        assert (listed.id, listed.model, total) == (older.id, BASE_MODEL_ID, 1)
        assert await store.other_models(model=BASE_MODEL_ID, limit=10, now=T0) == ([], 0)
        assert await store.reembed([(listed, listed.vector)], model=TUNED) == 1
        lookup = {"scope": older.scope, "prompt_hash": older.prompt_hash, "now": T0}
        assert await store.get_exact(**lookup) is None
        moved = await store.get_exact(model=TUNED, **lookup)
        assert moved is not None and (moved.id, moved.hits) == (older.id, older.hits)
        assert client.hget(f"{prefix}entry:{older.id}", "model") == TUNED.encode()
    finally:
        await store.flush()
        await store.drop_index()
        await store.aclose()
        client.execute_command("FT.DROPINDEX", f"{name}:v2")
        client.close()


async def test_a_redis_without_the_query_engine_is_named_at_start_up(tmp_path: Path) -> None:
    with RedisServer.start(modules=False) as plain:
        with pytest.raises(RedisStoreConfigError, match="no query engine"):
            await RedisStore.open(plain.url, max_entries=10, dimensions=DIM)


async def test_an_unreachable_redis_is_not_a_start_up_error() -> None:
    unreachable = "redis://127.0.0.1:1/0"
    store = await RedisStore.open(unreachable, max_entries=10, dimensions=DIM)
    try:
        assert not store.reachable
        with pytest.raises(CacheStoreError):
            await store.stats()
    finally:
        await store.aclose()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prompts=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=5),
    noise=st.floats(min_value=0.0, max_value=0.2),
    seed=st.integers(0, 2**32 - 1),
)
async def test_a_partition_never_receives_another_partitions_entry(
    store: RedisStore, prompts: list[str], noise: float, seed: int
) -> None:
    """However similar the prompt, even in the same scope string: the partition is a filter."""
    rng = np.random.default_rng(seed)
    await store.flush()
    theirs = []
    for prompt in prompts:
        entry = make(prompt, unit(rng), partition="partition-a", scope="shared-scope")
        await store.put(entry)
        theirs.append(entry)
    for entry in theirs:
        moved = entry.vector + noise * rng.standard_normal(DIM).astype(np.float32)
        query = (moved / np.linalg.norm(moved)).astype(np.float32)
        as_b = {"scope": "shared-scope", "now": T0, "partition": "partition-b"}
        assert await store.search(vector=query, k=5, min_similarity=-1, **as_b) == []
        assert await store.get_exact(prompt_hash=entry.prompt_hash, **as_b) is None
        as_a = {**as_b, "partition": "partition-a"}
        assert await store.search(vector=query, k=5, min_similarity=-1, **as_a)


async def test_redis_drops_expired_entries_itself(
    redis_server: RedisServer, store: RedisStore, rng: np.random.Generator
) -> None:
    entry = make("short-lived", unit(rng), ttl_s=1.0)
    await store.put(entry)
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.pttl(f"{store.prefix}entry:{entry.id}") > 0
        await asyncio.sleep(1.3)
        assert not client.exists(f"{store.prefix}entry:{entry.id}")
    finally:
        client.close()
    # Even asked with a clock that says it is still live, Redis no longer has it.
    assert not await store.search(
        scope="scope-a", vector=entry.vector, k=1, min_similarity=0, now=T0
    )


async def test_flush_leaves_other_keys_and_deployments_alone(
    redis_server: RedisServer, store: RedisStore, rng: np.random.Generator
) -> None:
    prefix, index = names()
    neighbour = await RedisStore.open(
        redis_server.url, prefix=prefix, index=index, max_entries=10, dimensions=DIM
    )
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("unrelated:key", "keep me")
        mine = make("mine", unit(rng))
        theirs = make("theirs", unit(rng))
        await store.put(mine)
        await neighbour.put(theirs)
        assert await store.flush() == 1
        assert client.get("unrelated:key") == b"keep me"
        assert await neighbour.get_exact(scope="scope-a", prompt_hash=theirs.prompt_hash, now=T0)
        assert not await store.get_exact(scope="scope-a", prompt_hash=mine.prompt_hash, now=T0)
        stats = await store.stats()
        assert (stats.entries, stats.write_failures, stats.unsaved) == (0, 0, 0)
        await store.put(mine)  # the index is still there
        assert await store.get_exact(scope="scope-a", prompt_hash=mine.prompt_hash, now=T0)
    finally:
        client.delete("unrelated:key")
        client.close()
        await neighbour.flush()
        await neighbour.drop_index()
        await neighbour.aclose()


async def test_a_restarted_empty_server_gets_its_index_back(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    with RedisServer.start() as server:
        store = await RedisStore.open(server.url, max_entries=10, dimensions=DIM)
        try:
            await store.put(make("before", unit(rng)))
            server.restart()  # no persistence: entries and index are gone
            after = make("after", unit(rng))
            for _ in range(3):  # the first calls may meet the old connection or no index
                try:
                    await store.put(after)
                    break
                except CacheStoreError:
                    continue
            assert await store.get_exact(scope="scope-a", prompt_hash=after.prompt_hash, now=T0)
        finally:
            await store.aclose()


def create_older_index(client: Any, name: str, *, prefix: str, partition_field: str) -> None:
    """An index as an older frugal made it: no model tag, the partition under
    ``partition_field`` (``tenant_tag`` before v2, ``partition_tag`` in v2)."""
    vector_args = ["TYPE", "FLOAT32", "DIM", DIM, "DISTANCE_METRIC", "COSINE"]
    client.execute_command(
        "FT.CREATE", name, "ON", "HASH", "PREFIX", 1, f"{prefix}entry:", "SCHEMA",
        partition_field, "TAG", "scope_tag", "TAG", "prompt_tag", "TAG",
        "created_at", "NUMERIC", "SORTABLE", "expires_at", "NUMERIC",
        "vector", "VECTOR", "HNSW", len(vector_args), *vector_args,
    )  # fmt: skip
