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
from frugal.pipeline import CacheControl, Pipeline, RequestContext
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


# -- lists, item by item ---------------------------------------------------------------------


class ListUpstream:
    """A provider of embeddings and completions for lists: a text's vector is its length, a
    prompt's ``n`` answers name it; ``calls`` records each body it was sent."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def post(self, path: str, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        self.calls.append(body)
        field = "input" if path == Endpoint.EMBEDDINGS else "prompt"
        texts = body[field] if isinstance(body[field], list) else [body[field]]
        tokens = sum(len(str(text).split()) for text in texts)
        if path == Endpoint.EMBEDDINGS:
            data = [{"object": "embedding", "index": i, "embedding": [float(len(str(t)))]}
                    for i, t in enumerate(texts)]  # fmt: skip
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            return {"object": "list", "model": body["model"], "data": data, "usage": usage}
        n = body.get("n", 1)
        choices = [
            {"index": p * n + k, "text": f"answer {k} to {text}", "finish_reason": "stop"}
            for p, text in enumerate(texts)
            for k in range(n)
        ]
        usage = {"prompt_tokens": tokens, "completion_tokens": 3 * len(choices),
                 "total_tokens": tokens + 3 * len(choices)}  # fmt: skip
        return {"id": "cmpl-up", "object": "text_completion", "created": 1,
                "model": body["model"], "choices": choices, "usage": usage}  # fmt: skip

    async def stream(self, path: str, body: dict[str, Any], *, request_id: str) -> Any:
        raise AssertionError("no stream in these tests")


def embeddings(*texts: str) -> dict[str, Any]:
    return {"model": "e", "input": list(texts), "encoding_format": "float"}


async def test_an_embeddings_list_sends_only_its_misses_each_once_and_embeds_nothing() -> None:
    upstream = ListUpstream()
    cache = make(ListStore(), {})  # an empty table: embedding anything would fail
    pipeline = Pipeline(upstream=upstream, cache=cache)
    ctx = RequestContext(request_id="r")
    first = await pipeline.answer(Endpoint.EMBEDDINGS, embeddings("a", "bb"), ctx)
    assert first.outcome is Outcome.MISS and first.items is not None
    assert (first.items.hits, first.items.misses) == (0, 2)
    assert upstream.calls == [embeddings("a", "bb")]  # the body as sent

    answer = await pipeline.answer(Endpoint.EMBEDDINGS, embeddings("ccc", "a", "ccc", "bb"), ctx)
    assert upstream.calls[-1]["input"] == ["ccc"]  # the one new text, once
    assert [d["embedding"] for d in answer.body["data"]] == [[3.0], [1.0], [3.0], [2.0]]
    assert [d["index"] for d in answer.body["data"]] == [0, 1, 2, 3]
    assert answer.body["usage"] == {"prompt_tokens": 1, "total_tokens": 1}  # "ccc" alone
    assert answer.outcome is Outcome.PARTIAL and answer.items is not None
    assert (answer.items.hits, answer.items.misses) == (2, 2)
    assert answer.items.saved_prompt_tokens == 2  # what "a" and "bb" cost when they were sent
    assert cache.embedder.calls == 0  # type: ignore[attr-defined]

    again = await pipeline.answer(Endpoint.EMBEDDINGS, {**embeddings("bb"), "input": "bb"}, ctx)
    assert again.outcome is Outcome.HIT_EXACT and len(upstream.calls) == 2
    assert again.body["data"] == [{"object": "embedding", "index": 0, "embedding": [2.0]}]
    assert again.body["usage"] == {"prompt_tokens": 0, "total_tokens": 0}


async def test_what_changes_an_embedding_is_its_scope_and_token_arrays_are_not_cached() -> None:
    upstream = ListUpstream()
    pipeline = Pipeline(upstream=upstream, cache=make(ListStore(), {}))
    ctx = RequestContext(request_id="r")
    await pipeline.answer(Endpoint.EMBEDDINGS, embeddings("a"), ctx)
    for other in ({"dimensions": 8}, {"encoding_format": "base64"}, {"model": "f"}):
        answer = await pipeline.answer(Endpoint.EMBEDDINGS, {**embeddings("a"), **other}, ctx)
        assert answer.outcome is Outcome.MISS
    user = await pipeline.answer(Endpoint.EMBEDDINGS, {**embeddings("a"), "user": "u1"}, ctx)
    assert user.outcome is Outcome.HIT_EXACT  # the end user never changes a vector
    elsewhere = RequestContext(request_id="r", tenant="other")
    assert (await pipeline.answer(Endpoint.EMBEDDINGS, embeddings("a"), elsewhere)).outcome is (
        Outcome.MISS
    )
    tokens = await pipeline.answer(Endpoint.EMBEDDINGS, {"model": "e", "input": [1, 2]}, ctx)
    assert tokens.outcome is Outcome.BYPASS and tokens.items is None


async def test_a_prompt_list_shares_answers_with_single_prompts_both_ways() -> None:
    upstream = ListUpstream()
    table = {
        "What is the capital of France?": unit(1, 0),
        "What's the capital of France?": unit(0.99, 0.141),
        "Name a river.": unit(0, 1),
        "Name a colour.": unit(-1, 0),
    }
    pipeline = Pipeline(upstream=upstream, cache=make(ListStore(), table))
    ctx = RequestContext(request_id="r")
    single = {"model": "m", "n": 2, "prompt": "What is the capital of France?"}
    await pipeline.answer(Endpoint.COMPLETIONS, single, ctx)
    listed = {"model": "m", "n": 2, "prompt": ["Name a river.", "What's the capital of France?"]}
    answer = await pipeline.answer(Endpoint.COMPLETIONS, listed, ctx)
    assert upstream.calls[-1]["prompt"] == ["Name a river."]
    assert [(c["index"], c["text"]) for c in answer.body["choices"]] == [
        (0, "answer 0 to Name a river."),
        (1, "answer 1 to Name a river."),
        (2, "answer 0 to What is the capital of France?"),  # a paraphrase: the cached answer
        (3, "answer 1 to What is the capital of France?"),
    ]
    assert answer.outcome is Outcome.PARTIAL and answer.similarity is not None
    assert answer.body["usage"]["completion_tokens"] == 6  # the river's two choices alone
    hit = await pipeline.answer(Endpoint.COMPLETIONS, {**single, "prompt": "Name a river."}, ctx)
    assert hit.outcome is Outcome.HIT_EXACT
    assert [c["text"] for c in hit.body["choices"]] == [
        "answer 0 to Name a river.", "answer 1 to Name a river.",
    ]  # fmt: skip
    other_n = await pipeline.answer(Endpoint.COMPLETIONS, {**listed, "n": 1}, ctx)
    assert other_n.outcome is Outcome.MISS  # n is part of the scope


async def test_cache_control_applies_to_the_whole_list() -> None:
    upstream = ListUpstream()
    cache = make(ListStore(), {})
    pipeline = Pipeline(upstream=upstream, cache=cache)
    no_store = RequestContext(request_id="r", control=CacheControl(no_store=True))
    assert (await pipeline.answer(Endpoint.EMBEDDINGS, embeddings("a"), no_store)).items
    assert cache.store.entries == {}  # type: ignore[attr-defined]
    no_cache = RequestContext(request_id="r", control=CacheControl(no_cache=True, ttl_s=5))
    answer = await pipeline.answer(Endpoint.EMBEDDINGS, embeddings("a", "b"), no_cache)
    assert answer.outcome is Outcome.BYPASS and answer.items is None
    stored = list(cache.store.entries.values())  # type: ignore[attr-defined]
    assert sorted(e.prompt for e in stored) == ["a", "b"]  # not read, but written
    assert {e.expires_at - e.created_at for e in stored} == {5}
    hit = await pipeline.answer(Endpoint.EMBEDDINGS, embeddings("a", "b"), context([]))
    assert hit.outcome is Outcome.HIT_EXACT and len(upstream.calls) == 2
