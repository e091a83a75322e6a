"""`frugal serve --workers N`: N processes on one port, one shared Redis store, one drain.

Real processes: a Redis with the query engine, `frugal sim`, `frugal serve --workers 2`; the
official `openai` SDK as the client.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path

import httpx
import openai

from frugal.local.processes import FrugalProcess
from frugal.local.redis_server import RedisServer
from tests.conftest import CANARY_KEY, Stack, StackFactory, redis_env, run_frugal

# Far apart in meaning: no one is a semantic hit for another.
DISTINCT = [
    "What is the capital of Peru?",
    "How do I reverse a list in Python?",
    "Who wrote Pride and Prejudice?",
    "What is the boiling point of water at sea level?",
    "How far away is the Moon?",
    "What is a prime number?",
    "How do vaccines train the immune system?",
    "Which planet has the most moons?",
    "How do I bake sourdough bread?",
    "What causes the northern lights?",
    "Who painted the Mona Lisa?",
    "How does a bicycle gear system work?",
    "What is the tallest tree species on Earth?",
    "How many strings does a violin have?",
    "Why do cats purr?",
    "What is compound interest?",
    "How do bees make honey?",
    "When did the Berlin Wall fall?",
    "What does a sommelier do?",
    "How do I change a flat tyre?",
]


def fresh_connections(base_url: str) -> openai.AsyncOpenAI:
    """An SDK client that opens a connection per request, so each request is accepted anew,
    by whichever worker takes it."""
    http = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0), timeout=30)
    return openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0, http_client=http)


async def ask(client: openai.AsyncOpenAI, text: str) -> tuple[str, str]:
    """The answer's text and the request id it was sent with."""
    request_id = f"req-{uuid.uuid4().hex}"
    answer = await client.chat.completions.create(
        model="sim-small",
        messages=[{"role": "user", "content": text}],
        extra_headers={"x-request-id": request_id},
    )
    return answer.choices[0].message.content or "", request_id


async def until_not_ready(url: str) -> None:
    """Wait until ``/readyz`` answers 503 (each time on a new connection: either worker)."""
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(200):
            ready = await http.get("/readyz", headers={"connection": "close"})
            if ready.status_code == 503:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("still ready 10 s after SIGTERM")


def log_lines(process: FrugalProcess) -> list[dict]:
    return [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]


def pid_of_request(process: FrugalProcess) -> dict[str, int]:
    """Each logged request's id -> the pid of the worker that served it."""
    return {
        line["request_id"]: line["pid"]
        for line in log_lines(process)
        if line["logger"] == "frugal.requests"
    }


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def replicas_listed(stack: Stack) -> set[str]:
    with stack.admin() as admin:
        fleet = admin.get("/admin/stats", params={"view": "fleet"}).json()
    return {replica["replica"] for replica in fleet["replicas"]}


async def test_two_workers_answer_on_one_port_and_share_the_cache(
    make_stack: StackFactory, redis_server: RedisServer
) -> None:
    env = {"FRUGAL_WORKERS": "2", "FRUGAL_REPLICA_ID": "gw", "FRUGAL_FLEET_REPORT_S": "0.5"}
    stack = make_stack(env={**redis_env(redis_server.url), **env})
    # Each worker is a replica of its own in the fleet view, whichever worker is asked. Its
    # first report also says it has started: the stack is ready as soon as one worker is.
    for _ in range(400):
        if replicas_listed(stack) == {"gw/worker-1", "gw/worker-2"}:
            break
        await asyncio.sleep(0.05)
    assert replicas_listed(stack) == {"gw/worker-1", "gw/worker-2"}
    async with fresh_connections(stack.base_url) as client:
        limit = asyncio.Semaphore(6)

        async def round_of_questions() -> list[int]:
            """Ask every question; the pid of the worker that answered each."""

            async def bounded(text: str) -> tuple[str, str]:
                async with limit:
                    return await ask(client, text)

            answers = await asyncio.gather(*(bounded(text) for text in DISTINCT))
            for text, (answer, _) in zip(DISTINCT, answers, strict=True):
                assert text in answer
            served_by = pid_of_request(stack.gateway)
            return [served_by[request_id] for _, request_id in answers]

        stored_by = await round_of_questions()
        calls = stack.sim_stats()["calls"]
        assert calls == len(DISTINCT)
        # One store: asked again, every question is a hit, also on the worker that did not
        # store it. Which worker accepts a connection is the kernel's choice, so ask a few
        # rounds until both workers have answered and one has served the other's answer.
        seen, crossed = set(stored_by), False
        for _ in range(10):
            again = await round_of_questions()
            assert stack.sim_stats()["calls"] == calls
            seen |= set(again)
            crossed |= any(a != b for a, b in zip(stored_by, again, strict=True))
            if crossed and len(seen) == 2:
                break
        assert len(seen) == 2, f"one worker answered all {11 * len(DISTINCT)} questions"
        assert crossed
        parent = stack.gateway.process.pid
        assert all(parent_of(pid) == parent for pid in seen)


async def test_sigterm_to_the_parent_drains_every_worker(
    make_stack: StackFactory, redis_server: RedisServer
) -> None:
    stack = make_stack(
        sim_args=["--call-latency-ms", "800"],
        env={
            **redis_env(redis_server.url),
            "FRUGAL_WORKERS": "2",
            "FRUGAL_SHUTDOWN_DRAIN_S": "3",
        },
    )
    questions = DISTINCT[:8]
    async with fresh_connections(stack.base_url) as client:
        in_flight = [asyncio.create_task(ask(client, text)) for text in questions]
        await asyncio.sleep(0.4)  # each is upstream now, on one worker or the other
        stack.gateway.process.send_signal(signal.SIGTERM)
        # The supervisor looks at its signals twice a second, then passes SIGTERM on.
        await until_not_ready(stack.gateway.url)
        late, _ = await ask(client, "A question asked while draining?")
        answers = await asyncio.gather(*in_flight)
    assert "A question asked while draining?" in late
    for text, (answer, _) in zip(questions, answers, strict=True):
        assert text in answer
    assert await asyncio.to_thread(stack.gateway.process.wait, 30) == 0
    lines = log_lines(stack.gateway)
    served_by = pid_of_request(stack.gateway)
    drained = {line["pid"] for line in lines if "draining 3.0 s" in line["message"]}
    assert len(drained) == 2  # both workers
    assert {served_by[request_id] for _, request_id in answers} <= drained
    finished = [
        line["pid"] for line in lines if line["message"] == "Application shutdown complete."
    ]
    assert sorted(finished) == sorted(drained)


def test_the_embedded_store_refuses_workers(tmp_path: Path) -> None:
    result = run_frugal(
        "serve",
        "--workers",
        "2",
        "--upstream",
        "http://127.0.0.1:9/v1",
        env={"FRUGAL_DATA_DIR": str(tmp_path), "FRUGAL_UPSTREAM_API_KEY": CANARY_KEY},
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("frugal: --workers 2 needs FRUGAL_STORE=redis")


def test_a_worker_that_cannot_start_stops_the_gateway_with_its_message(tmp_path: Path) -> None:
    with RedisServer.start(modules=False) as plain:  # no query engine: the store cannot open
        result = run_frugal(
            "serve",
            "--workers",
            "2",
            "--upstream",
            "http://127.0.0.1:9/v1",
            env={**redis_env(plain.url), "FRUGAL_DATA_DIR": str(tmp_path)},
        )
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("frugal:")]
    assert line.startswith("frugal: cannot start: ") and "query engine" in line
