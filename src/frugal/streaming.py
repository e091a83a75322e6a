"""Server-Sent Events in OpenAI's streaming format: split, assemble, replay.

- `EventSplitter` cuts a byte stream into whole events (``data: ...\\n\\n``) as they arrive, so
  a relay can forward each event unchanged and still read it.
- `StreamAssembler` rebuilds the complete answer (a ``chat.completion`` or ``text_completion``
  body) from the chunks of a stream, so a streamed miss can be cached like any other.
- `replay` turns a complete answer back into the events of a stream, so a cached answer can be
  served to a client that asked for ``stream: true``.
"""

from __future__ import annotations

import enum
import json
from typing import Any

DONE = b"data: [DONE]\n\n"


class EventSplitter:
    """Feeds bytes in, takes whole events out (each ending in a blank line)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data.replace(b"\r\n", b"\n")
        *events, self._buffer = self._buffer.split(b"\n\n")
        return [event + b"\n\n" for event in events if event.strip()]

    def rest(self) -> bytes:
        """Whatever arrived after the last whole event."""
        return self._buffer


def event_data(event: bytes) -> str | None:
    """The ``data`` of one event (its ``data:`` lines joined), or ``None`` when it has none."""
    lines = [
        line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
    ]
    return b"\n".join(lines).decode() if lines else None


def is_usage_only(chunk: dict[str, Any]) -> bool:
    """The closing chunk a provider sends for ``stream_options.include_usage``."""
    return not chunk.get("choices") and chunk.get("usage") is not None


class EventKind(enum.Enum):
    CHUNK = "chunk"
    USAGE = "usage"  # the closing usage-only chunk of ``include_usage``
    DONE = "done"  # ``data: [DONE]``
    OTHER = "other"  # a comment, an error event, or something unreadable


class StreamAssembler:
    """Rebuilds the complete answer from a stream's chunks.

    `result` is ``None`` until the stream has ended with ``[DONE]`` and every choice has a
    finish reason: a stream cut short never passes for a complete answer.
    """

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: dict[str, Any] | None = None
        self._done = False
        self._broken = False

    def add_event(self, event: bytes) -> EventKind:
        """Take one event in; say what it was, so a relay need not parse it again."""
        data = event_data(event)
        if data is None:
            return EventKind.OTHER
        if data.strip() == "[DONE]":
            self._done = True
            return EventKind.DONE
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            self._broken = True
            return EventKind.OTHER
        if not isinstance(chunk, dict) or "error" in chunk:
            self._broken = True
            return EventKind.OTHER
        self.add_chunk(chunk)
        return EventKind.USAGE if is_usage_only(chunk) else EventKind.CHUNK

    def add_chunk(self, chunk: dict[str, Any]) -> None:
        for name in ("id", "created", "model", "system_fingerprint", "object"):
            if name in chunk and name not in self._head:
                self._head[name] = chunk[name]
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            merged = self._choices.setdefault(index, {"index": index, "finish_reason": None})
            if choice.get("finish_reason") is not None:
                merged["finish_reason"] = choice["finish_reason"]
            if "text" in choice:  # a completion stream
                merged["text"] = merged.get("text", "") + (choice["text"] or "")
            if "delta" in choice:
                _merge_delta(merged.setdefault("message", {"role": "assistant"}), choice["delta"])

    def result(self) -> dict[str, Any] | None:
        if not self._done or self._broken or not self._choices:
            return None
        if any(choice["finish_reason"] is None for choice in self._choices.values()):
            return None
        is_chat = "message" in next(iter(self._choices.values()))
        choices = []
        for index in sorted(self._choices):
            choice = dict(self._choices[index])
            if is_chat:
                message = choice["message"]
                message.setdefault("content", None)
                if "tool_calls" in message:
                    message["tool_calls"] = [
                        message["tool_calls"][i] for i in sorted(message["tool_calls"])
                    ]
            else:
                choice.setdefault("text", "")
            choice["logprobs"] = None
            choices.append(choice)
        body = {
            "id": self._head.get("id"),
            "object": "chat.completion" if is_chat else "text_completion",
            "created": self._head.get("created"),
            "model": self._head.get("model"),
            "choices": choices,
        }
        if "system_fingerprint" in self._head:
            body["system_fingerprint"] = self._head["system_fingerprint"]
        if self._usage is not None:
            body["usage"] = self._usage
        return body


def _merge_delta(message: dict[str, Any], delta: dict[str, Any]) -> None:
    for name, value in delta.items():
        if name == "role" and value:
            message["role"] = value
        elif name in ("content", "refusal") and value is not None:
            message[name] = message.get(name, "") + value
        elif name == "tool_calls" and value:
            calls: dict[int, dict[str, Any]] = message.setdefault("tool_calls", {})
            for part in value:
                call = calls.setdefault(
                    int(part.get("index", 0)),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if part.get("id"):
                    call["id"] = part["id"]
                if part.get("type"):
                    call["type"] = part["type"]
                function = part.get("function") or {}
                call["function"]["name"] += function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""


def replay(body: dict[str, Any], *, include_usage: bool) -> list[bytes]:
    """The events of a stream that delivers ``body`` (a complete answer), ending in [DONE]."""
    chat = body.get("object") == "chat.completion"
    head = {
        "id": body["id"],
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": body["created"],
        "model": body["model"],
    }
    if "system_fingerprint" in body:
        head["system_fingerprint"] = body["system_fingerprint"]

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n".encode()

    events = []
    for choice in body["choices"]:
        index, finish = choice["index"], choice.get("finish_reason")
        if chat:
            message = choice.get("message") or {}
            events.append(event([_delta(index, {"role": "assistant", "content": ""})]))
            if message.get("content"):
                events.append(event([_delta(index, {"content": message["content"]})]))
            if message.get("tool_calls"):
                calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
                events.append(event([_delta(index, {"tool_calls": calls})]))
            events.append(event([_delta(index, {}, finish)]))
        else:
            text_choice = {"index": index, "text": choice.get("text", ""), "logprobs": None}
            events.append(event([{**text_choice, "finish_reason": finish}]))
    if include_usage and body.get("usage") is not None:
        events.append(event([], usage=body["usage"]))
    events.append(DONE)
    return events


def _delta(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
