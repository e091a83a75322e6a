"""The gateway forwards the OpenAI wire format faithfully, over real sockets, to `frugal sim`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from tests.conftest import CANARY_KEY, Stack


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=stack.base_url, api_key="client-key", max_retries=0
    ) as sdk:
        yield sdk


async def test_chat_completion_answers_its_own_prompt(
    stack: Stack, client: openai.AsyncOpenAI
) -> None:
    stack.reset_sim()
    reply = await client.chat.completions.create(
        model="sim-small",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    )
    assert "What is the capital of France?" in reply.choices[0].message.content
    assert reply.model == "sim-small"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    assert stack.sim_stats()["calls"] == 1


async def test_streamed_chat_is_relayed_chunk_by_chunk(
    stack: Stack, client: openai.AsyncOpenAI
) -> None:
    stream = await client.chat.completions.create(
        model="sim-large",
        messages=[{"role": "user", "content": "Tell me about streaming please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage, ids = [], None, None, set()
    async for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "Tell me about streaming please" in "".join(pieces)
    assert len([p for p in pieces if p]) > 1, "the answer arrives in several chunks"
    assert len(ids) == 1
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


async def test_completions_with_a_list_prompt_keep_their_order(client: openai.AsyncOpenAI) -> None:
    prompts = ["first question", "second question", "third question"]
    reply = await client.completions.create(model="sim-small", prompt=prompts)
    by_index = {choice.index: choice.text for choice in reply.choices}
    assert sorted(by_index) == [0, 1, 2]
    for index, prompt in enumerate(prompts):
        assert prompt in by_index[index]


async def test_embeddings_with_a_list_input(client: openai.AsyncOpenAI) -> None:
    reply = await client.embeddings.create(model="sim-embed", input=["alpha", "beta", "alpha"])
    vectors = [item.embedding for item in sorted(reply.data, key=lambda item: item.index)]
    assert len(vectors) == 3
    assert vectors[0] == vectors[2] != vectors[1]


async def test_process_prompt_answers_through_chat(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway.url) as http:
        response = await http.post("/process_prompt", json={"text": "How do I reset my password?"})
    assert response.status_code == 200
    assert "How do I reset my password?" in response.json()["response"]


async def test_every_response_has_a_request_id_and_the_clients_is_kept(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway.url) as http:
        mine = await http.post(
            "/v1/embeddings",
            json={"model": "m", "input": [1, 2, 3]},  # token ids: relayed, not cached
            headers={"x-request-id": "my-trace-42"},
        )
        fresh = await http.get("/healthz")
        error = await http.get("/no/such/route")
    assert mine.headers["x-request-id"] == "my-trace-42"
    assert fresh.headers["x-request-id"].startswith("req_")
    assert error.headers["x-request-id"].startswith("req_")
    assert mine.headers["x-frugal-cache"] == "bypass"


async def test_health_and_readiness(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).status_code == 200


async def test_upstream_key_never_leaves_the_upstream_call(
    stack: Stack, client: openai.AsyncOpenAI
) -> None:
    # The simulator refuses calls without the canary key, so every success proves it was sent.
    reply = await client.chat.completions.create(
        model="sim-small", messages=[{"role": "user", "content": "is the key sent?"}]
    )
    assert reply.choices[0].message.content
    async with httpx.AsyncClient(base_url=stack.gateway.url) as http:
        responses = [
            await http.post("/v1/chat/completions", json={"model": "m", "messages": []}),
            await http.post("/v1/chat/completions", content=b"{oops"),
            await http.get("/readyz"),
            await http.get("/openapi.json"),
        ]
    for response in responses:
        assert CANARY_KEY not in response.text
        assert CANARY_KEY not in str(response.headers)
    assert CANARY_KEY not in stack.gateway.log()
