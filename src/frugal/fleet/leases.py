"""One upstream call per question across the fleet: a lease in Redis per exact question in flight.

Local coalescing comes first (`frugal.batching.Coalescer`): only a process-local leader takes
a `FleetLeases.turn`, so one process asks Redis once per question, however many of its
requests wait for it.

    turn: SET lease "<replica> <token>" NX PX ttl
      ├─ taken: lead. The caller asks upstream and stores the answer; the lease is renewed
      │         meanwhile. Then lease := "done" (stored) or "failed" (not stored, or an
      │         error), kept for one ttl as a tombstone, and PUBLISH on the question's channel.
      └─ held: follow. Watch the lease (woken by the channel, polled as a backstop):
           "done"   ──▶ the answer, read from the cache by its exact key ──▶ "coalesced"
           "failed" ──▶ ask upstream alone at once (the answer is not one the cache keeps)
           gone     ──▶ the leader died and its lease expired: take it, or follow the new one
           the wait bound (``wait_s``) passed ──▶ ask upstream alone

The tombstone closes a race: a request whose lookup missed just before the answer was stored
finds "done" instead of a free lease, and reads the answer instead of asking again.

Fail open: a Redis error, or an operation slower than ``op_timeout_s``, makes the request ask
upstream alone (`LeaseCounts.redis_error`), at once; it never waits for a dead Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from frugal.cache import CacheKey
from frugal.fleet.listener import DoneListener, Watch
from frugal.fleet.names import FleetNames
from frugal.ids import random_hex

__all__ = ["AnswerReader", "FleetLeases", "LeaseCounts", "LeaseTurn"]

logger = logging.getLogger(__name__)

DONE = b"done"
FAILED = b"failed"
# The failures that make a request ask alone: Redis's, the socket's, and the time bound.
REDIS_FAILURES = (RedisError, OSError, TimeoutError)

# Both compare the lease with the leader's token first: a leader whose lease expired (and was
# taken by another replica) neither renews nor settles the other's.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_SETTLE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[2])
  return 1
end
return 0
"""

AnswerReader = Callable[[CacheKey], Awaitable[dict[str, Any] | None]]


@dataclass
class LeaseCounts:
    """What became of the fleet turns since start; each follow ends in exactly one of the
    counts after ``led`` (``leader_gone`` aside: the turn then goes on)."""

    led: int = 0  # leases taken: this replica asked upstream for the fleet
    coalesced: int = 0  # answered by another replica's upstream call
    leader_failed: int = 0  # the leader's answer was not stored: asked alone
    answer_missing: int = 0  # "done", but the cache no longer held the answer: asked alone
    wait_ended: int = 0  # the wait bound passed: asked alone
    redis_error: int = 0  # Redis failed or was slow: asked alone
    leader_gone: int = 0  # a leader's lease expired without an answer (then led or followed)
    lost: int = 0  # this replica's lease expired while its call was in flight


@dataclass
class LeaseTurn:
    """One process-local leader's turn. ``answer`` is another replica's answer (the caller
    serves it as coalesced); otherwise the caller asks upstream and sets ``stored`` once the
    answer is in the cache, which is what the followers are told."""

    answer: dict[str, Any] | None = None
    stored: bool = False
    led: bool = field(default=False, init=False)


class FleetLeases:
    """Exact coalescing across processes through ``client``.

    ``read_answer`` finds the answer to a key in the cache (exact tier, no counting);
    ``model`` is the embedding model's id, part of the question's identity. ``lease_ttl_s``
    is how long a dead leader holds a question up; ``wait_s`` bounds a follower's wait.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        names: FleetNames,
        listener: DoneListener,
        replica: str,
        model: str,
        read_answer: AnswerReader,
        lease_ttl_s: float = 3.0,
        wait_s: float = 30.0,
        op_timeout_s: float = 0.5,
    ) -> None:
        self._client = client
        self._names = names
        self._listener = listener
        self._replica = replica
        self._model = model
        self._read_answer = read_answer
        self._ttl_ms = max(1, round(lease_ttl_s * 1000))
        self._renew_s = lease_ttl_s / 3
        # How often a follower looks at the lease without being woken: the backstop for a
        # message lost, and how soon a dead leader's expired lease is noticed.
        self._poll_s = max(0.05, min(0.5, lease_ttl_s / 4))
        self._wait_s = wait_s
        self._op_timeout_s = op_timeout_s
        self._renew = client.register_script(_RENEW)
        self._settle = client.register_script(_SETTLE)
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts = LeaseCounts()

    @asynccontextmanager
    async def turn(self, key: CacheKey) -> AsyncIterator[LeaseTurn]:
        """Lead or follow the fleet for ``key``: see the module's docstring. Never raises for
        Redis; the caller's own errors pass through (the followers are told "failed")."""
        digest = self._names.digest(
            partition=key.partition,
            scope=key.scope,
            prompt_hash=key.prompt_hash,
            model=self._model,
        )
        lease, channel = self._names.lease(digest), self._names.done(digest)
        turn = LeaseTurn()
        token = await self._claim(key, lease, channel, turn)
        if token is None:
            yield turn
            return
        turn.led = True
        renewing = self._spawn(self._keep(lease, token))
        state = FAILED
        try:
            yield turn
            state = DONE if turn.stored else FAILED
        finally:
            renewing.cancel()
            # Its own task: a leader whose client left still tells its followers.
            await asyncio.shield(self._spawn(self._settled(lease, token, state, channel)))

    async def aclose(self) -> None:
        """Wait for the leases being settled."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _claim(self, key: CacheKey, lease: str, channel: str, turn: LeaseTurn) -> str | None:
        """The lease's token when this process leads; ``None`` when it follows or is alone
        (``turn.answer`` is then the answer found, if any)."""
        deadline = time.monotonic() + self._wait_s
        with self._listener.watch(channel) as watch:
            while True:
                token = f"{self._replica} {random_hex()}"
                try:
                    async with asyncio.timeout(self._op_timeout_s):
                        taken = await self._client.set(lease, token, nx=True, px=self._ttl_ms)
                except REDIS_FAILURES as exc:
                    self._failed("taking a lease", exc)
                    return None
                if taken:
                    self.counts.led += 1
                    return token
                followed = await self._follow(key, lease, watch, deadline)
                if not isinstance(followed, _Gone):
                    turn.answer = followed
                    return None
                self.counts.leader_gone += 1
                if time.monotonic() >= deadline:
                    self.counts.wait_ended += 1
                    return None

    async def _follow(
        self, key: CacheKey, lease: str, watch: Watch, deadline: float
    ) -> dict[str, Any] | None | _Gone:
        """The leader's answer; ``None`` to ask alone; `_GONE` when the lease is free again."""
        while True:
            try:
                async with asyncio.timeout(self._op_timeout_s):
                    state = await self._client.get(lease)
            except REDIS_FAILURES as exc:
                self._failed("reading a lease", exc)
                return None
            if state is None:
                return _GONE
            if state == DONE:
                answer = await self._read_answer(key)
                if answer is None:
                    self.counts.answer_missing += 1
                else:
                    self.counts.coalesced += 1
                return answer
            if state == FAILED:
                self.counts.leader_failed += 1
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.counts.wait_ended += 1
                return None
            await watch.wait(min(self._poll_s, remaining))

    async def _keep(self, lease: str, token: str) -> None:
        """Renew the lease while the leader's call is in flight."""
        while True:
            await asyncio.sleep(self._renew_s)
            try:
                async with asyncio.timeout(self._op_timeout_s):
                    kept = await self._renew(keys=[lease], args=[token, self._ttl_ms])
            except REDIS_FAILURES as exc:
                logger.debug("fleet: renewing a lease failed (%s)", exc)
                continue  # the next tick tries again; the lease lasts a whole ttl
            if not kept:
                self.counts.lost += 1
                return

    async def _settled(self, lease: str, token: str, state: bytes, channel: str) -> None:
        try:
            async with asyncio.timeout(self._op_timeout_s):
                await self._settle(keys=[lease], args=[token, state, self._ttl_ms, channel])
        except REDIS_FAILURES as exc:
            # The followers find the lease expired and go on without this leader.
            logger.debug("fleet: settling a lease failed (%s)", exc)

    def _failed(self, doing: str, exc: BaseException) -> None:
        self.counts.redis_error += 1
        logger.debug("fleet: %s failed (%s); asking upstream alone", doing, exc)

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


class _Gone:
    """The lease is free: its leader settled nothing before it expired."""


_GONE = _Gone()
