"""``POST /v1/responses``, the Responses API: its request and the ``Response`` object it answers.

``input`` is a string or a list of items: messages (``role`` and a string ``content`` or parts,
of which ``input_text``/``output_text`` are read), ``function_call_output`` items (their
``output`` read as text), and any other typed item, accepted and not read. The answer is
``"[MODEL] Answer to: LAST USER TEXT"`` (the last text of any role when no user spoke), in the
shape `frugal.sim.structured` reads from ``text.format``, ``tools`` and ``tool_choice``: a
``message`` output item with one ``output_text`` part, or a ``function_call`` item.

Input tokens are the words of ``instructions`` and of every input text, plus the total tokens
of the ``previous_response_id`` named (the conversation so far), which must be stored: else
OpenAI's 400 ``previous_response_not_found``. ``max_output_tokens`` cuts the answer to that
many words: status ``"incomplete"``, ``incomplete_details.reason`` ``"max_output_tokens"``.
The object repeats the request's settings (``instructions``, ``temperature``, ``tools``,
``tool_choice``, ``text``, ``store``...), as OpenAI's does. Streamed: `frugal.sim.responses_stream`.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from frugal.sim.fields import boolean, integer, json_body, model_of, number
from frugal.sim.job import Job
from frugal.sim.rejected import invalid
from frugal.sim.response_store import ResponseStore
from frugal.sim.responses_stream import streamed
from frugal.sim.structured import Output, new_call_id, render, responses_output
from frugal.sim.wire import count_tokens

_MAX_TOKENS = 1 << 20
_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text")


@dataclass(frozen=True, kw_only=True)
class ResponsesCall:
    """A valid ``POST /v1/responses`` body: what to answer, and the settings to repeat."""

    model: str
    prompt: str  # the text answered
    screened: list[str]  # every text reject_containing looks at
    input_tokens: int
    max_output_tokens: int | None
    stream: bool
    store: bool
    output: Output
    settings: dict[str, Any]  # the request fields the Response object repeats


@dataclass(frozen=True, kw_only=True)
class Answered:
    """A response in its final form; ``words`` are the output item's text, token by token."""

    response: dict[str, Any]
    item: dict[str, Any]
    words: list[str]


def parse_responses(raw: bytes, *, stored: ResponseStore) -> ResponsesCall:
    """Validate a body; raises `Rejected` (400) naming the bad field."""
    body = json_body(raw)
    template = _template(body.get("prompt"))
    # A stored prompt template may name the model and hold the input; the simulator keeps no
    # templates, so it answers "the prompt <id>" with its variables, as the model named (or
    # sim-small).
    model = model_of(body) if template is None or body.get("model") is not None else "sim-small"
    if template is not None and body.get("input") is None:
        turns = [("user", template)]
    else:
        turns = _turns(body.get("input"))
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid("'instructions' must be a string.", "instructions")
    previous_id = body.get("previous_response_id")
    history = 0
    if previous_id is not None:
        previous = stored.get(previous_id) if isinstance(previous_id, str) else None
        if previous is None:
            message = f"Previous response with id '{previous_id}' not found."
            raise invalid(message, "previous_response_id", code="previous_response_not_found")
        history = (previous.get("usage") or {}).get("total_tokens", 0)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("'metadata' must be an object.", "metadata")
    output = responses_output(body)
    texts = [text for _, text in turns]
    users = [text for role, text in turns if role == "user"]
    screened = [*texts, *([instructions] if instructions else [])]
    max_output_tokens = integer(body, "max_output_tokens", _MAX_TOKENS)
    text = body.get("text") or {}
    settings = {
        "instructions": instructions,
        "max_output_tokens": max_output_tokens,
        "metadata": metadata or {},
        "parallel_tool_calls": boolean(body, "parallel_tool_calls", default=True),
        "previous_response_id": previous_id,
        "temperature": _or(number(body, "temperature", 0.0, 2.0), 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium", **text},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": _or(number(body, "top_p", 0.0, 1.0), 1.0),
        "user": body.get("user"),
    }
    store = boolean(body, "store", default=True)
    return ResponsesCall(
        model=model,
        prompt=(users or texts or [""])[-1],
        screened=screened,
        input_tokens=history + sum(map(count_tokens, screened)),
        max_output_tokens=max_output_tokens,
        stream=boolean(body, "stream"),
        store=store,
        output=output,
        settings={**settings, "store": store},
    )


def _template(value: object) -> str | None:
    """A ``prompt`` template reference (``{"id", "variables"?}``) as text, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
        raise invalid("'prompt' must be an object with a non-empty string 'id'.", "prompt")
    variables = value.get("variables") or {}
    if not isinstance(variables, dict):
        raise invalid("'prompt.variables' must be an object.", "prompt.variables")
    named = ", ".join(f"{name}={variables[name]}" for name in sorted(variables))
    return f"the prompt {value['id']}" + (f" ({named})" if named else "")


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _turns(value: object) -> list[tuple[str, str]]:
    """The texts of ``input``, each with its role (``"tool"`` for a function call's output)."""
    if isinstance(value, str):
        return [("user", value)]
    if not isinstance(value, list) or not value:
        raise invalid("'input' is required: a string or a non-empty list of items.", "input")
    turns = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid("Each input item must be an object.", param)
        kind = item.get("type", "message")
        if kind == "message":
            turns.append(_message(item, param))
        elif kind == "function_call_output":
            output = item.get("output")
            turns.append(("tool", output if isinstance(output, str) else ""))
    return turns


def _message(item: dict[str, Any], param: str) -> tuple[str, str]:
    role, content = item.get("role"), item.get("content")
    if role not in _ROLES:
        raise invalid(f"A message's 'role' must be one of {', '.join(_ROLES)}.", f"{param}.role")
    if isinstance(content, str):
        return role, content
    if not isinstance(content, list):
        raise invalid("'content' must be a string or a list of parts.", f"{param}.content")
    if not all(isinstance(part, dict) and isinstance(part.get("type"), str) for part in content):
        raise invalid("Each content part must be an object with a 'type'.", f"{param}.content")
    texts = [part.get("text") for part in content if part["type"] in _TEXT_PARTS]
    if not all(isinstance(text, str) for text in texts):
        raise invalid("A text part must have a string 'text'.", f"{param}.content")
    return role, " ".join(str(text) for text in texts)


def answer_of(call: ResponsesCall) -> Answered:
    """The finished response; raises `Rejected` (400) when a schema cannot be filled."""
    text = render(call.output, f"[{call.model}] Answer to: {call.prompt}")
    words = re.findall(r"\S+\s*", text)
    cut = call.max_output_tokens is not None and len(words) > call.max_output_tokens
    if cut:
        words = words[: call.max_output_tokens]
        words[-1] = words[-1].rstrip()
    status = "incomplete" if cut else "completed"
    item = output_item(call.output, "".join(words), status=status)
    response = response_object(call, status=status, output=[item])
    response["usage"] = _usage(call.input_tokens, len(words))
    if cut:
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    return Answered(response=response, item=item, words=words)


def output_item(output: Output, text: str, *, status: str) -> dict[str, Any]:
    """The ``message`` (or ``function_call``) item holding ``text``."""
    if output.kind == "function":
        return {
            "id": f"fc_{secrets.token_hex(24)}",
            "type": "function_call",
            "status": status,
            "call_id": new_call_id(),
            "name": output.name,
            "arguments": text,
        }
    return {
        "id": f"msg_{secrets.token_hex(24)}",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text(text)],
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_object(
    call: ResponsesCall, *, status: str, output: list[dict[str, Any]]
) -> dict[str, Any]:
    """A ``Response`` without usage; ``completed_at`` is set once it is no longer in progress."""
    now = int(time.time())
    return {
        "id": f"resp_{secrets.token_hex(24)}",
        "object": "response",
        "created_at": now,
        "status": status,
        "completed_at": None if status == "in_progress" else now,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "model": call.model,
        "output": output,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "truncation": "disabled",
        "usage": None,
        **call.settings,
    }


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


async def responses_job(request: Request, *, store: ResponseStore) -> Job:
    """A ``POST /v1/responses`` call; the response is kept once answered unless ``store`` is
    false."""
    return response_job(await request.body(), store=store)


def response_job(raw: bytes, *, store: ResponseStore) -> Job:
    """`responses_job` for a body already read (a batch line's); raises `Rejected` (400)."""
    call = parse_responses(raw, stored=store)
    answered = answer_of(call)

    def keep() -> None:
        if call.store:
            store.put(answered.response)

    async def answer() -> Response:
        keep()
        return JSONResponse(answered.response)

    return Job(
        items=1,
        screened=call.screened,
        param="input",
        output_tokens=len(answered.words),
        tokens=answered.response["usage"]["total_tokens"],
        answer=streamed(
            response=answered.response, item=answered.item, words=answered.words, on_complete=keep
        )
        if call.stream
        else answer,
    )
