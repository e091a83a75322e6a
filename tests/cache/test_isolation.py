"""Tenant and scope isolation through the whole cache path, on both stores, by hypothesis.

Random traffic from three tenants asking the same questions, word for word, in a few scopes:
request bodies become keys (`cache_key`), keys are looked up and answers saved
(`SemanticCache`), against the embedded store and a real Redis. Every lookup may use any entry of
its scope (the threshold is -1, so similarity never stands between a lookup and a wrong entry),
and a prompt's vector is the same for every tenant: only the partition keeps them apart.

The property: a lookup hits exactly when its own tenant already saved an answer in the same
scope, and the answer it gets is one that tenant saved there.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frugal.cache.scope import cache_key
from frugal.cache.semantic import SemanticCache
from frugal.cache.store import VectorStore
from frugal.provider import Endpoint
from tests.cache.conftest import StoreFactory
from tests.cache.entries import BASE_SPEC, DIM, T0

TENANTS = ["acme", "globex", "initech"]
QUESTIONS = ["What is our refund policy?", "Who is the CEO?", "Summarise the Q3 report."]
SYSTEMS = [None, "You are the support bot of this company."]
MODELS = ["sim-small", "sim-large"]
_runs = itertools.count()


class SameVectorForEveryone:
    """A prompt's vector depends on its text alone, as the real model's does."""

    async def embed(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
        return vector / np.linalg.norm(vector)


request = st.tuples(
    st.sampled_from(TENANTS),
    st.sampled_from(MODELS),
    st.sampled_from(SYSTEMS),
    st.sampled_from(QUESTIONS),
)


def body(model: str, system: str | None, question: str) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    return {"model": model, "messages": [*messages, {"role": "user", "content": question}]}


@pytest.fixture
async def store(open_store: StoreFactory) -> VectorStore:
    """One store for all the examples of a run: each example brings tenants of its own."""
    return await open_store(max_entries=100_000)


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(traffic=st.lists(request, min_size=2, max_size=12))
async def test_a_lookup_only_ever_finds_its_own_tenants_answers(
    store: VectorStore, traffic: list[tuple[str, str, str | None, str]]
) -> None:
    cache = SemanticCache(
        store=store,
        embedder=SameVectorForEveryone(),
        model=BASE_SPEC,
        threshold=-1.0,
        ttl_s=3600,
        clock=lambda: T0,
    )
    run = next(_runs)
    saved: dict[tuple[str, str], set[str]] = {}  # (tenant, scope) -> answers saved there
    for tenant_name, model, system, question in traffic:
        tenant = f"{tenant_name}-{run}"  # never seen by an earlier example: those must not hit
        key = cache_key(Endpoint.CHAT, body(model, system, question), partition=tenant)
        assert key is not None
        found = await cache.lookup(key, threshold=-1.0)
        own = saved.get((tenant, key.scope), set())
        if found.hit is None:
            assert not own, "a miss although this tenant saved an answer in this scope"
            answer = f"{tenant}|{key.scope}|{question}"
            assert await cache.save(key, {"answer": answer}, vector=found.vector)
            saved.setdefault((tenant, key.scope), set()).add(answer)
        else:
            assert found.hit.response["answer"] in own, "an answer from another partition"
