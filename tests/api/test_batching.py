"""Batching and coalescing through the real gateway in front of `frugal sim`, over real sockets."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Stack, StackFactory

QUESTIONS = [
    "How tall is Mount Everest?",
    "Who wrote Pride and Prejudice?",
    "What is the boiling point of water?",
    "How many moons does Jupiter have?",
    "What is the speed of light?",
    "Which language is spoken in Brazil?",
    "How do I bake sourdough bread?",
    "What causes the northern lights?",
    "Who painted the Sistine Chapel ceiling?",
    "How does a transistor work?",
    "What is the population of Tokyo?",
    "Why is the sky blue?",
]
# A long window, so that concurrent requests always meet; the size sends full batches at once.
BATCHING = {"FRUGAL_CACHE_MODE": "off", "FRUGAL_BATCH_WINDOW_MS": "400"}


@pytest.fixture(scope="module")
def batching(make_stack: StackFactory) -> Stack:
    return make_stack(env=BATCHING)


async def post_all(
    stack: Stack, path: str, bodies: list[dict[str, Any]], **kw: Any
) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        return list(await asyncio.gather(*(http.post(path, json=body, **kw) for body in bodies)))


def endpoint_stats(stack: Stack, path: str) -> dict[str, int]:
    return stack.sim_stats()["endpoints"].get("/v1" + path, {"calls": 0, "prompts": 0})


async def test_five_concurrent_completions_make_one_call(batching: Stack) -> None:
    batching.reset_sim()
    bodies = [{"model": "sim-small", "prompt": q} for q in QUESTIONS[:5]]
    responses = await post_all(batching, "/completions", bodies)
    for question, response in zip(QUESTIONS, responses, strict=False):
        choices = response.json()["choices"]
        assert [c["index"] for c in choices] == [0]
        assert question in choices[0]["text"]
    stats = endpoint_stats(batching, "/completions")
    assert (stats["calls"], stats["prompts"]) == (1, 5)


async def test_twelve_concurrent_completions_make_three_calls(batching: Stack) -> None:
    batching.reset_sim()
    bodies = [{"model": "sim-small", "prompt": q} for q in QUESTIONS]
    responses = await post_all(batching, "/completions", bodies)
    assert all(
        q in r.json()["choices"][0]["text"] for q, r in zip(QUESTIONS, responses, strict=True)
    )
    assert endpoint_stats(batching, "/completions")["calls"] == 3


async def test_list_prompts_are_packed_as_items_and_usage_adds_up(batching: Stack) -> None:
    batching.reset_sim()
    bodies = [
        {"model": "sim-small", "prompt": QUESTIONS[0:2]},
        {"model": "sim-small", "prompt": QUESTIONS[2:5]},
    ]
    responses = [r.json() for r in await post_all(batching, "/completions", bodies)]
    assert [QUESTIONS[0:2], QUESTIONS[2:5]] == [
        [q for q, c in zip(group, r["choices"], strict=True) if q in c["text"]]
        for group, r in zip([QUESTIONS[0:2], QUESTIONS[2:5]], responses, strict=True)
    ]
    stats = batching.sim_stats()
    assert endpoint_stats(batching, "/completions")["calls"] == 1
    assert sum(r["usage"]["total_tokens"] for r in responses) == stats["tokens"]


async def test_different_parameters_never_share_a_call(batching: Stack) -> None:
    batching.reset_sim()
    bodies = [
        {"model": "sim-small", "prompt": QUESTIONS[0]},
        {"model": "sim-large", "prompt": QUESTIONS[1]},
        {"model": "sim-small", "prompt": QUESTIONS[2], "temperature": 0.5},
    ]
    responses = await post_all(batching, "/completions", bodies)
    assert [r.json()["model"] for r in responses] == ["sim-small", "sim-large", "sim-small"]
    assert endpoint_stats(batching, "/completions")["calls"] == 3


async def test_five_concurrent_embeddings_make_one_call(batching: Stack) -> None:
    batching.reset_sim()
    bodies = [{"model": "sim-embed", "input": q, "encoding_format": "float"} for q in QUESTIONS[:5]]
    batched = [
        r.json()["data"][0]["embedding"] for r in await post_all(batching, "/embeddings", bodies)
    ]
    assert endpoint_stats(batching, "/embeddings")["calls"] == 1
    async with httpx.AsyncClient() as http:  # the same inputs, one at a time, straight to the sim
        for body, vector in zip(bodies, batched, strict=True):
            alone = await http.post(
                batching.sim.url + "/v1/embeddings",
                json=body,
                headers={"Authorization": "Bearer sk-canary-3f9c2e7b1d5a4c8e9f0a"},
            )
            assert alone.json()["data"][0]["embedding"] == vector


async def test_a_chat_miss_goes_at_once_while_a_completion_waits_for_company(
    make_stack: StackFactory,
) -> None:
    """A chat carries one conversation a call, so waiting would only delay it: with a 5 s
    window, a completion sent first still waits for company when a chat sent after it has
    been answered, and the provider has seen the chat and not the completion. An identical
    chat then gets its own call too (with the cache off, nothing folds equal requests)."""
    stack = make_stack(env={**BATCHING, "FRUGAL_BATCH_WINDOW_MS": "5000"})
    chat = {"model": "sim-small", "messages": [{"role": "user", "content": QUESTIONS[1]}]}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        completion = asyncio.ensure_future(
            http.post("/completions", json={"model": "sim-small", "prompt": QUESTIONS[0]})
        )
        await asyncio.sleep(0.2)  # the completion reaches its queue first
        first = await http.post("/chat/completions", json=chat)
        assert first.status_code == 200 and not completion.done()
        assert endpoint_stats(stack, "/chat/completions")["calls"] == 1
        assert endpoint_stats(stack, "/completions")["calls"] == 0
        second = await http.post("/chat/completions", json=chat)
        assert QUESTIONS[1] in second.json()["choices"][0]["message"]["content"]
        assert endpoint_stats(stack, "/chat/completions")["calls"] == 2
        assert QUESTIONS[0] in (await completion).json()["choices"][0]["text"]
    assert endpoint_stats(stack, "/completions")["calls"] == 1


async def test_chat_calls_respect_the_concurrency_cap(make_stack: StackFactory) -> None:
    stack = make_stack(
        sim_args=["--call-latency-ms", "30"],
        env={**BATCHING, "FRUGAL_UPSTREAM_MAX_CONCURRENCY": "2", "FRUGAL_BATCH_MAX_SIZE": "8"},
    )
    bodies = [{"model": "m", "messages": [{"role": "user", "content": q}]} for q in QUESTIONS[:8]]
    responses = await post_all(stack, "/chat/completions", bodies)
    assert all(r.status_code == 200 for r in responses)
    stats = stack.sim_stats()
    assert stats["calls"] == 8 and stats["max_in_flight"] == 2


async def test_a_poisoned_prompt_fails_alone(make_stack: StackFactory) -> None:
    stack = make_stack(sim_args=["--reject-containing", "POISON"], env=BATCHING)
    prompts = [*QUESTIONS[:2], "a POISON pill", *QUESTIONS[2:4]]
    responses = await post_all(
        stack, "/completions", [{"model": "m", "prompt": p} for p in prompts]
    )
    assert [r.status_code for r in responses] == [200, 200, 400, 200, 200]
    assert "POISON" in responses[2].json()["error"]["message"]
    for prompt, response in zip(prompts, responses, strict=True):
        if response.status_code == 200:
            assert prompt in response.json()["choices"][0]["text"]
    assert stack.sim_stats()["calls"] == 1 + 5  # the rejected list call, then each alone


async def test_a_full_queue_is_429_with_retry_after(make_stack: StackFactory) -> None:
    stack = make_stack(
        env={
            **BATCHING,
            "FRUGAL_BATCH_MAX_QUEUE": "2",
            "FRUGAL_BATCH_MAX_SIZE": "50",
            "FRUGAL_BATCH_WINDOW_MS": "1000",
        }
    )
    bodies = [{"model": "m", "prompt": q} for q in QUESTIONS[:4]]
    responses = await post_all(stack, "/completions", bodies)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 2, 429: 2}
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"]["type"] == "rate_limit_error"
    assert stack.sim_stats()["calls"] == 1


async def test_an_item_past_its_deadline_is_504_and_never_sent(make_stack: StackFactory) -> None:
    stack = make_stack(
        env={**BATCHING, "FRUGAL_BATCH_WINDOW_MS": "1000", "FRUGAL_BATCH_TIMEOUT_S": "0.2"}
    )
    responses = await post_all(stack, "/completions", [{"model": "m", "prompt": QUESTIONS[0]}])
    assert responses[0].status_code == 504
    assert stack.sim_stats()["calls"] == 0


async def test_a_client_that_leaves_is_not_sent(make_stack: StackFactory) -> None:
    stack = make_stack(env={**BATCHING, "FRUGAL_BATCH_WINDOW_MS": "800"})
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/completions", json={"model": "m", "prompt": QUESTIONS[0]})
    await asyncio.sleep(1.2)  # past the window: the batch would have left by now
    assert stack.sim_stats()["calls"] == 0
    with stack.admin() as admin:
        assert admin.get("/admin/stats").json()["batching"]["dropped_cancelled"] == 1


async def test_a_lone_request_still_gets_its_answer(batching: Stack) -> None:
    responses = await post_all(batching, "/completions", [{"model": "m", "prompt": "alone"}])
    assert "alone" in responses[0].json()["choices"][0]["text"]


# -- coalescing ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coalescing(make_stack: StackFactory) -> Stack:
    return make_stack(sim_args=["--call-latency-ms", "200"], env={"FRUGAL_BATCH_WINDOW_MS": "20"})


async def test_twenty_identical_questions_make_one_call(coalescing: Stack) -> None:
    coalescing.reset_sim()
    body = {
        "model": "sim-small",
        "messages": [{"role": "user", "content": "What is the capital of Peru?"}],
    }
    responses = await post_all(coalescing, "/chat/completions", [body] * 20)
    outcomes = Counter(r.headers["x-frugal-cache"] for r in responses)
    assert outcomes["miss"] == 1 and outcomes["coalesced"] + outcomes["hit"] == 19
    assert all("capital of Peru" in r.json()["choices"][0]["message"]["content"] for r in responses)
    assert len({r.json()["id"] for r in responses}) == 20
    assert coalescing.sim_stats()["calls"] == 1


async def test_twenty_paraphrases_make_one_call(coalescing: Stack) -> None:
    coalescing.reset_sim()
    variants = [
        "How do I reset my password?",
        "How can I reset my password?",
        "How do I reset my password",
        "how do i reset my password?",
    ]
    bodies = [
        {"model": "sim-small", "messages": [{"role": "user", "content": variants[n % 4]}]}
        for n in range(20)
    ]
    responses = await post_all(coalescing, "/chat/completions", bodies)
    assert coalescing.sim_stats()["calls"] == 1
    outcomes = Counter(r.headers["x-frugal-cache"] for r in responses)
    assert outcomes["miss"] == 1
    assert all(
        "reset my password" in r.json()["choices"][0]["message"]["content"].lower()
        for r in responses
    )


async def test_a_leaders_failure_fails_its_followers(make_stack: StackFactory) -> None:
    # A failure is not cached: only followers that joined while the leader was in flight share
    # it. The simulator refuses the call once its latency has passed, long enough for all six
    # to join on a busy machine.
    stack = make_stack(sim_args=["--reject-containing", "POISON", "--call-latency-ms", "1500"])
    body = {"model": "m", "messages": [{"role": "user", "content": "a POISON question"}]}
    responses = await post_all(stack, "/chat/completions", [body] * 6)
    assert [r.status_code for r in responses] == [400] * 6
    assert stack.sim_stats()["calls"] == 1


async def test_process_prompt_takes_the_same_path(coalescing: Stack) -> None:
    coalescing.reset_sim()
    async with httpx.AsyncClient(base_url=coalescing.gateway.url, timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post("/process_prompt", json={"text": "What is the tallest building?"})
                for _ in range(5)
            )
        )
    assert all("tallest building" in r.json()["response"] for r in responses)
    assert coalescing.sim_stats()["calls"] == 1


# -- everything at once ----------------------------------------------------------------------

WORDS = ["apple", "river", "orbit", "violin", "cactus", "lantern", "glacier", "pepper", "comet"]


@pytest.fixture(scope="module")
def mixed(make_stack: StackFactory) -> Stack:
    # The cache off: near-identical random prompts would rightly hit; this is about batching.
    return make_stack(
        env={
            "FRUGAL_CACHE_MODE": "off",
            "FRUGAL_BATCH_WINDOW_MS": "5",
            "FRUGAL_BATCH_MAX_SIZE": "4",
        }
    )


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), count=st.integers(50, 150))
def test_random_concurrent_traffic_gets_its_own_answers(
    mixed: Stack, seed: int, count: int
) -> None:
    """Random prompts, endpoints and models at once: every answer is its request's own, and the
    provider saw exactly the calls the gateway says it made."""
    rng = random.Random(seed)
    requests = []
    for number in range(count):
        prompt = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(WORDS)} #{seed}-{number}"
        kind = rng.choice(["chat", "completion", "completions", "embedding"])
        model = rng.choice(["sim-small", "sim-large"])
        requests.append((kind, model, prompt))

    async def run() -> None:
        with mixed.admin() as admin:
            before = admin.get("/admin/stats").json()["upstream"]["calls"]
        sim_before = mixed.sim_stats()["calls"]
        async with httpx.AsyncClient(base_url=mixed.base_url, timeout=60) as http:

            async def one(kind: str, model: str, prompt: str) -> None:
                if kind == "chat":
                    r = await http.post(
                        "/chat/completions",
                        json={"model": model, "messages": [{"role": "user", "content": prompt}]},
                    )
                    assert prompt in r.json()["choices"][0]["message"]["content"]
                elif kind == "completion":
                    r = await http.post("/completions", json={"model": model, "prompt": prompt})
                    assert prompt in r.json()["choices"][0]["text"]
                elif kind == "completions":
                    pair = [prompt, prompt + " (again)"]
                    r = await http.post("/completions", json={"model": model, "prompt": pair})
                    texts = [
                        c["text"] for c in sorted(r.json()["choices"], key=lambda c: c["index"])
                    ]
                    assert pair[0] in texts[0] and pair[1] in texts[1] and pair[1] not in texts[0]
                else:
                    r = await http.post(
                        "/embeddings",
                        json={"model": model, "input": prompt, "encoding_format": "float"},
                    )
                    assert len(r.json()["data"]) == 1
                assert r.status_code == 200

            await asyncio.gather(*(one(*request) for request in requests))
        with mixed.admin() as admin:
            after = admin.get("/admin/stats").json()["upstream"]["calls"]
        assert mixed.sim_stats()["calls"] - sim_before == after - before

    asyncio.run(run())


async def test_sigterm_sends_what_is_queued_and_drains(make_stack: StackFactory) -> None:
    stack = make_stack(env={**BATCHING, "FRUGAL_BATCH_WINDOW_MS": "1500"})
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        pending = asyncio.ensure_future(
            http.post("/completions", json={"model": "m", "prompt": QUESTIONS[0]})
        )
        await asyncio.sleep(0.3)  # the request is waiting in its batch window
        stack.gateway.process.send_signal(signal.SIGTERM)
        response = await pending
    assert response.status_code == 200
    assert QUESTIONS[0] in response.json()["choices"][0]["text"]
    # uvicorn shuts down gracefully, then re-raises the signal: the exit status says SIGTERM.
    assert await asyncio.to_thread(stack.gateway.process.wait, 15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in stack.gateway.log()
    assert stack.sim_stats()["calls"] == 1
