"""Structured output and forced tool calls on chat completions, through the openai SDK."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.sim.serving import CHAT, chat_body, events, sdk, stats

QUESTION = [{"role": "user", "content": "solve it"}]
ANSWER = "[sim-small] Answer to: solve it"


class Step(BaseModel):
    explanation: str
    output: int


class Solution(BaseModel):
    steps: list[Step]
    final_answer: str
    check: Step


class Weather(BaseModel):
    city: str
    days: int
    units: list[str]


WEATHER_PARAMETERS = Weather.model_json_schema()


def function(name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters or {}}}


async def test_parse_with_a_pydantic_model_gives_the_parsed_object(url: str) -> None:
    async with sdk(url) as client:
        reply = await client.chat.completions.parse(
            model="sim-small", messages=QUESTION, response_format=Solution
        )
    [choice] = reply.choices
    assert choice.finish_reason == "stop"
    parsed = choice.message.parsed
    assert isinstance(parsed, Solution)
    assert parsed.final_answer == ANSWER and parsed.check == Step(explanation=ANSWER, output=0)
    assert parsed.steps == []
    # Usage counts the JSON text's words, like any answer.
    content = choice.message.content or ""
    assert reply.usage is not None and reply.usage.completion_tokens == len(content.split())


async def test_json_object_answers_a_json_object_holding_the_answer(url: str) -> None:
    async with sdk(url) as client:
        reply = await client.chat.completions.create(
            model="sim-small", messages=QUESTION, response_format={"type": "json_object"}
        )
    assert json.loads(reply.choices[0].message.content or "") == {"answer": ANSWER}


async def test_streamed_json_schema_joins_into_the_same_json(url: str) -> None:
    form = {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER_PARAMETERS}}
    async with sdk(url) as client:
        whole = await client.chat.completions.create(
            model="sim-small", messages=QUESTION, response_format=form
        )
        stream = await client.chat.completions.create(
            model="sim-small", messages=QUESTION, response_format=form, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == whole.choices[0].message.content
    assert Weather.model_validate_json(text) == Weather(city=ANSWER, days=0, units=[])


WEATHER, OTHER = function("get_weather", WEATHER_PARAMETERS), function("other")
NAMED_UNKNOWN = {"type": "function", "function": {"name": "not_a_tool"}}


@pytest.mark.parametrize(
    ("tools", "tool_choice"),
    [
        ([WEATHER, OTHER], "required"),  # the first function listed
        ([OTHER, WEATHER], {"type": "function", "function": {"name": "get_weather"}}),
    ],
    ids=["required", "named"],
)
async def test_a_forced_tool_call_has_arguments_that_fit_the_function(
    url: str, tools: list[Any], tool_choice: Any
) -> None:
    async with sdk(url) as client:
        reply = await client.chat.completions.create(
            model="sim-small", messages=QUESTION, tools=tools, tool_choice=tool_choice
        )
    [choice] = reply.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert Weather.model_validate_json(call.function.arguments).city == ANSWER


async def test_parse_fills_a_strict_pydantic_tool(url: str) -> None:
    async with sdk(url) as client:
        reply = await client.chat.completions.parse(
            model="sim-small",
            messages=QUESTION,
            tools=[openai.pydantic_function_tool(Solution)],
            tool_choice="required",
        )
    [call] = reply.choices[0].message.tool_calls or []
    assert isinstance(call.function.parsed_arguments, Solution)
    assert call.function.parsed_arguments.final_answer == ANSWER


async def test_a_streamed_tool_call_arrives_as_openai_streams_it(url: str) -> None:
    body = chat_body("solve it", tools=[function("get_weather", WEATHER_PARAMETERS)])
    body["tool_choice"] = "required"
    async with httpx.AsyncClient(base_url=url) as client:
        raw = events((await client.post(CHAT, json={**body, "stream": True})).text)
    assert raw[-1] == "[DONE]"
    deltas = [payload["choices"][0]["delta"] for payload in raw[:-1]]
    opening = deltas[0]
    assert opening["role"] == "assistant" and opening["content"] is None
    [call] = opening["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": ""}
    assert call["index"] == 0 and call["type"] == "function" and call["id"].startswith("call_")
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:-1]]
    assert len(fragments) > 1 and all(d["tool_calls"][0]["index"] == 0 for d in deltas[1:-1])
    assert Weather.model_validate_json("".join(fragments)).city == ANSWER
    assert deltas[-1] == {} and raw[-2]["choices"][0]["finish_reason"] == "tool_calls"

    async with sdk(url) as client:  # and the SDK's stream helper puts it back together
        async with client.chat.completions.stream(
            model="sim-small",
            messages=QUESTION,
            tools=[openai.pydantic_function_tool(Solution)],
            tool_choice="required",
        ) as stream:
            final = await stream.get_final_completion()
    [call_back] = final.choices[0].message.tool_calls or []
    assert isinstance(call_back.function.parsed_arguments, Solution)


@pytest.mark.parametrize("tool_choice", ["auto", "none", None])
async def test_a_tool_the_model_may_skip_keeps_the_plain_answer(
    url: str, tool_choice: str | None
) -> None:
    body = chat_body("solve it", tools=[function("get_weather", WEATHER_PARAMETERS)])
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    async with httpx.AsyncClient(base_url=url) as client:
        reply = (await client.post(CHAT, json=body)).json()
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": ANSWER}
    assert reply["choices"][0]["finish_reason"] == "stop"


async def test_max_tokens_cuts_json_with_finish_reason_length(url: str) -> None:
    async with sdk(url) as client:
        with pytest.raises(openai.LengthFinishReasonError):
            await client.chat.completions.parse(
                model="sim-small", messages=QUESTION, response_format=Solution, max_tokens=3
            )


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [OTHER], "tool_choice": {"type": "function"}}, "tool_choice"),
        ({"tools": [OTHER], "tool_choice": NAMED_UNKNOWN}, "tool_choice"),
        ({"tools": [OTHER], "tool_choice": "always"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function"),
        ({"tools": "f"}, "tools"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": 3}}},
            "response_format.json_schema.schema",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "n", "schema": {"$ref": "#/$defs/Nothing"}},
                }
            },
            "response_format.json_schema.schema",
        ),
    ],
)
async def test_bad_structured_requests_get_a_400_naming_the_field(
    url: str, extra: dict[str, Any], param: str
) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(CHAT, json=chat_body("x", **extra))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert stats(url)["rejected"]["bad_request"] == 1
