"""The `VectorStore` contract, held by every store: the embedded one and Redis.

Each test runs once per store, against a real Redis 8 with the query engine for the Redis
store (its own key prefix and index per test, on the session's server).
"""

from __future__ import annotations

import numpy as np
import pytest

from frugal.cache.embedded import EmbeddedStore
from frugal.cache.store import BASE_MODEL_ID, EXACT_ONLY, VectorStore
from tests.cache.conftest import KINDS, StoreFactory
from tests.cache.entries import DIM, T0, TUNED, make, near, phash, unit


@pytest.fixture
async def store(open_store: StoreFactory) -> VectorStore:
    return await open_store()


async def settle(store: VectorStore) -> None:
    if isinstance(store, EmbeddedStore):
        await store.settle()  # background index rebuilds


async def test_exact_lookup(store: VectorStore, rng: np.random.Generator) -> None:
    entry = make("What is the capital of France?", unit(rng))
    await store.put(entry)
    assert await store.get_exact(scope="scope-a", prompt_hash=entry.prompt_hash, now=T0) == entry
    assert await store.get_exact(scope="scope-a", prompt_hash=phash("other"), now=T0) is None


async def test_semantic_lookup_uses_cosine_similarity(
    store: VectorStore, rng: np.random.Generator
) -> None:
    vector = unit(rng)
    entry = make("What is the capital of France?", vector)
    await store.put(entry)
    await store.put(make("Who painted the Mona Lisa?", unit(rng)))
    query = near(vector, rng)
    matches = await store.search(scope="scope-a", vector=query, k=3, min_similarity=0.9, now=T0)
    assert [m.entry.id for m in matches] == [entry.id]
    cosine = float(vector @ query / (np.linalg.norm(vector) * np.linalg.norm(query)))
    # Test vectors are float16 values (as the embedded store holds them), unit to about 1e-4:
    # Redis divides by the norms, the embedded store takes them as unit.
    assert matches[0].similarity == pytest.approx(cosine, abs=2e-4)
    strict = await store.search(
        scope="scope-a", vector=query, k=3, min_similarity=matches[0].similarity + 1e-4, now=T0
    )
    assert strict == []
    everything = await store.search(scope="scope-a", vector=query, k=5, min_similarity=-1, now=T0)
    assert len(everything) == 2
    assert everything[0].similarity >= everything[1].similarity


async def test_scopes_are_a_hard_partition(store: VectorStore, rng: np.random.Generator) -> None:
    vector = unit(rng)
    a = make("same prompt", vector, scope="scope-a")
    b = make("same prompt", vector, scope="scope-b")
    await store.put(a)
    await store.put(b)
    for scope, entry in (("scope-a", a), ("scope-b", b)):
        assert await store.get_exact(scope=scope, prompt_hash=a.prompt_hash, now=T0) == entry
        matches = await store.search(scope=scope, vector=vector, k=5, min_similarity=-1, now=T0)
        assert [m.entry.id for m in matches] == [entry.id]
    assert await store.search(scope="scope-c", vector=vector, k=5, min_similarity=-1, now=T0) == []
    assert await store.delete_where(scope="scope-a") == 1
    assert await store.get_exact(scope="scope-b", prompt_hash=a.prompt_hash, now=T0) == b


async def test_expired_entries_are_never_returned_and_are_purged(
    store: VectorStore, rng: np.random.Generator
) -> None:
    vector = unit(rng)
    short = make("short-lived", vector, ttl_s=10)
    await store.put(short)
    await store.put(make("long-lived", unit(rng), ttl_s=100))
    at = T0 + 9.99
    assert await store.get_exact(scope="scope-a", prompt_hash=short.prompt_hash, now=at) == short
    assert await store.search(scope="scope-a", vector=vector, k=1, min_similarity=0.99, now=at)
    at = T0 + 10  # live while now < expires_at
    assert await store.get_exact(scope="scope-a", prompt_hash=short.prompt_hash, now=at) is None
    assert not await store.search(scope="scope-a", vector=vector, k=1, min_similarity=0.99, now=at)
    listed = await store.list_entries(offset=0, limit=10, now=at)
    assert [e.prompt for e in listed] == ["long-lived"]
    stats = await store.stats()
    assert (stats.entries, stats.expirations, stats.evictions) == (1, 1, 0)


async def test_an_entry_born_expired_is_not_kept_and_evicts_nothing(
    open_store: StoreFactory, rng: np.random.Generator
) -> None:
    store = await open_store(max_entries=1)
    kept = make("kept", unit(rng))
    await store.put(kept)
    await store.put(make("ttl zero", unit(rng), ttl_s=0))
    assert await store.get_exact(scope="scope-a", prompt_hash=kept.prompt_hash, now=T0) == kept
    stats = await store.stats()
    assert (stats.entries, stats.expirations, stats.evictions) == (1, 1, 0)


@pytest.mark.parametrize("kind", [*KINDS, "embedded-approximate"], indirect=True)
async def test_beyond_the_bound_every_lookup_is_a_miss_or_its_own_answer(
    open_store: StoreFactory, rng: np.random.Generator, kind: str
) -> None:
    store = await open_store(max_entries=100)
    entries = [make(f"prompt {i}", unit(rng), now=T0 + i) for i in range(1000)]
    for entry in entries:
        await store.put(entry)
        assert (await store.stats()).entries <= 100
    await settle(store)
    now = T0 + 1000
    survivors = set()
    for entry in entries:
        exact = await store.get_exact(scope="scope-a", prompt_hash=entry.prompt_hash, now=now)
        found = await store.search(
            scope="scope-a", vector=entry.vector, k=1, min_similarity=0.9, now=now
        )
        assert exact is None or exact.response == entry.response
        assert all(m.entry.response == entry.response for m in found)
        if exact is not None:
            survivors.add(entry.id)
            assert [m.entry.id for m in found] == [entry.id]
    assert survivors == {e.id for e in entries[-100:]}
    stats = await store.stats()
    assert (stats.entries, stats.evictions) == (100, 900)
    if kind == "embedded-approximate":
        assert isinstance(store, EmbeddedStore) and store.index_of("scope-a").approximate


async def test_at_the_bound_the_least_recently_used_goes_first(
    open_store: StoreFactory, rng: np.random.Generator
) -> None:
    store = await open_store(max_entries=3)
    a, b, c, d = (make(p, unit(rng)) for p in "abcd")
    for entry in (a, b, c):
        await store.put(entry)
    assert (await store.stats()).evictions == 0
    await store.record_hit(a.id, now=T0 + 5)  # a hit is a use: b is now the oldest
    await store.put(d)
    held = {e.id for e in await store.list_entries(offset=0, limit=10, now=T0 + 5)}
    assert held == {a.id, c.id, d.id}
    hit = await store.get_exact(scope="scope-a", prompt_hash=a.prompt_hash, now=T0 + 5)
    assert hit is not None and (hit.hits, hit.last_used_at) == (1, T0 + 5)
    await store.record_hit("gone", now=T0 + 5)  # an evicted id: nothing to do


async def test_put_replaces_the_same_prompt_in_the_same_scope(
    store: VectorStore, rng: np.random.Generator
) -> None:
    old_vector, new_vector = unit(rng), unit(rng)
    old = make("prompt", old_vector)
    new = make("prompt", new_vector)
    await store.put(old)
    await store.put(make("prompt", old_vector, scope="scope-b"))  # another scope: kept
    await store.put(new)
    assert await store.get_exact(scope="scope-a", prompt_hash=new.prompt_hash, now=T0) == new
    found = await store.search(scope="scope-a", vector=old_vector, k=5, min_similarity=-1, now=T0)
    assert [m.entry.id for m in found] == [new.id]
    assert (await store.stats()).entries == 2


async def test_put_with_an_existing_id_replaces_it(
    store: VectorStore, rng: np.random.Generator
) -> None:
    first = make("first", unit(rng), entry_id="same")
    second = make("second", unit(rng), scope="scope-b", entry_id="same")
    await store.put(first)
    await store.put(second)
    assert await store.get_exact(scope="scope-a", prompt_hash=first.prompt_hash, now=T0) is None
    assert not await store.search(
        scope="scope-a", vector=first.vector, k=1, min_similarity=-1, now=T0
    )
    assert (await store.stats()).entries == 1


async def test_delete_by_ids_and_by_partition(store: VectorStore, rng: np.random.Generator) -> None:
    mine = [make(f"mine {i}", unit(rng), partition="t1") for i in range(3)]
    theirs = [make(f"theirs {i}", unit(rng), partition="t2", scope="scope-b") for i in range(2)]
    for entry in mine + theirs:
        await store.put(entry)
    assert await store.delete([mine[0].id, "unknown", mine[0].id]) == 1
    assert await store.delete_where(partition="t1") == 2
    assert {e.id for e in await store.list_entries(offset=0, limit=10, now=T0)} == {
        e.id for e in theirs
    }
    for entry in mine:
        assert not await store.search(
            scope="scope-a", vector=entry.vector, k=1, min_similarity=-1, now=T0
        )
    with pytest.raises(ValueError, match="partition or a scope"):
        await store.delete_where()


async def test_delete_similar(store: VectorStore, rng: np.random.Generator) -> None:
    topic = unit(rng)
    close = [make(f"close {i}", near(topic, rng), scope=f"s{i}") for i in range(3)]
    other_partition = make("close, other partition", near(topic, rng), partition="t2")
    far = make("far", unit(rng))
    for entry in [*close, other_partition, far]:
        await store.put(entry)
    assert (
        await store.delete_similar(vector=topic, min_similarity=0.9, partition="partition-1") == 3
    )
    left = {e.id for e in await store.list_entries(offset=0, limit=10, now=T0)}
    assert left == {other_partition.id, far.id}
    assert await store.delete_similar(vector=topic, min_similarity=0.9) == 1


async def test_flush(store: VectorStore, rng: np.random.Generator) -> None:
    entries = [make(f"p{i}", unit(rng), scope=f"s{i % 3}") for i in range(10)]
    for entry in entries:
        await store.put(entry)
    assert await store.flush() == 10
    assert (await store.stats()).entries == 0
    for entry in entries:
        assert not await store.search(
            scope=entry.scope, vector=entry.vector, k=1, min_similarity=-1, now=T0
        )
        assert not await store.get_exact(scope=entry.scope, prompt_hash=entry.prompt_hash, now=T0)
    await store.put(entries[0])  # usable again after a flush
    assert (await store.stats()).entries == 1


async def test_list_entries_pages_newest_first(
    store: VectorStore, rng: np.random.Generator
) -> None:
    for i in range(7):
        await store.put(make(f"p{i}", unit(rng), now=T0 + i, partition="t1" if i % 2 else "t2"))
    await store.put(make("expired", unit(rng), now=T0 - 100, ttl_s=50))
    pages = [await store.list_entries(offset=o, limit=3, now=T0 + 7) for o in (0, 3, 6)]
    assert [[e.prompt for e in page] for page in pages] == [
        ["p6", "p5", "p4"],
        ["p3", "p2", "p1"],
        ["p0"],
    ]
    t1 = await store.list_entries(offset=1, limit=5, partition="t1", now=T0 + 7)
    assert [e.prompt for e in t1] == ["p3", "p1"]
    assert await store.list_entries(offset=0, limit=0, now=T0 + 7) == []
    with pytest.raises(ValueError, match="negative"):
        await store.list_entries(offset=-1, limit=3, now=T0 + 7)


async def test_vectors_of_the_wrong_shape_are_refused(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="shape"):
        await store.put(make("p", np.ones(DIM + 1, dtype=np.float32)))
    with pytest.raises(ValueError, match="shape"):
        await store.search(scope="scope-a", vector=np.ones((1, DIM)), k=1, min_similarity=0, now=T0)


async def test_a_lookup_finds_only_the_entries_of_its_model(
    store: VectorStore, rng: np.random.Generator
) -> None:
    """Two models' vectors are not comparable: the same vector stored by each is found only by
    a lookup of that model, exact or semantic; listings and sweeps see every model."""
    vector = unit(rng)
    base = make("What is the capital of France?", vector)
    tuned = make("Who painted the Mona Lisa?", vector, model=TUNED)
    await store.put(base)
    await store.put(tuned)
    for model, own, foreign in ((BASE_MODEL_ID, base, tuned), (TUNED, tuned, base)):
        lookup = {"scope": "scope-a", "now": T0, "model": model}
        assert await store.get_exact(prompt_hash=own.prompt_hash, **lookup) == own
        assert await store.get_exact(prompt_hash=foreign.prompt_hash, **lookup) is None
        found = await store.search(vector=vector, k=5, min_similarity=-1, **lookup)
        assert [m.entry.id for m in found] == [own.id]
    other = {"scope": "scope-a", "now": T0, "model": "other@ffffffffffff"}
    assert await store.get_exact(prompt_hash=base.prompt_hash, **other) is None
    assert not await store.search(vector=vector, k=5, min_similarity=-1, **other)
    listed = await store.list_entries(offset=0, limit=10, now=T0)
    assert {e.id: e.model for e in listed} == {base.id: BASE_MODEL_ID, tuned.id: TUNED}
    assert await store.delete_similar(vector=vector, min_similarity=0.99, model=TUNED) == 1
    assert [e.id for e in await store.list_entries(offset=0, limit=10, now=T0)] == [base.id]
    await store.put(tuned)
    assert await store.delete_where(scope="scope-a") == 2


async def test_a_newer_answer_replaces_another_models_answer_to_the_same_prompt(
    store: VectorStore, rng: np.random.Generator
) -> None:
    old = make("prompt", unit(rng))
    new = make("prompt", unit(rng), model=TUNED)
    await store.put(old)
    await store.put(new)
    assert [e.id for e in await store.list_entries(offset=0, limit=10, now=T0)] == [new.id]
    lookup = {"scope": "scope-a", "prompt_hash": old.prompt_hash, "now": T0}
    assert await store.get_exact(**lookup) is None
    assert await store.get_exact(model=TUNED, **lookup) == new


async def test_reembedding_moves_entries_to_the_new_model_in_place(
    open_store: StoreFactory, rng: np.random.Generator
) -> None:
    store = await open_store(max_entries=3)
    a, b, c = (make(prompt, unit(rng)) for prompt in "abc")
    for entry in (a, b, c):
        await store.put(entry)
    await store.record_hit(a.id, now=T0 + 1)  # the order of use: b, c, a
    first, total = await store.other_models(model=TUNED, limit=2, now=T0 + 1)
    assert total == 3 and len(first) == 2
    listed, _ = await store.other_models(model=TUNED, limit=10, now=T0 + 1)
    assert {e.id for e in listed} == {a.id, b.id, c.id}
    assert await store.other_models(model=BASE_MODEL_ID, limit=10, now=T0 + 1) == ([], 0)
    vectors = {entry.id: unit(rng) for entry in listed}
    assert await store.reembed([(e, vectors[e.id]) for e in listed], model=TUNED) == 3
    await settle(store)
    assert await store.other_models(model=TUNED, limit=10, now=T0 + 1) == ([], 0)

    lookup = {"scope": "scope-a", "prompt_hash": a.prompt_hash, "now": T0 + 1}
    assert await store.get_exact(**lookup) is None  # the base model's entry is gone
    moved = await store.get_exact(model=TUNED, **lookup)
    assert moved is not None and moved.model == TUNED
    assert (moved.id, moved.response, moved.created_at, moved.expires_at, moved.hits) == (
        a.id, a.response, a.created_at, a.expires_at, 1,
    )  # fmt: skip
    np.testing.assert_allclose(moved.vector, vectors[a.id], atol=1e-6)
    search = {"scope": "scope-a", "k": 1, "min_similarity": 0.99, "now": T0 + 1}
    (match,) = await store.search(vector=vectors[a.id], model=TUNED, **search)
    assert match.entry.id == a.id and match.similarity == pytest.approx(1.0, abs=1e-3)
    assert not await store.search(vector=a.vector, **search)
    assert not await store.search(vector=a.vector, model=TUNED, **search)

    d = make("d", unit(rng), model=TUNED, now=T0 + 2)
    await store.put(d)  # past the bound: b goes, still the least recently used
    held = {e.id for e in await store.list_entries(offset=0, limit=10, now=T0 + 2)}
    assert held == {a.id, c.id, d.id}


async def test_reembedding_leaves_what_changed_since_it_was_listed(
    store: VectorStore, rng: np.random.Generator
) -> None:
    gone, replaced, kept = (make(prompt, unit(rng)) for prompt in ("gone", "replaced", "kept"))
    expired = make("expired", unit(rng), ttl_s=5)
    for entry in (gone, replaced, kept, expired):
        await store.put(entry)
    listed, total = await store.other_models(model=TUNED, limit=10, now=T0 + 5)
    assert total == 3 and expired.id not in {entry.id for entry in listed}
    await store.delete([gone.id])
    newer = make("replaced", unit(rng))  # another answer to the same prompt, another id
    await store.put(newer)
    changes = [(entry, unit(rng)) for entry in listed]
    assert await store.reembed(changes, model=TUNED) == 1  # only `kept` is as it was listed
    assert await store.other_models(model=TUNED, limit=10, now=T0 + 5) == ([newer], 1)
    for entry in (gone, replaced):
        lookup = {"scope": "scope-a", "prompt_hash": entry.prompt_hash, "now": T0 + 5}
        assert await store.get_exact(model=TUNED, **lookup) is None
    lookup = {"scope": "scope-a", "prompt_hash": newer.prompt_hash, "now": T0 + 5}
    assert await store.get_exact(**lookup) == newer
    with pytest.raises(ValueError, match="shape"):
        await store.reembed([(newer, np.ones(DIM + 1, dtype=np.float32))], model=TUNED)


async def test_an_exact_only_entry_is_found_by_its_hash_alone(
    store: VectorStore, rng: np.random.Generator
) -> None:
    """An entry without a vector (a provider's embedding) is found by ``get_exact`` of
    `EXACT_ONLY` and by nothing that compares vectors; the rest sees it as any entry."""
    vector = unit(rng)
    embedded = make("a text", None, model=EXACT_ONLY)
    other = make("a question", vector)
    await store.put(embedded)
    await store.put(other)
    exact = {"scope": "scope-a", "prompt_hash": embedded.prompt_hash, "now": T0}
    held = await store.get_exact(model=EXACT_ONLY, **exact)
    assert held == embedded and held.vector is None and held.response == embedded.response
    assert await store.get_exact(**exact) is None  # the base model's tier does not see it
    assert await store.get_exact(model=EXACT_ONLY, **{**exact, "partition": "other"}) is None
    found = await store.search(scope="scope-a", vector=vector, k=5, min_similarity=-1, now=T0)
    assert [m.entry.id for m in found] == [other.id]
    for model in (BASE_MODEL_ID, TUNED):  # never listed for a re-embedding
        assert embedded.id not in {e.id for e in (await store.other_models(
            model=model, limit=10, now=T0
        ))[0]}  # fmt: skip
    assert (await store.other_models(model=TUNED, limit=10, now=T0))[1] == 1
    listed = await store.list_entries(offset=0, limit=10, now=T0)
    assert {e.id: e.model for e in listed} == {embedded.id: EXACT_ONLY, other.id: BASE_MODEL_ID}
    assert await store.delete_similar(vector=vector, min_similarity=-1) == 1  # `other` only
    assert await store.get_exact(model=EXACT_ONLY, **exact) == embedded
    await store.record_hit(embedded.id, now=T0 + 1)
    hit = await store.get_exact(model=EXACT_ONLY, **{**exact, "now": T0 + 1})
    assert hit is not None and hit.hits == 1
    assert (await store.stats()).entries == 1
    assert await store.delete_where(scope="scope-a") == 1


async def test_exact_only_entries_expire_and_count_toward_the_bound(
    open_store: StoreFactory, rng: np.random.Generator
) -> None:
    store = await open_store(max_entries=2)
    first = make("first", None, model=EXACT_ONLY, ttl_s=10)
    second = make("second", None, model=EXACT_ONLY, now=T0 + 1)
    third = make("third", unit(rng), now=T0 + 2)
    for entry in (first, second, third):
        await store.put(entry)
    held = {e.id for e in await store.list_entries(offset=0, limit=10, now=T0 + 2)}
    assert held == {second.id, third.id}  # the least recently used went
    expiring = make("expiring", None, model=EXACT_ONLY, ttl_s=10, now=T0 + 3)
    await store.put(expiring)
    lookup = {"scope": "scope-a", "prompt_hash": expiring.prompt_hash, "model": EXACT_ONLY}
    assert await store.get_exact(now=T0 + 12.9, **lookup) == expiring
    assert await store.get_exact(now=T0 + 13, **lookup) is None


async def test_only_an_exact_only_entry_goes_without_a_vector(
    store: VectorStore, rng: np.random.Generator
) -> None:
    with pytest.raises(ValueError, match="no vector"):
        await store.put(make("p", None))
    with pytest.raises(ValueError, match="no vector"):
        await store.put(make("p", unit(rng), model=EXACT_ONLY))
    assert (await store.stats()).entries == 0
