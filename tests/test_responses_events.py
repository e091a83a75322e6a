"""The Responses API's event stream: a stored answer replays as OpenAI streams it, and a
stream assembles back into the answer only when it completed."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from frugal.responses_events import ResponseAssembler, replay_response
from frugal.streaming import EventKind, EventSplitter

ANSWER: dict[str, Any] = {
    "id": "resp_abc",
    "object": "response",
    "created_at": 1_700_000_000,
    "status": "completed",
    "model": "gpt-4.1-mini",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Paris.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "lookup",
            "arguments": '{"city": "Paris"}',
            "status": "completed",
        },
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 5,
        "output_tokens": 2,
        "total_tokens": 7,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    },
}

EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)


def payloads(events: list[bytes]) -> list[dict[str, Any]]:
    found = []
    for event in events:
        name, data = event.decode().strip().split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}"
        found.append(payload)
    return found


def test_a_replayed_answer_is_the_event_sequence_the_sdk_parses() -> None:
    replayed = payloads(replay_response(ANSWER))
    parsed = [EVENTS.validate_python(payload) for payload in replayed]
    assert [event.sequence_number for event in parsed] == list(range(len(parsed)))
    kinds = [event.type for event in parsed]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    text = "".join(p["delta"] for p in replayed if p["type"] == "response.output_text.delta")
    arguments = "".join(
        p["delta"] for p in replayed if p["type"] == "response.function_call_arguments.delta"
    )
    assert text == "Paris." and arguments == '{"city": "Paris"}'
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done")
    assert Response.model_validate(replayed[-1]["response"]).usage.total_tokens == 7


@pytest.mark.parametrize("cut", [1, 7, 50, 333])
def test_a_replayed_stream_assembles_back_into_its_answer(cut: int) -> None:
    stream = b"".join(replay_response(ANSWER))
    splitter, assembler = EventSplitter(), ResponseAssembler()
    kinds = []
    for start in range(0, len(stream), cut):
        kinds += [assembler.add_event(e) for e in splitter.feed(stream[start : start + cut])]
    assert kinds[-1] is EventKind.DONE and EventKind.DONE not in kinds[:-1]
    assert assembler.result() == ANSWER


@pytest.mark.parametrize("failure", ["error", "response.failed", "response.incomplete"])
def test_a_failed_stream_is_never_an_answer(failure: str) -> None:
    assembler = ResponseAssembler()
    for event in replay_response(ANSWER)[:3]:
        assembler.add_event(event)
    bad = {"type": failure, "sequence_number": 3, "response": {**ANSWER, "status": "failed"}}
    assert assembler.add_event(f"data: {json.dumps(bad)}\n\n".encode()) is EventKind.OTHER
    assembler.add_event(replay_response(ANSWER)[-1])
    assert assembler.result() is None


def test_a_stream_cut_before_it_completed_is_never_an_answer() -> None:
    assembler = ResponseAssembler()
    for event in replay_response(ANSWER)[:-1]:
        assembler.add_event(event)
    assert assembler.result() is None
