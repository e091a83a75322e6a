"""The Redis store behind Sentinel: it finds the primary through the Sentinels, reads from a
replica when told to, and rides out a failover, crashed or orderly, without being reopened.

Real processes: a primary and a replica with the query engine and three Sentinels
(`frugal.local.redis_sentinel.SentinelSet`), redis-py's Sentinel client as the gateway uses it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from frugal.cache.breaker import CircuitBreaker, GuardedStore
from frugal.cache.redis_connection import RedisTarget
from frugal.cache.redis_store import RedisStore
from frugal.config import parse_host_ports
from frugal.errors import CacheStoreError
from frugal.labels import RedisLabels
from frugal.labels.record import LabelledPair
from frugal.local.redis_sentinel import SentinelSet
from tests.cache.entries import DIM, T0, make, unit

# Long enough for a failover to finish on a busy machine; the tests poll, never time.
FAILOVER_WAIT_S = 60.0


def target(redis_set: SentinelSet, *, read_from_replicas: bool = False) -> RedisTarget:
    return RedisTarget(
        sentinels=tuple(parse_host_ports(",".join(redis_set.sentinels))),
        sentinel_master=redis_set.master_name,
        read_from_replicas=read_from_replicas,
    )


async def open_store(redis_set: SentinelSet, *, read_from_replicas: bool = False) -> RedisStore:
    name = f"test-{uuid.uuid4().hex[:12]}"
    return await RedisStore.open(
        target(redis_set, read_from_replicas=read_from_replicas),
        prefix=f"{name}:",
        index=name,
        max_entries=1000,
        dimensions=DIM,
    )


def search_calls(port: int) -> int:
    """How many ``FT.SEARCH`` the server on ``port`` has run."""
    with redis.Redis(port=port) as server:
        stats = server.info("commandstats")
    return int(stats.get("cmdstat_FT.SEARCH", {}).get("calls", 0))


@pytest.fixture(scope="module")
def redis_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    """One set for the tests that leave its primary in place."""
    with SentinelSet.start(tmp_path_factory.mktemp("sentinel")) as started:
        yield started


@pytest.fixture
async def store(redis_set: SentinelSet) -> AsyncIterator[RedisStore]:
    opened = await open_store(redis_set)
    yield opened
    await opened.flush()
    await opened.drop_index()
    await opened.aclose()


async def test_the_store_finds_the_primary_through_the_sentinels(
    redis_set: SentinelSet, store: RedisStore, tmp_path: Path
) -> None:
    assert store.reachable
    rng = np.random.default_rng(7)
    vector = unit(rng)
    entry = make("What is the capital of France?", vector)
    await store.put(entry)
    found = await store.get_exact(scope=entry.scope, prompt_hash=entry.prompt_hash, now=T0)
    assert found is not None and found.id == entry.id
    (match,) = await store.search(
        scope=entry.scope, vector=vector, k=1, min_similarity=0.99, now=T0
    )
    assert match.entry.id == entry.id
    with redis.Redis(port=redis_set.primary.port) as primary:
        assert primary.exists(f"{store.prefix}entry:{entry.id}")
    # The labelled pairs beside the cache reach the same primary.
    labels = RedisLabels(target(redis_set), prefix=store.prefix)
    pair = LabelledPair(
        a="q", b="p", label=1, source="feedback", similarity=0.9, model="m", partition="t",
        created_at=T0,
    )  # fmt: skip
    try:
        await labels.append(pair)
        assert [row["a"] async for row in labels.rows()] == ["q"]
    finally:
        await labels.aclose()
    with redis.Redis(port=redis_set.primary.port) as primary:
        assert primary.llen(labels.key) == 1
        primary.delete(labels.key)


async def test_lookups_go_to_the_replica_and_writes_to_the_primary(
    redis_set: SentinelSet,
) -> None:
    store = await open_store(redis_set, read_from_replicas=True)
    try:
        rng = np.random.default_rng(8)
        vector = unit(rng)
        entry = make("How far away is the Moon?", vector)
        await store.put(entry)
        with redis.Redis(port=redis_set.primary.port) as primary:
            assert primary.exists(f"{store.prefix}entry:{entry.id}")
        # The replica has it once replication (and its index) caught up: a moment.
        deadline = time.monotonic() + FAILOVER_WAIT_S
        while (
            await store.get_exact(scope=entry.scope, prompt_hash=entry.prompt_hash, now=T0) is None
        ):
            assert time.monotonic() < deadline, "the replica never had the entry"
            await asyncio.sleep(0.05)
        on_primary, on_replica = (
            search_calls(redis_set.primary.port),
            search_calls(redis_set.replica.port),
        )
        for _ in range(5):
            found = await store.get_exact(scope=entry.scope, prompt_hash=entry.prompt_hash, now=T0)
            assert found is not None and found.id == entry.id
            (match,) = await store.search(
                scope=entry.scope, vector=vector, k=1, min_similarity=0.99, now=T0
            )
            assert match.entry.id == entry.id
        assert search_calls(redis_set.replica.port) - on_replica == 10
        assert search_calls(redis_set.primary.port) == on_primary
    finally:
        await store.flush()
        await store.drop_index()
        await store.aclose()


async def test_a_crashed_primary_costs_misses_never_errors_and_hits_return(
    tmp_path: Path,
) -> None:
    with SentinelSet.start(tmp_path / "sentinel") as redis_set:
        raw = await open_store(redis_set)
        # As the gateway wraps it: a timeout per call and a circuit breaker (shorter, to probe
        # often: the test waits for the first probe after the promotion).
        guarded = GuardedStore(
            raw, timeout_s=0.5, breaker=CircuitBreaker(failures=3, reset_s=0.2, name="test")
        )
        outcomes: Counter[str] = Counter()
        unexpected: list[BaseException] = []
        stop = asyncio.Event()
        rng = np.random.default_rng(9)

        async def caller(number: int) -> None:
            """Puts and looks up, as the cache does, until told to stop; a `CacheStoreError`
            is the store's way to say "miss", anything else would reach a client."""
            turn = 0
            while not stop.is_set():
                turn += 1
                entry = make(f"question {number}-{turn}", unit(rng))
                try:
                    await guarded.put(entry)
                    found = await guarded.get_exact(
                        scope=entry.scope, prompt_hash=entry.prompt_hash, now=T0
                    )
                    outcomes["hit" if found is not None else "miss"] += 1
                except CacheStoreError:
                    outcomes["store error"] += 1
                except Exception as exc:  # what the test is here to catch
                    unexpected.append(exc)
                await asyncio.sleep(0.01)

        callers = [asyncio.create_task(caller(number)) for number in range(4)]
        try:
            while outcomes["hit"] < 20:
                await asyncio.sleep(0.05)
            killed = await asyncio.to_thread(redis_set.kill_primary)
            promoted = await asyncio.to_thread(
                redis_set.wait_for_primary, other_than=killed.port, timeout_s=FAILOVER_WAIT_S
            )
            assert promoted[1] == redis_set.replica.port
            # Hits again through the same store object, on the promoted replica.
            hits_at_promotion = outcomes["hit"]
            deadline = time.monotonic() + FAILOVER_WAIT_S
            while outcomes["hit"] < hits_at_promotion + 20:
                assert time.monotonic() < deadline, f"no hits after the failover: {outcomes}"
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*callers)
        try:
            assert unexpected == []
            assert outcomes["store error"] > 0  # the outage was seen, as misses
            entry = make("after the failover", unit(rng))
            await guarded.put(entry)
            with redis.Redis(port=redis_set.replica.port) as promoted_server:
                assert promoted_server.exists(f"{raw.prefix}entry:{entry.id}")
        finally:
            await raw.flush()
            await raw.aclose()


async def test_an_orderly_failover_costs_at_most_one_write(tmp_path: Path) -> None:
    """The old primary stays up as a replica: the connection still open to it is told READONLY
    on the next write, which drops it; the write after that reaches the new primary."""
    with SentinelSet.start(tmp_path / "sentinel") as redis_set:
        store = await open_store(redis_set)
        try:
            rng = np.random.default_rng(10)
            await store.put(make("before", unit(rng)))  # a pooled connection to the primary
            with redis.Redis(port=redis_set.sentinel_ports[0]) as sentinel:
                sentinel.execute_command("SENTINEL", "FAILOVER", redis_set.master_name)
            await asyncio.to_thread(
                redis_set.wait_for_primary,
                other_than=redis_set.primary.port,
                timeout_s=FAILOVER_WAIT_S,
            )
            # The Sentinels demote the old primary when they next look at it (within 10 s);
            # this does it at once, as they will.
            with redis.Redis(port=redis_set.primary.port) as old_primary:
                old_primary.replicaof("127.0.0.1", redis_set.replica.port)
                assert old_primary.info("replication")["role"] == "slave"
            try:
                await store.put(make("met the demoted primary", unit(rng)))
            except CacheStoreError as exc:
                assert "READONLY" in str(exc) or "now a slave" in str(exc), exc
            entry = make("after", unit(rng))
            await store.put(entry)  # the same store, not reopened
            with redis.Redis(port=redis_set.replica.port) as promoted:
                assert promoted.exists(f"{store.prefix}entry:{entry.id}")
        finally:
            await store.flush()
            await store.aclose()
