"""A streamed Responses API answer: the typed events OpenAI sends, each as ``event: TYPE`` and
``data: {..., "type", "sequence_number"}``; no ``[DONE]`` follows the last.

``response.created`` and ``response.in_progress`` (the response in progress, without output or
usage), ``response.output_item.added``; for a message ``response.content_part.added``, an
``response.output_text.delta`` per word, ``response.output_text.done`` and
``response.content_part.done``; for a function call a
``response.function_call_arguments.delta`` per word and ``...arguments.done``; then
``response.output_item.done`` and ``response.completed`` (``response.incomplete`` when
``max_output_tokens`` cut it) carrying the whole response with its usage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from frugal.sim.job import Streamed


def streamed(
    *,
    response: dict[str, Any],
    item: dict[str, Any],
    words: list[str],
    on_complete: Callable[[], None] | None = None,
) -> Streamed:
    """The events that stream ``response``, whose one output ``item`` holds ``words``."""
    events = _Events()
    ids = {"item_id": item["id"], "output_index": 0}
    running = {**response, "status": "in_progress", "completed_at": None, "output": []}
    running.update(usage=None, incomplete_details=None)
    head = [
        events("response.created", response=running),
        events("response.in_progress", response=running),
    ]
    head.append(events("response.output_item.added", output_index=0, item=_started(item)))
    if item["type"] == "message":
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        head.append(events("response.content_part.added", **ids, content_index=0, part=part))
        steps = [
            [events("response.output_text.delta", **ids, content_index=0, delta=w, logprobs=[])]
            for w in words
        ]
        text = item["content"][0]["text"]
        tail = [
            events("response.output_text.done", **ids, content_index=0, text=text, logprobs=[]),
            events("response.content_part.done", **ids, content_index=0, part=item["content"][0]),
        ]
    else:
        steps = [[events("response.function_call_arguments.delta", **ids, delta=w)] for w in words]
        arguments = item["arguments"]
        tail = [events("response.function_call_arguments.done", **ids, arguments=arguments)]
    tail.append(events("response.output_item.done", output_index=0, item=item))
    last = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    tail.append(events(last, response=response))
    return Streamed(head=head, steps=steps, tail=tail, on_complete=on_complete)


def _started(item: dict[str, Any]) -> dict[str, Any]:
    """The output item as ``output_item.added`` shows it: in progress, nothing written yet."""
    empty: dict[str, Any] = {"content": []} if item["type"] == "message" else {"arguments": ""}
    return {**item, "status": "in_progress", **empty}


class _Events:
    """Numbers the events it makes in the order it makes them, from 0."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._next, **fields}
        self._next += 1
        payload = json.dumps(data, separators=(",", ":"))
        return f"event: {kind}\ndata: {payload}\n\n".encode()
