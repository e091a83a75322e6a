"""Structured output and tool calls through the cache: the official `openai` SDK against
`frugal serve` in front of `frugal sim`. A structured answer is cached like any other; a tool
call only with ``FRUGAL_CACHE_STORE_TOOL_CALLS``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.conftest import Stack, StackFactory

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"


class City(BaseModel):
    name: str
    population: int


class Answer(BaseModel):
    capital: City
    neighbours: list[str]
    certain: bool


WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def fresh(stack: Stack) -> Stack:
    return stack.emptied()


@pytest.fixture(scope="module")
def storing_tool_calls(make_stack: StackFactory) -> Stack:
    return make_stack(env={"FRUGAL_CACHE_STORE_TOOL_CALLS": "true"})


def sdk(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.base_url, api_key="k", max_retries=0)


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with sdk(stack) as opened:
        yield opened


async def test_a_parsed_structured_answer_on_a_miss_and_on_a_hit(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    parsed, outcomes = [], []
    for text in (FRANCE, FRANCE_PARAPHRASE):
        raw = await client.chat.completions.with_raw_response.parse(
            model="sim-small", messages=[{"role": "user", "content": text}], response_format=Answer
        )
        outcomes.append(raw.headers["x-frugal-cache"])
        message = raw.parse().choices[0].message
        assert isinstance(message.parsed, Answer)
        parsed.append(message.parsed)
    assert outcomes == ["miss", "hit"]
    assert parsed[1] == parsed[0]
    assert fresh.sim_stats()["calls"] == 1


async def test_two_schemas_never_share_an_answer(fresh: Stack, client: openai.AsyncOpenAI) -> None:
    for schema in (Answer, City):
        raw = await client.chat.completions.with_raw_response.parse(
            model="sim-small",
            messages=[{"role": "user", "content": FRANCE}],
            response_format=schema,
        )
        assert raw.headers["x-frugal-cache"] == "miss"
        assert isinstance(raw.parse().choices[0].message.parsed, schema)
    assert fresh.sim_stats()["calls"] == 2


async def ask_for_weather(client: openai.AsyncOpenAI, text: str) -> tuple[Any, str]:
    raw = await client.chat.completions.with_raw_response.create(
        model="sim-small",
        messages=[{"role": "user", "content": text}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
    )
    return raw.parse(), raw.headers["x-frugal-cache"]


async def test_a_required_tool_call_comes_back_as_a_tool_call_and_is_not_stored_by_default(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    outcomes = []
    for _ in range(2):
        reply, outcome = await ask_for_weather(client, "What's the weather in Paris?")
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        (call,) = choice.message.tool_calls
        assert call.function.name == "get_weather"
        arguments = json.loads(call.function.arguments)
        assert arguments.keys() == {"city", "unit", "days"}
        assert arguments["unit"] in ("celsius", "fahrenheit") and isinstance(arguments["days"], int)
        outcomes.append(outcome)
    assert outcomes == ["miss", "miss"]
    assert fresh.sim_stats()["calls"] == 2


async def test_a_tool_call_is_served_from_the_cache_when_tool_calls_are_stored(
    storing_tool_calls: Stack,
) -> None:
    storing_tool_calls.emptied()
    async with sdk(storing_tool_calls) as client:
        first, first_outcome = await ask_for_weather(client, "What's the weather in Paris?")
        second, second_outcome = await ask_for_weather(client, "What is the weather in Paris?")
    assert (first_outcome, second_outcome) == ("miss", "hit")
    assert second.choices[0].message.tool_calls == first.choices[0].message.tool_calls
    assert storing_tool_calls.sim_stats()["calls"] == 1
