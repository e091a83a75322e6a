"""A restart with a large embedded cache: the gateway serves misses while its store loads,
says so on /readyz (503, cache "loading"), and serves the stored answers once ready."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
from openai import OpenAI

from frugal.cache.embedded import EmbeddedStore
from frugal.cache.index_file import folder_of
from frugal.cache.store import Entry
from frugal.local.processes import start_frugal
from tests.conftest import ADMIN_KEY, CANARY_KEY, MODEL_DIR, StackFactory

QUESTION = "What is the tallest mountain in Africa?"
# Enough entries in one scope that the graph its missing index file held takes seconds to
# build again at start-up (20k vectors: about 5 s on 2 cores).
FILLER = 20_000


def ask(base_url: str) -> tuple[str, str]:
    client = OpenAI(base_url=base_url, api_key="sk-client", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="sim-small", messages=[{"role": "user", "content": QUESTION}]
    )
    return raw.headers["x-frugal-cache"], raw.parse().choices[0].message.content or ""


async def add_filler(path: Path) -> None:
    """Entries in the question's scope, beside its answer, and no index file: the next start
    builds the scope's graph from the SQLite file."""
    store = await EmbeddedStore.open(path, max_entries=100_000, index_checkpoint_s=None)
    try:
        (stored,) = await store.list_entries(offset=0, limit=10, now=time.time())
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((FILLER, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for i, vector in enumerate(vectors):
            await store.put(
                Entry(
                    id=f"filler-{i}", partition=stored.partition, scope=stored.scope,
                    prompt=f"filler {i}", prompt_hash=f"filler-{i}", response=stored.response,
                    vector=vector, created_at=stored.created_at, expires_at=stored.expires_at,
                    labels=stored.labels,
                )
            )  # fmt: skip
    finally:
        await store.aclose()
    shutil.rmtree(folder_of(path), ignore_errors=True)  # none if the graph was never built


def test_misses_are_served_while_the_store_loads_and_readyz_says_so(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = make_stack(data_dir=data_dir)
    assert ask(first.base_url)[0] == "miss"
    first.gateway.stop()
    asyncio.run(add_filler(data_dir / "cache.sqlite3"))
    first.reset_sim()

    env = {
        "FRUGAL_UPSTREAM_API_KEY": CANARY_KEY,
        "FRUGAL_DATA_DIR": str(data_dir),
        "FRUGAL_MODEL_DIR": str(MODEL_DIR),
        "FRUGAL_ADMIN_KEY": ADMIN_KEY,
    }
    gateway = start_frugal(
        ["serve", "--upstream", first.sim.url + "/v1"],
        log_dir=tmp_path / "logs",
        env=env,
        ready_path="/healthz",  # serving, not yet ready
    )
    try:
        loading = httpx.get(gateway.url + "/readyz")
        assert loading.status_code == 503
        assert loading.json() == {"status": "not ready", "cache": "loading"}
        outcome, content = ask(gateway.url + "/v1")
        assert (outcome, QUESTION in content) == ("miss", True)  # answered, from upstream
        assert httpx.get(gateway.url + "/readyz").json()["cache"] == "loading"  # still then
        assert first.sim_stats()["calls"] == 1

        deadline = time.monotonic() + 120
        while httpx.get(gateway.url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the store never finished loading"
            time.sleep(0.1)
        assert httpx.get(gateway.url + "/readyz").json() == {"status": "ready", "cache": "ok"}
        outcome, content = ask(gateway.url + "/v1")
        assert (outcome, QUESTION in content) == ("hit", True)
        assert first.sim_stats()["calls"] == 1
        with httpx.Client(
            base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as admin:
            stats = admin.get("/admin/stats").json()
        assert stats["cache"]["entries"] == FILLER + 1  # the miss while loading was not stored
    finally:
        gateway.stop()
