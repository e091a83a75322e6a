"""The wire format of chat completions, completions and embeddings: parsing calls, building
whole answers (a stream's chunks: `frugal.sim.chunks`).

Answers are ``"[MODEL] Answer to: PROMPT"``, in the shape a chat asked for
(`frugal.sim.structured`); tokens are whitespace-separated words.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from frugal.sim.fields import boolean, integer, json_body, model_of
from frugal.sim.rejected import invalid
from frugal.sim.routes import CHAT, EMBEDDINGS
from frugal.sim.structured import TEXT, Output, chat_output, new_call_id, render

DEFAULT_EMBEDDING_DIMENSIONS = 16
_MAX_TOKENS = 1 << 20


def count_tokens(text: str) -> int:
    """The simulator's token count: whitespace-separated words (``"a b  c"`` is 3)."""
    return len(text.split())


def embedding_of(text: str, dimensions: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    return (vector / np.linalg.norm(vector)).astype("<f4")


# -- the request body ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Call:
    """A valid call: its items (prompts answered or inputs embedded) and how to answer them."""

    endpoint: str
    model: str
    items: list[str]
    screened: list[str]  # every text reject_containing looks at
    prompt_tokens: int
    max_tokens: int | None = None
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS
    base64: bool = False
    output: Output = TEXT  # a chat's response_format or forced tool call


def _texts(value: object, param: str) -> list[str]:
    """A ``prompt`` or ``input``: a string, a list of strings, or token lists (their str form)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise invalid(f"'{param}' must be a string or a non-empty list.", param)
    if all(isinstance(x, str) for x in value):
        return list(value)
    if all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        return [str(value)]
    if all(isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in value):
        return [str(x) for x in value]
    raise invalid(f"'{param}' must hold strings or lists of token ids.", param)


def _message(message: object, i: int) -> tuple[str, str]:
    """A chat message's role and text (its text parts joined by spaces)."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise invalid(f"messages[{i}] must be an object with a 'role'.", f"messages[{i}]")
    content, param = message.get("content"), f"messages[{i}].content"
    if content is None or isinstance(content, str):
        return message["role"], content or ""
    if not isinstance(content, list):
        raise invalid("'content' must be a string or a list of parts.", param)
    if not all(isinstance(part, dict) and isinstance(part.get("type"), str) for part in content):
        raise invalid("Each content part must be an object with a 'type'.", param)
    texts = [part.get("text") for part in content if part["type"] == "text"]
    if not all(isinstance(text, str) for text in texts):
        raise invalid("A text part must have a string 'text'.", param)
    return message["role"], " ".join(texts)


def parse_call(endpoint: str, raw: bytes) -> Call:
    """Validate a body; raises `Rejected` (400) naming the bad field."""
    body = json_body(raw)
    model = model_of(body)

    if endpoint == EMBEDDINGS:
        inputs = _texts(body.get("input"), "input")
        if "" in inputs:
            raise invalid("'input' cannot contain an empty string.", "input")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise invalid("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
        dimensions = integer(body, "dimensions", 4096)
        return Call(
            endpoint=endpoint,
            model=model,
            items=inputs,
            screened=inputs,
            prompt_tokens=sum(map(count_tokens, inputs)),
            dimensions=DEFAULT_EMBEDDING_DIMENSIONS if dimensions is None else dimensions,
            base64=encoding == "base64",
        )

    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise invalid("'stream_options' must be an object.", "stream_options")
    max_tokens = integer(body, "max_tokens", _MAX_TOKENS)
    n = integer(body, "n", 128)
    if endpoint == CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise invalid("'messages' is required and must be a non-empty list.", "messages")
        turns = [_message(message, i) for i, message in enumerate(messages)]
        screened = [text for _, text in turns]
        users = [text for role, text in turns if role == "user"]
        items = (users or screened)[-1:]
        newer = integer(body, "max_completion_tokens", _MAX_TOKENS)
        max_tokens = max_tokens if newer is None else newer
        output = chat_output(body)
    else:
        items = screened = _texts(body.get("prompt"), "prompt")
        output = TEXT
    return Call(
        endpoint=endpoint,
        model=model,
        items=items,
        screened=screened,
        prompt_tokens=sum(map(count_tokens, screened)),
        max_tokens=max_tokens,
        n=1 if n is None else n,
        stream=boolean(body, "stream"),
        include_usage=boolean(options, "include_usage", "stream_options.include_usage"),
        output=output,
    )


# -- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    index: int
    words: list[str]  # tokens with their trailing whitespace: joined, they are the answer
    finish_reason: str
    call_id: str | None = None  # a forced tool call's id: the words are its arguments
    name: str | None = None  # the function that call calls


def make_choices(call: Call) -> list[Choice]:
    """``n`` choices per prompt; choice ``p * n + j`` is the j-th answer to prompt ``p``.

    Raises `Rejected` (400) when the schema the call gave cannot be filled.
    """
    choices = []
    calls = call.output.kind == "function"
    for p, prompt in enumerate(call.items):
        words = re.findall(r"\S+\s*", render(call.output, f"[{call.model}] Answer to: {prompt}"))
        cut = call.max_tokens is not None and len(words) > call.max_tokens
        if cut:
            words = words[: call.max_tokens]
            words[-1] = words[-1].rstrip()
        finish_reason = "length" if cut else "tool_calls" if calls else "stop"
        for j in range(call.n):
            call_id, name = (new_call_id(), call.output.name) if calls else (None, None)
            choices.append(Choice(p * call.n + j, words, finish_reason, call_id, name))
    return choices


def usage_of(call: Call, choices: list[Choice]) -> dict[str, int]:
    prompt, completion = call.prompt_tokens, sum(len(choice.words) for choice in choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chunk_head(call: Call, *, chunk: bool) -> dict[str, Any]:
    chat = call.endpoint == CHAT
    kind = ("chat.completion.chunk" if chunk else "chat.completion") if chat else "text_completion"
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
        "object": kind,
        "created": int(time.time()),
        "model": call.model,
    }


def answer_body(call: Call, choices: list[Choice]) -> dict[str, Any]:
    """The whole (unstreamed) response body of a valid call."""
    if call.endpoint == EMBEDDINGS:
        data = []
        for i, text in enumerate(call.items):
            vector = embedding_of(text, call.dimensions)
            encoded = base64.b64encode(vector.tobytes()).decode() if call.base64 else None
            embedding = vector.tolist() if encoded is None else encoded
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        usage = {"prompt_tokens": call.prompt_tokens, "total_tokens": call.prompt_tokens}
        return {"object": "list", "data": data, "model": call.model, "usage": usage}
    answers = []
    for choice in choices:
        text = "".join(choice.words)
        answer: dict[str, Any] = {"index": choice.index}
        if call.endpoint == CHAT:
            answer["message"] = message(choice, text)
        else:
            answer["text"] = text
        answers.append({**answer, "finish_reason": choice.finish_reason, "logprobs": None})
    return {**chunk_head(call, chunk=False), "choices": answers, "usage": usage_of(call, choices)}


def message(choice: Choice, text: str) -> dict[str, Any]:
    """A chat answer's ``message``: its text, or the tool call it makes (content null)."""
    if choice.call_id is None:
        return {"role": "assistant", "content": text}
    function = {"name": choice.name, "arguments": text}
    tool_call = {"id": choice.call_id, "type": "function", "function": function}
    return {"role": "assistant", "content": None, "tool_calls": [tool_call]}
