"""The shape a chat or a response asks its answer in: text, JSON, or a call of a function.

Chat completions say it with ``response_format`` (``{"type": "json_object"}`` or
``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``), the Responses API
with ``text.format`` (the same, with ``name``/``schema``/``strict`` beside ``type``). Both say
it with ``tools`` and a ``tool_choice`` that forces a call: ``"required"`` (the first function)
or a named function (``{"type": "function", "function": {"name"}}`` in a chat,
``{"type": "function", "name"}`` in a response); ``"auto"``, ``"none"`` or none at all keep the
answer text, as a model that chose not to call would.

The text `render` gives: the answer itself; ``{"answer": ANSWER}`` for ``json_object``; for a
schema or a function's ``parameters``, the JSON of `frugal.sim.schema_instance.instance_of`,
whose strings are the answer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from frugal.sim.rejected import invalid
from frugal.sim.schema_instance import SchemaError, instance_of


@dataclass(frozen=True)
class Output:
    """How an answer is shaped. ``schema``: a JSON answer's schema (None: any object) or the
    function's ``parameters``; ``name``: the function called; ``param``: the request field that
    asked for it, named when it cannot be followed."""

    kind: Literal["text", "json", "function"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    param: str | None = None


TEXT = Output("text")


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def render(output: Output, answer: str) -> str:
    """The text of an answer in this shape; raises `Rejected` (400) when its schema cannot be
    filled (a ``$ref`` to nothing)."""
    if output.kind == "text":
        return answer
    if output.schema is None:
        return json.dumps({"answer": answer}) if output.kind == "json" else "{}"
    try:
        return json.dumps(instance_of(output.schema, text=answer))
    except (SchemaError, RecursionError) as exc:
        raise invalid(f"The schema cannot be followed: {exc}", output.param) from None


def chat_output(body: Mapping[str, Any]) -> Output:
    """A chat completion's shape, from ``tools``/``tool_choice`` then ``response_format``."""
    functions = _functions(body.get("tools"), nested=True)
    called = _forced(body.get("tool_choice"), functions, bool(body.get("tools")), nested=True)
    if called is not None:
        return called
    return _format(body.get("response_format"), "response_format", nested=True)


def responses_output(body: Mapping[str, Any]) -> Output:
    """A Responses API call's shape, from ``tools``/``tool_choice`` then ``text.format``."""
    functions = _functions(body.get("tools"), nested=False)
    called = _forced(body.get("tool_choice"), functions, bool(body.get("tools")), nested=False)
    if called is not None:
        return called
    text = body.get("text")
    if text is not None and not isinstance(text, dict):
        raise invalid("'text' must be an object.", "text")
    return _format((text or {}).get("format"), "text.format", nested=False)


def _functions(tools: object, *, nested: bool) -> dict[str, Mapping[str, Any] | None]:
    """The function tools by name, with their ``parameters``; other kinds of tool (a
    response's ``web_search``...) are accepted and never called."""
    if tools is None:
        return {}
    if not isinstance(tools, list):
        raise invalid("'tools' must be a list.", "tools")
    functions: dict[str, Mapping[str, Any] | None] = {}
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise invalid("Each tool must be an object with a 'type'.", param)
        if tool["type"] != "function":
            if nested:
                raise invalid(f"Unsupported tool type {tool['type']!r}.", f"{param}.type")
            continue
        function = tool.get("function") if nested else tool
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            where = f"{param}.function" if nested else param
            raise invalid("A function tool must have a string 'name'.", where)
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise invalid("'parameters' must be a JSON schema object.", f"{param}.parameters")
        functions[function["name"]] = parameters
    return functions


def _forced(
    choice: object, functions: dict[str, Mapping[str, Any] | None], tools: bool, *, nested: bool
) -> Output | None:
    """The function a ``tool_choice`` forces, or None when the model may answer in text."""
    if choice is None or choice in ("auto", "none"):
        return None
    if not tools:
        message = "'tool_choice' is only allowed when 'tools' are specified."
        raise invalid(message, "tool_choice")
    if choice == "required":
        if not functions:
            return None  # only tools of other kinds: nothing the simulator can call
        name = next(iter(functions))
    elif isinstance(choice, dict) and choice.get("type") == "function":
        holder = choice.get("function") if nested else choice
        named = holder.get("name") if isinstance(holder, dict) else None
        if not isinstance(named, str):
            raise invalid("'tool_choice' must name the function to call.", "tool_choice")
        name = named
        if name not in functions:
            raise invalid(f"'tool_choice' names {name!r}, which is not in 'tools'.", "tool_choice")
    elif isinstance(choice, dict):
        return None  # a hosted tool or an allowed-tools list: the model may still answer
    else:
        raise invalid(f"Invalid value for 'tool_choice': {choice!r}.", "tool_choice")
    return Output("function", functions[name], name=name, param="tools")


def _format(form: object, param: str, *, nested: bool) -> Output:
    if form is None:
        return TEXT
    if not isinstance(form, dict) or not isinstance(form.get("type"), str):
        raise invalid(f"'{param}' must be an object with a 'type'.", param)
    kind = form["type"]
    if kind == "text":
        return TEXT
    if kind == "json_object":
        return Output("json", param=param)
    if kind != "json_schema":
        raise invalid(f"'{param}.type' must be text, json_object or json_schema.", f"{param}.type")
    spec = form.get("json_schema") if nested else form
    where = f"{param}.json_schema" if nested else param
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise invalid("A json_schema format must have a string 'name'.", where)
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise invalid("'schema' must be a JSON schema object.", f"{where}.schema")
    # Without a schema (or with an empty one) any object fits: the json_object answer.
    return Output("json", schema or None, param=f"{where}.schema")
