"""SSE splitting, stream assembly and replay."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from frugal.streaming import DONE, EventSplitter, StreamAssembler, event_data, replay

CHAT_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital."},
            "finish_reason": "stop",
            "logprobs": None,
        },
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
}


def event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def assemble(events: list[bytes]) -> dict[str, Any] | None:
    assembler = StreamAssembler()
    for item in events:
        assembler.add_event(item)
    return assembler.result()


def test_replay_then_assemble_gives_back_the_answer() -> None:
    assert assemble(replay(CHAT_ANSWER, include_usage=True)) == CHAT_ANSWER


def test_replay_without_usage_has_no_usage_event() -> None:
    events = replay(CHAT_ANSWER, include_usage=False)
    assert events[-1] == DONE
    assert all("usage" not in json.loads(event_data(e)) for e in events[:-1])


def test_completion_answers_replay_and_assemble() -> None:
    answer = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "text": "an answer", "finish_reason": "stop", "logprobs": None}],
    }
    events = replay(answer, include_usage=False)
    assert json.loads(event_data(events[0]))["object"] == "text_completion"
    assert assemble(events) == answer


def test_tool_call_deltas_are_merged_by_index() -> None:
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def delta(d: dict[str, Any], finish: str | None = None) -> bytes:
        return event({**head, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]})

    events = [
        delta({"role": "assistant", "content": None}),
        delta(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_", "arguments": ""},
                    }
                ]
            }
        ),
        delta(
            {"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": '{"city":'}}]}
        ),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}),
        delta({}, "tool_calls"),
        DONE,
    ]
    message = assemble(events)["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]


def test_a_stream_without_done_or_finish_is_never_complete() -> None:
    events = replay(CHAT_ANSWER, include_usage=False)
    assert assemble(events[:-1]) is None  # no [DONE]
    assert assemble([events[0], events[1], DONE]) is None  # no finish_reason
    assert assemble([*events[:-1], event({"error": {"message": "boom"}}), DONE]) is None


@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_events_survive_any_chunking(cuts: list[int]) -> None:
    stream = b"".join(replay(CHAT_ANSWER, include_usage=True))
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    splitter = EventSplitter()
    events = [e for piece in pieces for e in splitter.feed(piece)]
    assert b"".join(events) == stream
    assert splitter.rest() == b""


def test_crlf_and_multiline_data_are_understood() -> None:
    splitter = EventSplitter()
    events = splitter.feed(b'event: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\n')
    assert [event_data(e) for e in events] == ['{"a":\n1}']


def test_add_event_says_what_each_event_was() -> None:
    from frugal.streaming import EventKind

    assembler = StreamAssembler()
    kinds = [assembler.add_event(e) for e in replay(CHAT_ANSWER, include_usage=True)]
    assert kinds[-2:] == [EventKind.USAGE, EventKind.DONE]
    assert set(kinds[:-2]) == {EventKind.CHUNK}
    assert assembler.add_event(b": keep-alive\n\n") is EventKind.OTHER
