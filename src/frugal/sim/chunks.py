"""Streamed chat completions and completions: their chunks, as OpenAI sends them.

A chat stream opens with a role delta per choice (for a tool call: its id, type, name and
``"arguments": ""``), then sends a word per chunk (a tool call's argument fragments), a closing
chunk with the finish reason per choice, the usage chunk when ``stream_options.include_usage``
asked for it, and ``data: [DONE]``.
"""

from __future__ import annotations

import json
from typing import Any

from frugal.sim.job import Streamed
from frugal.sim.routes import CHAT
from frugal.sim.wire import Call, Choice, chunk_head, usage_of


def streamed(call: Call, choices: list[Choice]) -> Streamed:
    """The events of a streamed answer: every choice advances one word per step."""
    head = chunk_head(call, chunk=True)
    if call.include_usage:
        head["usage"] = None  # as OpenAI sends on every chunk but the last
    opening = [chunk_event(head, c, None) for c in choices] if call.endpoint == CHAT else []
    steps = max(len(choice.words) for choice in choices)
    words = [
        [chunk_event(head, c, c.words[step]) for c in choices if step < len(c.words)]
        for step in range(steps)
    ]
    tail = [chunk_event(head, c, "", c.finish_reason) for c in choices]
    if call.include_usage:
        tail.append(sse_event({**head, "choices": [], "usage": usage_of(call, choices)}))
    return Streamed(head=opening, steps=words, tail=[*tail, b"data: [DONE]\n\n"])


def chunk_event(
    head: dict[str, Any], choice: Choice, text: str | None, finish: str | None = None
) -> bytes:
    """One SSE event of a stream; for a chat, ``text=None`` is the opening role delta."""
    if head["object"] == "text_completion":
        body: dict[str, Any] = {"index": choice.index, "text": text or ""}
    else:
        body = {"index": choice.index, "delta": _delta(choice, text)}
    return sse_event({**head, "choices": [{**body, "finish_reason": finish, "logprobs": None}]})


def _delta(choice: Choice, text: str | None) -> dict[str, Any]:
    if choice.call_id is None:
        if text is None:
            return {"role": "assistant", "content": ""}
        return {"content": text} if text else {}
    if text is None:
        function = {"name": choice.name, "arguments": ""}
        call = {"index": 0, "id": choice.call_id, "type": "function", "function": function}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    return {"tool_calls": [{"index": 0, "function": {"arguments": text}}]} if text else {}


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
