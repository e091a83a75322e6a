"""The Responses API's event stream: assemble a streamed answer, replay a stored one.

A Responses stream is a sequence of typed events (``event: <type>`` and ``data: {...,
"type", "sequence_number"}``), from ``response.created`` to ``response.completed``, whose
``response`` is the whole answer; there is no ``[DONE]``.

- `ResponseAssembler` keeps that whole answer from the ``response.completed`` event, so a
  streamed miss can be cached like any other; a stream that fails (``error``,
  ``response.failed``, ``response.incomplete``) or is cut short never passes for one.
- `replay_response` turns a stored answer back into the events OpenAI sends for it, so a cached
  answer can be served to a client that asked to stream.
"""

from __future__ import annotations

import json
from typing import Any

from frugal.streaming import EventKind, event_data

COMPLETED = "response.completed"
_FAILED = frozenset({"error", "response.failed", "response.incomplete"})


class ResponseAssembler:
    """The complete answer of a Responses stream; `result` is ``None`` until it completed."""

    def __init__(self) -> None:
        self._response: dict[str, Any] | None = None
        self._broken = False

    def add_event(self, event: bytes) -> EventKind:
        """Take one event in; `EventKind.DONE` for the one that completes the answer."""
        data = event_data(event)
        if data is None:
            return EventKind.OTHER
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            self._broken = True
            return EventKind.OTHER
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind in _FAILED or not isinstance(kind, str):
            self._broken = True
            return EventKind.OTHER
        if kind == COMPLETED and isinstance(payload.get("response"), dict):
            self._response = payload["response"]
            return EventKind.DONE
        return EventKind.CHUNK

    def result(self) -> dict[str, Any] | None:
        return None if self._broken else self._response


def replay_response(body: dict[str, Any]) -> list[bytes]:
    """The events of a stream that delivers ``body``, a completed Responses API answer.

    Example: ``replay_response(answer)[-1]`` is the ``response.completed`` event carrying
    ``answer``, usage included.
    """
    events: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": len(events), **fields}
        events.append(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())

    starting = {**body, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=starting)
    emit("response.in_progress", response=starting)
    for index, item in enumerate(body.get("output") or []):
        _replay_item(emit, index, item)
    emit(COMPLETED, response=body)
    return events


def _replay_item(emit: Any, index: int, item: dict[str, Any]) -> None:
    kind = item.get("type")
    where = {"item_id": item.get("id", ""), "output_index": index}
    if kind == "message":
        emit(
            "response.output_item.added",
            output_index=index,
            item={**item, "status": "in_progress", "content": []},
        )
        for number, part in enumerate(item.get("content") or []):
            at = {**where, "content_index": number}
            if part.get("type") == "output_text":
                emit("response.content_part.added", **at, part={**part, "text": ""})
                emit("response.output_text.delta", **at, delta=part["text"], logprobs=[])
                emit("response.output_text.done", **at, text=part["text"], logprobs=[])
            elif part.get("type") == "refusal":
                emit("response.content_part.added", **at, part={**part, "refusal": ""})
                emit("response.refusal.delta", **at, delta=part["refusal"])
                emit("response.refusal.done", **at, refusal=part["refusal"])
            else:
                emit("response.content_part.added", **at, part=part)
            emit("response.content_part.done", **at, part=part)
    elif kind == "function_call":
        added = {**item, "status": "in_progress", "arguments": ""}
        emit("response.output_item.added", output_index=index, item=added)
        arguments = item.get("arguments", "")
        emit("response.function_call_arguments.delta", **where, delta=arguments)
        emit("response.function_call_arguments.done", **where, arguments=arguments)
    else:  # reasoning and the rest arrive whole
        emit("response.output_item.added", output_index=index, item=item)
    emit("response.output_item.done", output_index=index, item=item)
