"""Fleet leases on a real Redis: two `FleetLeases` stand for two replicas, a dict for the cache
they share. Who leads, who follows, and what a follower does when the leader fails, dies,
takes too long, or Redis goes away."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from frugal.cache import CacheKey
from frugal.fleet import DoneListener, FleetLeases, FleetNames, LeaseTurn
from frugal.local.processes import free_port
from frugal.local.redis_server import RedisServer

Answers = dict[str, dict[str, Any]]


def question(partition: str = "team") -> CacheKey:
    text = f"question {uuid.uuid4().hex}"
    return CacheKey(partition=partition, scope="scope", prompt=text, prompt_hash=text)


@asynccontextmanager
async def replica(
    url: str, name: str, answers: Answers, *, prefix: str, **options: Any
) -> AsyncIterator[FleetLeases]:
    """One replica's leases; ``answers`` (prompt hash -> answer) is the cache they share."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1.0)
    names = FleetNames(prefix)

    async def read(key: CacheKey) -> dict[str, Any] | None:
        return answers.get(key.prompt_hash)

    try:
        async with DoneListener(client, names.done_pattern) as listener:
            leases = FleetLeases(
                client,
                names=names,
                listener=listener,
                replica=name,
                model="model",
                read_answer=read,
                **options,
            )
            yield leases
            await leases.aclose()
    finally:
        await client.aclose()


async def follow(leases: FleetLeases, key: CacheKey) -> LeaseTurn:
    async with leases.turn(key) as turn:
        return turn


def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


async def test_one_replica_leads_and_the_other_gets_its_answer(redis_server: RedisServer) -> None:
    answers: Answers = {}
    key, keys = question(), prefix()
    async with (
        replica(redis_server.url, "a", answers, prefix=keys) as a,
        replica(redis_server.url, "b", answers, prefix=keys) as b,
    ):
        async with a.turn(key) as leading:
            assert leading.led and leading.answer is None
            following = asyncio.create_task(follow(b, key))
            await asyncio.sleep(0.2)  # most likely waiting by now; found afterwards otherwise
            assert not following.done()
            answers[key.prompt_hash] = {"answer": 42}
            leading.stored = True
        followed = await following
    assert followed.answer == {"answer": 42} and not followed.led
    assert (a.counts.led, b.counts.led, b.counts.coalesced) == (1, 0, 1)


async def test_an_answer_not_stored_sends_the_followers_upstream_at_once(
    redis_server: RedisServer,
) -> None:
    answers: Answers = {}
    key, keys = question(), prefix()
    async with (
        replica(redis_server.url, "a", answers, prefix=keys) as a,
        replica(redis_server.url, "b", answers, prefix=keys, wait_s=300) as b,
    ):
        async with a.turn(key):
            following = asyncio.create_task(follow(b, key))
            await asyncio.sleep(0.2)
        followed = await following  # within the test's timeout: long before wait_s
        assert followed.answer is None and not followed.led
        assert b.counts.leader_failed == 1
        # The same after an error: the leader's error is its own, the followers ask alone.
        again = question()
        try:
            async with a.turn(again):
                raise RuntimeError("the provider failed")
        except RuntimeError:
            pass
        assert (await follow(b, again)).answer is None
        assert b.counts.leader_failed == 2 and b.counts.led == 0


async def test_a_question_settled_a_moment_ago_is_read_not_asked_again(
    redis_server: RedisServer,
) -> None:
    """The tombstone: a request whose lookup missed just before the answer was stored."""
    answers: Answers = {}
    key, keys = question(), prefix()
    async with (
        replica(redis_server.url, "a", answers, prefix=keys) as a,
        replica(redis_server.url, "b", answers, prefix=keys) as b,
    ):
        async with a.turn(key) as leading:
            answers[key.prompt_hash] = {"answer": "stored"}
            leading.stored = True
        late = await follow(b, key)
    assert late.answer == {"answer": "stored"} and (b.counts.led, b.counts.coalesced) == (0, 1)


async def test_a_dead_leaders_lease_expires_and_a_follower_takes_it(
    redis_server: RedisServer,
) -> None:
    answers: Answers = {}
    key, keys = question(), prefix()
    names = FleetNames(keys)
    lease = names.lease(
        names.digest(
            partition=key.partition, scope=key.scope, prompt_hash=key.prompt_hash, model="model"
        )
    )
    async with (
        aioredis.Redis.from_url(redis_server.url) as raw,
        replica(redis_server.url, "b", answers, prefix=keys, lease_ttl_s=1.0) as b,
    ):
        # A replica that took the lease and died: nothing renews or settles it.
        assert await raw.set(lease, "dead 1", nx=True, px=400)
        async with b.turn(key) as turn:
            assert turn.led and turn.answer is None
            assert (await raw.get(lease) or b"").startswith(b"b ")
            turn.stored = True
        assert await raw.get(lease) == b"done"
    assert (b.counts.leader_gone, b.counts.led, b.counts.coalesced) == (1, 1, 0)


async def test_the_wait_is_bounded(redis_server: RedisServer) -> None:
    answers: Answers = {}
    key, keys = question(), prefix()
    async with (
        replica(redis_server.url, "a", answers, prefix=keys, lease_ttl_s=0.3) as a,
        replica(redis_server.url, "b", answers, prefix=keys, wait_s=0.5) as b,
    ):
        async with a.turn(key) as leading:
            assert leading.led
            # The leader's call outlasts the wait: its lease is renewed meanwhile.
            followed = await follow(b, key)
            assert followed.answer is None and not followed.led
        assert (b.counts.wait_ended, b.counts.leader_gone, a.counts.lost) == (1, 0, 0)


async def test_questions_of_other_partitions_or_models_have_leases_of_their_own(
    redis_server: RedisServer,
) -> None:
    names = FleetNames("p:")
    one = dict(partition="a", scope="s", prompt_hash="h", model="m")
    assert names.digest(**one) == names.digest(**dict(one))
    for field, other in (("partition", "b"), ("scope", "t"), ("prompt_hash", "i"), ("model", "n")):
        assert names.digest(**(one | {field: other})) != names.digest(**one)
    answers: Answers = {}
    keys = prefix()
    async with (
        replica(redis_server.url, "a", answers, prefix=keys) as a,
        replica(redis_server.url, "b", answers, prefix=keys) as b,
    ):
        mine, theirs = question("acme"), question("globex")
        theirs = CacheKey(theirs.partition, mine.scope, mine.prompt, mine.prompt_hash)
        async with a.turn(mine) as first, b.turn(theirs) as second:
            assert first.led and second.led


async def test_without_redis_each_replica_asks_alone_at_once(tmp_path: Path) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    async with replica(nowhere, "a", {}, prefix=prefix(), wait_s=300) as a:
        turn = await follow(a, question())
    assert turn.answer is None and not turn.led and a.counts.redis_error == 1


async def test_redis_gone_while_following_sends_the_follower_upstream(tmp_path: Path) -> None:
    with RedisServer.start(log_path=tmp_path / "redis.log", modules=False) as server:
        answers: Answers = {}
        key, keys = question(), prefix()
        async with (
            replica(server.url, "a", answers, prefix=keys) as a,
            replica(server.url, "b", answers, prefix=keys, wait_s=300) as b,
        ):
            async with a.turn(key) as leading:
                assert leading.led
                following = asyncio.create_task(follow(b, key))
                await asyncio.sleep(0.2)
                await asyncio.to_thread(server.stop)
                followed = await following  # long before wait_s: a dead Redis is not waited for
            assert followed.answer is None and b.counts.redis_error == 1
