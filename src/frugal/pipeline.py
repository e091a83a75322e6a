"""The path of one request, from a validated body to an answer.

    body ──▶ cache key (None: not cacheable ──▶ upstream, "bypass")
               │
               ├─ lookup (unless no-cache) ── hit ──▶ the cached answer, fresh id ("hit")
               ├─ an equal miss in flight? ── wait for its answer ("coalesced")
               ├─ the same question in flight on another replica? ── its answer ("coalesced")
               ▼
            upstream (batched) ──▶ store the answer if complete (unless no-store) ──▶ "miss"

The other replicas are asked only by a process-local leader, and only with the Redis store
(`frugal.fleet`): an exact question whose answer this process would store.

Streams take the same path but for coalescing: a hit is replayed as events; a miss is relayed
event by event as it arrives and stored once it has reached its end (chat and completions in
OpenAI's chunk format, `frugal.streaming`; the Responses API in its typed events,
`frugal.responses_events`). A list (embeddings, completions with a list of prompts) is
answered item by item (`frugal.pipeline_items`). The API layer calls only `Pipeline.answer`
and `Pipeline.answer_stream`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from frugal.batching import Coalescer
from frugal.cache import CacheKey, Hit, Lookup, SemanticCache, ShadowLog, cache_key, storable
from frugal.errors import LeaderGone
from frugal.fleet import FleetLeases, LeaseTurn
from frugal.ids import random_hex
from frugal.labels import RecentHits
from frugal.outcome import Outcome
from frugal.pipeline_items import ItemCounts, ItemPath
from frugal.provider import Endpoint, Upstream
from frugal.responses_events import ResponseAssembler, replay_response
from frugal.streaming import EventKind, EventSplitter, StreamAssembler, replay

__all__ = [
    "MINTED_RESPONSE_PREFIX",
    "Answer",
    "CacheControl",
    "CachePolicy",
    "ItemCounts",
    "Pipeline",
    "RequestContext",
    "StreamedAnswer",
    "fresh",
]

# The ids of Responses API answers served from the cache: the provider never stored them, so
# `GET /v1/responses/{id}` answers 404 for these without asking it.
MINTED_RESPONSE_PREFIX = "resp_frugal_"


@dataclass(frozen=True)
class CacheControl:
    """What a request asks of the cache (the API reads it from ``x-frugal-cache-control``).

    ``ttl_s=0`` and ``threshold=0.0`` are real values; ``None`` means "the configured one".
    """

    no_cache: bool = False  # do not read the cache
    no_store: bool = False  # do not write it
    ttl_s: float | None = None
    threshold: float | None = None  # cosine similarity in [-1, 1]


def _nothing_to_do() -> None:
    return None


@dataclass(frozen=True)
class RequestContext:
    """``tenant`` is who asks; ``namespace`` the cache partition it reads and writes (its own
    name unless configuration put it in a shared one). `Pipeline.answer` calls ``on_upstream``
    once the request is going to wait for the provider (its own call or an equal one in
    flight): from there on, a client that leaves is worth noticing. Streams do not call it:
    their response notices a departed client by itself."""

    request_id: str
    tenant: str = "default"
    control: CacheControl = field(default_factory=CacheControl)
    namespace: str | None = None
    on_upstream: Callable[[], None] = _nothing_to_do

    @property
    def partition(self) -> str:
        return self.namespace if self.namespace is not None else self.tenant


@dataclass(frozen=True)
class CachePolicy:
    """Which answers may be stored, and what the scope ignores."""

    user_is_label: bool = True
    admit_length: bool = False
    admit_tool_calls: bool = False


@dataclass(frozen=True)
class Answer:
    """``hit`` names the entry a cached answer came from; ``question`` is the embedded text
    (``None`` when the request was not cacheable; a list's first item and how many follow).
    ``items`` says how a list's items were answered (``None``: not a list, or the cache was
    not read); ``similarity`` is then the lowest of its hits'."""

    body: dict[str, Any]
    outcome: Outcome
    similarity: float | None = None
    hit: Hit | None = None
    question: str | None = None
    items: ItemCounts | None = None


async def _nothing() -> None:
    return None


@dataclass
class StreamedAnswer:
    """An answer delivered as Server-Sent Events; ``aclose`` releases what feeds it."""

    events: AsyncIterator[bytes]
    outcome: Outcome
    similarity: float | None = None
    close: Callable[[], Awaitable[None]] = _nothing
    hit: Hit | None = None
    question: str | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.events

    async def aclose(self) -> None:
        closer = getattr(self.events, "aclose", None)
        if closer is not None:
            await closer()
        await self.close()


class Pipeline:
    """Answers requests from the cache when it can, from the upstream otherwise."""

    def __init__(
        self,
        *,
        upstream: Upstream,
        cache: SemanticCache | None = None,
        policy: CachePolicy | None = None,
        coalescer: Coalescer | None = None,
        shadow: ShadowLog | None = None,
        recent_hits: RecentHits | None = None,
        fleet: FleetLeases | None = None,
    ) -> None:
        """``recent_hits`` remembers every hit served, so that it can be reported wrong;
        ``fleet`` coalesces exact misses with the other replicas (with a ``coalescer``)."""
        self._upstream = upstream
        self._cache = cache
        self._policy = policy or CachePolicy()
        self._coalescer = coalescer
        self._shadow = shadow
        self._recent_hits = recent_hits
        self._fleet = fleet
        self._items = (
            None
            if cache is None
            else ItemPath(
                upstream=upstream, cache=cache, policy=self._policy, shadowing=shadow is not None
            )
        )

    async def answer(self, endpoint: Endpoint, body: dict[str, Any], ctx: RequestContext) -> Answer:
        if self._items is not None:
            listed = await self._items.answer(endpoint, body, ctx)
            if listed is not None:
                return Answer(
                    listed.body,
                    listed.outcome,
                    listed.similarity,
                    question=listed.question,
                    items=listed.items,
                )
        key = self._key(endpoint, body, ctx)
        question = key.prompt if key is not None else None
        if self._shadowing(key, ctx):
            assert key is not None
            return await self._shadowed(endpoint, body, ctx, key)
        lookup = await self._lookup(key, ctx)
        if (hit := lookup.hit) is not None:
            self._served(hit, question, ctx)
            return Answer(fresh(hit.response), _hit_outcome(hit), hit.similarity, hit, question)
        ctx.on_upstream()
        if key is None or self._coalescer is None or ctx.control.no_cache:
            payload = await self._upstream.post(endpoint, body, request_id=ctx.request_id)
            await self._save(key, payload, lookup, ctx)
            return Answer(payload, self._outcome(key, ctx), question=question)
        assert self._cache is not None  # a key is only made with a cache
        threshold = self._cache.threshold_for(ctx.control.threshold)
        joined = self._coalescer.find(
            key.scope, key.prompt_hash, lookup.vector, threshold=threshold
        )
        if joined is not None:
            try:
                shared = await self._coalescer.follow(joined)
            except LeaderGone:
                pass  # the leader's client left: go upstream ourselves
            else:
                return Answer(
                    fresh(shared), Outcome.COALESCED, joined.similarity, question=question
                )
        with self._coalescer.lead(key.scope, key.prompt_hash, lookup.vector) as flight:
            async with self._fleet_turn(key, lookup, ctx) as turn:
                if turn.answer is not None:  # another replica's call answered it
                    flight.succeed(turn.answer)
                    return Answer(fresh(turn.answer), Outcome.COALESCED, 1.0, question=question)
                payload = await self._upstream.post(endpoint, body, request_id=ctx.request_id)
                flight.succeed(payload)
                # Stored before the turn ends: the other replicas read it from the cache.
                turn.stored = await self._save(key, payload, lookup, ctx)
        return Answer(payload, Outcome.MISS, question=question)

    def _fleet_turn(
        self, key: CacheKey, lookup: Lookup, ctx: RequestContext
    ) -> AbstractAsyncContextManager[LeaseTurn]:
        """The fleet's turn for ``key``, when this request would store its answer (another
        replica could not read it otherwise); else a turn that asks upstream alone."""
        ttl_s = ctx.control.ttl_s
        if (
            self._fleet is None
            or ctx.control.no_store
            or (ttl_s is not None and ttl_s <= 0)
            or lookup.store_unavailable  # Redis is down: no fleet to ask
        ):
            return nullcontext(LeaseTurn())
        return self._fleet.turn(key)

    async def _shadowed(
        self, endpoint: Endpoint, body: dict[str, Any], ctx: RequestContext, key: CacheKey
    ) -> Answer:
        """Shadow mode: the upstream answers; the cache is only asked what it would have done."""
        assert self._cache is not None and self._shadow is not None
        lookup = await self._cache.lookup(key, threshold=self._shadow.floor, peek=True)
        ctx.on_upstream()
        payload = await self._upstream.post(endpoint, body, request_id=ctx.request_id)
        await self._save(key, payload, lookup, ctx)
        self._shadow.observe(lookup.hit, payload, prompt=key.prompt, partition=key.partition)
        similarity = lookup.hit.similarity if lookup.hit is not None else None
        return Answer(payload, Outcome.SHADOW, similarity, question=key.prompt)

    async def answer_stream(
        self, endpoint: Endpoint, body: dict[str, Any], ctx: RequestContext
    ) -> StreamedAnswer:
        responses_api = endpoint is Endpoint.RESPONSES
        # A Responses stream always ends with its usage; a chat's only when asked for.
        wants_usage = responses_api or bool((body.get("stream_options") or {}).get("include_usage"))
        key = self._key(endpoint, body, ctx)
        question = key.prompt if key is not None else None
        # Shadow mode relays and stores streams, but neither serves nor compares them.
        shadowing = self._shadowing(key, ctx)
        lookup = Lookup(hit=None) if shadowing else await self._lookup(key, ctx)
        if (hit := lookup.hit) is not None:
            self._served(hit, question, ctx)
            answer = fresh(hit.response)
            events = (
                replay_response(answer)
                if responses_api
                else replay(answer, include_usage=wants_usage)
            )
            return StreamedAnswer(
                _iterate(events), _hit_outcome(hit), hit.similarity, hit=hit, question=question
            )
        storing = key is not None and not ctx.control.no_store
        if storing and not wants_usage:
            # A cached answer should carry its usage, so ask for it and keep it from the client.
            options = {**(body.get("stream_options") or {}), "include_usage": True}
            body = {**body, "stream_options": options}
        stream = await self._upstream.stream(endpoint, body, request_id=ctx.request_id)

        async def relay() -> AsyncIterator[bytes]:
            splitter = EventSplitter()
            assembler = ResponseAssembler() if responses_api else StreamAssembler()
            async for data in stream:
                for event in splitter.feed(data):
                    if storing:
                        kind = assembler.add_event(event)
                        if kind is EventKind.DONE and (complete := assembler.result()):
                            # Stored before [DONE] is relayed: a client that has read the
                            # whole answer finds it cached on its next request.
                            await self._save(key, complete, lookup, ctx)
                        if kind is EventKind.USAGE and not wants_usage:
                            continue  # the usage frugal asked for, not the client
                    yield event
            if splitter.rest().strip():
                yield splitter.rest()

        outcome = Outcome.SHADOW if shadowing else self._outcome(key, ctx)
        return StreamedAnswer(relay(), outcome, close=stream.aclose, question=question)

    def _served(self, hit: Hit, question: str | None, ctx: RequestContext) -> None:
        if self._recent_hits is not None and question is not None:
            self._recent_hits.remember(
                ctx.request_id, partition=ctx.partition, hit=hit, prompt=question
            )

    def _shadowing(self, key: CacheKey | None, ctx: RequestContext) -> bool:
        """Shadow mode looks at what the cache would have done; ``no-cache`` is a bypass in
        shadow mode too, streamed or not."""
        return self._shadow is not None and key is not None and not ctx.control.no_cache

    def _key(
        self, endpoint: Endpoint, body: dict[str, Any], ctx: RequestContext
    ) -> CacheKey | None:
        if self._cache is None:
            return None
        return cache_key(
            endpoint, body, partition=ctx.partition, user_is_label=self._policy.user_is_label
        )

    async def _lookup(self, key: CacheKey | None, ctx: RequestContext) -> Lookup:
        if key is None or self._cache is None or ctx.control.no_cache:
            return Lookup(hit=None)
        return await self._cache.lookup(key, threshold=ctx.control.threshold)

    async def _save(
        self,
        key: CacheKey | None,
        response: dict[str, Any],
        lookup: Lookup,
        ctx: RequestContext,
    ) -> bool:
        """Store ``response`` when it may be; whether it was stored."""
        if key is None or self._cache is None or ctx.control.no_store or lookup.store_unavailable:
            return False
        policy = self._policy
        if not storable(
            response, admit_length=policy.admit_length, admit_tool_calls=policy.admit_tool_calls
        ):
            return False
        return await self._cache.save(key, response, vector=lookup.vector, ttl_s=ctx.control.ttl_s)

    def _outcome(self, key: CacheKey | None, ctx: RequestContext) -> Outcome:
        if key is None or ctx.control.no_cache:
            return Outcome.BYPASS
        return Outcome.MISS


def _hit_outcome(hit: Hit) -> Outcome:
    return Outcome.HIT_EXACT if hit.exact else Outcome.HIT_SEMANTIC


def fresh(response: dict[str, Any]) -> dict[str, Any]:
    """A cached answer as a new response: its own ``id`` and ``created`` (``created_at`` for
    the Responses API), the rest as stored."""
    if response.get("object") == "response":
        minted = f"{MINTED_RESPONSE_PREFIX}{random_hex()}"
        return {**response, "id": minted, "created_at": int(time.time())}
    prefix = str(response.get("id") or "frugal-").split("-", 1)[0]
    return {**response, "id": f"{prefix}-{random_hex()}", "created": int(time.time())}


async def _iterate(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
