"""The pipeline tells the API layer when a request is going to wait for the provider, and only
then: that is when the API layer starts watching for the client leaving."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from frugal.batching.coalescer import Coalescer
from frugal.cache.shadow import ShadowLog
from frugal.labels import RecentHits
from frugal.outcome import Outcome
from frugal.pipeline import Pipeline, RequestContext
from frugal.provider import Endpoint
from tests.cache.test_semantic import ANSWER, ListStore, make, unit


class RecordingUpstream:
    """Answers every call with ``ANSWER``, after ``gate`` opens; ``events`` is shared with the
    test, so the order of "on_upstream" and "post" is visible."""

    def __init__(self, events: list[str], gate: asyncio.Event | None = None) -> None:
        self.events = events
        self.gate = gate

    async def post(self, path: str, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        self.events.append("post")
        if self.gate is not None:
            await self.gate.wait()
        return ANSWER

    async def stream(self, path: str, body: dict[str, Any], *, request_id: str) -> Any:
        raise AssertionError("no stream in these tests")


def chat(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def context(events: list[str]) -> RequestContext:
    return RequestContext(request_id="r", on_upstream=lambda: events.append("on_upstream"))


TABLE = {"What is the capital of France?": unit(1, 0), "What's the capital of France?": unit(1, 0)}


@pytest.mark.parametrize("coalescing", [False, True])
async def test_a_miss_says_so_before_its_call_and_a_hit_never_does(coalescing: bool) -> None:
    events: list[str] = []
    pipeline = Pipeline(
        upstream=RecordingUpstream(events),
        cache=make(ListStore(), TABLE),
        coalescer=Coalescer() if coalescing else None,
    )
    miss = await pipeline.answer(
        Endpoint.CHAT, chat("What is the capital of France?"), context(events)
    )
    assert miss.outcome is Outcome.MISS
    assert events == ["on_upstream", "post"]

    events.clear()
    for text in ("What is the capital of France?", "What's the capital of France?"):
        hit = await pipeline.answer(Endpoint.CHAT, chat(text), context(events))
        assert hit.outcome.is_hit
    assert events == []


async def test_a_request_that_waits_for_an_equal_one_in_flight_says_so() -> None:
    events: list[str] = []
    gate = asyncio.Event()
    pipeline = Pipeline(
        upstream=RecordingUpstream(events, gate),
        cache=make(ListStore(), TABLE),
        coalescer=Coalescer(),
    )
    body = chat("What is the capital of France?")
    leader = asyncio.create_task(pipeline.answer(Endpoint.CHAT, body, context(events)))
    while "post" not in events:
        await asyncio.sleep(0)
    follower = asyncio.create_task(pipeline.answer(Endpoint.CHAT, body, context(events)))
    while events.count("on_upstream") < 2:
        await asyncio.sleep(0)
    gate.set()
    answers = await asyncio.gather(leader, follower)
    assert [a.outcome for a in answers] == [Outcome.MISS, Outcome.COALESCED]
    assert events == ["on_upstream", "post", "on_upstream"]


async def test_an_uncacheable_request_says_so_too() -> None:
    events: list[str] = []
    pipeline = Pipeline(upstream=RecordingUpstream(events))  # no cache: everything is a bypass
    answer = await pipeline.answer(Endpoint.CHAT, chat("hello"), context(events))
    assert answer.outcome is Outcome.BYPASS
    assert events == ["on_upstream", "post"]


async def test_shadow_mode_says_so_before_every_call() -> None:
    events: list[str] = []
    cache = make(ListStore(), TABLE)
    shadow = ShadowLog(cache.embedder, threshold=cache.threshold)
    pipeline = Pipeline(upstream=RecordingUpstream(events), cache=cache, shadow=shadow)
    for _ in range(2):  # a miss, then what would have been a hit: both go upstream
        answer = await pipeline.answer(
            Endpoint.CHAT, chat("What is the capital of France?"), context(events)
        )
        assert answer.outcome is Outcome.SHADOW
    assert events == ["on_upstream", "post"] * 2


async def test_every_hit_served_is_remembered_for_a_report_and_nothing_else() -> None:
    recent = RecentHits()
    pipeline = Pipeline(
        upstream=RecordingUpstream([]), cache=make(ListStore(), TABLE), recent_hits=recent
    )

    def asked(request_id: str) -> RequestContext:
        return RequestContext(request_id=request_id, tenant="acme")

    await pipeline.answer(Endpoint.CHAT, chat("What is the capital of France?"), asked("miss"))
    hit = await pipeline.answer(Endpoint.CHAT, chat("What's the capital of France?"), asked("hit"))
    streamed = await pipeline.answer_stream(
        Endpoint.CHAT, chat("What's the capital of France?"), asked("streamed")
    )
    await streamed.aclose()
    assert len(recent) == 2
    assert recent.take("miss", partition="acme") is None
    served = recent.take("hit", partition="acme")
    assert served is not None and hit.hit is not None
    assert (served.entry_id, served.similarity) == (hit.hit.entry_id, hit.hit.similarity)
    assert served.prompt == "What's the capital of France?"
    assert served.cached_prompt == "What is the capital of France?"
    assert recent.take("streamed", partition="acme") is not None
