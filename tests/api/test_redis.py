"""The Redis store through real gateways: replicas share one cache, and Redis may fail.

Real `frugal serve` processes, a real Redis 8 with the query engine, the `openai` SDK.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import openai

from frugal.local.processes import free_port
from frugal.local.redis_server import RedisServer
from tests.conftest import Stack, StackFactory, redis_env

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"
QUESTIONS = [
    "What is the capital of Peru?",
    "How do I reverse a list in Python?",
    "Who wrote Pride and Prejudice?",
    "What is the boiling point of water?",
    "How far away is the Moon?",
    "What is a prime number?",
]


def sdk(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.base_url, api_key="k", max_retries=0)


async def ask(client: openai.AsyncOpenAI, text: str) -> tuple[str, str]:
    """The answer's text and the cache outcome header."""
    raw = await client.chat.completions.with_raw_response.create(
        model="sim-small", messages=[{"role": "user", "content": text}]
    )
    return raw.parse().choices[0].message.content or "", raw.headers["x-frugal-cache"]


def store_stats(stack: Stack) -> dict:
    with stack.admin() as admin:
        return admin.get("/admin/stats").json()["store"]


async def test_a_miss_on_one_replica_is_a_hit_on_another(
    make_stack: StackFactory, redis_server: RedisServer
) -> None:
    env = redis_env(redis_server.url)
    a = make_stack(env=env)
    b = make_stack(env=env, sim=a.sim)
    async with sdk(a) as on_a, sdk(b) as on_b:
        answer, outcome = await ask(on_a, FRANCE)
        assert outcome == "miss"
        shared, outcome = await ask(on_b, FRANCE_PARAPHRASE)
        assert outcome == "hit"
        assert shared == answer and FRANCE in shared
        _, outcome = await ask(on_b, "Who painted the Mona Lisa?")
        assert outcome == "miss"
    assert a.sim_stats()["calls"] == 2
    assert store_stats(a) == {"kind": "redis", "health": "ok", "breaker": "closed"} | {
        "opened": 0,
        "closed": 0,
    }


async def test_redis_gone_mid_load_fails_no_request_and_the_cache_comes_back(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    with RedisServer.start(log_path=tmp_path / "redis.log") as redis_server:
        stack = make_stack(
            env=redis_env(
                redis_server.url,
                FRUGAL_STORE_BREAKER_FAILURES="3",
                FRUGAL_STORE_BREAKER_RESET_S="0.5",
                # The outage is what is tested: a busy test machine must not trip it by latency.
                FRUGAL_STORE_TIMEOUT_MS="500",
            )
        )
        outcomes: Counter[str] = Counter()
        wrong: list[tuple[str, str]] = []
        stop = time.monotonic() + 6.0

        async def client(number: int) -> None:
            async with sdk(stack) as sdk_client:
                turn = number
                while time.monotonic() < stop:
                    question = QUESTIONS[turn % len(QUESTIONS)]
                    answer, outcome = await ask(sdk_client, question)  # raises on any failure
                    outcomes[outcome] += 1
                    if question not in answer:
                        wrong.append((question, answer))
                    turn += 1

        async def outage() -> None:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(redis_server.stop)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(redis_server.restart)

        await asyncio.gather(outage(), *(client(n) for n in range(6)))
        assert wrong == []
        assert outcomes["hit"] > 0 and outcomes["miss"] > 0
        stats = store_stats(stack)
        assert (stats["opened"], stats["closed"], stats["breaker"]) == (1, 1, "closed")
        log = stack.gateway.log()
        assert log.count("circuit breaker opened") == 1
        assert log.count("circuit breaker closed") == 1
        # The restarted Redis is empty; the shared cache fills and hits again, no restart.
        async with sdk(stack) as sdk_client:
            await ask(sdk_client, FRANCE)
            assert (await ask(sdk_client, FRANCE_PARAPHRASE))[1] == "hit"


async def test_redis_down_at_start_up_serves_degraded_until_it_comes(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    stack = make_stack(env=redis_env(url, FRUGAL_STORE_BREAKER_RESET_S="0.3"))
    ready = httpx.get(stack.gateway.url + "/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "cache": "degraded"})
    async with sdk(stack) as sdk_client:
        answer, outcome = await ask(sdk_client, FRANCE)
        assert FRANCE in answer and outcome == "miss"
        assert (await ask(sdk_client, FRANCE))[1] == "miss"  # nothing could be stored
        with RedisServer.start(port=port, log_path=tmp_path / "redis.log"):
            await asyncio.sleep(0.5)  # past the breaker's reset time: the next call probes
            await ask(sdk_client, FRANCE)
            assert httpx.get(stack.gateway.url + "/readyz").json()["cache"] == "ok"
            assert (await ask(sdk_client, FRANCE_PARAPHRASE))[1] == "hit"


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "frugal", "serve", "--upstream", "http://127.0.0.1:9/v1"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_redis_url_is_required_and_never_echoed() -> None:
    missing = serve({"FRUGAL_STORE": "redis"})
    assert missing.returncode == 2 and "FRUGAL_REDIS_URL" in missing.stderr
    secret = "redis://:hunter2-secret@127.0.0.1:1/0"
    bad = serve({"FRUGAL_STORE": "redis", "FRUGAL_REDIS_URL": secret, "FRUGAL_REDIS_INDEX": "a b"})
    assert bad.returncode == 2 and "FRUGAL_REDIS_INDEX" in bad.stderr
    assert "hunter2" not in bad.stderr + bad.stdout
