"""``/v1/responses``: plain, streamed, stored, structured and tool-calling, through the SDK."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from frugal.sim.response_store import ResponseStore
from tests.sim.serving import SimFactory, sdk, stats

EVENT = TypeAdapter(ResponseStreamEvent)
MESSAGE_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 5,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


class Forecast(BaseModel):
    city: str
    days: int
    hourly: list[float]


class Plan(BaseModel):
    title: str
    forecasts: list[Forecast]
    main: Forecast


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Each event's ``event:`` name and ``data:`` payload."""
    pairs = []
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n")
        pairs.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return pairs


async def test_a_plain_response_answers_the_last_user_text(url: str) -> None:
    conversation: Any = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "an answer"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "again"}]},
    ]
    async with sdk(url) as client:
        plain = await client.responses.create(model="sim-small", input="hello there")
        listed = await client.responses.create(
            model="sim-large", input=conversation, instructions="say it well", temperature=0.2
        )

    assert plain.id.startswith("resp_") and plain.object == "response"
    assert plain.status == "completed" and plain.model == "sim-small"
    assert plain.output_text == "[sim-small] Answer to: hello there"
    [item] = plain.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert plain.usage is not None
    assert (plain.usage.input_tokens, plain.usage.output_tokens) == (2, 5)
    assert plain.usage.total_tokens == 7
    assert plain.usage.input_tokens_details.cached_tokens == 0
    assert plain.usage.output_tokens_details.reasoning_tokens == 0
    assert (plain.tool_choice, plain.tools, plain.parallel_tool_calls) == ("auto", [], True)

    assert listed.output_text == "[sim-large] Answer to: again"
    assert (listed.instructions, listed.temperature) == ("say it well", 0.2)
    # 2 + 2 + 2 + 1 input words and 3 of instructions.
    assert listed.usage is not None and listed.usage.input_tokens == 10
    counted = stats(url)["endpoints"]["/v1/responses"]
    assert counted == {"calls": 2, "prompts": 2, "tokens": 7 + listed.usage.total_tokens}


async def test_the_wire_body_is_a_valid_response_object(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        body = (await client.post("/v1/responses", json={"model": "m", "input": "x"})).json()
    response = Response.model_validate(body)  # validates every field, unlike the SDK's parse
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "text" and body["store"] is True


async def test_a_streamed_response_sends_openais_events_in_order(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/v1/responses", json={"model": "sim-small", "input": "tell me", "stream": True}
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    pairs = sse(response.text)
    assert [name for name, _ in pairs] == MESSAGE_EVENTS  # and no [DONE]
    assert all(name == data["type"] for name, data in pairs)
    assert [data["sequence_number"] for _, data in pairs] == list(range(len(pairs)))
    for _, data in pairs:
        EVENT.validate_python(data)  # every event in the shape the SDK's types declare
    created, completed = pairs[0][1]["response"], pairs[-1][1]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["usage"] is None and created["id"] == completed["id"]
    deltas = "".join(data["delta"] for name, data in pairs if name.endswith("text.delta"))
    [message] = completed["output"]
    assert deltas == "[sim-small] Answer to: tell me" == message["content"][0]["text"]
    assert completed["usage"]["output_tokens"] == 5


async def test_the_sdk_consumes_a_streamed_response(url: str) -> None:
    async with sdk(url) as client:
        stream = await client.responses.create(model="sim-small", input="tell me", stream=True)
        kinds = [event.type async for event in stream]
        async with client.responses.stream(model="sim-small", input="tell me") as helper:
            deltas = [e async for e in helper if e.type == "response.output_text.delta"]
            text = "".join(delta.delta for delta in deltas)
            final = await helper.get_final_response()
        kept = await client.responses.retrieve(final.id)

    assert kinds == MESSAGE_EVENTS
    assert text == final.output_text == "[sim-small] Answer to: tell me"
    assert kept.output_text == final.output_text  # a stream is stored once complete
    assert stats(url)["endpoints"]["/v1/responses"]["tokens"] == 2 * (2 + 5)


async def test_stored_responses_are_retrieved_and_deleted(url: str) -> None:
    async with sdk(url) as client:
        kept = await client.responses.create(model="sim-small", input="keep me")
        unkept = await client.responses.create(model="sim-small", input="not me", store=False)
        again = await client.responses.retrieve(kept.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(unkept.id)
    async with httpx.AsyncClient(base_url=url) as client:
        deleted = (await client.delete(f"/v1/responses/{kept.id}")).json()
        gone = await client.get(f"/v1/responses/{kept.id}")
        twice = await client.delete(f"/v1/responses/{kept.id}")

    assert again == kept
    assert deleted == {"id": kept.id, "object": "response", "deleted": True}
    assert gone.status_code == twice.status_code == 404
    assert kept.id in gone.json()["error"]["message"]
    assert stats(url)["rejected"]["not_found"] == 3


async def test_previous_response_id_must_name_a_stored_response(url: str) -> None:
    async with sdk(url) as client:
        first = await client.responses.create(model="sim-small", input="one two")
        second = await client.responses.create(
            model="sim-small", input="three", previous_response_id=first.id
        )
        with pytest.raises(openai.BadRequestError) as unknown:
            await client.responses.create(
                model="sim-small", input="x", previous_response_id="resp_unknown"
            )

    assert second.previous_response_id == first.id
    assert first.usage is not None and second.usage is not None
    # The conversation so far counts as input, as OpenAI bills it.
    assert second.usage.input_tokens == first.usage.total_tokens + 1
    assert unknown.value.code == "previous_response_not_found"
    assert unknown.value.param == "previous_response_id"


async def test_max_output_tokens_leaves_the_response_incomplete(url: str) -> None:
    async with sdk(url) as client:
        cut = await client.responses.create(
            model="sim-small", input="a long question", max_output_tokens=3
        )
        stream = await client.responses.create(
            model="sim-small", input="a long question", max_output_tokens=3, stream=True
        )
        last = [event async for event in stream][-1]
    assert cut.status == "incomplete" and cut.output_text == "[sim-small] Answer to:"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert last.type == "response.incomplete"


async def test_text_format_json_schema_parses_into_the_model(url: str) -> None:
    async with sdk(url) as client:
        parsed = await client.responses.parse(model="sim-small", input="plan it", text_format=Plan)
        as_object = await client.responses.create(
            model="sim-small", input="plan it", text={"format": {"type": "json_object"}}
        )
    assert isinstance(parsed.output_parsed, Plan)
    assert parsed.output_parsed.main.city == "[sim-small] Answer to: plan it"
    assert parsed.output_parsed.forecasts == []
    assert json.loads(as_object.output_text) == {"answer": "[sim-small] Answer to: plan it"}


@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "name": "forecast"}], ids=["required", "named"]
)
async def test_a_forced_function_call_is_an_output_item(url: str, tool_choice: Any) -> None:
    tools: Any = [
        {"type": "web_search"},  # a hosted tool: accepted, never called
        {"type": "function", "name": "forecast", "parameters": Forecast.model_json_schema()},
    ]
    async with sdk(url) as client:
        reply = await client.responses.create(
            model="sim-small", input="weather?", tools=tools, tool_choice=tool_choice
        )
        stream = await client.responses.create(
            model="sim-small", input="weather?", tools=tools, tool_choice=tool_choice, stream=True
        )
        events = [event async for event in stream]

    [call] = reply.output
    assert call.type == "function_call" and call.name == "forecast"
    assert call.call_id.startswith("call_")
    assert Forecast.model_validate_json(call.arguments).city == "[sim-small] Answer to: weather?"
    kinds = [event.type for event in events]
    assert kinds[2] == "response.output_item.added"
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    Forecast.model_validate_json("".join(deltas))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": [3]}, "input[0]"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": "user", "content": 3}]}, "input[0].content"),
        ({"input": "x"}, "model"),
        ({"model": "m", "input": "x", "instructions": 3}, "instructions"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "m", "input": "x", "store": "yes"}, "store"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"model": "m", "input": "x", "tool_choice": "required"}, "tool_choice"),
    ],
)
async def test_bad_response_bodies_get_a_400_naming_the_field(
    url: str, body: dict[str, Any], param: str
) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/v1/responses", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_a_dropped_stream_stores_nothing(make_sim: SimFactory) -> None:
    url = make_sim(drop_rate=1.0)
    received = []
    async with httpx.AsyncClient(base_url=url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            body = {"model": "m", "input": "x", "stream": True}
            async with client.stream("POST", "/v1/responses", json=body) as response:
                async for line in response.aiter_lines():
                    received.append(line)
    [created] = [json.loads(line[6:]) for line in received if '"response.created"' in line]
    async with httpx.AsyncClient(base_url=url) as client:
        lookup = await client.get(f"/v1/responses/{created['response']['id']}")
    assert lookup.status_code == 404  # an unknown id fails before any drop
    assert not any("response.completed" in line for line in received)
    assert stats(url)["rejected"]["dropped"] == 1 and stats(url)["tokens"] == 0


def test_the_store_keeps_the_newest_responses() -> None:
    store = ResponseStore(capacity=2)
    for i in range(3):
        store.put({"id": f"resp_{i}"})
    assert store.get("resp_0") is None
    assert store.get("resp_1") == {"id": "resp_1"} and store.get("resp_2") == {"id": "resp_2"}
