"""The simulated provider's wire format: parsing calls, building answers, SSE events.

Answers are ``"[MODEL] Answer to: PROMPT"``; tokens are whitespace-separated words.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi.responses import JSONResponse

from frugal.errors import error_body

CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
DEFAULT_EMBEDDING_DIMENSIONS = 16
_MAX_TOKENS = 1 << 20


def count_tokens(text: str) -> int:
    """The simulator's token count: whitespace-separated words (``"a b  c"`` is 3)."""
    return len(text.split())


def embedding_of(text: str, dimensions: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    return (vector / np.linalg.norm(vector)).astype("<f4")


class Rejected(Exception):
    """A call answered with an error; ``kind`` names its counter in the stats."""

    def __init__(
        self,
        kind: str,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind, self.status, self.retry_after_s = kind, status, retry_after_s
        self.body = error_body(message, type=type, param=param, code=code)

    def response(self) -> JSONResponse:
        headers = None if self.retry_after_s is None else {"retry-after": str(self.retry_after_s)}
        return JSONResponse(self.body, status_code=self.status, headers=headers)


def _invalid(message: str, param: str | None) -> Rejected:
    return Rejected("bad_request", 400, message, param=param)


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


def _int(body: dict[str, Any], name: str, maximum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    # bool is a subclass of int, but `true` is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise _invalid(f"'{name}' must be an integer in [1, {maximum}], got {value!r}.", name)
    return value


def _bool(body: dict[str, Any], name: str, param: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid(f"'{param}' must be a boolean, got {value!r}.", param)
    return value


def _texts(value: object, param: str) -> list[str]:
    """A ``prompt`` or ``input``: a string, a list of strings, or token lists (their str form)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise _invalid(f"'{param}' must be a string or a non-empty list.", param)
    if all(isinstance(x, str) for x in value):
        return list(value)
    if all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        return [str(value)]
    if all(isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in value):
        return [str(x) for x in value]
    raise _invalid(f"'{param}' must hold strings or lists of token ids.", param)


def _message(message: object, i: int) -> tuple[str, str]:
    """A chat message's role and text (its text parts joined by spaces)."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise _invalid(f"messages[{i}] must be an object with a 'role'.", f"messages[{i}]")
    content, param = message.get("content"), f"messages[{i}].content"
    if content is None or isinstance(content, str):
        return message["role"], content or ""
    if not isinstance(content, list):
        raise _invalid("'content' must be a string or a list of parts.", param)
    if not all(isinstance(part, dict) and isinstance(part.get("type"), str) for part in content):
        raise _invalid("Each content part must be an object with a 'type'.", param)
    texts = [part.get("text") for part in content if part["type"] == "text"]
    if not all(isinstance(text, str) for text in texts):
        raise _invalid("A text part must have a string 'text'.", param)
    return message["role"], " ".join(texts)


def parse_call(endpoint: str, raw: bytes) -> Call:
    """Validate a body; raises `Rejected` (400) naming the bad field."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _invalid("The request body is not valid JSON.", None) from None
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("'model' is required and must be a non-empty string.", "model")

    if endpoint == EMBEDDINGS:
        inputs = _texts(body.get("input"), "input")
        if "" in inputs:
            raise _invalid("'input' cannot contain an empty string.", "input")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise _invalid("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
        dimensions = _int(body, "dimensions", 4096)
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
        raise _invalid("'stream_options' must be an object.", "stream_options")
    max_tokens = _int(body, "max_tokens", _MAX_TOKENS)
    n = _int(body, "n", 128)
    if endpoint == CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _invalid("'messages' is required and must be a non-empty list.", "messages")
        turns = [_message(message, i) for i, message in enumerate(messages)]
        screened = [text for _, text in turns]
        users = [text for role, text in turns if role == "user"]
        items = (users or screened)[-1:]
        newer = _int(body, "max_completion_tokens", _MAX_TOKENS)
        max_tokens = max_tokens if newer is None else newer
    else:
        items = screened = _texts(body.get("prompt"), "prompt")
    return Call(
        endpoint=endpoint,
        model=model,
        items=items,
        screened=screened,
        prompt_tokens=sum(map(count_tokens, screened)),
        max_tokens=max_tokens,
        n=1 if n is None else n,
        stream=_bool(body, "stream", "stream"),
        include_usage=_bool(options, "include_usage", "stream_options.include_usage"),
    )


# -- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    index: int
    words: list[str]  # tokens with their trailing whitespace: joined, they are the answer
    finish_reason: str


def make_choices(call: Call) -> list[Choice]:
    """``n`` choices per prompt; choice ``p * n + j`` is the j-th answer to prompt ``p``."""
    choices = []
    for p, prompt in enumerate(call.items):
        words = re.findall(r"\S+\s*", f"[{call.model}] Answer to: {prompt}")
        cut = call.max_tokens is not None and len(words) > call.max_tokens
        if cut:
            words = words[: call.max_tokens]
            words[-1] = words[-1].rstrip()
        finish_reason = "length" if cut else "stop"
        choices += [Choice(p * call.n + j, words, finish_reason) for j in range(call.n)]
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
            answer["message"] = {"role": "assistant", "content": text}
        else:
            answer["text"] = text
        answers.append({**answer, "finish_reason": choice.finish_reason, "logprobs": None})
    return {**chunk_head(call, chunk=False), "choices": answers, "usage": usage_of(call, choices)}


def chunk_event(
    head: dict[str, Any], index: int, text: str | None, finish: str | None = None
) -> bytes:
    """One SSE event of a stream; for a chat, ``text=None`` is the opening role delta."""
    if head["object"] == "text_completion":
        choice: dict[str, Any] = {"index": index, "text": text or ""}
    elif text is None:
        choice = {"index": index, "delta": {"role": "assistant", "content": ""}}
    else:
        choice = {"index": index, "delta": {"content": text} if text else {}}
    return sse_event({**head, "choices": [{**choice, "finish_reason": finish, "logprobs": None}]})


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
