"""Provider failures reach the client as the SDK's own exceptions; the sim counts retries."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from frugal.api.app import create_app
from frugal.config import load_settings
from tests.conftest import Stack
from tests.conftest import StackFactory as _AnyStack

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="module")
def make_stack(make_stack: _AnyStack) -> _AnyStack:
    """Stacks with the cache off: every request here must reach the provider."""

    def make(sim_args: list[str] | None = None, env: dict[str, str] | None = None) -> Stack:
        return make_stack(sim_args=sim_args, env={"FRUGAL_CACHE_MODE": "off", **(env or {})})

    return make


StackFactory = _AnyStack


def sdk(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0)


async def test_provider_400_passes_through_unretried(make_stack: StackFactory) -> None:
    stack = make_stack(sim_args=["--reject-containing", "POISON"])
    async with sdk(stack.base_url) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "a POISON pill"}]
            )
    assert "POISON" in caught.value.message
    assert stack.sim_stats()["calls"] == 1


async def test_provider_500s_are_retried_then_become_502(make_stack: StackFactory) -> None:
    stack = make_stack(sim_args=["--error-rate", "1"], env={"FRUGAL_UPSTREAM_MAX_RETRIES": "2"})
    async with sdk(stack.base_url) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(**CHAT)
    assert caught.value.status_code == 502
    assert stack.sim_stats()["calls"] == 3


async def test_dropped_connections_are_retried_then_become_502(make_stack: StackFactory) -> None:
    stack = make_stack(sim_args=["--drop-rate", "1"], env={"FRUGAL_UPSTREAM_MAX_RETRIES": "1"})
    async with sdk(stack.base_url) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.completions.create(model="m", prompt="drop me")
    assert caught.value.status_code == 502
    assert stack.sim_stats()["calls"] == 2


async def test_flaky_provider_is_hidden_by_bounded_retries(make_stack: StackFactory) -> None:
    stack = make_stack(
        sim_args=["--error-rate", "0.4", "--seed", "3"], env={"FRUGAL_UPSTREAM_MAX_RETRIES": "8"}
    )
    async with sdk(stack.base_url) as client:
        for number in range(20):
            prompt = f"question number {number}"
            reply = await client.completions.create(model="m", prompt=prompt)
            assert prompt in reply.choices[0].text
    stats = stack.sim_stats()
    assert stats["rejected"]["errors"] > 0, "the fault flag was in play"
    assert stats["calls"] == 20 + stats["rejected"]["errors"]


async def test_provider_rate_limit_becomes_429_with_retry_after(make_stack: StackFactory) -> None:
    stack = make_stack(sim_args=["--rpm", "1"])
    other = {"role": "user", "content": "Which planet is the largest in the solar system?"}
    async with sdk(stack.base_url) as client:
        await client.chat.completions.create(**CHAT)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="sim-small", messages=[other])
    assert int(caught.value.response.headers["retry-after"]) >= 1
    # Retry-After is longer than the gateway's longest wait: passed on at once, not retried.
    assert stack.sim_stats()["calls"] == 2


async def test_a_provider_that_does_not_answer_in_time_is_504(make_stack: StackFactory) -> None:
    stack = make_stack(
        sim_args=["--slow-rate", "1", "--slow-ms", "3000"], env={"FRUGAL_UPSTREAM_TIMEOUT_S": "0.3"}
    )
    async with sdk(stack.base_url) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.embeddings.create(model="e", input="slow")
    assert caught.value.status_code == 504
    assert stack.sim_stats()["calls"] == 1


async def test_a_stream_is_retried_only_before_its_first_byte(make_stack: StackFactory) -> None:
    failing = make_stack(sim_args=["--error-rate", "1"], env={"FRUGAL_UPSTREAM_MAX_RETRIES": "2"})
    async with sdk(failing.base_url) as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(**CHAT, stream=True)
    assert failing.sim_stats()["calls"] == 3

    dropping = make_stack(sim_args=["--drop-rate", "1"], env={"FRUGAL_UPSTREAM_MAX_RETRIES": "2"})
    received: list[str] = []
    async with sdk(dropping.base_url) as client:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "a long answer " * 10}], stream=True
        )
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                received.extend(choice.delta.content or "" for choice in chunk.choices)
    assert "".join(received), "part of the answer was relayed before the drop"
    assert dropping.sim_stats()["calls"] == 1


async def test_an_unreachable_provider_is_502(make_stack: StackFactory) -> None:
    stack = make_stack(env={"FRUGAL_UPSTREAM_MAX_RETRIES": "1"})
    stack.sim.stop()
    async with httpx.AsyncClient(base_url=stack.gateway.url) as http:
        response = await http.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"


@pytest.mark.parametrize(
    "answer",
    [
        {"id": "x", "object": "chat.completion"},  # no choices
        {"choices": []},
        {"choices": [{"index": 0, "message": {"role": "assistant"}, "finish_reason": "stop"}]},
        {"choices": [{"index": 0, "message": {"content": None}, "finish_reason": "stop"}]},
    ],
)
async def test_process_prompt_reports_an_answer_without_text_as_a_502_error(
    answer: dict[str, Any],
) -> None:
    """`/process_prompt` needs the first choice's text; a provider's 200 without it is the
    provider's failure (502), recorded as an error, never a 500 or a request "answered"."""
    settings = load_settings(upstream_base_url="http://provider.test/v1", cache_mode="off")
    provider = httpx.MockTransport(lambda _: httpx.Response(200, json=answer))
    app = create_app(settings, transport=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://frugal.test") as http:
            response = await http.post("/process_prompt", json={"text": "hello"})
        summary = app.state.gateway.observer.summary.report()["since_start"]
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_bad_answer")
    assert summary["outcomes"]["error"] == 1 and summary["requests"] == 1
