"""SemanticCache logic: tiers, threshold semantics, storable answers, failing open."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from frugal.cache.models import ModelSpec
from frugal.cache.scope import CacheKey
from frugal.cache.semantic import ReembedProgress, SemanticCache, storable
from frugal.cache.store import BASE_MODEL_ID, Entry, Match, StoreStats
from frugal.errors import CacheStoreError, EmbedderError, StoreUnavailable
from frugal.pipeline import fresh
from tests.cache.conftest import StoreFactory
from tests.cache.entries import BASE_SPEC, T0, TUNED_SPEC, near
from tests.cache.entries import unit as random_unit

ANSWER = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


class TableEmbedder:
    """Vectors from a fixed table: the geometry is chosen by the test."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.calls = 0

    async def embed(self, text: str) -> np.ndarray:
        self.calls += 1
        return self.table[text]


class ListStore:
    """A brute-force in-memory store: the reference behaviour, small enough to trust."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    async def get_exact(
        self,
        *,
        scope: str,
        prompt_hash: str,
        now: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> Entry | None:
        return next(
            (
                e
                for e in self.entries.values()
                if e.scope == scope
                and e.prompt_hash == prompt_hash
                and e.expires_at > now
                and partition in (None, e.partition)
                and e.model == model
            ),
            None,
        )

    async def search(
        self,
        *,
        scope: str,
        vector: np.ndarray,
        k: int,
        min_similarity: float,
        now: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ):
        found = [
            Match(e, float(e.vector @ vector))
            for e in self.entries.values()
            if e.scope == scope
            and e.expires_at > now
            and partition in (None, e.partition)
            and e.model == model
        ]
        found = [m for m in found if m.similarity >= min_similarity]
        return sorted(found, key=lambda m: -m.similarity)[:k]

    async def put(self, entry: Entry) -> None:
        self.entries[entry.id] = entry

    async def record_hit(self, entry_id: str, *, now: float) -> None:
        pass

    async def stats(self) -> StoreStats:
        return StoreStats(entries=len(self.entries), evictions=0, expirations=0)


class BrokenStore(ListStore):
    async def get_exact(self, **_: Any) -> Entry | None:
        raise CacheStoreError("store down")

    async def search(self, **_: Any) -> list[Match]:
        raise CacheStoreError("store down")

    async def put(self, entry: Entry) -> None:
        raise CacheStoreError("store down")


def key(prompt: str, scope: str = "s") -> CacheKey:
    return CacheKey(partition="t", scope=scope, prompt=prompt, prompt_hash=f"h:{prompt}")


def make(
    store: Any,
    table: dict[str, np.ndarray],
    now: list[float] | None = None,
    model: ModelSpec = BASE_SPEC,
) -> SemanticCache:
    clock = now or [1000.0]
    return SemanticCache(
        store=store,
        embedder=TableEmbedder(table),
        model=model,
        threshold=0.9,
        ttl_s=60,
        clock=lambda: clock[0],
    )


# cos(a, b) = 0.9 exactly along one axis: the threshold is inclusive.
A, B_AT, B_BELOW = unit(1, 0), unit(0.9, np.sqrt(1 - 0.81)), unit(0.89, np.sqrt(1 - 0.89**2))


async def test_similarity_at_the_threshold_hits_and_below_misses() -> None:
    cache = make(ListStore(), {"a": A, "at": B_AT, "below": B_BELOW})
    await cache.save(key("a"), ANSWER)
    at = await cache.lookup(key("at"))
    assert at.hit is not None and at.hit.similarity == pytest.approx(0.9, abs=1e-6)
    assert (await cache.lookup(key("below"))).hit is None


async def test_the_exact_tier_needs_no_embedding() -> None:
    cache = make(ListStore(), {"a": A})
    await cache.save(key("a"), ANSWER)
    calls = cache.embedder.calls  # type: ignore[attr-defined]
    found = await cache.lookup(key("a"))
    assert found.hit is not None and found.hit.exact and found.hit.similarity == 1.0
    assert cache.embedder.calls == calls  # type: ignore[attr-defined]


async def test_a_miss_carries_its_vector_so_storing_embeds_nothing_twice() -> None:
    cache = make(ListStore(), {"a": A})
    miss = await cache.lookup(key("a"))
    assert miss.hit is None and miss.vector is not None
    await cache.save(key("a"), ANSWER, vector=miss.vector)
    assert cache.embedder.calls == 1  # type: ignore[attr-defined]


async def test_threshold_override_zero_is_a_real_value() -> None:
    cache = make(ListStore(), {"a": A, "far": unit(0.1, 1)})
    await cache.save(key("a"), ANSWER)
    assert (await cache.lookup(key("far"))).hit is None
    assert (await cache.lookup(key("far"), threshold=0.0)).hit is not None


async def test_other_scopes_never_hit() -> None:
    cache = make(ListStore(), {"a": A})
    await cache.save(key("a", scope="one"), ANSWER)
    assert (await cache.lookup(key("a", scope="two"))).hit is None


async def test_ttl_zero_stores_nothing_and_ttl_expires() -> None:
    now = [1000.0]
    cache = make(ListStore(), {"a": A}, now)
    assert await cache.save(key("a"), ANSWER, ttl_s=0) is False
    assert await cache.save(key("a"), ANSWER, ttl_s=10) is True
    now[0] += 9.9
    assert (await cache.lookup(key("a"))).hit is not None
    now[0] += 0.2
    assert (await cache.lookup(key("a"))).hit is None


async def test_a_broken_store_is_a_logged_miss(caplog: pytest.LogCaptureFixture) -> None:
    cache = make(BrokenStore(), {"a": A})
    with caplog.at_level(logging.WARNING):
        found = await cache.lookup(key("a"))
        stored = await cache.save(key("a"), ANSWER, vector=found.vector)
    assert found.hit is None and stored is False
    assert cache.counters.errors == 3 and cache.counters.misses == 1
    assert "treated as a miss" in caplog.text


async def test_an_open_breaker_costs_no_embedding() -> None:
    """While the store is known to be down, a request costs what it would with no cache."""

    class Unavailable(ListStore):
        async def get_exact(self, **_: Any) -> Entry | None:
            raise StoreUnavailable("open")

    embedder = TableEmbedder({"a": A})
    cache = SemanticCache(
        store=Unavailable(), embedder=embedder, model=BASE_SPEC, threshold=0.9, ttl_s=60
    )
    found = await cache.lookup(key("a"))
    assert found.hit is None and found.store_unavailable and found.vector is None
    assert embedder.calls == 0 and cache.counters.misses == 1
    down = make(BrokenStore(), {"a": A})  # a failing call, not a known outage: embeds and tries
    assert not (await down.lookup(key("a"))).store_unavailable


async def test_a_broken_embedder_is_a_miss() -> None:
    class Broken:
        async def embed(self, text: str) -> np.ndarray:
            raise RuntimeError("model gone")

    cache = SemanticCache(
        store=ListStore(), embedder=Broken(), model=BASE_SPEC, threshold=0.9, ttl_s=60
    )
    assert (await cache.lookup(key("a"))).hit is None
    assert await cache.save(key("a"), ANSWER) is False


@pytest.mark.parametrize(
    ("finish", "message", "kwargs", "expected"),
    [
        ("stop", {"content": "x"}, {}, True),
        ("length", {"content": "x"}, {}, False),
        ("length", {"content": "x"}, {"admit_length": True}, True),
        ("tool_calls", {"tool_calls": [{"id": "1"}]}, {}, False),
        ("tool_calls", {"tool_calls": [{"id": "1"}]}, {"admit_tool_calls": True}, True),
        ("stop", {"content": None, "tool_calls": [{"id": "1"}]}, {}, False),
        ("content_filter", {"content": ""}, {}, False),
        (None, {"content": "x"}, {}, False),
    ],
)
def test_storable(finish: str | None, message: dict, kwargs: dict, expected: bool) -> None:
    response = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    options = {"admit_length": False, "admit_tool_calls": False, **kwargs}
    assert storable(response, **options) is expected


def test_nothing_without_choices_is_storable() -> None:
    assert not storable({"error": {}}, admit_length=True, admit_tool_calls=True)
    assert not storable({"choices": []}, admit_length=True, admit_tool_calls=True)


def test_a_served_hit_is_a_fresh_response() -> None:
    served = fresh(ANSWER)
    assert served["id"].startswith("chatcmpl-") and served["id"] != ANSWER["id"]
    assert served["created"] > ANSWER["created"]
    assert served["usage"] == ANSWER["usage"] and served["choices"] == ANSWER["choices"]


async def test_a_cache_never_answers_from_another_models_entries(
    open_store: StoreFactory, rng: np.random.Generator
) -> None:
    """Two caches on one store, of two models that give the same vectors: each answers only
    from what its own model stored, exactly or by meaning; a reembed moves the answers over."""
    store = await open_store()
    question = random_unit(rng)
    table = {"a": question, "paraphrase": near(question, rng, noise=0.01)}
    base = make(store, table, [T0])
    tuned = make(store, table, [T0], model=TUNED_SPEC)
    assert await base.save(key("a"), ANSWER)
    assert (await base.lookup(key("a"))).hit is not None
    assert (await base.lookup(key("paraphrase"))).hit is not None
    for prompt in ("a", "paraphrase"):
        assert (await tuned.lookup(key(prompt))).hit is None
    (entry,) = await store.list_entries(offset=0, limit=10, now=T0)
    assert entry.model == BASE_MODEL_ID

    progress = [step async for step in tuned.reembed(batch=1)]
    assert progress == [ReembedProgress(0, 1, 0), ReembedProgress(1, 1, 1)]
    exact, similar = [await tuned.lookup(key(prompt)) for prompt in ("a", "paraphrase")]
    assert exact.hit is not None and exact.hit.entry_id == entry.id and exact.hit.exact
    assert similar.hit is not None and similar.hit.response == ANSWER
    for prompt in ("a", "paraphrase"):
        assert (await base.lookup(key(prompt))).hit is None
    assert [step async for step in tuned.reembed()] == [ReembedProgress(0, 0, 0)]
    assert (await tuned.stats()).model == TUNED_SPEC.id


async def test_reembedding_goes_in_batches_and_an_embedder_failure_stops_it(
    open_store: StoreFactory, rng: np.random.Generator
) -> None:
    store = await open_store()
    table = {f"q{i}": random_unit(rng) for i in range(5)}
    base = make(store, table, [T0])
    for prompt in table:
        assert await base.save(key(prompt), ANSWER)
    tuned = make(store, table, [T0], model=TUNED_SPEC)
    steps = [(step.done, step.total) async for step in tuned.reembed(batch=2)]
    assert steps == [(0, 5), (2, 5), (4, 5), (5, 5)]
    del table["q0"]  # the base model can embed everything but q0
    for prompt in table:
        assert await base.save(key(prompt), ANSWER)  # answered anew by the base model
    with pytest.raises(EmbedderError):
        async for _ in base.reembed(batch=10):
            pass


async def test_the_exact_only_tier_embeds_nothing_and_outlives_a_change_of_model(
    open_store: StoreFactory,
) -> None:
    """`lookup_exact` finds only what `save_exact` stored for the same normalised text, with no
    embedding at all; the answers belong to no embedding model, so a cache of another model
    finds them too, and a semantic lookup never does."""
    store = await open_store()
    base = make(store, {}, [T0])  # an empty table: any embedding would raise KeyError
    vector = {"object": "embedding", "embedding": [0.5, 0.5]}
    assert await base.save_exact(key("a text"), vector)
    assert (await base.lookup_exact(key("another text"))).hit is None
    found = await base.lookup_exact(key("a text"))
    assert found.hit is not None and found.hit.exact and found.hit.response == vector
    assert found.vector is None
    assert base.embedder.calls == 0  # type: ignore[attr-defined]
    assert (base.counters.hits_exact, base.counters.misses) == (1, 1)
    tuned = make(store, {"a text": random_unit(np.random.default_rng(0))}, [T0], TUNED_SPEC)
    assert (await tuned.lookup_exact(key("a text"))).hit is not None
    assert (await tuned.lookup(key("a text"))).hit is None
    assert [step async for step in tuned.reembed()] == [ReembedProgress(0, 0, 0)]
    assert (await base.lookup_exact(key("a text", scope="other"))).hit is None
    assert await base.save_exact(key("kept for no time"), vector, ttl_s=0) is False


async def test_the_exact_only_tier_fails_open() -> None:
    class Unavailable(ListStore):
        async def get_exact(self, **_: Any) -> Entry | None:
            raise StoreUnavailable("open")

    down = make(Unavailable(), {})
    assert (await down.lookup_exact(key("a"))).store_unavailable
    broken = make(BrokenStore(), {})
    found = await broken.lookup_exact(key("a"))
    assert found.hit is None and not found.store_unavailable
    assert await broken.save_exact(key("a"), ANSWER) is False
    assert broken.counters.errors == 2 and broken.counters.misses == 1
