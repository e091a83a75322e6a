"""The local fleet end to end: three gateways on Redis behind Sentinel, HAProxy in front.

Real processes, as `frugal fleet` starts them (`frugal.local.fleet`): a Redis primary, its
replica and three Sentinels, `frugal sim`, three `frugal serve` and Debian's HAProxy; the
official `openai` SDK as the client, through HAProxy unless a test names a replica.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

from frugal.local.fleet import Fleet, running_fleet
from tests.conftest import ADMIN_KEY, CANARY_KEY, MODEL_DIR

# The provider takes 300 ms a call: a miss stays in flight on its gateway that long.
SIM_ARGS = ["--call-latency-ms", "300", "--item-latency-ms", "1", "--require-api-key", CANARY_KEY]
TOPICS = (
    "volcanoes tax-law violins orchids chess comets bread rivers glaciers sonnets bridges owls "
    "typhoons ballet copper deserts"
).split()


@pytest.fixture(scope="module")
def started_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    run_dir = tmp_path_factory.mktemp("fleet")
    env = {
        "FRUGAL_UPSTREAM_API_KEY": CANARY_KEY,
        "FRUGAL_UPSTREAM_RETRY_BASE_DELAY_S": "0.01",
        "FRUGAL_MODEL_DIR": str(MODEL_DIR),
        "FRUGAL_ADMIN_KEY": ADMIN_KEY,
        # What is tested is the fleet: a busy machine must not make a lease or a save miss.
        "FRUGAL_STORE_TIMEOUT_MS": "1000",
        "FRUGAL_STORE_BREAKER_RESET_S": "1",
    }
    with running_fleet(run_dir=run_dir, sim_args=SIM_ARGS, gateway_env=env) as running:
        yield running


@pytest.fixture
def fleet(started_fleet: Fleet) -> Fleet:
    """The module's fleet with every gateway running: one a test stopped is started again."""
    for name, gateway in list(started_fleet.gateways.items()):
        if gateway.process.poll() is not None:
            started_fleet.restart(name)
    return started_fleet


def sdk(base_url: str, *, keep_alive: bool = True) -> openai.AsyncOpenAI:
    """An SDK client that never retries; without ``keep_alive``, a connection per request."""
    http = (
        None if keep_alive else httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
    )
    return openai.AsyncOpenAI(
        base_url=base_url + "/v1", api_key="k", max_retries=0, timeout=60, http_client=http
    )


async def ask(client: openai.AsyncOpenAI, text: str, request_id: str = "") -> tuple[str, str]:
    """The answer's text and the cache outcome header."""
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        extra_headers={"x-request-id": request_id or f"req-{uuid.uuid4().hex}"},
    )
    return raw.parse().choices[0].message.content or "", raw.headers["x-frugal-cache"]


def upstream_calls(fleet: Fleet) -> int:
    assert fleet.sim is not None
    return int(httpx.get(fleet.sim.url + "/sim/stats").json()["calls"])


@dataclass
class Load:
    """Clients asking through HAProxy without pause: what each request became."""

    answered: list[tuple[str, str]] = field(default_factory=list)  # (request id, outcome)
    failed: dict[str, BaseException] = field(default_factory=dict)  # request id -> error


async def load_until(
    fleet: Fleet,
    stop: asyncio.Event,
    *,
    clients: int = 12,
    question: Callable[[int], str],
    keep_alive: bool = True,
) -> Load:
    """``clients`` SDK clients asking ``question(n)`` through HAProxy until ``stop`` is set;
    each answer must name its question, unless a near one answered it."""
    load = Load()
    numbers = itertools.count()

    async def client() -> None:
        async with sdk(fleet.url, keep_alive=keep_alive) as sdk_client:
            while not stop.is_set():
                text = question(next(numbers))
                request_id = f"load-{uuid.uuid4().hex}"
                try:
                    answer, outcome = await ask(sdk_client, text, request_id)
                except openai.APIError as exc:
                    load.failed[request_id] = exc
                    continue
                # A hit, or a wait for a question in flight, may answer a near question.
                assert text in answer or outcome in ("hit", "coalesced")
                load.answered.append((request_id, outcome))

    await asyncio.gather(*(client() for _ in range(clients)))
    return load


def new_question(n: int) -> str:
    """A question no one asked in these words: mostly a miss, in flight on its gateway for a
    while (or a semantic hit for an earlier one on the same topic)."""
    return f"Question {uuid.uuid4().hex[:8]}: what should I know about {TOPICS[n % 16]}?"


async def test_a_paraphrase_on_one_replica_hits_what_another_stored(fleet: Fleet) -> None:
    a, b = fleet.gateways["replica-1"], fleet.gateways["replica-2"]
    calls = upstream_calls(fleet)
    async with sdk(a.url) as on_a, sdk(b.url) as on_b:
        answer, outcome = await ask(on_a, "What is the capital of Australia?")
        assert outcome == "miss"
        paraphrased, outcome = await ask(on_b, "What's the capital city of Australia?")
    assert outcome == "hit"
    assert paraphrased == answer
    assert upstream_calls(fleet) == calls + 1


async def test_thirty_identical_questions_through_haproxy_make_one_upstream_call(
    fleet: Fleet,
) -> None:
    question = "Which river flows through Budapest?"
    calls = upstream_calls(fleet)
    ids = [f"same-{n}-{uuid.uuid4().hex[:8]}" for n in range(30)]
    # A client each: thirty connections, which HAProxy spreads over the gateways.
    clients = [sdk(fleet.url) for _ in ids]
    try:
        results = await asyncio.gather(
            *(ask(client, question, rid) for client, rid in zip(clients, ids, strict=True))
        )
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    assert {answer for answer, _ in results} == {results[0][0]}
    assert question in results[0][0]
    assert upstream_calls(fleet) == calls + 1
    outcomes = Counter(outcome for _, outcome in results)
    assert outcomes["miss"] == 1 and set(outcomes) <= {"miss", "coalesced", "hit"}, outcomes
    served_by = {logged.request_id: logged.server for logged in fleet.proxy.requests()}
    assert {served_by[rid] for rid in ids} == set(fleet.gateways)


async def test_a_replica_killed_under_load_fails_only_what_was_in_flight_on_it(
    fleet: Fleet,
) -> None:
    """Each client request on a connection of its own: HAProxy then answers a request cut by
    the kill with a 502 and logs it. (On a kept-alive client connection it closes the
    connection instead, unlogged, for the client to retry: the SDK does, by default.)"""
    stop = asyncio.Event()
    running = asyncio.create_task(load_until(fleet, stop, question=new_question, keep_alive=False))
    await asyncio.sleep(1.5)
    killed = fleet.gateways["replica-2"]
    killed.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(
        fleet.proxy.wait_for, lambda states: states["replica-2"].status == "DOWN"
    )
    await asyncio.sleep(1.5)  # the load goes on without it
    stop.set()
    load = await running
    # What HAProxy had sent to the killed gateway and never got an answer for.
    cut = {
        logged.request_id
        for logged in fleet.proxy.requests()
        if logged.server == "replica-2" and logged.termination.startswith("S")
    }
    # A 502, or a connection closed when the gateway died in the middle of its answer.
    errors = Counter(type(error).__name__ for error in load.failed.values())
    print(
        f"{len(cut)} requests were in flight on the killed replica; {len(load.failed)} of "
        f"{len(load.failed) + len(load.answered)} failed: {dict(errors)}"
    )
    assert set(load.failed) <= cut
    assert len(load.answered) > 0


async def test_a_replica_sigtermed_under_load_drains_without_a_failure(fleet: Fleet) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(load_until(fleet, stop, question=new_question))
    await asyncio.sleep(1.5)
    leaving = fleet.gateways["replica-3"]
    leaving.process.send_signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(leaving.process.wait, 60)
    await asyncio.sleep(1.0)  # the load goes on without it
    stop.set()
    load = await running
    print(f"{len(load.answered)} answered, {len(load.failed)} failed")
    assert load.failed == {}
    assert exit_code in (0, -signal.SIGTERM)
    assert "draining" in leaving.log()
    served = Counter(logged.server for logged in fleet.proxy.requests())
    assert served["replica-3"] > 0  # it had its share of the load before
    assert fleet.proxy.servers()["replica-3"].status == "DOWN"


async def test_the_redis_primary_killed_under_load_fails_nothing_and_hits_resume(
    fleet: Fleet,
) -> None:
    # A few questions asked again and again (hits, once stored) among new ones (misses).
    repeated = [f"What is the history of {topic}?" for topic in TOPICS[:6]]

    def mixed(n: int) -> str:
        return new_question(n) if n % 3 == 0 else repeated[n % 6]

    stop = asyncio.Event()
    started = time.monotonic()
    running = asyncio.create_task(load_until(fleet, stop, question=mixed))
    await asyncio.sleep(3)
    killed = await asyncio.to_thread(fleet.redis.kill_primary)
    promoted = await asyncio.to_thread(fleet.redis.wait_for_primary, other_than=killed.port)
    # Hits again, on every gateway, without a restart: each is asked directly until it hits.
    question = "What is the boiling point of water on Everest?"
    async with sdk(fleet.url) as through_haproxy:
        await ask(through_haproxy, question)
    for name, gateway in fleet.gateways.items():
        async with sdk(gateway.url) as direct:
            for _ in range(300):
                _, outcome = await ask(direct, question)
                if outcome == "hit":
                    break
                await asyncio.sleep(0.1)
            assert outcome == "hit", f"{name} serves no hits after the failover"
    while time.monotonic() - started < 15:
        await asyncio.sleep(0.5)  # at least 15 s of load in all
    stop.set()
    load = await running
    outcomes = Counter(outcome for _, outcome in load.answered)
    print(f"primary {killed.port} killed, {promoted} promoted; outcomes {dict(outcomes)}")
    assert load.failed == {}
    assert outcomes["hit"] > 0
    for gateway in fleet.gateways.values():
        assert gateway.process.poll() is None


def test_the_fleet_command_serves_until_interrupted_and_leaves_nothing(tmp_path: Path) -> None:
    command = subprocess.Popen(
        [sys.executable, "-m", "frugal", "fleet", "--replicas", "1", "--run-dir", str(tmp_path)],
        env={**os.environ, "FRUGAL_MODEL_DIR": str(MODEL_DIR), "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert command.stdout is not None
        shown = {}
        for line in command.stdout:
            name, _, rest = line.partition(":")
            shown[name] = rest.split()[0] if rest.split() else ""
            if name.startswith("Ctrl-C"):
                break
        urls = [shown["clients"].removesuffix("/v1"), shown["replica-1"], shown["simulator"]]
        answer = httpx.post(
            urls[0] + "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "Are you there?"}]},
            timeout=60,
        )
        assert answer.status_code == 200
        assert "Are you there?" in answer.json()["choices"][0]["message"]["content"]
        command.send_signal(signal.SIGINT)
        assert command.wait(timeout=60) == 0
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
        if command.stdout is not None:
            command.stdout.close()
    for url in urls:  # HAProxy, the gateway and the simulator are gone
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/healthz")
